//! Reading the workspace's own sources for the house rules in `tests/rules.rs`.
//!
//! The one non-obvious part is [`module_cycles`]: it builds, for one crate, the graph of which
//! module refers to which (through `crate::`, `super::`, `self::` and child-module paths) and
//! reports every strongly connected component with more than one module. Modules are files;
//! inline `mod tests` blocks and `#[cfg(test)]` code are left out, and the re-exports of a facade
//! (`lib.rs`, `mod.rs`: `mod x;`, `pub use x::Y;`) are not uses. A reference to the crate root
//! counts like any other, so a child that reaches up into `lib.rs` while `lib.rs` uses the child is
//! a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Every `.rs` file below `dir`, sorted.
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    collect(dir, &mut out);
    out.sort();
    out
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n == "target" || n == "node_modules")
            {
                continue;
            }
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A module path inside a crate, e.g. `["session", "outbox"]`; the root is `[]`.
pub type ModPath = Vec<String>;

/// The module a source file under `src/` defines.
fn module_of(src: &Path, file: &Path) -> Option<ModPath> {
    let rel = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    let stem = last.strip_suffix(".rs")?.to_string();
    if parts.is_empty() && (stem == "lib" || stem == "main") {
        return Some(Vec::new());
    }
    // Other binaries (src/bin/*.rs) are crates of their own.
    if parts.first().is_some_and(|p| p == "bin") {
        return None;
    }
    if stem != "mod" {
        parts.push(stem);
    }
    Some(parts)
}

