//! Validators: declared types convert what they accept (integers in `number` fields and
//! index ranges; `()` in optional fields) and `returns` checks ids against the tables.

mod common;

use value::Value;

use common::{TodoApp, args, object};

#[test]
fn integer_literals_become_numbers_in_number_fields_and_ranges() {
    let app = TodoApp::open();
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
fn unit_removes_optional_fields_that_refuse_null_and_is_null_elsewhere() {
    let app = TodoApp::open();
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
fn returns_validators_check_ids_against_the_tables() {
    let app = TodoApp::open();
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
