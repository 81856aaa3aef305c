//! Rhai modules run against a real database: the Convex-shaped API, errors, limits.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use database::{Database, MutationOutcome};
use functions::{Caller, ErrorKind, FunctionKind, FunctionPath, ModuleSource, Modules};
use schema::Schema;
use value::{Object, Value};

const SCHEMA: &str = r#"
[tables.todos]
fields = { text = "string", userId = "string", completed = "boolean", rank = "optional<number>", note = "optional<string | null>" }
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

export const addReturningId = mutation(#{
    args: #{ text: "string" },
    returns: "id<todos>",
    handler: |ctx, args| ctx.db.insert("todos", #{ text: args.text, userId: "ids", completed: false })
});

export const notAnId = query(#{ args: #{}, returns: "id<todos>", handler: |ctx, args| "todos|nope" });

export const idViaRunQuery = mutation(#{
    args: #{ id: "id<todos>" },
    handler: |ctx, args| ctx.runQuery("todos:echoId", #{ id: args.id })
});

export const echoId = query(#{ args: #{ id: "any" }, returns: "id<todos>", handler: |ctx, args| args.id });

const internalSecret = 42;
export const secret = internalQuery(|ctx, args| internalSecret);

export const pageDesc = query(#{
    args: #{ paginationOpts: "any" },
    handler: |ctx, args| ctx.db.query("todos").order("desc").paginate(args.paginationOpts)
});

export const pageOfUser = query(#{
    args: #{ userId: "string", paginationOpts: "any" },
    handler: |ctx, args| ctx.db.query("todos")
        .withIndex("by_user", |q| q.eq("userId", args.userId))
        .paginate(args.paginationOpts)
});

export const pageDone = query(#{
    args: #{ order: "string", paginationOpts: "any" },
    handler: |ctx, args| ctx.db.query("todos")
        .order(args.order)
        .filter(|t| t.completed)
        .paginate(args.paginationOpts)
});

export const addDone = mutation(#{
    args: #{ text: "string", completed: "boolean" },
    handler: |ctx, args| ctx.db.insert("todos", #{ text: args.text, userId: "f", completed: args.completed })
});

export const doneTexts = query(#{
    args: #{ n: "any" },
    handler: |ctx, args| {
        let q = ctx.db.query("todos").withIndex("by_user", |q| q.eq("userId", "f")).filter(|t| t.completed);
        let docs = if args.n == () { q.collect() } else { q.take(args.n) };
        docs.map(|t| t.text)
    }
});

export const takeTexts = query(#{
    args: #{ n: "any", order: "string" },
    handler: |ctx, args| ctx.db.query("todos")
        .withIndex("by_user", |q| q.eq("userId", "f"))
        .order(args.order)
        .take(args.n)
        .map(|t| t.text)
});

export const filterTwice = query(|ctx, args| ctx.db.query("todos")
    .filter(|t| t.completed)
    .filter(|t| t.text.starts_with("b"))
    .collect()
    .map(|t| t.text));

export const badFilter = query(|ctx, args| ctx.db.query("todos").filter(|t| t.text).collect());

export const setFields = mutation(#{
    args: #{ id: "id<todos>", fields: "any" },
    handler: |ctx, args| { ctx.db.patch(args.id, args.fields); ctx.db.get(args.id) }
});

export const insertWith = mutation(#{
    args: #{ doc: "any" },
    handler: |ctx, args| ctx.db.get(ctx.db.insert("todos", args.doc))
});

export const replaceWith = mutation(#{
    args: #{ id: "id<todos>", doc: "any" },
    handler: |ctx, args| { ctx.db.replace(args.id, args.doc); ctx.db.get(args.id) }
});

