//! `api.js`: the `api` and `internal` objects, plain objects of `makeFunctionReference(name)`
//! from `convex/server`, so the official client accepts them.

use std::fmt::Write as _;

use super::namespace::Namespace;
use super::syntax::{HEADER, indent, js_string, property};

/// The whole `api.js`.
pub(super) fn api_js(public: &Namespace, internal: &Namespace) -> String {
    let mut out = String::from(HEADER);
    out.push_str("import { makeFunctionReference } from \"convex/server\";\n\n");
    out.push_str(
        "/**\n * References to the app's public functions, for the convex client.\n *\n \
         * Usage: `useQuery(api.todos.getMyTodos)`.\n */\nexport const api = ",
    );
    js_namespace(public, 0, &mut out);
    out.push_str(";\n\n/**\n * References to the app's internal functions (not callable by clients).\n */\nexport const internal = ");
    js_namespace(internal, 0, &mut out);
    out.push_str(";\n");
    out
}

fn js_namespace(ns: &Namespace, depth: usize, out: &mut String) {
    let body = |out: &mut String| {
        if ns.children.is_empty() {
            out.push_str("{}");
            return;
        }
        out.push_str("{\n");
        for (key, child) in &ns.children {
            indent(out, depth + 1);
            let _ = write!(out, "{}: ", property(key));
            js_namespace(child, depth + 1, out);
            out.push_str(",\n");
        }
        indent(out, depth);
        out.push('}');
    };
    match &ns.function {
        Some(reference) if ns.children.is_empty() => {
            let _ = write!(out, "makeFunctionReference({})", js_string(&reference.name));
        }
        Some(reference) => {
            let _ = write!(
                out,
                "Object.assign(makeFunctionReference({}), ",
                js_string(&reference.name)
            );
            body(out);
            out.push(')');
        }
        None => body(out),
    }
}
