//! Tests of [`generate`] (what each file declares, from a few modules and a schema) and of
//! [`write`] (only changed files are rewritten).

use functions::ModuleSource;
use schema::Schema;

use super::*;

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
        .find(|file| file.name == name)
        .map(|file| file.text.as_str())
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
    assert!(
        dts.contains(
            "addTodo: FunctionReference<\"mutation\", \"public\", { text: string }, any>;"
        )
    );
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