export const callsFail = query(|ctx, args| {
    let before = 1;
    ctx.runQuery("other:fail", #{})
});

export const catchesInner = query(|ctx, args| {
    let code = ();
    try { ctx.runQuery("other:structured", #{}); } catch (e) { code = e.code; }
    code
});

export const callsSpin = query(|ctx, args| ctx.runQuery("todos:spin", #{}));

export const usesClock = query(|ctx, args| timestamp());
export const usesRandom = query(|ctx, args| rand());
export const sleeps = mutation(|ctx, args| { sleep(5); 1 });
export const exits = query(|ctx, args| exit(3));
"#;

const OTHER: &str = r#"
export const fail = query(#{
    args: #{},
    handler: |ctx, args| {
        throw "deep failure";
    }
});

export const structured = query(|ctx, args| { throw #{ code: "INNER" }; });

export const typeError = query(|ctx, args| {
    let n = 1;
    n - "a"
});

export const recurse = query(|ctx, args| ctx.runQuery("other:recurse", #{}));

fn down(n) { down(n + 1) }
export const deep = query(|ctx, args| down(0));

export const missingField = query(|ctx, args| {
    let doc = #{};
    doc.author.name
});
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
    let modules = Modules::from_sources(vec![
        ModuleSource {
            module: "todos".into(),
            file: "functions/todos.rhai".into(),
            source: TODOS.into(),
        },
        ModuleSource {
            module: "other".into(),
            file: "functions/other.rhai".into(),
            source: OTHER.into(),
        },
    ])
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

    /// Runs a mutation; on failure also returns the function's error (kind included).
    fn run_mutation(
        &self,
        path: &str,
        a: Value,
    ) -> (MutationOutcome, Option<functions::FunctionError>) {
        let modules = self.modules.clone();
        let path = FunctionPath::parse(path);
        let seen = Arc::new(Mutex::new(None));
        let slot = seen.clone();
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
                        Err(e) => {
                            let message = e.message.clone();
                            *slot.lock().expect("lock") = Some(e);
                            Err(message)
                        }
                    }
                }),
            )
            .expect("mutate");
        let error = seen.lock().expect("lock").take();
        (outcome, error)
    }

    /// Runs a mutation that must fail and returns its error (kind included).
    fn mutation_error(&self, path: &str, a: Value) -> functions::FunctionError {
        let (outcome, error) = self.run_mutation(path, a);
        assert!(
            matches!(outcome, MutationOutcome::Failed { .. }),
            "the mutation was expected to fail"
        );
        error.expect("the error was recorded")
    }

    fn mutation(&self, path: &str, a: Value) -> Result<Value, String> {
        match self.run_mutation(path, a).0 {
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
    assert!(
        err.message.starts_with(
            "Function execution timed out: todos:spin ran longer than the limit of 1 s of user code per call"
        ),
        "{}",
        err.message
    );
    // Rhai does not locate time limits; the report points at the function's declaration.
    let (line, _) = position_of(TODOS, "export const spin");
    assert!(
        err.message
            .contains(&format!("\n    at functions/todos.rhai:{line}:")),
        "{}",
        err.message
    );
    assert!(err.message.ends_with(" (todos:spin)"), "{}", err.message);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped near its 1 s budget"
    );
    assert!(app.query("todos:whoami", args(&[])).is_ok());

    // Called through ctx.runQuery, the message names the function that was running.
    let err = app.query("todos:callsSpin", args(&[])).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Limit);
    assert!(
        err.message.contains("todos:spin ran longer than the limit"),
        "{}",
        err.message
    );
    assert!(
        err.message.ends_with(" (todos:callsSpin)"),
        "{}",
        err.message
    );
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
    // To a client, an internal function is exactly as absent as one that does not exist.
    let missing = app.query("todos:nosuch", args(&[])).unwrap_err();
    assert_eq!(e.message, missing.message.replace("nosuch", "secret"));
    assert!(
        e.message
            .starts_with("Could not find public function for 'todos:secret'"),
        "{}",
        e.message
    );
    assert!(!e.message.contains("internal"), "{}", e.message);
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
    assert_eq!(
        e.to_string(),
        "functions/broken.rhai:2:13: syntax error: Unexpected ';'"
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

/// The 1-based line and column of the first occurrence of `needle` in `source`.
fn position_of(source: &str, needle: &str) -> (usize, usize) {
    for (i, line) in source.lines().enumerate() {
        if let Some(column) = line.find(needle) {
            return (i + 1, column + 1);
        }
    }
    panic!("{needle:?} is not in the source");
}

fn object(v: &Value) -> &Object {
    v.as_object().expect("an object")
}

fn texts(v: &Value) -> Vec<String> {
    match v {
        Value::Array(docs) => docs
            .iter()
            .map(|d| object(d)["text"].as_str().expect("text").to_string())
            .collect(),
        other => panic!("not an array: {other}"),
    }
}

fn page_opts(num_items: f64, cursor: Value) -> Value {
    args(&[("numItems", Value::Float64(num_items)), ("cursor", cursor)])
}

/// Follows `continueCursor` until `isDone`; the `text` of each page's documents.
fn paginate_all(
    app: &App,
    path: &str,
    extra: &[(&str, Value)],
    num_items: f64,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut cursor = Value::Null;
    for _ in 0..50 {
        let mut a = extra.to_vec();
        a.push(("paginationOpts", page_opts(num_items, cursor.clone())));
        let result = app.query(path, args(&a)).expect("page");
        let result = object(&result);
        let page = texts(&result["page"]);
        assert!(
            page.len() <= num_items as usize,
            "a page holds at most numItems"
        );
        pages.push(page);
        if result["isDone"] == Value::Boolean(true) {
            return pages;
        }
        cursor = result["continueCursor"].clone();
    }
    panic!("{path}: pagination did not finish within 50 pages");
}

#[test]
fn paginate_in_descending_order_visits_every_document_once() {
    let app = app();
    let inserted: Vec<String> = (0..23).map(|i| format!("t{i:02}")).collect();
    for text in &inserted {
        app.mutation(
            "todos:add",
            args(&[("text", text.as_str().into()), ("userId", "u".into())]),
        )
        .expect("add");
    }
    let pages = paginate_all(&app, "todos:pageDesc", &[], 5.0);
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [5, 5, 5, 5, 3]
    );
    let mut expected = inserted.clone();
    expected.reverse();
    assert_eq!(
        pages.concat(),
        expected,
        "newest first, no duplicate, none missing"
    );
}

#[test]
fn paginate_with_a_filter_fills_pages_with_matching_documents_in_both_orders() {
    let app = app();
    for i in 0..30 {
        app.mutation(
            "todos:addDone",
            args(&[
                ("text", format!("d{i:02}").into()),
                ("completed", Value::Boolean(i % 3 == 0)),
            ]),
        )
        .expect("add");
    }
    for order in ["asc", "desc"] {
        let pages = paginate_all(&app, "todos:pageDone", &[("order", order.into())], 4.0);
        let mut expected: Vec<String> = (0..30)
            .filter(|i| i % 3 == 0)
            .map(|i| format!("d{i:02}"))
            .collect();
        if order == "desc" {
            expected.reverse();
        }
        assert_eq!(pages.concat(), expected, "{order}");
        assert_eq!(
            pages.iter().map(Vec::len).collect::<Vec<_>>(),
            [4, 4, 2],
            "{order}: pages are filled with documents that pass the filter"
        );
    }
}

#[test]
fn a_cursor_only_works_for_the_query_it_came_from() {
    let app = app();
    for i in 0..4 {
        for user in ["u1", "u2"] {
            app.mutation(
                "todos:add",
                args(&[
                    ("text", format!("{user}-{i}").into()),
                    ("userId", user.into()),
                ]),
            )
            .expect("add");
        }
    }
    let first_page = |path: &str, extra: &[(&str, Value)], cursor: Value| {
        let mut a = extra.to_vec();
        a.push(("paginationOpts", page_opts(2.0, cursor)));
        app.query(path, args(&a))
    };
    let page = first_page("todos:page", &[], Value::Null).expect("page");
    let cursor = object(&page)["continueCursor"].clone();
    let next = first_page("todos:page", &[], cursor.clone()).expect("the same query accepts it");
    assert_eq!(texts(&object(&next)["page"]), ["u1-1", "u2-1"]);

    let invalid = |e: functions::FunctionError| {
        assert!(
            e.message.starts_with("Uncaught Error: InvalidCursor: ")
                && e.message.contains("from a different query"),
            "{}",
            e.message
        );
    };
    // Another order, another index.
    invalid(first_page("todos:pageDesc", &[], cursor.clone()).unwrap_err());
    invalid(
        first_page(
            "todos:pageOfUser",
            &[("userId", "u1".into())],
            cursor.clone(),
        )
        .unwrap_err(),
    );

    // The same function with other arguments reads another range.
    let u1 = first_page("todos:pageOfUser", &[("userId", "u1".into())], Value::Null).expect("page");
    let u1_cursor = object(&u1)["continueCursor"].clone();
    invalid(
        first_page(
            "todos:pageOfUser",
            &[("userId", "u2".into())],
            u1_cursor.clone(),
        )
        .unwrap_err(),
    );
    let u1_next = first_page("todos:pageOfUser", &[("userId", "u1".into())], u1_cursor)
        .expect("same arguments");
    assert_eq!(texts(&object(&u1_next)["page"]), ["u1-2", "u1-3"]);

    // The cursor of a finished query is bound too.
    let done = first_page(
        "todos:pageOfUser",
        &[("userId", "u1".into())],
        object(&u1_next)["continueCursor"].clone(),
    )
    .expect("last page");
    let done = object(&done);
    assert_eq!(done["isDone"], Value::Boolean(true));
    let end = done["continueCursor"].clone();
    invalid(first_page("todos:pageOfUser", &[("userId", "u2".into())], end.clone()).unwrap_err());
    let again = first_page("todos:pageOfUser", &[("userId", "u1".into())], end).expect("end");
    assert_eq!(object(&again)["page"], Value::Array(vec![]));
    assert_eq!(object(&again)["isDone"], Value::Boolean(true));

    // Strings that were never cursors.
    for bogus in ["knope!", "hello", "", "_end"] {
        let e = first_page("todos:page", &[], bogus.into()).unwrap_err();
        assert!(
            e.message.contains("InvalidCursor: ") && e.message.contains("not a cursor"),
            "{bogus:?}: {}",
            e.message
        );
    }
    let e = first_page("todos:page", &[], Value::Float64(5.0)).unwrap_err();
    assert!(
        e.message.contains("cursor must be a string"),
        "{}",
        e.message
    );
}

#[test]
fn filter_and_take_select_and_limit_documents() {
    let app = app();
    for (text, done) in [
        ("a1", true),
        ("b1", false),
        ("b2", true),
        ("a2", true),
        ("b3", true),
    ] {
        app.mutation(
            "todos:addDone",
            args(&[("text", text.into()), ("completed", Value::Boolean(done))]),
        )
        .expect("add");
    }
    let done = |n: Value| {
        strings(
            &app.query("todos:doneTexts", args(&[("n", n)]))
                .expect("doneTexts"),
        )
    };
    assert_eq!(done(Value::Null), ["a1", "b2", "a2", "b3"]);
    // take(n) counts the documents that pass the filter.
    assert_eq!(done(Value::Int64(2)), ["a1", "b2"]);
    assert_eq!(done(Value::Float64(3.0)), ["a1", "b2", "a2"]);
    assert_eq!(done(Value::Int64(0)), Vec::<String>::new());
    assert_eq!(done(Value::Int64(10)), ["a1", "b2", "a2", "b3"]);

    let take = |n: Value, order: &str| {
        app.query(
            "todos:takeTexts",
            args(&[("n", n), ("order", order.into())]),
        )
    };
    assert_eq!(
        strings(&take(Value::Int64(2), "asc").expect("take")),
        ["a1", "b1"]
    );
    assert_eq!(
        strings(&take(Value::Int64(2), "desc").expect("take")),
        ["b3", "a2"]
    );
    let e = take(Value::Int64(-1), "asc").unwrap_err();
    assert!(
        e.message.contains("take needs a whole number"),
        "{}",
        e.message
    );
    let e = take(Value::from("2"), "asc").unwrap_err();
    assert!(e.message.contains("take needs a number"), "{}", e.message);

    // Filters compose: both must hold.
    assert_eq!(
        strings(&app.query("todos:filterTwice", args(&[])).expect("filters")),
        ["b2", "b3"]
    );
    let e = app.query("todos:badFilter", args(&[])).unwrap_err();
    assert!(
        e.message.contains("a filter must return true or false"),
        "{}",
        e.message
    );
}

#[test]
fn unit_removes_optional_fields_that_refuse_null_and_is_null_elsewhere() {
    let app = app();
    let id = app
        .mutation(
            "todos:addRanked",
            args(&[("userId", "u".into()), ("rank", Value::Float64(3.0))]),
        )
        .expect("add");
    let set = |fields: Value| {
        app.mutation(
            "todos:setFields",
            args(&[("id", id.clone()), ("fields", fields)]),
        )
    };

    // rank is optional<number>: null cannot be stored there, so () removes the field.
    let doc = set(args(&[("rank", Value::Null)])).expect("patch");
    assert!(!object(&doc).contains_key("rank"), "{doc}");
    assert_eq!(object(&doc)["text"], Value::from("r"), "other fields stay");

    // note is optional<string | null>: () stores null.
    let doc = set(args(&[("note", "hi".into())])).expect("patch");
    assert_eq!(object(&doc)["note"], Value::from("hi"));
    let doc = set(args(&[("note", Value::Null)])).expect("patch");
    assert_eq!(object(&doc).get("note"), Some(&Value::Null));

    // text is required: () is refused.
    let e = set(args(&[("text", Value::Null)])).unwrap_err();
    assert!(e.contains("text") && e.contains("expected string"), "{e}");

    // insert and replace leave such fields out.
    let doc = app
        .mutation(
            "todos:insertWith",
            args(&[(
                "doc",
                args(&[
                    ("text", "n".into()),
                    ("userId", "u".into()),
                    ("completed", Value::Boolean(false)),
                    ("rank", Value::Null),
                ]),
            )]),
        )
        .expect("insert");
    assert!(!object(&doc).contains_key("rank"), "{doc}");
    let doc = app
        .mutation(
            "todos:replaceWith",
            args(&[
                ("id", id.clone()),
                (
                    "doc",
                    args(&[
                        ("text", "m".into()),
                        ("userId", "u".into()),
                        ("completed", Value::Boolean(true)),
                        ("rank", Value::Null),
                        ("note", Value::Null),
                    ]),
                ),
            ]),
        )
        .expect("replace");
    assert!(!object(&doc).contains_key("rank"), "{doc}");
    assert_eq!(object(&doc).get("note"), Some(&Value::Null));
}

#[test]
fn refused_writes_are_errors_not_limits() {
    let app = app();
    let e = app.mutation_error(
        "todos:insertWith",
        args(&[(
            "doc",
            args(&[
                ("text", "n".into()),
                ("userId", "u".into()),
                ("completed", Value::Boolean(false)),
                ("_secret", Value::Int64(1)),
            ]),
        )]),
    );
    assert_eq!(e.kind, ErrorKind::Uncaught);
    assert!(
        e.message
            .contains("field \"_secret\" starts with '_', which is reserved for system fields"),
        "{}",
        e.message
    );
}

#[test]
fn an_error_in_a_function_called_by_run_query_names_its_file_and_the_call_chain() {
    let app = app();
    let e = app.query("todos:callsFail", args(&[])).unwrap_err();
    let (line, column) = position_of(OTHER, "throw \"deep failure\"");
    let (call_line, _) = position_of(TODOS, "ctx.runQuery(\"other:fail\"");
    let lines: Vec<&str> = e.message.lines().collect();
    assert_eq!(lines.len(), 3, "{}", e.message);
    assert_eq!(lines[0], "Uncaught Error: deep failure");
    assert_eq!(
        lines[1],
        format!("    at functions/other.rhai:{line}:{column} (other:fail)")
    );
    assert!(
        lines[2].starts_with(&format!("    at functions/todos.rhai:{call_line}:"))
            && lines[2].ends_with(" (todos:callsFail)"),
        "{}",
        e.message
    );

    // The caller's catch still sees what the callee threw.
    assert_eq!(
        app.query("todos:catchesInner", args(&[])).expect("caught"),
        Value::from("INNER")
    );
}

#[test]
fn runtime_type_errors_explain_the_mismatch_at_file_line_column() {
    let app = app();
    let e = app.query("other:typeError", args(&[])).unwrap_err();
    let (line, column) = position_of(OTHER, "- \"a\"");
    assert_eq!(
        e.message,
        format!(
            "Uncaught Error: Function not found: - (i64, string): cannot apply `-` to an integer and a string; convert the string with parse_int(s) or parse_float(s), or the number with to_string()\n    at functions/other.rhai:{line}:{column} (other:typeError)"
        )
    );
    let e = app.query("other:missingField", args(&[])).unwrap_err();
    let (line, _) = position_of(OTHER, "doc.author.name");
    assert!(
        e.message.contains("the value is () (null)")
            && e.message
                .contains(&format!("\n    at functions/other.rhai:{line}:")),
        "{}",
        e.message
    );
}

#[test]
fn unbounded_recursion_hits_the_call_depth_limit_also_through_run_query() {
    let app = app();
    for (path, declaration) in [
        ("other:deep", "export const deep"),
        ("other:recurse", "export const recurse"),
    ] {
        let e = app.query(path, args(&[])).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Limit, "{path}");
        assert!(
            e.message.starts_with(&format!(
                "Function exceeded the maximum call depth in {path} (limit: 64 nested calls"
            )),
            "{}",
            e.message
        );
        let (line, _) = position_of(OTHER, declaration);
        assert!(
            e.message
                .contains(&format!("\n    at functions/other.rhai:{line}:"))
                && e.message.ends_with(&format!(" ({path})")),
            "{}",
            e.message
        );
    }
    assert!(app.query("todos:whoami", args(&[])).is_ok());
}

#[test]
fn the_sandbox_refuses_clock_randomness_sleep_and_exit_with_a_reason() {
    let app = app();
    let e = app.query("todos:usesClock", args(&[])).unwrap_err();
    let (line, _) = position_of(TODOS, "timestamp()");
    assert!(
        e.message.starts_with(
            "Uncaught Error: timestamp() is not available in Pulsebase functions: functions must be deterministic"
        ) && e.message.contains("use ctx.now()")
            && e.message
                .contains(&format!("\n    at functions/todos.rhai:{line}:")),
        "{}",
        e.message
    );
    let e = app.query("todos:usesRandom", args(&[])).unwrap_err();
    assert!(
        e.message
            .starts_with("Uncaught Error: rand() is not available in Pulsebase functions"),
        "{}",
        e.message
    );
    // Rhai's core sleep() would block the Committer; it is refused at once.
    let started = Instant::now();
    let e = app.mutation_error("todos:sleeps", args(&[]));
    assert!(
        e.message.contains("sleep() is not available"),
        "{}",
        e.message
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    let e = app.query("todos:exits", args(&[])).unwrap_err();
    assert!(
        e.message.contains("exit() is not available"),
        "{}",
        e.message
    );
}

#[test]
fn eval_and_import_are_load_errors_that_say_why() {
    for (source, hint) in [
        (
            "export const a = query(|ctx, args| {\n    eval(\"1\")\n});\n",
            "`eval` is not available in Pulsebase functions",
        ),
        (
            "export const a = query(|ctx, args| {\n    import \"x\" as y;\n    1\n});\n",
            "`import` is not available in Pulsebase functions",
        ),
    ] {
        let err = Modules::from_sources(vec![ModuleSource {
            module: "m".into(),
            file: "functions/m.rhai".into(),
            source: source.into(),
        }])
        .err()
        .expect("refused at load");
        let text = err.to_string();
        assert!(
            text.starts_with("functions/m.rhai:2:5: syntax error: ") && text.contains(hint),
            "{text}"
        );
    }
}

#[test]
fn returns_validators_check_ids_against_the_tables() {
    let app = app();
    let id = app
        .mutation("todos:addReturningId", args(&[("text", Value::from("a"))]))
        .expect("an id of the right table is a valid result");
    assert!(id.as_str().is_some(), "{id}");
    let nested = app
        .mutation("todos:idViaRunQuery", args(&[("id", id.clone())]))
        .expect("the nested call's result is checked against the tables too");
    assert_eq!(nested, id);
    let err = app
        .query("todos:notAnId", args(&[]))
        .expect_err("a string that is no id fails");
    assert!(
        err.message.contains("ReturnsValidationError"),
        "{}",
        err.message
    );
}
