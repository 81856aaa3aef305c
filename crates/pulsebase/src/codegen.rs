//! `pulsebase codegen`: typed client code for the app, as Convex's `convex/_generated/`.
//!
//! Writes three files into `DIR/functions/_generated/` (or `--out`), a folder the functions
//! loader skips:
//! - `api.js`: `api` and `internal`, plain objects of function references built with
//!   `makeFunctionReference` from `convex/server`, so the official client accepts them
//!   (`useQuery(api.todos.getMyTodos)`); `admin/users.rhai` becomes `api.admin.users.NAME`.
//! - `api.d.ts`: their types, `FunctionReference<"query" | "mutation", visibility, Args,
//!   Returns>`, with `Args` from each function's argument validators and `Returns` from its
//!   `returns` validator (`any` when it declares none; `doc<todos>` becomes `Doc<"todos">`).
//! - `dataModel.d.ts`: `TableNames`, `Id<"todos">`, `Doc<"todos">` and `DataModel`, from
//!   `schema.toml`; every document type has `_id` and `_creationTime`.
//!
//! HTTP actions have no client reference and are left out. `pulsebase dev` regenerates the
//! files at startup and after every successful sync of `functions/` or `schema.toml`
//! ([`dev_regenerate`]); a file is rewritten only when its content changes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use application::App;
use functions::{FunctionDef, FunctionKind, Modules, Visibility};
use schema::{ObjectType, Schema, Type};
use value::Value;

use crate::cli::CodegenArgs;
use crate::paths::AppPaths;
use crate::start::load_schema;

/// The generated files, by file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub files: Vec<(&'static str, String)>,
}

/// The default output folder of an app.
pub fn default_out(dir: &Path) -> PathBuf {
    AppPaths::new(dir).functions().join("_generated")
}

