//! The fixtures the script tests share: the `todos` schema ([`SCHEMA_TOML`]), two modules
//! ([`TODOS_RHAI`] as `functions/todos.rhai`, [`OTHER_RHAI`] as `functions/other.rhai`), a
//! [`TodoApp`] (a real database with both loaded) that runs queries and mutations as a client,
//! and helpers to build arguments and read results.

// Each test file uses a part of these.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use database::{Database, MutationOutcome};
use functions::{Call, Caller, FunctionKind, FunctionPath, ModuleSource, Modules, Ran};
use schema::Schema;
use value::{Object, Value};

pub const SCHEMA_TOML: &str = r#"
[tables.todos]
fields = { text = "string", userId = "string", completed = "boolean", rank = "optional<number>", note = "optional<string | null>" }
indexes = { by_user = ["userId"], by_user_rank = ["userId", "rank"] }
"#;

pub const TODOS_RHAI: &str = r#"
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

pub const OTHER_RHAI: &str = r#"
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

/// A database with the `todos` schema, and the modules `todos` and `other` loaded.
pub struct TodoApp {
    _dir: tempfile::TempDir,
    pub db: Database,
    pub modules: Arc<Modules>,
}

/// Function arguments (an object) from name/value pairs.
pub fn args(pairs: &[(&str, Value)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<Object>(),
    )
}

impl TodoApp {
    /// A fresh app in a temporary folder.
    pub fn open() -> TodoApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let schema = Schema::parse(SCHEMA_TOML, "schema.toml").expect("schema");
        let (db, _) =
            Database::open(&dir.path().join("db.sqlite3"), schema, SCHEMA_TOML).expect("db");
        let modules = Modules::from_sources(vec![
            ModuleSource {
                module: "todos".into(),
                file: "functions/todos.rhai".into(),
                source: TODOS_RHAI.into(),
            },
            ModuleSource {
                module: "other".into(),
                file: "functions/other.rhai".into(),
                source: OTHER_RHAI.into(),
            },
        ])
        .expect("modules load");
        TodoApp {
            _dir: dir,
            db,
            modules: Arc::new(modules),
        }
    }

    /// Runs a query as `caller`, with `identity`, in a fresh snapshot.
    pub fn query_as(
        &self,
        path: &str,
        a: Value,
        identity: Option<auth::Identity>,
        caller: Caller,
    ) -> Result<Value, functions::FunctionError> {
        let txn = self.db.snapshot().expect("snapshot");
        let Ran {
            execution: exec, ..
        } = self.modules.run(
            Call {
                path: FunctionPath::parse(path),
                kind: FunctionKind::Query,
                caller,
                args: a,
                identity,
                now_ms: 0.0,
            },
            Box::new(txn),
        );
        exec.result
    }

    /// Runs a query as an anonymous client.
    pub fn query(&self, path: &str, a: Value) -> Result<Value, functions::FunctionError> {
        self.query_as(path, a, None, Caller::Client)
    }

    /// Runs a mutation; on failure also returns the function's error (kind included).
    pub fn run_mutation(
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
                    let Ran {
                        execution: exec, ..
                    } = modules.run(
                        Call {
                            path: path.clone(),
                            kind: FunctionKind::Mutation,
                            caller: Caller::Client,
                            args: a,
                            identity: None,
                            now_ms: 0.0,
                        },
                        Box::new(txn),
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
    pub fn mutation_error(&self, path: &str, a: Value) -> functions::FunctionError {
        let (outcome, error) = self.run_mutation(path, a);
        assert!(
            matches!(outcome, MutationOutcome::Failed { .. }),
            "the mutation was expected to fail"
        );
        error.expect("the error was recorded")
    }

    /// Runs a mutation as an anonymous client: its result, or the failure's message.
    pub fn mutation(&self, path: &str, a: Value) -> Result<Value, String> {
        match self.run_mutation(path, a).0 {
            MutationOutcome::Committed { response, .. } => {
                Ok(Value::from_json_str(&response).expect("json"))
            }
            MutationOutcome::Failed { response } => Err(response),
            MutationOutcome::Replayed { .. } => panic!("no dedup key was given"),
        }
    }
}

/// An array of strings as `Vec<String>`.
pub fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().expect("string").to_string())
            .collect(),
        other => panic!("not an array: {other}"),
    }
}

/// The 1-based line and column of the first occurrence of `needle` in `source`.
pub fn position_of(source: &str, needle: &str) -> (usize, usize) {
    for (i, line) in source.lines().enumerate() {
        if let Some(column) = line.find(needle) {
            return (i + 1, column + 1);
        }
    }
    panic!("{needle:?} is not in the source");
}

/// The object `v` is.
pub fn object(v: &Value) -> &Object {
    v.as_object().expect("an object")
}

/// The `text` field of each document of an array.
pub fn texts(v: &Value) -> Vec<String> {
    match v {
        Value::Array(docs) => docs
            .iter()
            .map(|d| object(d)["text"].as_str().expect("text").to_string())
            .collect(),
        other => panic!("not an array: {other}"),
    }
}

/// `paginationOpts` for a page of `num_items` starting at `cursor`.
pub fn page_opts(num_items: f64, cursor: Value) -> Value {
    args(&[("numItems", Value::Float64(num_items)), ("cursor", cursor)])
}

/// Follows `continueCursor` until `isDone`; the `text` of each page's documents.
pub fn paginate_all(
    app: &TodoApp,
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
