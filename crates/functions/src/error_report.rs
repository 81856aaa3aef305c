//! What a failed call reports: a Rhai error (possibly wrapped by nested calls) reduced to a
//! message, its [`ErrorKind`], and one `at file:line:column (function)` line per frame,
//! innermost first. Limits name the limit and the function that hit it; a thrown value that is
//! not a string becomes Convex's `ConvexError` data; other Rhai messages get a hint from
//! `hints.rs`.

use rhai::{EvalAltResult, Position};
use value::Value;

use crate::convert::from_dynamic;
use crate::error::{ErrorKind, FunctionError};
use crate::hints;
use crate::host_error::HostError;
use crate::limits::{
    ACTION_TIME_LIMIT, MAX_CALL_DEPTH, MAX_CONTAINER_ITEMS, MAX_OPERATIONS, MAX_STRING_BYTES,
    MAX_VALUE_BYTES, USER_TIME_LIMIT,
};
use crate::sandbox::Timeout;

/// Names the error of a function called by `ctx.runQuery`/`ctx.runMutation` (see
/// `host_api::ctx::run_inline`), so that [`describe_error`] can tell which file each position
/// is in.
pub(crate) const NESTED_CALL: &str = "pulsebase:nested-call:";

/// The error of a nested call (`ctx.runQuery`/`ctx.runMutation` inline, `ctx.runAction`),
/// raised at `call_site` in the caller. A catchable error is wrapped so the report names the
/// callee's `file` for the positions inside it, while `try`/`catch` in the caller still sees
/// what the callee threw (Rhai unwraps function-call errors for `catch`); limits stay as they
/// are, since a wrapper would make them catchable.
pub(crate) fn nested_call_error(
    error: Box<EvalAltResult>,
    callee: &str,
    file: &str,
    call_site: Position,
) -> Box<EvalAltResult> {
    if error.is_catchable() {
        Box::new(EvalAltResult::ErrorInFunctionCall(
            format!("{NESTED_CALL}{callee}"),
            file.to_string(),
            error,
            call_site,
        ))
    } else {
        error
    }
}

/// One line of an error's location: where, in which file, in which function.
pub(crate) struct Frame {
    pub file: String,
    pub position: Position,
    pub function: Option<String>,
}

/// A script error reduced to a message and where it happened.
pub(crate) struct Described {
    pub message: String,
    pub data: Option<Value>,
    pub kind: ErrorKind,
    /// Where it happened in the innermost file (the file of `frames[0]`).
    pub position: Position,
    /// Innermost first: the failing line, then each `ctx.runQuery`/`ctx.runMutation` call
    /// that led there.
    pub frames: Vec<Frame>,
}

impl Described {
    /// The message followed by one `at file:line:column (function)` line per frame.
    pub(crate) fn located(&self) -> String {
        let mut text = self.message.clone();
        for frame in &self.frames {
            let name = frame
                .function
                .as_deref()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default();
            match (frame.position.line(), frame.position.position()) {
                (Some(line), Some(column)) => {
                    text.push_str(&format!("\n    at {}:{line}:{column}{name}", frame.file));
                }
                (Some(line), None) => {
                    text.push_str(&format!("\n    at {}:{line}{name}", frame.file))
                }
                _ if !name.is_empty() => text.push_str(&format!("\n    at {}{name}", frame.file)),
                _ => {}
            }
        }
        text
    }

    /// The error a client gets: the message with its locations, and any thrown data.
    pub(crate) fn into_function_error(self) -> FunctionError {
        FunctionError {
            kind: self.kind,
            message: self.located(),
            data: self.data,
        }
    }
}