/// `pulsebase codegen [--dir DIR] [--out DIR] [--check]`.
pub fn run(args: CodegenArgs) -> anyhow::Result<ExitCode> {
    let paths = AppPaths::new(&args.dir);
    anyhow::ensure!(
        args.dir.is_dir(),
        "{} is not a directory; pass the app folder with --dir",
        args.dir.display()
    );
    let modules = Modules::load_dir(&paths.functions())
        .map_err(|errors| anyhow::anyhow!("functions/ does not load:\n{errors}"))?;
    let (schema, _) = load_schema(&paths.schema())?;
    let generated = generate(&modules, &schema);
    let out = args.out.unwrap_or_else(|| default_out(&args.dir));
    let n_functions = modules
        .functions()
        .filter(|(_, def)| def.kind != FunctionKind::HttpAction)
        .count();
    if args.check {
        let stale = stale_files(&out, &generated);
        if stale.is_empty() {
            println!("✓ {} is up to date", out.display());
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "✗ {} is out of date ({}); run `pulsebase codegen --dir {} --out {}`",
            out.display(),
            stale.join(", "),
            args.dir.display(),
            out.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let written = write(&out, &generated)?;
    println!(
        "✓ {} in {} ({n_functions} functions, {} tables)",
        if written.is_empty() {
            "generated code unchanged".to_string()
        } else {
            format!("wrote {}", written.join(", "))
        },
        out.display(),
        schema.tables.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Regenerates `DIR/functions/_generated/` from the app's live functions and schema; used by
/// `pulsebase dev` at startup and after each successful sync. Returns the files rewritten, so
/// the sync line can say so (one line per sync); a failure is a warning only.
pub fn dev_regenerate(dir: &Path, app: &App) -> Vec<&'static str> {
    let modules = app.modules();
    let catalog = app.db().catalog();
    let generated = generate(&modules, &catalog.schema);
    let out = default_out(dir);
    match write(&out, &generated) {
        Ok(written) => {
            if !written.is_empty() {
                tracing::debug!("codegen: wrote {} in {}", written.join(", "), out.display());
            }
            written
        }
        Err(e) => {
            eprintln!("⚠ codegen: {e:#} (the server keeps running)");
            Vec::new()
        }
    }
}

/// Writes the files that changed (via a temporary file and a rename, so a bundler watching
/// the folder never reads half a file); returns the names written.
pub fn write(out: &Path, generated: &Generated) -> anyhow::Result<Vec<&'static str>> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut written = Vec::new();
    for (name, text) in &generated.files {
        let path = out.join(name);
        if std::fs::read_to_string(&path).is_ok_and(|old| old == *text) {
            continue;
        }
        let tmp = out.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(*name);
    }
    Ok(written)
}

/// The files whose content on disk differs from `generated`.
fn stale_files(out: &Path, generated: &Generated) -> Vec<&'static str> {
    generated
        .files
        .iter()
        .filter(|(name, text)| std::fs::read_to_string(out.join(name)).ok().as_ref() != Some(text))
        .map(|(name, _)| *name)
        .collect()
}

/// Builds the three files.
pub fn generate(modules: &Modules, schema: &Schema) -> Generated {
    let mut public = Namespace::default();
    let mut internal = Namespace::default();
    for (path, def) in modules.functions() {
        let Some(kind) = reference_kind(def) else {
            continue;
        };
        let tree = match def.visibility {
            Visibility::Public => &mut public,
            Visibility::Internal => &mut internal,
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
    let tables = TypeContext { schema };
    Generated {
        files: vec![
            ("api.js", api_js(&public, &internal)),
            ("api.d.ts", api_dts(&public, &internal, &tables)),
            ("dataModel.d.ts", data_model_dts(schema, &tables)),
        ],
    }
}

fn reference_kind(def: &FunctionDef) -> Option<&'static str> {
    match def.kind {
        FunctionKind::Query => Some("query"),
        FunctionKind::Mutation => Some("mutation"),
        FunctionKind::HttpAction => None,
    }
}

struct Reference {
    /// The name on the wire, e.g. `todos:getMyTodos`.
    name: String,
    kind: &'static str,
    visibility: Visibility,
    args: Option<ObjectType>,
    returns: Option<Type>,
}

/// A level of `api.a.b.fn`: a key may hold a function, a deeper level, or (when a module and a
/// folder share a name) both.
#[derive(Default)]
struct Namespace {
    function: Option<Reference>,
    children: BTreeMap<String, Namespace>,
}

const HEADER: &str = "/* eslint-disable */\n\
/**\n * Generated by `pulsebase codegen` from functions/ and schema.toml.\n *\n \
* THIS CODE IS AUTOMATICALLY GENERATED: `pulsebase dev` rewrites it on every change.\n */\n";

fn api_js(public: &Namespace, internal: &Namespace) -> String {
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

fn api_dts(public: &Namespace, internal: &Namespace, tables: &TypeContext) -> String {
    let mut out = String::from(HEADER);
    out.push_str("import type { FunctionReference } from \"convex/server\";\n");
    out.push_str("import type { GenericId } from \"convex/values\";\n");
    out.push_str("import type { Doc, Id } from \"./dataModel.js\";\n\n");
    out.push_str(
        "/**\n * References to the app's public functions, for the convex client.\n *\n \
         * Usage: `useQuery(api.todos.getMyTodos)`.\n */\nexport declare const api: ",
    );
    ts_namespace(public, 0, tables, &mut out);
    out.push_str(";\n\n/**\n * References to the app's internal functions (not callable by clients).\n */\nexport declare const internal: ");
    ts_namespace(internal, 0, tables, &mut out);
    out.push_str(";\n");
    out
}

fn ts_namespace(ns: &Namespace, depth: usize, tables: &TypeContext, out: &mut String) {
    if let Some(reference) = &ns.function {
        let args = match &reference.args {
            None => "any".to_string(),
            Some(object) if object.fields.is_empty() => "Record<string, never>".to_string(),
            Some(object) => tables.object(object),
        };
        let returns = reference
            .returns
            .as_ref()
            .map_or_else(|| "any".to_string(), |t| tables.ts(t));
        let visibility = match reference.visibility {
            Visibility::Public => "public",
            Visibility::Internal => "internal",
        };
        let _ = write!(
            out,
            "FunctionReference<\"{}\", \"{visibility}\", {args}, {returns}>",
            reference.kind
        );
        if ns.children.is_empty() {
            return;
        }
        out.push_str(" & ");
    }
    if ns.children.is_empty() {
        out.push_str("{}");
        return;
    }
    out.push_str("{\n");
    for (key, child) in &ns.children {
        if let Some(reference) = &child.function {
            indent(out, depth + 1);
            let _ = writeln!(
                out,
                "/** {} `{}` */",
                reference.kind,
                comment_safe(&reference.name)
            );
        }
        indent(out, depth + 1);
        let _ = write!(out, "{}: ", property(key));
        ts_namespace(child, depth + 1, tables, out);
        out.push_str(";\n");
    }
    indent(out, depth);
    out.push('}');
}

fn data_model_dts(schema: &Schema, tables: &TypeContext) -> String {
    let mut out = String::from(HEADER);
    out.push_str("import type { GenericId } from \"convex/values\";\n\n");
    out.push_str(
        "/** The names of the tables declared in schema.toml. */\nexport type TableNames = ",
    );
    if schema.tables.is_empty() {
        out.push_str("never");
    } else {
        let names: Vec<String> = schema.tables.keys().map(|t| js_string(t)).collect();
        out.push_str(&names.join(" | "));
    }
    out.push_str(";\n\n");
    out.push_str(
        "/** The id of a document in `TableName`: a string that names its table. */\n\
         export type Id<TableName extends TableNames> = GenericId<TableName>;\n\n",
    );
    out.push_str(
        "/** A document of `TableName`, with its system fields `_id` and `_creationTime`. */\n\
         export type Doc<TableName extends TableNames> = DataModel[TableName][\"document\"];\n\n",
    );
    out.push_str("/** Every table: its document type, field paths and indexes. */\nexport type DataModel = {");
    if schema.tables.is_empty() {
        out.push_str("};\n");
        return out;
    }
    out.push('\n');
    for (name, table) in &schema.tables {
        let id = format!("Id<{}>", js_string(name));
        let _ = writeln!(out, "  {}: {{", property(name));
        let mut document = format!("{{ _id: {id}; _creationTime: number");
        let mut paths = vec!["\"_id\"".to_string(), "\"_creationTime\"".to_string()];
        match &table.document {
            Some(object) => {
                for (field, ty) in &object.fields {
                    document.push_str("; ");
                    document.push_str(&tables.field(field, ty));
                    field_paths(field, ty, &mut paths);
                }
            }
            None => document.push_str("; [field: string]: any"),
        }
        document.push_str(" }");
        let _ = writeln!(out, "    document: {document};");
        let _ = writeln!(out, "    fieldPaths: {};", paths.join(" | "));
        out.push_str("    indexes: {\n");
        out.push_str("      by_id: [\"_id\"];\n      by_creation_time: [\"_creationTime\"];\n");
        for (index_name, index) in &table.indexes {
            let mut fields: Vec<String> =
                index.fields.iter().map(|f| js_string(f.as_str())).collect();
            fields.push("\"_creationTime\"".to_string());
            let _ = writeln!(
                out,
                "      {}: [{}];",
                property(index_name),
                fields.join(", ")
            );
        }
        out.push_str("    };\n    searchIndexes: {};\n    vectorIndexes: {};\n  };\n");
    }
    out.push_str("};\n");
    out
}

/// The dotted paths of a field and of the fields of nested objects.
fn field_paths(prefix: &str, ty: &Type, paths: &mut Vec<String>) {
    paths.push(js_string(prefix));
    match ty {
        Type::Object(object) => {
            for (field, inner) in &object.fields {
                field_paths(&format!("{prefix}.{field}"), inner, paths);
            }
        }
        Type::Optional(inner) => {
            if let Type::Object(object) = inner.as_ref() {
                for (field, inner) in &object.fields {
                    field_paths(&format!("{prefix}.{field}"), inner, paths);
                }
            }
        }
        _ => {}
    }
}

/// Maps the type language to TypeScript; knows which tables `Id<..>` may name.
struct TypeContext<'a> {
    schema: &'a Schema,
}

impl TypeContext<'_> {
    fn ts(&self, ty: &Type) -> String {
        match ty {
            Type::Any => "any".into(),
            Type::Null => "null".into(),
            Type::Number => "number".into(),
            Type::Int64 => "bigint".into(),
            Type::Boolean => "boolean".into(),
            Type::String => "string".into(),
            Type::Bytes => "ArrayBuffer".into(),
            Type::Id(table) if self.schema.tables.contains_key(table) => {
                format!("Id<{}>", js_string(table))
            }
            // A validator may name a table the schema does not declare (yet).
            Type::Id(table) => format!("GenericId<{}>", js_string(table)),
            Type::Doc(table) if self.schema.tables.contains_key(table) => {
                format!("Doc<{}>", js_string(table))
            }
            Type::Doc(table) => format!(
                "{{ _id: GenericId<{}>; _creationTime: number; [field: string]: any }}",
                js_string(table)
            ),
            Type::Literal(value) => literal(value),
            Type::Array(item) => format!("Array<{}>", self.ts(item)),
            Type::Record(item) => format!("Record<string, {}>", self.ts(item)),
            Type::Object(object) => self.object(object),
            Type::Union(options) => {
                let options: Vec<String> = options.iter().map(|t| self.ts(t)).collect();
                format!("({})", options.join(" | "))
            }
            Type::Optional(inner) => format!("({} | undefined)", self.ts(inner)),
        }
    }

    fn object(&self, object: &ObjectType) -> String {
        if object.fields.is_empty() {
            return "{}".into();
        }
        let fields: Vec<String> = object
            .fields
            .iter()
            .map(|(name, ty)| self.field(name, ty))
            .collect();
        format!("{{ {} }}", fields.join("; "))
    }

    fn field(&self, name: &str, ty: &Type) -> String {
        match ty {
            Type::Optional(inner) => format!("{}?: {}", property(name), self.ts(inner)),
            ty => format!("{}: {}", property(name), self.ts(ty)),
        }
    }
}

fn literal(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Boolean(b) => b.to_string(),
        Value::String(s) => js_string(s),
        Value::Int64(i) => format!("{i}n"),
        Value::Float64(f) if f.is_finite() => {
            let text = f.to_string();
            if text == "-0" { "0".into() } else { text }
        }
        Value::Float64(_) => "number".into(),
        Value::Bytes(_) => "ArrayBuffer".into(),
        Value::Array(_) | Value::Object(_) => "any".into(),
    }
}