/// Removes comments, string and char literals, and everything after the first `#[cfg(test)]`
/// (test modules sit at the end of a file in this workspace), so that only code is scanned.
pub fn code_only(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => text,
    };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            i += end;
        } else if rest.starts_with("/*") {
            let end = rest.find("*/").map_or(rest.len(), |e| e + 2);
            i += end;
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].chars().take_while(|c| *c == '#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body_start = 2 + hashes;
            let end = rest[body_start..]
                .find(&close)
                .map_or(rest.len(), |e| body_start + e + close.len());
            out.push_str("\"\"");
            i += end;
        } else if rest.starts_with('"') {
            let mut j = 1;
            let rb = rest.as_bytes();
            while j < rb.len() && rb[j] != b'"' {
                if rb[j] == b'\\' {
                    j += 1;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i += (j + 1).min(rest.len());
        } else if let Some(after_quote) = rest.strip_prefix('\'') {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a): skip only literals.
            let rb = rest.as_bytes();
            let lit_len = if rb.len() > 3 && rb[1] == b'\\' {
                rest[3..].find('\'').map(|e| e + 4)
            } else if rb.len() > 2 {
                let c = after_quote.chars().next().map_or(1, char::len_utf8);
                (rest.as_bytes().get(1 + c) == Some(&b'\'')).then_some(2 + c)
            } else {
                None
            };
            match lit_len {
                Some(n) => {
                    out.push_str("' '");
                    i += n;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Expands one path expression with `{a, b::{c, d}}` groups into its plain paths.
fn expand(path: &str) -> Vec<String> {
    let path: String = path.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = path.find('{') else {
        return vec![path];
    };
    let prefix = &path[..open];
    let inner = path[open + 1..]
        .strip_suffix('}')
        .unwrap_or(&path[open + 1..]);
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand(&format!("{prefix}{p}")))
        .collect()
}

/// The paths a piece of code names: every `use` tree, and every `crate::`/`super::`/`self::`
/// path in expressions and types. Facade re-exports are skipped when `facade` is set.
fn referenced_paths(code: &str, facade: bool) -> Vec<String> {
    let mut out = Vec::new();
    // `use` statements (possibly multi-line, with groups).
    let mut rest = code;
    while let Some(at) = find_word(rest, "use") {
        let before = rest[..at].trim_end();
        let is_pub = before.ends_with("pub") || before.ends_with(')');
        let after = &rest[at + 3..];
        let end = after.find(';').unwrap_or(after.len());
        let tree = &after[..end];
        if !(facade && is_pub) {
            out.extend(expand(tree));
        }
        rest = &after[end..];
    }
    // Paths used inline: crate::a::b, super::x, self::y.
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(pos) = code[from..].find(start) {
            let at = from + pos;
            let prev = code[..at].chars().next_back();
            from = at + start.len();
            if prev.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let tail: String = code[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(tail);
        }
    }
    out
}

fn find_word(text: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(pos) = text[from..].find(word) {
        let at = from + pos;
        let before_ok = text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        let after_ok = text[at + word.len()..]
            .chars()
            .next()
            .is_some_and(char::is_whitespace);
        if before_ok && after_ok {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// Resolves `path` named in module `from` to the deepest module of `modules` it reaches.
fn resolve(path: &str, from: &ModPath, modules: &BTreeSet<ModPath>) -> Option<ModPath> {
    let segments: Vec<&str> = path
        .split("::")
        .filter(|s| !s.is_empty() && *s != "*")
        .collect();
    let first = *segments.first()?;
    let (mut current, rest): (ModPath, &[&str]) = match first {
        "crate" => (Vec::new(), &segments[1..]),
        "self" => (from.clone(), &segments[1..]),
        "super" => {
            let mut base = from.clone();
            let mut i = 0;
            while segments.get(i) == Some(&"super") {
                base.pop();
                i += 1;
            }
            (base, &segments[i..])
        }
        name => {
            // A child module named without `self::` (2018 paths).
            let mut child = from.clone();
            child.push(name.to_string());
            if !modules.contains(&child) {
                return None;
            }
            (child, &segments[1..])
        }
    };
    for segment in rest {
        let mut next = current.clone();
        next.push((*segment).to_string());
        if modules.contains(&next) {
            current = next;
        } else {
            break;
        }
    }
    Some(current)
}

/// Which module of a crate refers to which other module.
pub fn module_graph(src: &Path) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let files: Vec<(ModPath, PathBuf)> = rust_files(src)
        .into_iter()
        .filter_map(|f| module_of(src, &f).map(|m| (m, f)))
        .collect();
    let modules: BTreeSet<ModPath> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut graph = BTreeMap::new();
    for (module, file) in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let facade = file
            .file_name()
            .is_some_and(|n| n == "lib.rs" || n == "mod.rs" || n == "main.rs");
        let mut targets = BTreeSet::new();
        for path in referenced_paths(&code_only(&text), facade) {
            if let Some(target) = resolve(&path, module, &modules)
                && &target != module
            {
                targets.insert(target);
            }
        }
        graph.insert(module.clone(), targets);
    }
    graph
}

/// Every group of modules that refer to each other in a circle (Tarjan's strongly connected
/// components of size two or more), each sorted, as `a::b` names (`crate` for the root).
pub fn module_cycles(src: &Path) -> Vec<Vec<String>> {
    let graph = module_graph(src);
    let nodes: Vec<&ModPath> = graph.keys().collect();
    let index_of: BTreeMap<&ModPath, usize> =
        nodes.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let edges: Vec<Vec<usize>> = nodes
        .iter()
        .map(|m| {
            graph[*m]
                .iter()
                .filter_map(|t| index_of.get(t).copied())
                .collect()
        })
        .collect();
    let components = strongly_connected(&edges);
    let mut cycles: Vec<Vec<String>> = components
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            let mut names: Vec<String> = c
                .into_iter()
                .map(|i| {
                    if nodes[i].is_empty() {
                        "crate".to_string()
                    } else {
                        nodes[i].join("::")
                    }
                })
                .collect();
            names.sort();
            names
        })
        .collect();
    cycles.sort();
    cycles
}

/// Tarjan's algorithm, iterative so that deep graphs cannot overflow the stack.
fn strongly_connected(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = edges.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0;
    let mut out = Vec::new();
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work = vec![(root, 0usize)];
        while let Some(&mut (v, ref mut child)) = work.last_mut() {
            if *child == 0 && index[v] == usize::MAX {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = edges[v].get(*child) {
                *child += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                out.push(component);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_expand_to_plain_paths() {
        assert_eq!(
            expand("crate::{a, b::{C, d}}"),
            vec!["crate::a", "crate::b::C", "crate::b::d"]
        );
    }

    #[test]
    fn comments_and_strings_are_not_code() {
        let code = code_only("let x = \"crate::a\"; // super::b\nuse crate::c;");
        assert!(!code.contains("crate::a"));
        assert!(!code.contains("super::b"));
        assert!(code.contains("crate::c"));
    }

    #[test]
    fn a_circle_is_found() {
        let edges = vec![vec![1], vec![2], vec![0], vec![]];
        let components = strongly_connected(&edges);
        assert!(components.iter().any(|c| c.len() == 3));
    }
}
