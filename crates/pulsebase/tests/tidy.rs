//! Checks the house rules that code review would otherwise have to remember: every Rust file
//! opens with a `//!` module doc, no `dbg!`/`todo!` is left behind, and the dependencies that
//! define a crate's job stay in that one crate (rusqlite in storage, axum in server, rhai in
//! functions, jsonwebtoken in auth).

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/pulsebase sits two levels below the workspace root")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_has_a_module_doc_and_no_leftovers() {
    let mut files = Vec::new();
    rust_files(&workspace_root().join("crates"), &mut files);
    assert!(files.len() > 40, "found only {} Rust files", files.len());
    // Spelled in pieces so this file does not trip its own check.
    let leftovers = [
        concat!("db", "g!("),
        concat!("to", "do!("),
        concat!("unimple", "mented!("),
    ];
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable source");
        if !text.trim_start().starts_with("//!") {
            problems.push(format!(
                "{}: does not start with a //! module doc",
                file.display()
            ));
        }
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if leftovers.iter().any(|l| code.contains(l)) {
                problems.push(format!(
                    "{}:{}: leftover {}",
                    file.display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn defining_dependencies_stay_in_their_crate() {
    let rules = [
        ("rusqlite", "storage"),
        ("axum", "server"),
        ("rhai", "functions"),
        ("jsonwebtoken", "auth"),
    ];
    let root = workspace_root();
    let mut problems = Vec::new();
    let Ok(crates) = std::fs::read_dir(root.join("crates")) else {
        panic!("no crates folder");
    };
    for entry in crates.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(manifest) = std::fs::read_to_string(entry.path().join("Cargo.toml")) else {
            continue;
        };
        let dependencies = manifest.split("[dependencies]").nth(1).unwrap_or_default();
        let dependencies = dependencies.split("\n[").next().unwrap_or_default();
        for (dependency, owner) in rules {
            let uses = dependencies.lines().any(|l| {
                l.trim_start().starts_with(&format!("{dependency} "))
                    || l.trim_start().starts_with(&format!("{dependency}."))
            });
            if uses && name != owner {
                problems.push(format!(
                    "crates/{name} depends on {dependency}, which belongs to crates/{owner} only"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
