//! Checks the house rules that code review would otherwise have to remember: every Rust file
//! opens with a `//!` module doc, no `dbg!`/`todo!` is left behind, modules inside a crate
//! import one way (no cycles), no source file grows past 500 lines, and the dependencies that
//! define a crate's job stay in that one crate (rusqlite in storage, postgres in pgstore, axum
//! in server, rhai in functions, jsonwebtoken in auth), the script handles' methods take
//! the handle by value, and `unsafe` code stays in the one module that needs it.

use std::path::Path;

use tidy::{module_cycles, rust_files, workspace_root};

#[test]
fn every_rust_file_has_a_module_doc_and_no_leftovers() {
    let files = rust_files(&workspace_root().join("crates"));
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
        ("postgres", "pgstore"),
        ("tokio-postgres", "pgstore"),
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

#[test]
fn modules_inside_each_crate_import_one_way() {
    let root = workspace_root();
    let mut problems = Vec::new();
    let Ok(crates) = std::fs::read_dir(root.join("crates")) else {
        panic!("no crates folder");
    };
    for entry in crates.flatten() {
        let src = entry.path().join("src");
        let name = entry.file_name().to_string_lossy().into_owned();
        for cycle in module_cycles(&src) {
            problems.push(format!(
                "crates/{name}: modules {} refer to each other in a circle; move what they share \
                 into a leaf module or keep each `impl` in one file",
                cycle.join(", ")
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Source files stay at one concept each; past this many lines a file usually holds several.
const MAX_LINES: usize = 500;

#[test]
fn no_source_file_is_too_long() {
    let root = workspace_root();
    let mut problems = Vec::new();
    for file in rust_files(&root.join("crates")) {
        let lines = std::fs::read_to_string(&file)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        let shown = file.strip_prefix(&root).unwrap_or(Path::new(&file));
        if lines > MAX_LINES {
            problems.push(format!(
                "{}: {lines} lines (at most {MAX_LINES}); split it by concept",
                shown.display()
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The script handles reached through `ctx` (`ctx.db`, `ctx.auth`, `ctx.storage`,
/// `ctx.scheduler`, `ctx.db.system`).
const HANDLES: [&str; 7] = [
    "Db",
    "Auth",
    "Storage",
    "SystemDb",
    "Scheduler",
    "ActionScheduler",
    "ActionAuth",
];

/// A handle's methods take it by value (see `functions/src/host_api/ctx.rs`): with a `&mut`
/// receiver Rhai tries to store the handle back into `ctx` after every call. Getters are
/// `&mut` by Rhai's signature and are not methods of the handle.
#[test]
fn host_handle_methods_take_the_handle_by_value() {
    let root = workspace_root();
    let mut problems = Vec::new();
    for file in rust_files(&root.join("crates/functions/src/host_api")) {
        let text = std::fs::read_to_string(&file).expect("readable source");
        for (n, line) in text.lines().enumerate() {
            if line.contains("register_get") {
                continue;
            }
            for handle in HANDLES {
                let pattern = format!(": &mut {handle}");
                let found = line.match_indices(&pattern).any(|(at, _)| {
                    let rest = &line[at + pattern.len()..];
                    !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_')
                });
                if found {
                    problems.push(format!(
                        "{}:{}: `{}` takes &mut {handle}; take the handle by value",
                        file.display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The one module allowed `unsafe` code: SQLite's VFS interface is C's. The workspace denies
/// `unsafe_code`, and this keeps the exception where it is.
const UNSAFE_MODULE: &str = "crates/storage/src/wal_vfs.rs";

#[test]
fn unsafe_code_stays_in_the_one_vfs_module() {
    let root = workspace_root();
    let allow = concat!("allow(", "unsafe_code)");
    let mut problems = Vec::new();
    let mut vfs_allowed = false;
    for file in rust_files(&root.join("crates")) {
        let text = std::fs::read_to_string(&file).expect("readable source");
        let shown = file.strip_prefix(&root).unwrap_or(Path::new(&file));
        for (n, line) in text.lines().enumerate() {
            if !line.split("//").next().unwrap_or_default().contains(allow) {
                continue;
            }
            let next = text.lines().nth(n + 1).unwrap_or_default().trim();
            if shown == Path::new("crates/storage/src/lib.rs") && next == "mod wal_vfs;" {
                vfs_allowed = true;
            } else {
                problems.push(format!(
                    "{}:{}: `{}`; only {UNSAFE_MODULE} may use unsafe code",
                    shown.display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        vfs_allowed,
        "{UNSAFE_MODULE} is no longer where unsafe code is allowed"
    );
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("workspace manifest");
    assert!(
        manifest.contains("unsafe_code = \"deny\"")
            || manifest.contains("unsafe_code = \"forbid\""),
        "the workspace no longer denies unsafe code"
    );
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
