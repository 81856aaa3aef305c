//! The tree the generated `api` and `internal` objects are written from: every query and
//! mutation of the loaded modules as a [`Reference`], placed at `api.<folders>.<module>.<name>`
//! (HTTP actions have no client reference and are left out).

use std::collections::BTreeMap;

use functions::{FunctionDef, FunctionKind, Modules, Visibility};
use schema::{ObjectType, Type};

/// The two trees of references: what clients may call, and what only the admin may.
#[derive(Default)]
pub(super) struct References {
    pub public: Namespace,
    pub internal: Namespace,
}

impl References {
    /// Every query and mutation of `modules`, by visibility.
    pub fn collect(modules: &Modules) -> References {
        let mut references = References::default();
        for (path, def) in modules.functions() {
            let Some(kind) = reference_kind(def) else {
                continue;
            };
            let tree = match def.visibility {
                Visibility::Public => &mut references.public,
                Visibility::Internal => &mut references.internal,
            };
            let mut node = tree;
            for segment in path.module().split('/') {
                node = node.children.entry(segment.to_string()).or_default();
            }
            let node = node.children.entry(path.name().to_string()).or_default();
            // Convex names a module's `default` export by the module path alone.
            let name = if path.name() == "default" {
                path.module().to_string()
            } else {
                path.to_string()
            };
            node.function = Some(Reference {
                name,
                kind,
                visibility: def.visibility,
                args: def.args.clone(),
                returns: def.returns.clone(),
            });
        }
        references
    }
}

fn reference_kind(def: &FunctionDef) -> Option<&'static str> {
    match def.kind {
        FunctionKind::Query => Some("query"),
        FunctionKind::Mutation => Some("mutation"),
        FunctionKind::Action => Some("action"),
        FunctionKind::HttpAction => None,
    }
}

/// One function as the generated code names and types it.
pub(super) struct Reference {
    /// The name on the wire, e.g. `todos:getMyTodos`.
    pub name: String,
    /// `query`, `mutation` or `action`, as `FunctionReference` spells it.
    pub kind: &'static str,
    pub visibility: Visibility,
    /// The argument validators; `None` when the function declares none.
    pub args: Option<ObjectType>,
    /// The `returns` validator; `None` when the function declares none.
    pub returns: Option<Type>,
}

/// A level of `api.a.b.fn`: a key may hold a function, a deeper level, or (when a module and a
/// folder share a name) both.
#[derive(Default)]
pub(super) struct Namespace {
    pub function: Option<Reference>,
    pub children: BTreeMap<String, Namespace>,
}
