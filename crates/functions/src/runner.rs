//! Running a function: resolve the path, check visibility and kind, validate the arguments,
//! call the handler in the sandbox with a transaction, and turn the outcome into an
//! [`Execution`]: the result or a [`FunctionError`], the log lines, the read set, and whether
//! the function read the caller's identity (which decides whether its result can be shared
//! between users).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use database::{ReadSet, Transaction};
use rhai::{Dynamic, EvalAltResult, NativeCallContext, Position};
use value::{Limits, Value};

use crate::convert::{from_dynamic, to_dynamic};
use crate::definition::{FunctionDef, FunctionKind, Visibility};
use crate::error::{ErrorKind, FunctionError};
use crate::host_api::{Ctx, HostError, HostResult, host_error, with_txn};
use crate::modules::{LoadedModule, Modules};
use crate::path::FunctionPath;
use crate::sandbox::{Enter, Exec, TIMEOUT_TOKEN, USER_TIME_LIMIT};

/// Arguments and results are at most 16 MiB (DESIGN §3).
const MAX_VALUE_BYTES: usize = 16 << 20;

/// Who is calling, which decides whether internal functions are visible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A client over WebSocket or the public HTTP API: public functions only.
    Client,
    /// The admin endpoint, HTTP actions and other functions: internal functions too.
    Trusted,
}

/// The outcome of one call.
pub struct Execution {
    pub result: Result<Value, FunctionError>,
    pub log_lines: Vec<String>,
    pub read_set: ReadSet,
    /// The function called `ctx.auth.getUserIdentity()`.
    pub read_identity: bool,
}

/// A script error reduced to a message and where it happened.
pub(crate) struct Described {
    pub message: String,
    pub data: Option<Value>,
    pub kind: ErrorKind,
    pub position: Position,
}

impl Modules {
    /// Finds `path`, checking that it is a function of `kind` that `caller` may call.
    pub fn resolve(
        &self,
        path: &FunctionPath,
        kind: FunctionKind,
        caller: Caller,
    ) -> Result<(&LoadedModule, &FunctionDef), FunctionError> {
        let not_found = |why: String| {
            FunctionError::new(
                ErrorKind::NotFound,
                format!("Could not find public function for '{path}': {why}"),
            )
        };
        let Some(module) = self.module(path.module()) else {
            return Err(not_found(format!(
                "there is no module functions/{}.rhai",
                path.module()
            )));
        };
        let Some(def) = module.functions.get(path.name()) else {
            // Internal functions stay unnamed to clients.
            let exported: Vec<&str> = module
                .functions
                .iter()
                .filter(|(_, d)| caller == Caller::Trusted || d.visibility == Visibility::Public)
                .map(|(name, _)| name.as_str())
                .collect();
            return Err(not_found(format!(
                "{} does not export `{}` (it exports: {})",
                module.file,
                path.name(),
                if exported.is_empty() {
                    "nothing".to_string()
                } else {
                    exported.join(", ")
                }
            )));
        };
        if def.visibility == Visibility::Internal && caller == Caller::Client {
            return Err(FunctionError::new(
                ErrorKind::Internal,
                format!(
                    "Could not find public function for '{path}': it is an internal {}; call it from another function or with `pulsebase run`",
                    def.kind.as_str()
                ),
            ));
        }
        if def.kind != kind {
            return Err(FunctionError::new(
                ErrorKind::NotFound,
                format!(
                    "'{path}' is a {}, not a {}; call it as a {}",
                    def.kind.as_str(),
                    kind.as_str(),
                    def.kind.as_str()
                ),
            ));
        }
        Ok((module, def))
    }

    /// Runs a query or mutation with `txn` and gives the transaction back with the outcome.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        self: &Arc<Self>,
        path: &FunctionPath,
        kind: FunctionKind,
        caller: Caller,
        args: Value,
        identity: Option<Value>,
        mut txn: Box<dyn Transaction + Send>,
        now_ms: f64,
    ) -> (Execution, Option<Box<dyn Transaction + Send>>) {
        let failed = |error: FunctionError, mut txn: Box<dyn Transaction + Send>| {
            let read_set = txn.take_read_set();
            (
                Execution {
                    result: Err(error),
                    log_lines: Vec::new(),
                    read_set,
                    read_identity: false,
                },
                Some(txn),
            )
        };
        let (module, def) = match self.resolve(path, kind, caller) {
            Ok(found) => found,
            Err(e) => return failed(e, txn),
        };
        let args = match check_args(def, args, txn.catalog()) {
            Ok(args) => args,
            Err(e) => return failed(e, txn),
        };
        txn.take_read_set();

        let exec = Arc::new(Exec::new(txn, identity, kind, now_ms, self.clone()));
        let outcome = {
            let _current = Enter::new(exec.clone());
            def.handler.call::<Dynamic>(
                &self.engine,
                &module.ast,
                (Ctx(exec.clone()).into_dynamic(), to_dynamic(&args)),
            )
        };
        let mut txn = exec.txn.lock().take();
        let result = match outcome {
            Ok(value) => check_result(def, &value),
            Err(e) => {
                let d = describe_error(&e, &module.file);
                Err(FunctionError {
                    kind: d.kind,
                    message: with_location(&d.message, &module.file, d.position),
                    data: d.data,
                })
            }
        };
        let read_set = txn.as_mut().map(|t| t.take_read_set()).unwrap_or_default();
        let log_lines = std::mem::take(&mut *exec.logs.lock());
        (
            Execution {
                result,
                log_lines,
                read_set,
                read_identity: exec.identity_read.load(Ordering::Relaxed),
            },
            txn,
        )
    }
}