/// Reduces a Rhai error (possibly wrapped by nested calls) to what the user needs. `file` and
/// `function` say what was called; errors of functions it called through `ctx.runQuery` /
/// `ctx.runMutation` carry their own file and name (see [`NESTED_CALL`]).
pub(crate) fn describe_error(
    error: &EvalAltResult,
    file: &str,
    function: Option<&str>,
) -> Described {
    let mut call_sites = Vec::new();
    let mut file = file.to_string();
    let mut function = function.map(str::to_string);
    let mut position = error.position();
    let mut error = error;
    loop {
        match error {
            EvalAltResult::ErrorInFunctionCall(name, source, inner, pos)
                if name.starts_with(NESTED_CALL) =>
            {
                let site = if pos.is_none() { position } else { *pos };
                call_sites.push(Frame {
                    file: std::mem::replace(&mut file, source.clone()),
                    position: site,
                    function: function.replace(name[NESTED_CALL.len()..].to_string()),
                });
                position = Position::NONE;
                error = inner;
            }
            EvalAltResult::ErrorInFunctionCall(_, _, inner, pos)
            | EvalAltResult::ErrorInModule(_, inner, pos) => {
                if !pos.is_none() {
                    position = *pos;
                }
                error = inner;
            }
            _ => break,
        }
    }
    if !error.position().is_none() {
        position = error.position();
    }
    let running = function
        .clone()
        .unwrap_or_else(|| "the function".to_string());
    let mut frames = vec![Frame {
        file,
        position,
        function,
    }];
    frames.extend(call_sites.into_iter().rev());
    let described = |kind, message: String, data| Described {
        message,
        data,
        kind,
        position,
        frames,
    };
    match error {
        EvalAltResult::ErrorRuntime(value, _) => {
            if let Some(host) = value.clone().try_cast::<HostError>() {
                let kind = if host.is_limit {
                    ErrorKind::Limit
                } else {
                    ErrorKind::Uncaught
                };
                return described(kind, format!("Uncaught Error: {}", host.message), None);
            }
            if let Ok(text) = value.clone().into_string() {
                return described(ErrorKind::Uncaught, format!("Uncaught Error: {text}"), None);
            }
            match from_dynamic(value, "the thrown value") {
                Ok(data) => described(
                    ErrorKind::Uncaught,
                    format!("Uncaught ConvexError: {}", data.to_json()),
                    Some(data),
                ),
                Err(e) => described(ErrorKind::Uncaught, format!("Uncaught Error: {e}"), None),
            }
        }
        EvalAltResult::ErrorTerminated(token, _) => {
            let timeout = token.clone().try_cast::<Timeout>();
            let action = timeout.as_ref().is_some_and(|t| t.action);
            let function = timeout.map_or(running, |t| t.function);
            let message = if action {
                format!(
                    "Function execution timed out: {function} ran longer than the limit of {} minutes per action (wall-clock time, nested actions and fetch included)",
                    ACTION_TIME_LIMIT.as_secs() / 60
                )
            } else {
                format!(
                    "Function execution timed out: {function} ran longer than the limit of {} s of user code per call (time in database calls is not counted); check for an endless loop",
                    USER_TIME_LIMIT.as_secs()
                )
            };
            described(ErrorKind::Limit, message, None)
        }
        EvalAltResult::ErrorTooManyOperations(_) => described(
            ErrorKind::Limit,
            format!(
                "Function execution exceeded the operation limit in {running} (limit: {MAX_OPERATIONS} operations per call); check for an endless loop"
            ),
            None,
        ),
        EvalAltResult::ErrorStackOverflow(_) => described(
            ErrorKind::Limit,
            format!(
                "Function exceeded the maximum call depth in {running} (limit: {MAX_CALL_DEPTH} nested calls, ctx.runQuery, ctx.runMutation and ctx.runAction included); check for unbounded recursion"
            ),
            None,
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) => described(
            ErrorKind::Limit,
            data_too_large(what, &running),
            None,
        ),
        EvalAltResult::Exit(..) => described(
            ErrorKind::Uncaught,
            "Uncaught Error: exit() is not available in functions; return the value from the handler instead".to_string(),
            None,
        ),
        other => {
            // Rhai appends " (line L, position C)"; the location is reported separately.
            let mut text = other.to_string();
            if let Some(cut) = text.rfind(" (line ") {
                text.truncate(cut);
            }
            let text = hints::explain(other, &text);
            described(ErrorKind::Uncaught, format!("Uncaught Error: {text}"), None)
        }
    }
}

/// Rhai's "data too large" (`what` is Rhai's name of the measure) as the limit it is and the
/// function that hit it.
fn data_too_large(what: &str, running: &str) -> String {
    let limit = match what {
        "Length of string" => format!(
            "the {} MiB limit on the text one value may hold (the strings of an array or object count together; a function's result and arguments are limited to {} MiB too)",
            MAX_STRING_BYTES >> 20,
            MAX_VALUE_BYTES >> 20
        ),
        "Size of array" => {
            format!("the limit of {MAX_CONTAINER_ITEMS} array elements in one value")
        }
        "Size of object map" => format!("the limit of {MAX_CONTAINER_ITEMS} fields in one object"),
        _ => "the sandbox's size limit".to_string(),
    };
    format!("Value too large in {running}: {what} exceeds {limit}")
}
