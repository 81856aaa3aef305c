//! Mutations: a failed mutation keeps none of its writes, queries cannot write (also when a
//! mutation calls them), and writes the database refuses are errors, not limits.

mod common;

use functions::ErrorKind;
use value::Value;

use common::{TodoApp, args, strings};

#[test]
fn a_mutation_that_throws_after_writing_keeps_nothing() {
    let app = TodoApp::open();
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
fn queries_cannot_write_even_inside_a_mutation() {
    let app = TodoApp::open();
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
fn refused_writes_are_errors_not_limits() {
    let app = TodoApp::open();
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
