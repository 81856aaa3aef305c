//! Rhai modules run against a real database: the Convex-shaped API, errors, limits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use database::{Database, MutationOutcome};
use functions::{Caller, ErrorKind, FunctionKind, FunctionPath, ModuleSource, Modules};
use schema::Schema;
use value::{Object, Value};

const SCHEMA: &str = r#"
[tables.todos]
fields = { text = "string", userId = "string", completed = "boolean", rank = "optional<number>" }
indexes = { by_user = ["userId"], by_user_rank = ["userId", "rank"] }
"#;

const TODOS: &str = r#"
export const add = mutation(#{
    args: #{ text: "string", userId: "string" },
    handler: |ctx, args| {
        ctx.db.insert("todos", #{ text: args.text, userId: args.userId, completed: false })
    }
});

export const addRanked = mutation(#{
    args: #{ userId: "string", rank: "number" },
    handler: |ctx, args| ctx.db.insert("todos", #{ text: "r", userId: args.userId, completed: false, rank: args.rank })
});

export const list = query(#{
    args: #{ userId: "string", order: "string" },
    handler: |ctx, args| {
        ctx.db.query("todos")
            .withIndex("by_user", |q| q.eq("userId", args.userId))
            .order(args.order)
            .collect()
            .map(|t| t.text)
    }
});

export const ranked = query(#{
    args: #{ userId: "string", min: "number" },
    handler: |ctx, args| ctx.db.query("todos")
        .withIndex("by_user_rank", |q| q.eq("userId", args.userId).gte("rank", args.min))
        .collect()
        .map(|t| t.rank)
});

export const page = query(#{
    args: #{ paginationOpts: "any" },
    handler: |ctx, args| ctx.db.query("todos").paginate(args.paginationOpts)
});

export const failAfterWrite = mutation(#{
    args: #{},
    handler: |ctx, args| {
        ctx.db.insert("todos", #{ text: "ghost", userId: "u", completed: false });
        throw "changed my mind";
    }
});

