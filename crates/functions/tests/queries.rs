//! Queries through the Convex-shaped API: index reads in both orders, `get`, `first`,
//! `unique`, `filter` and `take`, and which calls read the caller's identity.

mod common;

use functions::{Call, Caller, FunctionKind, FunctionPath, Ran};
use value::Value;

use common::{TodoApp, args, strings};

#[test]
fn insert_then_query_through_an_index_in_both_orders() {
    let app = TodoApp::open();
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
fn get_patch_first_and_unique() {
    let app = TodoApp::open();
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
fn filter_and_take_select_and_limit_documents() {
    let app = TodoApp::open();
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
fn identity_reads_are_reported() {
    let app = TodoApp::open();
    let identity =
        auth::Identity::acting_as(&serde_json::json!({"subject": "user_1", "issuer": "i"}))
            .expect("an identity");
    let txn = app.db.snapshot().expect("snapshot");
    let Ran {
        execution: exec, ..
    } = app.modules.run(
        Call {
            path: FunctionPath::parse("todos:whoami"),
            kind: FunctionKind::Query,
            caller: Caller::Client,
            args: args(&[]),
            identity: Some(identity),
            now_ms: 0.0,
        },
        Box::new(txn),
    );
    assert_eq!(exec.result.expect("whoami"), Value::from("user_1"));
    assert!(exec.read_identity);
    let txn = app.db.snapshot().expect("snapshot");
    let Ran {
        execution: exec, ..
    } = app.modules.run(
        Call {
            path: FunctionPath::parse("todos:list"),
            kind: FunctionKind::Query,
            caller: Caller::Client,
            args: args(&[("userId", "u".into()), ("order", "asc".into())]),
            identity: None,
            now_ms: 0.0,
        },
        Box::new(txn),
    );
    assert!(!exec.read_identity);
    assert!(!exec.read_set.is_empty());
}
