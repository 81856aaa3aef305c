//! What a test file (`functions/**/*.test.rhai`, run by `pulsebase test`) can call on top of the
//! host API. Registered only on the engine of a test file (`testing/file.rs`), never on the
//! app's, so functions cannot call any of it:
//!
//! - `test("name", |t| { ... })` at the top level of the file declares a test;
//! - `assert_eq(left, right)`, `assert_ne(left, right)`, `assert(condition)`, each with an
//!   optional message as last argument, and `expect_error(|| ..., expected)`;
//! - on `t`: `withIdentity(#{ subject, name, ... })`, `query(path, args)`, `mutation(path,
//!   args)` (args may be left out), `run(|ctx| ...)`, `now()`, `advanceTime(ms)`;
//!   `expectError(...)` refuses, naming `expect_error`, and `finishAllScheduledFunctions()` and
//!   `finishInProgressScheduledFunctions()` refuse with the reason (no scheduler yet);
//! - on a caught call error: `message`, `data`, `function`.
//!
//! The behaviour lives in `testing/` (`client.rs`, `assertions.rs`); these are thin.

use std::sync::Arc;

use rhai::{Dynamic, Engine, FnPtr, NativeCallContext};

use crate::convert::to_dynamic;
use crate::host_error::{HostResult, host_error};
use crate::testing::assertions::{assert_eq, assert_ne, assert_true, expect_error};
use crate::testing::client::TestClient;
use crate::testing::failure::{AssertionFailure, CallError};
use crate::testing::state::{TestCase, TestState};

/// Why `t.finishAllScheduledFunctions()` and its sibling refuse.
const NO_SCHEDULER: &str = "Pulsebase has no scheduled functions yet (ctx.scheduler arrives with the scheduler); t.advanceTime(ms) moves the test clock that ctx.now() reads";

/// Registers the test API on a test file's engine; `state` collects the declared tests.
pub(crate) fn register(engine: &mut Engine, state: Arc<TestState>) {
    engine.register_fn(
        "test",
        move |context: NativeCallContext, name: &str, body: Dynamic| -> HostResult<()> {
            declare(&state, &context, name, body)
        },
    );

    engine.register_fn("assert_eq", |l: Dynamic, r: Dynamic| {
        assert_eq(&l, &r, None)
    });
    engine.register_fn("assert_eq", |l: Dynamic, r: Dynamic, note: &str| {
        assert_eq(&l, &r, Some(note))
    });
    engine.register_fn("assert_ne", |l: Dynamic, r: Dynamic| {
        assert_ne(&l, &r, None)
    });
    engine.register_fn("assert_ne", |l: Dynamic, r: Dynamic, note: &str| {
        assert_ne(&l, &r, Some(note))
    });
    engine.register_fn("assert", |c: Dynamic| assert_true(&c, None));
    engine.register_fn("assert", |c: Dynamic, note: &str| {
        assert_true(&c, Some(note))
    });

    engine.register_type_with_name::<TestClient>("TestClient");
    engine.register_fn("withIdentity", |t: &mut TestClient, identity: Dynamic| {
        t.with_identity(&identity)
    });
    engine.register_fn("query", |t: &mut TestClient, path: &str| {
        t.query(path, &Dynamic::UNIT)
    });
    engine.register_fn("query", |t: &mut TestClient, path: &str, args: Dynamic| {
        t.query(path, &args)
    });
    engine.register_fn("mutation", |t: &mut TestClient, path: &str| {
        t.mutation(path, &Dynamic::UNIT)
    });
    engine.register_fn(
        "mutation",
        |t: &mut TestClient, path: &str, args: Dynamic| t.mutation(path, &args),
    );
    engine.register_fn("run", |t: &mut TestClient, body: FnPtr| t.run(body));
    engine.register_fn("expect_error", |context: NativeCallContext, body: FnPtr| {
        expect_error(&context, &body, &Dynamic::UNIT)
    });
    engine.register_fn(
        "expect_error",
        |context: NativeCallContext, body: FnPtr, expected: Dynamic| {
            expect_error(&context, &body, &expected)
        },
    );
    // Not a method of `t`: a closure that calls `t` (the usual case) would find it held by the
    // method call itself, since Rhai locks a captured variable for a call on it.
    for arity in [1, 2] {
        let refusal = move || -> HostResult<()> {
            let expected = if arity == 2 { ", expected" } else { "" };
            Err(host_error(format!(
                "t.expectError(...) is written expect_error(|| ...{expected}) in Pulsebase tests: the closure usually calls t, which a method of t would hold for the whole call"
            )))
        };
        if arity == 1 {
            engine.register_fn("expectError", move |_: &mut TestClient, _: FnPtr| refusal());
        } else {
            engine.register_fn(
                "expectError",
                move |_: &mut TestClient, _: FnPtr, _: Dynamic| refusal(),
            );
        }
    }
    engine.register_fn("now", |t: &mut TestClient| t.now());
    engine.register_fn("advanceTime", |t: &mut TestClient, ms: rhai::INT| {
        t.advance_time(ms as f64)
    });
    engine.register_fn("advanceTime", |t: &mut TestClient, ms: rhai::FLOAT| {
        t.advance_time(ms)
    });
    for name in [
        "finishAllScheduledFunctions",
        "finishInProgressScheduledFunctions",
    ] {
        engine.register_fn(name, move |_: &mut TestClient| -> HostResult<()> {
            Err(host_error(format!(
                "t.{name}() is not available: {NO_SCHEDULER}"
            )))
        });
    }

    engine.register_type_with_name::<CallError>("CallError");
    engine.register_get("message", |e: &mut CallError| e.message.clone());
    engine.register_get("function", |e: &mut CallError| e.function.clone());
    engine.register_get("data", |e: &mut CallError| {
        e.data.as_ref().map_or(Dynamic::UNIT, to_dynamic)
    });
    engine.register_fn("to_string", |e: &mut CallError| {
        format!("{} failed: {}", e.function, e.message)
    });
    engine.register_type_with_name::<AssertionFailure>("AssertionFailure");
    engine.register_get("message", |e: &mut AssertionFailure| e.message.clone());
    engine.register_fn("to_string", |e: &mut AssertionFailure| e.message.clone());
}

fn declare(
    state: &TestState,
    context: &NativeCallContext,
    name: &str,
    body: Dynamic,
) -> HostResult<()> {
    let Some(body) = body.clone().try_cast::<FnPtr>() else {
        return Err(host_error(format!(
            "test(name, body): body must be a closure like |t| {{ ... }}, not {}",
            body.type_name()
        )));
    };
    if name.trim().is_empty() {
        return Err(host_error(
            "test(name, body): give the test a name, e.g. test(\"adds a todo\", |t| { ... })"
                .to_string(),
        ));
    }
    let position = context.call_position();
    let case = TestCase {
        name: name.to_string(),
        line: position.line().unwrap_or(0),
        column: position.position().unwrap_or(0),
        body,
    };
    if !state.declare(case) {
        return Err(host_error(
            "test(...) declares a test only at the top level of a test file, not inside another test".to_string(),
        ));
    }
    Ok(())
}
