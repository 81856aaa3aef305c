//! What a failed call or load reports: thrown values as structured errors, unknown, internal
//! and wrong-kind functions, bad arguments, load errors at file:line:column, the call chain
//! through `ctx.runQuery`, and runtime type errors explained.

mod common;

use functions::{Caller, ErrorKind, ModuleSource, Modules};
use value::Value;

use common::{OTHER_RHAI, TODOS_RHAI, TodoApp, args, position_of};

#[test]
fn thrown_values_become_structured_errors() {
    let app = TodoApp::open();
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
fn clear_errors_for_unknown_internal_wrong_kind_and_bad_args() {
    let app = TodoApp::open();
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
    assert_eq!(e.kind, ErrorKind::InternalFunction);
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

#[test]
fn an_error_in_a_function_called_by_run_query_names_its_file_and_the_call_chain() {
    let app = TodoApp::open();
    let e = app.query("todos:callsFail", args(&[])).unwrap_err();
    let (line, column) = position_of(OTHER_RHAI, "throw \"deep failure\"");
    let (call_line, _) = position_of(TODOS_RHAI, "ctx.runQuery(\"other:fail\"");
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
    let app = TodoApp::open();
    let e = app.query("other:typeError", args(&[])).unwrap_err();
    let (line, column) = position_of(OTHER_RHAI, "- \"a\"");
    assert_eq!(
        e.message,
        format!(
            "Uncaught Error: Function not found: - (i64, string): cannot apply `-` to an integer and a string; convert the string with parse_int(s) or parse_float(s), or the number with to_string()\n    at functions/other.rhai:{line}:{column} (other:typeError)"
        )
    );
    let e = app.query("other:missingField", args(&[])).unwrap_err();
    let (line, _) = position_of(OTHER_RHAI, "doc.author.name");
    assert!(
        e.message.contains("the value is () (null)")
            && e.message
                .contains(&format!("\n    at functions/other.rhai:{line}:")),
        "{}",
        e.message
    );
}