fn check_args(
    def: &FunctionDef,
    args: Value,
    ids: &dyn schema::IdTables,
) -> Result<Value, FunctionError> {
    let bad = |message: String| {
        FunctionError::new(
            ErrorKind::BadArgs,
            format!("ArgumentValidationError: {message}"),
        )
    };
    let Value::Object(fields) = args else {
        return Err(bad(format!(
            "arguments must be an object, not {}",
            args.type_name()
        )));
    };
    let args = Value::Object(fields);
    Limits::check_size(&args, "the arguments", MAX_VALUE_BYTES).map_err(|e| bad(e.to_string()))?;
    Limits::default()
        .check_shape(&args, "the arguments")
        .map_err(|e| bad(e.to_string()))?;
    match &def.args {
        None => Ok(args),
        Some(validator) => {
            let Value::Object(fields) = args else {
                return Err(bad("arguments must be an object".into()));
            };
            validator
                .validate_fields(fields, "args", ids)
                .map_err(|e| bad(e.to_string()))
        }
    }
}

fn check_result(def: &FunctionDef, value: &Dynamic) -> Result<Value, FunctionError> {
    let limit = |message: String| FunctionError::new(ErrorKind::Limit, message);
    let value = from_dynamic(value, "the return value")
        .map_err(|e| FunctionError::new(ErrorKind::Uncaught, e))?;
    Limits::check_size(&value, "the return value", MAX_VALUE_BYTES)
        .map_err(|e| limit(e.to_string()))?;
    Limits::default()
        .check_shape(&value, "the return value")
        .map_err(|e| limit(e.to_string()))?;
    match &def.returns {
        None => Ok(value),
        Some(ty) => ty.validate(value, "return value", &NoIdCheck).map_err(|e| {
            FunctionError::new(ErrorKind::Uncaught, format!("ReturnsValidationError: {e}"))
        }),
    }
}

/// Result validators check id shapes, not tables (the function already read them).
struct NoIdCheck;
impl schema::IdTables for NoIdCheck {
    fn table_of(&self, _: &str) -> Option<String> {
        None
    }
}

pub(crate) fn with_location(message: &str, file: &str, position: Position) -> String {
    match (position.line(), position.position()) {
        (Some(line), Some(column)) => format!("{message}\n    at {file}:{line}:{column}"),
        (Some(line), None) => format!("{message}\n    at {file}:{line}"),
        _ => message.to_string(),
    }
}

/// Reduces a Rhai error (possibly wrapped by nested calls) to what the user needs.
pub(crate) fn describe_error(error: &EvalAltResult, file: &str) -> Described {
    let _ = file;
    let mut error = error;
    let mut position = error.position();
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, pos)
    | EvalAltResult::ErrorInModule(_, inner, pos) = error
    {
        if !pos.is_none() {
            position = *pos;
        }
        error = inner;
    }
    if !error.position().is_none() {
        position = error.position();
    }
    let described = |kind, message: String, data| Described {
        message,
        data,
        kind,
        position,
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
        EvalAltResult::ErrorTerminated(token, _)
            if token
                .clone()
                .into_string()
                .is_ok_and(|t| t == TIMEOUT_TOKEN) =>
        {
            described(
                ErrorKind::Limit,
                format!(
                    "Function execution timed out (maximum duration: {}s of user code)",
                    USER_TIME_LIMIT.as_secs()
                ),
                None,
            )
        }
        EvalAltResult::ErrorTooManyOperations(_) => described(
            ErrorKind::Limit,
            "Function execution exceeded the operation limit; it is probably in an endless loop"
                .to_string(),
            None,
        ),
        EvalAltResult::ErrorStackOverflow(_) => described(
            ErrorKind::Limit,
            "Function exceeded the maximum call depth (64); check for unbounded recursion"
                .to_string(),
            None,
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) => described(
            ErrorKind::Limit,
            format!("{what} exceeds the sandbox size limit"),
            None,
        ),
        other => {
            // Rhai appends " (line L, position C)"; the location is reported separately.
            let mut text = other.to_string();
            if let Some(cut) = text.rfind(" (line ") {
                text.truncate(cut);
            }
            described(ErrorKind::Uncaught, format!("Uncaught Error: {text}"), None)
        }
    }
}

/// `ctx.runQuery` / `ctx.runMutation`: runs `path` inline in the caller's transaction.
pub(crate) fn run_inline(
    call: &NativeCallContext,
    parent: &Arc<Exec>,
    path: &FunctionPath,
    kind: FunctionKind,
    args: Value,
) -> HostResult<Value> {
    let _ = call;
    let modules = parent.modules.clone();
    let (module, def) = modules
        .resolve(path, kind, Caller::Trusted)
        .map_err(|e| host_error(e.message))?;
    let args = with_txn(parent, |txn| Ok(check_args(def, args, txn.catalog())))?
        .map_err(|e| host_error(e.message))?;
    let txn = parent
        .txn
        .lock()
        .take()
        .ok_or_else(|| host_error("ctx was used after the function returned".to_string()))?;
    let child = Arc::new(Exec::nested(parent, txn, kind));
    let outcome = {
        let _current = Enter::new(child.clone());
        def.handler.call::<Dynamic>(
            &modules.engine,
            &module.ast,
            (Ctx(child.clone()).into_dynamic(), to_dynamic(&args)),
        )
    };
    *parent.txn.lock() = child.txn.lock().take();
    parent
        .logs
        .lock()
        .extend(std::mem::take(&mut *child.logs.lock()));
    if child.identity_read.load(Ordering::Relaxed) {
        parent.identity_read.store(true, Ordering::Relaxed);
    }
    let value = outcome?;
    check_result(def, &value).map_err(|e| host_error(format!("{path}: {}", e.message)))
}