/// A JavaScript / TypeScript string literal.
fn js_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A property key: bare when it is an identifier, quoted otherwise.
fn property(key: &str) -> String {
    let mut chars = key.chars();
    let identifier = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if identifier {
        key.to_string()
    } else {
        js_string(key)
    }
}

fn comment_safe(s: &str) -> String {
    s.replace("*/", "*\\/")
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use functions::ModuleSource;

    fn modules(sources: &[(&str, &str)]) -> Modules {
        let sources = sources
            .iter()
            .map(|(module, source)| ModuleSource {
                module: (*module).to_string(),
                file: format!("functions/{module}.rhai"),
                source: (*source).to_string(),
            })
            .collect();
        match Modules::from_sources(sources) {
            Ok(modules) => modules,
            Err(errors) => panic!("test modules do not load: {errors}"),
        }
    }

    fn schema(text: &str) -> Schema {
        match Schema::parse(text, "schema.toml") {
            Ok(schema) => schema,
            Err(e) => panic!("test schema does not parse: {e}"),
        }
    }

    fn file<'a>(generated: &'a Generated, name: &str) -> &'a str {
        generated
            .files
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| text.as_str())
            .unwrap_or_else(|| panic!("{name} not generated"))
    }

    const TODOS: &str = r#"
        export const getMyTodos = query(#{ args: #{}, handler: |ctx, args| [] });
        export const addTodo = mutation(#{ args: #{ text: "string" }, handler: |ctx, args| () });
        export const toggle = mutation(#{ args: #{ id: "id<todos>" }, handler: |ctx, args| () });
        export const raw = query(|ctx, args| 1);
        export const purge = internalMutation(#{ args: #{}, handler: |ctx, args| () });
    "#;

    const ADMIN_USERS: &str = r#"
        export const list = query(#{
            args: #{ limit: "optional<int64>", role: "'admin' | 'user'", tags: "array<string>",
                     meta: "record<string, number>", blob: "bytes", flag: "boolean | null",
                     nested: "object{a: number, b?: id<users>}", "odd-name": "any" },
            returns: "array<object{name: string, n: 3}>",
            handler: |ctx, args| []
        });
    "#;

    const HTTP: &str = r#"
        export const hook = httpAction(|ctx, request| ());
    "#;

    const SCHEMA: &str = r#"
        [tables.todos]
        fields = { text = "string", userId = "string", completed = "boolean" }
        indexes = { by_user = ["userId"] }

        [tables.users]
        fields = { name = "string", role = "optional<'admin' | 'user'>", profile = "optional<object{age: number}>" }

        [tables.loose]
    "#;

    #[test]
    fn api_js_builds_references_with_wire_names() {
        let generated = generate(
            &modules(&[("todos", TODOS), ("admin/users", ADMIN_USERS)]),
            &schema(SCHEMA),
        );
        let js = file(&generated, "api.js");
        assert!(js.contains("import { makeFunctionReference } from \"convex/server\";"));
        assert!(js.contains("getMyTodos: makeFunctionReference(\"todos:getMyTodos\")"));
        assert!(js.contains("list: makeFunctionReference(\"admin/users:list\")"));
        assert!(js.contains("admin: {\n    users: {"));
        let internal = js.split("export const internal").nth(1).unwrap_or_default();
        assert!(internal.contains("purge: makeFunctionReference(\"todos:purge\")"));
        assert!(!internal.contains("getMyTodos"));
        let public = js.split("export const internal").next().unwrap_or_default();
        assert!(!public.contains("purge"));
    }

    #[test]
    fn api_dts_types_arguments_and_returns() {
        let generated = generate(
            &modules(&[
                ("todos", TODOS),
                ("admin/users", ADMIN_USERS),
                ("http", HTTP),
            ]),
            &schema(SCHEMA),
        );
        let dts = file(&generated, "api.d.ts");
        assert!(dts.contains(
            "getMyTodos: FunctionReference<\"query\", \"public\", Record<string, never>, any>;"
        ));
        assert!(dts.contains(
            "addTodo: FunctionReference<\"mutation\", \"public\", { text: string }, any>;"
        ));
        assert!(dts.contains(
            "toggle: FunctionReference<\"mutation\", \"public\", { id: Id<\"todos\"> }, any>;"
        ));
        assert!(dts.contains("raw: FunctionReference<\"query\", \"public\", any, any>;"));
        assert!(dts.contains(
            "purge: FunctionReference<\"mutation\", \"internal\", Record<string, never>, any>;"
        ));
        assert!(dts.contains("limit?: bigint"), "{dts}");
        assert!(dts.contains("role: (\"admin\" | \"user\")"), "{dts}");
        assert!(dts.contains("tags: Array<string>"));
        assert!(dts.contains("meta: Record<string, number>"));
        assert!(dts.contains("blob: ArrayBuffer"));
        assert!(dts.contains("flag: (boolean | null)"));
        assert!(dts.contains("nested: { a: number; b?: Id<\"users\"> }"));
        assert!(dts.contains("\"odd-name\": any"));
        assert!(dts.contains(", Array<{ n: 3; name: string }>>;"), "{dts}");
        assert!(
            !dts.contains("hook"),
            "HTTP actions have no client reference"
        );
    }

    #[test]
    fn doc_returns_become_doc_types() {
        let docs = r#"
            export const mine = query(#{ args: #{}, returns: "array<doc<todos>>", handler: |ctx, args| [] });
            export const one = query(#{ args: #{}, returns: "doc<users> | null", handler: |ctx, args| () });
            export const odd = query(#{ args: #{}, returns: "doc<nope>", handler: |ctx, args| () });
        "#;
        let generated = generate(&modules(&[("docs", docs)]), &schema(SCHEMA));
        let dts = file(&generated, "api.d.ts");
        assert!(dts.contains("import type { Doc, Id } from \"./dataModel.js\";"));
        assert!(dts.contains(
            "mine: FunctionReference<\"query\", \"public\", Record<string, never>, Array<Doc<\"todos\">>>;"
        ), "{dts}");
        assert!(dts.contains(", (Doc<\"users\"> | null)>;"), "{dts}");
        assert!(
            dts.contains(
                ", { _id: GenericId<\"nope\">; _creationTime: number; [field: string]: any }>;"
            ),
            "{dts}"
        );
    }

    #[test]
    fn data_model_has_documents_ids_and_indexes() {
        let generated = generate(&modules(&[]), &schema(SCHEMA));
        let dm = file(&generated, "dataModel.d.ts");
        assert!(dm.contains("export type TableNames = \"loose\" | \"todos\" | \"users\";"));
        assert!(dm.contains(
            "document: { _id: Id<\"todos\">; _creationTime: number; completed: boolean; text: string; userId: string };"
        ), "{dm}");
        assert!(dm.contains("role?: (\"admin\" | \"user\")"));
        assert!(dm.contains("profile?: { age: number }"));
        assert!(dm.contains("\"profile.age\""));
        assert!(dm.contains("by_user: [\"userId\", \"_creationTime\"];"));
        assert!(dm.contains(
            "document: { _id: Id<\"loose\">; _creationTime: number; [field: string]: any };"
        ));
    }

    #[test]
    fn ids_of_undeclared_tables_and_empty_schemas() {
        let generated = generate(&modules(&[("todos", TODOS)]), &Schema::default());
        let dts = file(&generated, "api.d.ts");
        assert!(dts.contains("{ id: GenericId<\"todos\"> }"));
        let dm = file(&generated, "dataModel.d.ts");
        assert!(dm.contains("export type TableNames = never;"));
        assert!(dm.contains("export type DataModel = {};"));
    }

    #[test]
    fn a_module_and_a_folder_with_one_name_merge() {
        let generated = generate(
            &modules(&[
                ("admin", "export const users = query(|ctx, args| 1);"),
                ("admin/users", "export const list = query(|ctx, args| 1);"),
            ]),
            &Schema::default(),
        );
        let js = file(&generated, "api.js");
        assert!(js.contains("users: Object.assign(makeFunctionReference(\"admin:users\"), {"));
        assert!(js.contains("list: makeFunctionReference(\"admin/users:list\")"));
        let dts = file(&generated, "api.d.ts");
        assert!(dts.contains("users: FunctionReference<\"query\", \"public\", any, any> & {"));
    }

    #[test]
    fn literals_and_keys_are_valid_typescript() {
        assert_eq!(literal(&Value::Int64(-3)), "-3n");
        assert_eq!(literal(&Value::Float64(2.5)), "2.5");
        assert_eq!(literal(&Value::Float64(f64::NAN)), "number");
        assert_eq!(literal(&Value::String("a\"b".into())), "\"a\\\"b\"");
        assert_eq!(property("ok_name$1"), "ok_name$1");
        assert_eq!(property("1st"), "\"1st\"");
        assert_eq!(property("with space"), "\"with space\"");
    }

    #[test]
    fn write_only_rewrites_changed_files() {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("tempdir: {e}"),
        };
        let out = dir.path().join("_generated");
        let generated = generate(&modules(&[("todos", TODOS)]), &schema(SCHEMA));
        let first = write(&out, &generated).unwrap_or_default();
        assert_eq!(first, vec!["api.js", "api.d.ts", "dataModel.d.ts"]);
        assert!(stale_files(&out, &generated).is_empty());
        let second = write(&out, &generated).unwrap_or_default();
        assert!(second.is_empty());
        let changed = generate(&modules(&[("todos", TODOS)]), &Schema::default());
        assert_eq!(
            stale_files(&out, &changed),
            vec!["api.d.ts", "dataModel.d.ts"]
        );
    }
}
