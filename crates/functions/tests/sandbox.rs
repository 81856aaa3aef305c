//! The sandbox and its limits: the user-time budget, the call depth (also through
//! `ctx.runQuery`), and the refused features (clock, randomness, `sleep`, `exit`, `eval`,
//! `import`), each with its reason.

mod common;

use std::time::{Duration, Instant};

use functions::{ErrorKind, ModuleSource, Modules};

use common::{OTHER_RHAI, TODOS_RHAI, TodoApp, args, position_of};

#[test]
fn an_endless_loop_times_out_and_the_next_call_works() {
    let app = TodoApp::open();
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
    let (line, _) = position_of(TODOS_RHAI, "export const spin");
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
fn unbounded_recursion_hits_the_call_depth_limit_also_through_run_query() {
    let app = TodoApp::open();
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
        let (line, _) = position_of(OTHER_RHAI, declaration);
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
    let app = TodoApp::open();
    let e = app.query("todos:usesClock", args(&[])).unwrap_err();
    let (line, _) = position_of(TODOS_RHAI, "timestamp()");
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
