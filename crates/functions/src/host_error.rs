//! [`HostError`]: what the host API throws into a script when it refuses a call (a database
//! call the database refused, a misused API, a mistake in a declaration). It is raised as a
//! Rhai runtime error, so the script's `try`/`catch` sees it, and the error report recognises
//! it: a refused call is `Uncaught`, a database limit stays a `Limit`.

use database::DbError;
use rhai::{Dynamic, EvalAltResult, Position};

/// What every host function returns: Rhai's error type, so errors propagate through scripts.
pub(crate) type HostResult<T> = Result<T, Box<EvalAltResult>>;

/// A refusal by the host; `message` is what the script's `catch (e)` reads as `e.message`.
#[derive(Clone, Debug)]
pub(crate) struct HostError {
    pub message: String,
    pub is_limit: bool,
}

/// A refusal with no position of its own: Rhai reports it at the call that raised it.
pub(crate) fn host_error(message: String) -> Box<EvalAltResult> {
    raise(message, false, Position::NONE)
}

/// A refusal located at `position`: a load error about a declaration (`.route(...)`).
pub(crate) fn host_error_at(message: String, position: Position) -> Box<EvalAltResult> {
    raise(message, false, position)
}

/// A database call the database refused; its limits stay limits.
pub(crate) fn db_error(e: DbError) -> Box<EvalAltResult> {
    let is_limit = matches!(e, DbError::Limit(_));
    raise(e.to_string(), is_limit, Position::NONE)
}

fn raise(message: String, is_limit: bool, position: Position) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(HostError { message, is_limit }),
        position,
    ))
}

/// A string argument, or a refusal naming `what` and the type found.
pub(crate) fn string_arg(value: &Dynamic, what: &str) -> HostResult<String> {
    value
        .clone()
        .into_string()
        .map_err(|found| host_error(format!("{what} must be a string, not {found}")))
}
