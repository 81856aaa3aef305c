//! How `pulsebase test` reports failures: `assert_eq` with the first differing path and both
//! sides as JSON, failed calls with the function's own location, each at the line of the test
//! file; test files that do not load; the time limit of a test; and test files never being
//! modules.

mod testing_common;

use std::time::Duration;

use functions::{Call, Caller, FunctionKind, FunctionPath, ModuleSource, Modules, read_test_dir};
use testing_common::{failure_of, load, open_db, position_of, run, run_file};
use value::Value;

#[test]
fn assert_eq_names_the_first_difference_at_the_line_of_the_test_file() {
    let source = r#"
test("differs", |t| {
    t.withIdentity(#{ subject: "ada" }).mutation("app:add", #{ text: "x" });
    let todos = t.withIdentity(#{ subject: "ada" }).query("app:mine");
    assert_eq(todos.map(|d| #{ text: d.text, completed: d.completed }), [#{ text: "x", completed: true }]);
});
test("with a message", |t| { assert_eq(1, 2, "one is not two"); });
test("not equal", |t| { assert_ne(#{ a: 1 }, #{ a: 1.0 }); });
test("assert", |t| { assert(1 > 2, "maths"); });
"#;
    let outcomes = run(source);
    let failure = failure_of(&outcomes, "differs");
    let (line, column) = position_of(source, "assert_eq(todos");
    assert_eq!(
        (failure.file.as_str(), failure.line, failure.column),
        ("functions/app.test.rhai", line, column)
    );
    assert!(
        failure.message.starts_with("assert_eq failed: left and right differ at [0].completed\n  left:  false\n  right: true"),
        "{}",
        failure.message
    );
    assert!(
        failure
            .message
            .contains(r#"left value:  [{"completed":false,"text":"x"}]"#),
        "{}",
        failure.message
    );
    assert!(
        failure
            .message
            .contains(r#"right value: [{"completed":true,"text":"x"}]"#),
        "{}",
        failure.message
    );
    assert_eq!(
        failure.to_string().lines().next(),
        Some(format!("functions/app.test.rhai:{line}:{column}: assert_eq failed: left and right differ at [0].completed").as_str())
    );

    let noted = failure_of(&outcomes, "with a message");
    assert!(noted.message.starts_with("assert_eq failed (one is not two): left and right differ at the top level\n  left:  1\n  right: 2"), "{}", noted.message);
    assert!(
        failure_of(&outcomes, "not equal")
            .message
            .contains("assert_ne failed: both sides are equal")
    );
    assert_eq!(
        failure_of(&outcomes, "assert").message,
        "assert failed (maths)"
    );
}

#[test]
fn a_failed_call_shows_the_function_error_at_the_calling_line() {
    let source = r#"
test("anonymous add", |t| {
    let before = 1;
    t.mutation("app:add", #{ text: "x" });
});
test("wrong kind", |t| { t.query("app:add", #{ text: "x" }); });
test("no error", |t| { expect_error(|| t.query("app:count"), "Unauthorized"); });
test("other error", |t| { expect_error(|| t.query("app:mine"), "Forbidden"); });
test("other data", |t| { expect_error(|| t.mutation("app:refuse"), #{ code: "OTHER" }); });
"#;
    let outcomes = run(source);
    let failure = failure_of(&outcomes, "anonymous add");
    assert_eq!(
        (failure.line, failure.column),
        position_of(source, "mutation(\"app:add\"")
    );
    assert!(
        failure.message.starts_with(
            "app:add failed: Uncaught Error: Unauthorized\n    at functions/app.rhai:"
        ),
        "{}",
        failure.message
    );
    assert!(
        failure_of(&outcomes, "wrong kind")
            .message
            .contains("'app:add' is a mutation, not a query")
    );
    assert_eq!(
        failure_of(&outcomes, "no error").message,
        "expect_error failed: expected an error containing \"Unauthorized\", but the closure returned 0"
    );
    let other = failure_of(&outcomes, "other error").message;
    assert!(other.starts_with("expect_error failed: expected an error containing \"Forbidden\", but the error was:\n  Uncaught Error: Unauthorized"), "{other}");
    let data = failure_of(&outcomes, "other data").message;
    assert!(
        data.contains(
            "differs from the expected at .code\n  data:     \"NOPE\"\n  expected: \"OTHER\""
        ),
        "{data}"
    );
}

#[test]
fn a_thrown_error_or_a_script_error_fails_the_test_where_it_happened() {
    let source = r#"
fn helper() {
    throw "from a helper";
}
test("throws", |t| { helper(); });
test("script error", |t| { let n = 1; n - "a"; });
test("nested test", |t| { test("inner", |t| {}); });
"#;
    let outcomes = run(source);
    let thrown = failure_of(&outcomes, "throws");
    assert_eq!(
        (thrown.line, thrown.message.as_str()),
        (
            position_of(source, "throw \"from").0,
            "Uncaught Error: from a helper"
        )
    );
    let script = failure_of(&outcomes, "script error");
    assert_eq!(script.line, position_of(source, "n - \"a\"").0);
    assert!(
        script.message.contains("cannot apply `-`"),
        "{}",
        script.message
    );
    assert!(
        failure_of(&outcomes, "nested test")
            .message
            .contains("only at the top level of a test file")
    );
}

#[test]
fn a_test_past_its_time_limit_is_stopped() {
    let mut file = load(
        r#"
test("spins", |t| { let n = 0; loop { n += 1; } });
test("catching does not help", |t| { expect_error(|| { loop {} }); });
test("next", |t| { assert_eq(t.query("app:count"), 0); });
"#,
    )
    .expect("loads");
    file.time_limit = Duration::from_millis(200);
    let outcomes = run_file(&file);
    for name in ["spins", "catching does not help"] {
        let failure = failure_of(&outcomes, name);
        assert_eq!(
            failure.message,
            "the test ran longer than its limit of 200 ms; check for an endless loop"
        );
        assert_eq!(failure.line, 2 + usize::from(name != "spins"));
    }
    assert!(outcomes[2].result.is_ok(), "the next test runs normally");
}

#[test]
fn test_files_that_do_not_load_say_where_and_why() {
    let cases = [
        ("test(\"x\", |t| {\n    let = 1;\n});", 2, "syntax error"),
        ("let x = 1;", 1, "declares no tests; add one with test("),
        (
            "test(\"a\", |t| {});\ntest(\"a\", |t| {});",
            2,
            "a second test named \"a\"",
        ),
        (
            "test(\"a\", 5);",
            1,
            "body must be a closure like |t| { ... }, not i64",
        ),
        (
            "test(\"a\", |t| {});\nlet y = x;",
            2,
            "Undefined variable: x",
        ),
        (
            "test(\"a\", |t| {});\nthrow \"at load\";",
            2,
            "error while loading the test file: at load",
        ),
    ];
    for (source, line, message) in cases {
        let error = load(source).err().expect("the file does not load");
        assert_eq!(
            (error.file.as_str(), error.line),
            ("functions/app.test.rhai", line),
            "{error}"
        );
        assert!(error.message.contains(message), "{source:?}: {error}");
    }
}

#[test]
fn test_files_are_not_modules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let functions = dir.path().join("functions");
    std::fs::create_dir_all(functions.join("admin")).expect("mkdir");
    std::fs::write(
        functions.join("todos.rhai"),
        "export const list = query(|ctx, args| 1);",
    )
    .expect("write");
    std::fs::write(functions.join("todos.test.rhai"), "test(\"x\", |t| {});").expect("write");
    std::fs::write(
        functions.join("admin/users.test.rhai"),
        "test(\"y\", |t| {});",
    )
    .expect("write");
    std::fs::create_dir_all(functions.join("_generated")).expect("mkdir");
    std::fs::write(
        functions.join("_generated/skip.test.rhai"),
        "test(\"z\", |t| {});",
    )
    .expect("write");

    let modules = Modules::load_dir(&functions).expect("loads");
    let names: Vec<&str> = modules.modules().map(|m| m.path.as_str()).collect();
    assert_eq!(names, ["todos"]);

    let tests = read_test_dir(&functions).expect("reads");
    let found: Vec<(&str, &str)> = tests
        .iter()
        .map(|t| (t.module.as_str(), t.file.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("admin/users", "functions/admin/users.test.rhai"),
            ("todos", "functions/todos.test.rhai")
        ]
    );
}

#[test]
fn test_functions_are_not_available_to_app_code() {
    let loaded = Modules::from_sources(vec![ModuleSource {
        module: "app".into(),
        file: "functions/app.rhai".into(),
        source: "export const q = query(|ctx, args| { assert_eq(1, 1); 1 });".into(),
    }])
    .expect("loads (the call is resolved when it runs)");
    let dir = tempfile::tempdir().expect("tempdir");
    let txn = open_db(dir.path()).snapshot().expect("snapshot");
    let call = Call {
        path: FunctionPath::parse("app:q"),
        kind: FunctionKind::Query,
        caller: Caller::Client,
        args: Value::Object(Default::default()),
        identity: None,
        now_ms: 0.0,
    };
    let execution = loaded.run(call, Box::new(txn)).execution;
    let error = execution
        .result
        .expect_err("assert_eq is not a function of the app");
    assert!(
        error.message.contains("Function not found: assert_eq"),
        "{}",
        error.message
    );
}
