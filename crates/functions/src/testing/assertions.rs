//! The checks a test makes: `assert_eq(left, right)`, `assert_ne(left, right)`,
//! `assert(condition)` (each with an optional message), and `expect_error(|| ..., expected)`.
//! A failed check throws an [`AssertionFailure`] whose message shows both sides as JSON and the
//! first path where they differ.

use rhai::{Dynamic, FnPtr, Map, NativeCallContext};

use crate::convert::to_dynamic;
use crate::host_error::{HostResult, host_error};
use crate::testing::compare::{Side, compare};
use crate::testing::failure::{AssertionFailure, caught, raise};

/// How much of each side a failure shows.
const SHOWN: usize = 2_000;

fn fail(message: String) -> Box<rhai::EvalAltResult> {
    raise(AssertionFailure { message })
}

/// `" (note)"` for a message the test gave, else nothing.
fn noted(note: Option<&str>) -> String {
    note.map(|n| format!(" ({n})")).unwrap_or_default()
}

/// `assert_eq(left, right)`.
pub(crate) fn assert_eq(left: &Dynamic, right: &Dynamic, note: Option<&str>) -> HostResult<()> {
    let (left, right) = (Side::of(left), Side::of(right));
    let Some(difference) = compare(&left, &right) else {
        return Ok(());
    };
    let mut message = format!(
        "assert_eq failed{}: left and right differ {}\n  left:  {}\n  right: {}",
        noted(note),
        difference.at(),
        difference.left,
        difference.right
    );
    if !difference.path.is_empty() {
        message.push_str(&format!(
            "\n  left value:  {}\n  right value: {}",
            left.text(SHOWN),
            right.text(SHOWN)
        ));
    }
    Err(fail(message))
}

/// `assert_ne(left, right)`.
pub(crate) fn assert_ne(left: &Dynamic, right: &Dynamic, note: Option<&str>) -> HostResult<()> {
    let left = Side::of(left);
    if compare(&left, &Side::of(right)).is_some() {
        return Ok(());
    }
    Err(fail(format!(
        "assert_ne failed{}: both sides are equal\n  value: {}",
        noted(note),
        left.text(SHOWN)
    )))
}

/// `assert(condition)`.
pub(crate) fn assert_true(condition: &Dynamic, note: Option<&str>) -> HostResult<()> {
    match condition.as_bool() {
        Ok(true) => Ok(()),
        Ok(false) => Err(fail(format!("assert failed{}", noted(note)))),
        Err(found) => Err(host_error(format!(
            "assert(condition) takes a boolean, not {found}; compare values with assert_eq(left, right)"
        ))),
    }
}

/// `expect_error(|| ..., expected)`: calls the closure and expects it to throw. `expected` is
/// `()` (any error), a string the error's message must contain, or a value the error's data
/// (what a function threw, `throw #{ code: .. }`) must equal. Returns `#{ message, data }`.
pub(crate) fn expect_error(
    context: &NativeCallContext,
    body: &FnPtr,
    expected: &Dynamic,
) -> HostResult<Dynamic> {
    let wanted = describe_expected(expected);
    let error = match body.call_within_context::<Dynamic>(context, ()) {
        Ok(value) => {
            return Err(fail(format!(
                "expect_error failed: expected {wanted}, but the closure returned {}",
                Side::of(&value).text(SHOWN)
            )));
        }
        Err(error) => error,
    };
    // What a test may not catch (its time limit) goes on.
    let Some(caught) = caught(&error) else {
        return Err(error);
    };
    if let Ok(text) = expected.clone().into_string() {
        if !caught.message.contains(text.as_str()) {
            return Err(fail(format!(
                "expect_error failed: expected {wanted}, but the error was:\n  {}",
                caught.message.replace('\n', "\n  ")
            )));
        }
    } else if !expected.is_unit() {
        let Some(data) = &caught.data else {
            return Err(fail(format!(
                "expect_error failed: expected {wanted}, but the error carries no data; its message was:\n  {}",
                caught.message.replace('\n', "\n  ")
            )));
        };
        let data = Side::Value(data.clone());
        if let Some(difference) = compare(&data, &Side::of(expected)) {
            return Err(fail(format!(
                "expect_error failed: the error's data differs from the expected {}\n  data:     {}\n  expected: {}\n  data value: {}",
                difference.at(),
                difference.left,
                difference.right,
                data.text(SHOWN)
            )));
        }
    }
    let mut result = Map::new();
    result.insert("message".into(), caught.message.into());
    result.insert(
        "data".into(),
        caught.data.as_ref().map_or(Dynamic::UNIT, to_dynamic),
    );
    Ok(Dynamic::from_map(result))
}

fn describe_expected(expected: &Dynamic) -> String {
    if expected.is_unit() {
        "an error".to_string()
    } else if let Ok(text) = expected.clone().into_string() {
        format!("an error containing {:?}", text.as_str())
    } else {
        format!("an error with data {}", Side::of(expected).text(SHOWN))
    }
}
