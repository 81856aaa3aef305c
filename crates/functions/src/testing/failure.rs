//! How a test fails, and what it reads when it catches an error.
//!
//! Three values are thrown into a test script by the test API: [`AssertionFailure`] (a failed
//! `assert_eq`, `assert` or `expect_error`), [`CallError`] (a query or mutation the test called
//! failed; `catch (e)` reads `e.message`, `e.data`, `e.function`), and [`TestTimeout`], the
//! token that stops a test past its time limit (not catchable). [`failure`] turns whatever ended
//! a test into a [`TestFailure`]: one line of the test file (`functions/todos.test.rhai:12:5`)
//! and a message; [`caught`] is what `expect_error` matches against.

use std::fmt;
use std::time::Duration;

use rhai::{Dynamic, EvalAltResult};
use value::Value;

use crate::error_report::describe_error;
use crate::host_error::HostError;
use crate::testing::compare::readable_dynamic_text;

/// A check of the test that did not hold.
#[derive(Clone, Debug)]
pub(crate) struct AssertionFailure {
    pub message: String,
}

/// A query or mutation called by the test (`t.query`, `t.mutation`) that failed.
#[derive(Clone, Debug)]
pub(crate) struct CallError {
    /// `todos:toggle`.
    pub function: String,
    /// The message a client would get, with its `at functions/FILE.rhai:LINE:COL` lines.
    pub message: String,
    /// What the function threw when it threw a value (Convex's `ConvexError.data`).
    pub data: Option<Value>,
}

/// Stops a test that ran past its time limit.
#[derive(Clone, Debug)]
pub(crate) struct TestTimeout {
    pub limit: Duration,
}

pub(crate) fn raise<T: Clone + Send + Sync + 'static>(value: T) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(value),
        rhai::Position::NONE,
    ))
}

/// Why a test failed and where: a line of the test file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestFailure {
    /// The test file, `functions/todos.test.rhai`.
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// What went wrong; may span several lines (a diff, a function's error locations).
    pub message: String,
}

impl fmt::Display for TestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// The error unwrapped from the function calls (closures, helpers) it passed through.
pub(crate) fn innermost(mut error: &EvalAltResult) -> &EvalAltResult {
    loop {
        match error {
            EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
            | EvalAltResult::ErrorInModule(_, inner, _) => error = inner,
            _ => return error,
        }
    }
}

/// What ended a test, located in its file (`file` is how the test file is named); errors
/// without a position of their own are placed at `fallback`, the test's declaration.
pub(crate) fn failure(error: &EvalAltResult, file: &str, fallback: (usize, usize)) -> TestFailure {
    let described = describe_error(error, file, None);
    // The line of the test file: the innermost frame in it. Frames in other files (an app
    // function that `ctx.runQuery` reached inside `t.run`) stay in the message.
    let here = described
        .frames
        .iter()
        .find(|f| f.file == file)
        .map_or(described.position, |f| f.position);
    let mut message = match innermost(error) {
        EvalAltResult::ErrorRuntime(value, _) => {
            if let Some(failed) = value.clone().try_cast::<AssertionFailure>() {
                failed.message
            } else if let Some(call) = value.clone().try_cast::<CallError>() {
                format!("{} failed: {}", call.function, call.message)
            } else {
                described.message.clone()
            }
        }
        EvalAltResult::ErrorTerminated(token, _) => match token.clone().try_cast::<TestTimeout>() {
            Some(timeout) => format!(
                "the test ran longer than its limit of {}; check for an endless loop",
                shown(timeout.limit)
            ),
            None => described.message.clone(),
        },
        EvalAltResult::ErrorDataRace(name, _) => format!(
            "`{name}` is held by the call that is running: a closure passed to a method of t (t.run) cannot use t; inside t.run use ctx.db, ctx.runQuery and ctx.runMutation"
        ),
        _ => described.message.clone(),
    };
    for frame in described.frames.iter().filter(|f| f.file != file) {
        if let (Some(line), Some(column)) = (frame.position.line(), frame.position.position()) {
            let name = frame
                .function
                .as_deref()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default();
            message.push_str(&format!("\n    at {}:{line}:{column}{name}", frame.file));
        }
    }
    let (line, column) = match (here.line(), here.position()) {
        (Some(line), column) => (line, column.unwrap_or(0)),
        (None, _) => fallback,
    };
    TestFailure {
        file: file.to_string(),
        line,
        column,
        message,
    }
}

/// `10 s`, or `250 ms` for a limit under a second.
fn shown(limit: Duration) -> String {
    if limit.as_millis().is_multiple_of(1000) {
        format!("{} s", limit.as_secs())
    } else {
        format!("{} ms", limit.as_millis())
    }
}

/// An error a test caught (`expect_error`): its message, and its data when it carries a value.
pub(crate) struct Caught {
    pub message: String,
    pub data: Option<Value>,
}

/// What `expect_error` sees of an error; `None` for what a test may not catch (its time limit).
pub(crate) fn caught(error: &EvalAltResult) -> Option<Caught> {
    let inner = innermost(error);
    let EvalAltResult::ErrorRuntime(value, _) = inner else {
        if !inner.is_catchable() {
            return None;
        }
        let text = describe_error(error, "", None).message;
        let message = text.strip_prefix("Uncaught Error: ").unwrap_or(&text);
        return Some(Caught {
            message: message.to_string(),
            data: None,
        });
    };
    if let Some(call) = value.clone().try_cast::<CallError>() {
        return Some(Caught {
            message: call.message,
            data: call.data,
        });
    }
    if let Some(failed) = value.clone().try_cast::<AssertionFailure>() {
        return Some(Caught {
            message: failed.message,
            data: None,
        });
    }
    if let Some(host) = value.clone().try_cast::<HostError>() {
        return Some(Caught {
            message: host.message,
            data: None,
        });
    }
    if let Ok(text) = value.clone().into_string() {
        return Some(Caught {
            message: text,
            data: None,
        });
    }
    let data = crate::convert::from_dynamic(value, "the thrown value").ok();
    Some(Caught {
        message: readable_dynamic_text(value),
        data,
    })
}
