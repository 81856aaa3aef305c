//! What the app-test files share: an app (`app.rhai` and the todos schema) and a runner that
//! loads a test file, runs each of its tests on a fresh database, and returns the outcomes.

// Each test file uses a part of these.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use database::Database;
use functions::testing::{TestClock, TestFile, TestOutcome, run_test};
use functions::{LoadError, ModuleSource, Modules};
use schema::Schema;

pub const SCHEMA_TOML: &str = r#"
[tables.todos]
fields = { text = "string", userId = "string", completed = "boolean" }
indexes = { by_user = ["userId"] }
"#;

pub const APP_RHAI: &str = r#"
fn me(ctx) {
    let me = ctx.auth.getUserIdentity();
    if me == () { throw "Unauthorized"; }
    me
}

export const add = mutation(#{
    args: #{ text: "string" },
    handler: |ctx, args| ctx.db.insert("todos", #{ text: args.text, userId: me(ctx).subject, completed: false })
});

export const mine = query(#{
    args: #{},
    handler: |ctx, args| {
        let subject = me(ctx).subject;
        ctx.db.query("todos").withIndex("by_user", |q| q.eq("userId", subject)).collect()
    }
});

export const count = query(|ctx, args| ctx.db.query("todos").collect().len());
export const whoami = query(|ctx, args| ctx.auth.getUserIdentity());
export const now = query(|ctx, args| ctx.now());
export const stamp = mutation(|ctx, args| ctx.db.get(ctx.db.insert("todos", #{ text: `${ctx.now()}`, userId: "clock", completed: false })).text);

export const refuse = mutation(|ctx, args| {
    ctx.db.insert("todos", #{ text: "ghost", userId: "u", completed: false });
    throw #{ code: "NOPE", n: 1 };
});

export const secret = internalQuery(|ctx, args| 42);
export const noisy = query(|ctx, args| { print("hello from noisy"); 1 });
"#;

/// Loads `source` as `functions/app.test.rhai`.
pub fn load(source: &str) -> Result<TestFile, LoadError> {
    TestFile::load(ModuleSource {
        module: "app".into(),
        file: "functions/app.test.rhai".into(),
        source: source.into(),
    })
}

/// The app's functions.
pub fn modules() -> Arc<Modules> {
    Arc::new(
        Modules::from_sources(vec![ModuleSource {
            module: "app".into(),
            file: "functions/app.rhai".into(),
            source: APP_RHAI.into(),
        }])
        .expect("the app loads"),
    )
}

/// A fresh database with the todos schema in `dir` (an empty folder).
pub fn open_db(dir: &Path) -> Database {
    let schema = Schema::parse(SCHEMA_TOML, "schema.toml").expect("schema");
    Database::open(&dir.join("db.sqlite3"), schema, SCHEMA_TOML)
        .expect("db")
        .0
}

/// Runs every test of a loaded file, each on a fresh database.
pub fn run_file(file: &TestFile) -> Vec<TestOutcome> {
    let modules = modules();
    file.tests
        .iter()
        .map(|case| {
            let dir = tempfile::tempdir().expect("tempdir");
            run_test(
                file,
                case,
                &modules,
                open_db(dir.path()),
                Arc::new(TestClock::starting_now()),
            )
        })
        .collect()
}

/// Loads and runs `source`.
pub fn run(source: &str) -> Vec<TestOutcome> {
    run_file(&load(source).expect("the test file loads"))
}

/// The outcome of the test named `name`.
pub fn outcome<'a>(outcomes: &'a [TestOutcome], name: &str) -> &'a TestOutcome {
    outcomes
        .iter()
        .find(|o| o.name == name)
        .unwrap_or_else(|| panic!("no test named {name:?}"))
}

/// The failure message of the test named `name`, which must have failed.
pub fn failure_of(outcomes: &[TestOutcome], name: &str) -> functions::testing::TestFailure {
    match &outcome(outcomes, name).result {
        Err(failure) => failure.clone(),
        Ok(()) => panic!("{name:?} passed but was expected to fail"),
    }
}

/// Panics with every failure when a test failed.
pub fn assert_all_pass(outcomes: &[TestOutcome]) {
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err().map(|f| format!("{}: {f}", o.name)))
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
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
