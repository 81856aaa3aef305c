//! Actions on the action pool's small thread stacks (`ACTION_STACK_BYTES`): the deepest
//! recursion the sandbox allows, through plain Rhai calls, `ctx.runAction`, and a query called
//! at the bottom of it (which runs on the same thread and counts its depth afresh), ends with the
//! call-depth error rather than overflowing the stack and taking the server down.

use std::sync::Arc;

use application::{ActionOptions, App};
use database::Database;
use functions::{Caller, FunctionPath, ModuleSource, Modules};
use schema::Schema;
use value::{Object, Value};

const DEEP: &str = r#"
fn down(n) { if n == 0 { 0 } else { 1 + down(n - 1) } }

export const plain = action(|ctx, args| down(10000));

export const viaActions = action(|ctx, args| {
    if args.n == 0 {
        ctx.runQuery("deep:deepQuery", #{})
    } else {
        ctx.runAction("deep:viaActions", #{ n: args.n - 1 })
    }
});

// As deep as the sandbox lets a query go; its depth starts again at 0 on the same thread.
export const deepQuery = query(|ctx, args| down(10000));
"#;

fn app() -> (tempfile::TempDir, Arc<App>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let schema = Schema::parse("", "schema.toml").expect("schema");
    let (db, _) = Database::open(&dir.path().join("db.sqlite3"), schema, "").expect("db");
    let modules = Modules::from_sources(vec![ModuleSource {
        module: "deep".into(),
        file: "functions/deep.rhai".into(),
        source: DEEP.into(),
    }])
    .expect("modules");
    (
        dir,
        App::with_actions(db, modules, ActionOptions::default()),
    )
}

fn n(value: f64) -> Value {
    Value::Object(Object::from([("n".to_string(), Value::Float64(value))]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deepest_recursion_ends_in_the_depth_error_on_an_action_thread() {
    let (_dir, app) = app();
    let run = |path: &str, args: Value| {
        let app = app.clone();
        let path = FunctionPath::parse(path);
        async move {
            app.run_action(path, args, None, Caller::Client)
                .await
                .expect("the action ran")
        }
    };
    let plain = run("deep:plain", n(0.0)).await;
    let message = plain.result.expect_err("too deep").message;
    assert!(message.contains("maximum call depth"), "{message}");

    // Actions down to depth 60, then a query at the bottom that recurses as deep as it may.
    for depth in [1.0, 30.0, 60.0] {
        let outcome = run("deep:viaActions", n(depth)).await;
        let message = outcome.result.expect_err("too deep").message;
        assert!(message.contains("maximum call depth"), "{message}");
    }
    let too_deep = run("deep:viaActions", n(1000.0)).await;
    let message = too_deep.result.expect_err("too deep").message;
    assert!(message.contains("maximum call depth"), "{message}");
}