export const structured = query(|ctx, args| { throw #{ code: "NOPE", n: 1 }; });

export const spin = query(#{ args: #{}, handler: |ctx, args| { loop { } } });

export const whoami = query(|ctx, args| {
    let me = ctx.auth.getUserIdentity();
    if me == () { () } else { me.subject }
});

export const sneakyWrite = query(|ctx, args| ctx.db.insert("todos", #{ text: "x", userId: "u", completed: false }));

export const viaRunQuery = mutation(|ctx, args| ctx.runQuery("todos:list", #{ userId: "u1", order: "asc" }));

export const toggle = mutation(#{
    args: #{ id: "id<todos>" },
    handler: |ctx, args| {
        let todo = ctx.db.get(args.id);
        ctx.db.patch(args.id, #{ completed: !todo.completed });
        ctx.db.get(args.id).completed
    }
});

export const firstAndUnique = query(|ctx, args| {
    let first = ctx.db.query("todos").first();
    let none = ctx.db.query("todos").withIndex("by_user", |q| q.eq("userId", "nobody")).unique();
    [first.text, none]
});

export const notUnique = query(|ctx, args| ctx.db.query("todos").withIndex("by_user", |q| q.eq("userId", "u1")).unique());

const internalSecret = 42;
export const secret = internalQuery(|ctx, args| internalSecret);
"#;

struct App {
    _dir: tempfile::TempDir,
    db: Database,
    modules: Arc<Modules>,
}

fn app() -> App {
    let dir = tempfile::tempdir().expect("tempdir");
    let schema = Schema::parse(SCHEMA, "schema.toml").expect("schema");
    let (db, _) = Database::open(&dir.path().join("db.sqlite3"), schema, SCHEMA).expect("db");
    let modules = Modules::from_sources(vec![ModuleSource {
        module: "todos".into(),
        file: "functions/todos.rhai".into(),
        source: TODOS.into(),
    }])
    .expect("modules load");
    App {
        _dir: dir,
        db,
        modules: Arc::new(modules),
    }
}

fn args(pairs: &[(&str, Value)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<Object>(),
    )
}

impl App {
    fn query_as(
        &self,
        path: &str,
        a: Value,
        identity: Option<Value>,
        caller: Caller,
    ) -> Result<Value, functions::FunctionError> {
        let txn = self.db.snapshot().expect("snapshot");
        let (exec, _) = self.modules.run(
            &FunctionPath::parse(path),
            FunctionKind::Query,
            caller,
            a,
            identity,
            Box::new(txn),
            0.0,
        );
        exec.result
    }

    fn query(&self, path: &str, a: Value) -> Result<Value, functions::FunctionError> {
        self.query_as(path, a, None, Caller::Client)
    }

    fn mutation(&self, path: &str, a: Value) -> Result<Value, String> {
        let modules = self.modules.clone();
        let path = FunctionPath::parse(path);
        let outcome = self
            .db
            .mutate_blocking(
                None,
                Box::new(move |txn| {
                    let (exec, _) = modules.run(
                        &path,
                        FunctionKind::Mutation,
                        Caller::Client,
                        a,
                        None,
                        Box::new(txn),
                        0.0,
                    );
                    match exec.result {
                        Ok(v) => Ok(v.to_json().to_string()),
                        Err(e) => Err(e.message),
                    }
                }),
            )
            .expect("mutate");
        match outcome {
            MutationOutcome::Committed { response, .. } => {
                Ok(Value::from_json_str(&response).expect("json"))
            }
            MutationOutcome::Failed { response } => Err(response),
            MutationOutcome::Replayed { .. } => panic!("no dedup key was given"),
        }
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().expect("string").to_string())
            .collect(),
        other => panic!("not an array: {other}"),
    }
}

#[test]
fn insert_then_query_through_an_index_in_both_orders() {
    let app = app();
    for (text, user) in [("a", "u1"), ("b", "u2"), ("c", "u1")] {
        app.mutation(
            "todos:add",
            args(&[("text", text.into()), ("userId", user.into())]),
        )
        .expect("add");
    }
    let asc = app
        .query(
            "todos:list",
            args(&[("userId", "u1".into()), ("order", "asc".into())]),
        )
        .expect("list");
    assert_eq!(strings(&asc), ["a", "c"]);
    let desc = app
        .query(
            "todos:list",
            args(&[("userId", "u1".into()), ("order", "desc".into())]),
        )
        .expect("list");
    assert_eq!(strings(&desc), ["c", "a"]);
}

#[test]
fn integer_literals_become_numbers_in_number_fields_and_ranges() {
    let app = app();
    for rank in [1.0, 2.0, 3.0] {
        app.mutation(
            "todos:addRanked",
            args(&[("userId", "u".into()), ("rank", Value::Float64(rank))]),
        )
        .expect("add");
    }
    let got = app
        .query(
            "todos:ranked",
            args(&[("userId", "u".into()), ("min", Value::Int64(2))]),
        )
        .expect("ranked");
    assert_eq!(
        got,
        Value::Array(vec![Value::Float64(2.0), Value::Float64(3.0)])
    );
}

#[test]
fn paginate_visits_every_document_once() {
    let app = app();
    let mut inserted = Vec::new();
    for i in 0..23 {
        let id = app
            .mutation(
                "todos:add",
                args(&[("text", format!("t{i}").into()), ("userId", "u".into())]),
            )
            .expect("add");
        inserted.push(id.as_str().expect("id").to_string());
    }
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    for _ in 0..10 {
        let opts = args(&[
            ("numItems", Value::Float64(5.0)),
            ("cursor", cursor.clone()),
        ]);
        let result = app
            .query("todos:page", args(&[("paginationOpts", opts)]))
            .expect("page");
        let Value::Object(result) = result else {
            panic!("not an object")
        };
        let Value::Array(page) = &result["page"] else {
            panic!("no page")
        };
        assert!(page.len() <= 5);
        for doc in page {
            seen.push(
                doc.as_object().expect("doc")["_id"]
                    .as_str()
                    .expect("id")
                    .to_string(),
            );
        }
        assert!(
            result["continueCursor"].as_str().is_some(),
            "continueCursor is always a string"
        );
        if result["isDone"] == Value::Boolean(true) {
            break;
        }
        cursor = result["continueCursor"].clone();
    }
    assert_eq!(seen, inserted, "every document once, in creation order");
}

#[test]
fn a_mutation_that_throws_after_writing_keeps_nothing() {
    let app = app();
    let err = app.mutation("todos:failAfterWrite", args(&[])).unwrap_err();
    assert!(
        err.starts_with("Uncaught Error: changed my mind\n    at functions/todos.rhai:"),
        "{err}"
    );
    let all = app
        .query(
            "todos:list",
            args(&[("userId", "u".into()), ("order", "asc".into())]),
        )
        .expect("list");
    assert_eq!(all, Value::Array(vec![]));
}

#[test]
fn thrown_values_become_structured_errors() {
    let app = app();
    let err = app.query("todos:structured", args(&[])).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Uncaught);
    assert!(
        err.message
            .starts_with("Uncaught ConvexError: {\"code\":\"NOPE\""),
        "{}",
        err.message
    );
    let data = err.data.expect("data");
    assert_eq!(
        data.as_object().expect("object")["code"],
        Value::from("NOPE")
    );
}

#[test]
fn an_endless_loop_times_out_and_the_next_call_works() {
    let app = app();
    let started = Instant::now();
    let err = app.query("todos:spin", args(&[])).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Limit);
    assert!(err.message.contains("timed out"), "{}", err.message);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped near its 1 s budget"
    );
    assert!(app.query("todos:whoami", args(&[])).is_ok());
}

#[test]
fn clear_errors_for_unknown_internal_wrong_kind_and_bad_args() {
    let app = app();
    let e = app.query("todos:nope", args(&[])).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(
        e.message.contains("does not export `nope`"),
        "{}",
        e.message
    );
    let e = app.query("nothere:x", args(&[])).unwrap_err();
    assert!(
        e.message.contains("no module functions/nothere.rhai"),
        "{}",
        e.message
    );
    let e = app.query("todos:secret", args(&[])).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Internal);
    assert_eq!(
        app.query_as("todos:secret", args(&[]), None, Caller::Trusted)
            .expect("trusted"),
        Value::Int64(42)
    );
    let e = app.query("todos:add", args(&[])).unwrap_err();
    assert!(
        e.message.contains("is a mutation, not a query"),
        "{}",
        e.message
    );
    let e = app
        .mutation(
            "todos:add",
            args(&[("text", Value::Float64(5.0)), ("userId", "u".into())]),
        )
        .unwrap_err();
    assert_eq!(
        e,
        "ArgumentValidationError: args.text: expected string, found number 5.0"
    );
    let e = app
        .mutation("todos:toggle", args(&[("id", "not-an-id".into())]))
        .unwrap_err();
    assert!(e.contains("args.id"), "{e}");
}

#[test]
fn queries_cannot_write_even_inside_a_mutation() {
    let app = app();
    let e = app.query("todos:sneakyWrite", args(&[])).unwrap_err();
    assert!(e.message.contains("queries are read-only"), "{}", e.message);
    app.mutation(
        "todos:add",
        args(&[("text", "a".into()), ("userId", "u1".into())]),
    )
    .expect("add");
    let via = app
        .mutation("todos:viaRunQuery", args(&[]))
        .expect("runQuery in a mutation");
    assert_eq!(strings(&via), ["a"]);
}

#[test]
fn identity_reads_are_reported() {
    let app = app();
    let identity = Value::Object(Object::from([(
        "subject".to_string(),
        Value::from("user_1"),
    )]));
    let txn = app.db.snapshot().expect("snapshot");
    let (exec, _) = app.modules.run(
        &FunctionPath::parse("todos:whoami"),
        FunctionKind::Query,
        Caller::Client,
        args(&[]),
        Some(identity),
        Box::new(txn),
        0.0,
    );
    assert_eq!(exec.result.expect("whoami"), Value::from("user_1"));
    assert!(exec.read_identity);
    let txn = app.db.snapshot().expect("snapshot");
    let (exec, _) = app.modules.run(
        &FunctionPath::parse("todos:list"),
        FunctionKind::Query,
        Caller::Client,
        args(&[("userId", "u".into()), ("order", "asc".into())]),
        None,
        Box::new(txn),
        0.0,
    );
    assert!(!exec.read_identity);
    assert!(!exec.read_set.is_empty());
}

#[test]
fn get_patch_first_and_unique() {
    let app = app();
    let id = app
        .mutation(
            "todos:add",
            args(&[("text", "a".into()), ("userId", "u1".into())]),
        )
        .expect("add");
    assert_eq!(
        app.mutation("todos:toggle", args(&[("id", id.clone())]))
            .expect("toggle"),
        Value::Boolean(true)
    );
    assert_eq!(
        app.query("todos:firstAndUnique", args(&[])).expect("first"),
        Value::Array(vec![Value::from("a"), Value::Null])
    );
    app.mutation(
        "todos:add",
        args(&[("text", "b".into()), ("userId", "u1".into())]),
    )
    .expect("add");
    let e = app.query("todos:notUnique", args(&[])).unwrap_err();
    assert!(
        e.message
            .contains("unique() query returned more than one result from table todos"),
        "{}",
        e.message
    );
}

#[test]
fn load_errors_name_file_line_and_column() {
    let err = Modules::from_sources(vec![ModuleSource {
        module: "broken".into(),
        file: "functions/broken.rhai".into(),
        source: "export const a = query(|ctx, args| {\n    let x = ;\n});\n".into(),
    }])
    .err()
    .expect("fails");
    assert_eq!(err.0.len(), 1);
    let e = &err.0[0];
    assert_eq!((e.file.as_str(), e.line), ("functions/broken.rhai", 2));
    assert!(
        e.to_string()
            .starts_with("functions/broken.rhai:2:13: syntax error"),
        "{e}"
    );

    let err = Modules::from_sources(vec![ModuleSource {
        module: "typo".into(),
        file: "functions/typo.rhai".into(),
        source: "export const a = query(|ctx, args| undefinedThing);\n".into(),
    }])
    .err()
    .expect("strict variables catch typos at load time");
    assert!(err.to_string().contains("undefinedThing"), "{err}");

    let err = Modules::from_sources(vec![ModuleSource {
        module: "badargs".into(),
        file: "functions/badargs.rhai".into(),
        source: "\nexport const a = query(#{ args: #{ x: \"strng\" }, handler: |ctx, args| 1 });\n"
            .into(),
    }])
    .err()
    .expect("bad validator");
    assert!(
        err.to_string().starts_with("functions/badargs.rhai:2:"),
        "{err}"
    );
    assert!(err.to_string().contains("did you mean `string`"), "{err}");
}
