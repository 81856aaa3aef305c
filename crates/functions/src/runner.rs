//! Running a function: resolve the path, check visibility and kind, validate the arguments,
//! call the handler in the sandbox with a transaction, and turn the outcome into an
//! [`Execution`]: the result or a [`FunctionError`], the log lines, the read set, and whether
//! the function read the caller's identity (which decides whether its result can be shared
//! between users).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use database::{ReadSet, Transaction};
use rhai::{Dynamic, Engine, EvalAltResult, NativeCallContext, Position};
use value::{LimitError, Limits, Value};

use crate::convert::{from_dynamic, to_dynamic};
use crate::definition::{FunctionDef, FunctionKind, Visibility};
use crate::error::{ErrorKind, FunctionError};
use crate::hints;
use crate::host_api::{Ctx, HostError, HostResult, host_error, with_txn};
use crate::modules::{LoadedModule, Modules};
use crate::path::FunctionPath;
use crate::sandbox::{Enter, Exec, MAX_CALL_DEPTH, MAX_OPERATIONS, Timeout, USER_TIME_LIMIT};

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
        // Internal functions stay unnamed to clients: to them, one is exactly as absent as a
        // function that does not exist (Convex answers the same).
        let exported = || {
            let names: Vec<&str> = module
                .functions
                .iter()
                .filter(|(_, d)| caller == Caller::Trusted || d.visibility == Visibility::Public)
                .map(|(name, _)| name.as_str())
                .collect();
            not_found(format!(
                "{} does not export `{}` (it exports: {})",
                module.file,
                path.name(),
                if names.is_empty() {
                    "nothing".to_string()
                } else {
                    names.join(", ")
                }
            ))
        };
        let Some(def) = module.functions.get(path.name()) else {
            return Err(exported());
        };
        if def.visibility == Visibility::Internal && caller == Caller::Client {
            tracing::info!(
                function = %path,
                "a client called internal {} {path}; answered as not found (internal functions are callable from other functions, HTTP actions and `pulsebase run`)",
                def.kind.as_str()
            );
            return Err(FunctionError {
                kind: ErrorKind::Internal,
                ..exported()
            });
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

        let function = path.to_string();
        let exec = Arc::new(Exec::new(
            txn,
            identity,
            kind,
            now_ms,
            self.clone(),
            function.clone(),
        ));
        let outcome = {
            let _current = Enter::new(exec.clone());
            call_handler(
                &self.engine,
                module,
                def,
                0,
                [Ctx(exec.clone()).into_dynamic(), to_dynamic(&args)],
            )
        };
        let mut txn = exec.txn.lock().take();
        let result = match outcome {
            Ok(value) => match txn.as_deref() {
                Some(txn) => check_result(def, &value, txn.catalog()),
                None => check_result(def, &value, &UnknownIds),
            },
            Err(e) => {
                let d = describe_error(&e, &module.file, Some(&function));
                Err(FunctionError {
                    kind: d.kind,
                    message: d.located(),
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

fn check_result(
    def: &FunctionDef,
    value: &Dynamic,
    ids: &dyn schema::IdTables,
) -> Result<Value, FunctionError> {
    let limit = |message: String| FunctionError::new(ErrorKind::Limit, message);
    let value = from_dynamic(value, "the return value")
        .map_err(|e| FunctionError::new(ErrorKind::Uncaught, e))?;
    Limits::check_size(&value, "the return value", MAX_VALUE_BYTES)
        .map_err(|e| limit(e.to_string()))?;
    Limits::default()
        .check_shape(&value, "the return value")
        .map_err(|e| match e {
            LimitError::BadFieldName { .. } => {
                FunctionError::new(ErrorKind::Uncaught, e.to_string())
            }
            e => limit(e.to_string()),
        })?;
    match &def.returns {
        None => Ok(value),
        Some(ty) => ty.validate(value, "return value", ids).map_err(|e| {
            FunctionError::new(ErrorKind::Uncaught, format!("ReturnsValidationError: {e}"))
        }),
    }
}

/// Knows no tables: only when the transaction is gone (a handler that panicked it away),
/// where an `id<T>` result cannot be checked and is refused.
struct UnknownIds;
impl schema::IdTables for UnknownIds {
    fn table_of(&self, _: &str) -> Option<String> {
        None
    }
}

/// Calls a function's handler closure. Rhai's call depth starts at `level` (the depth of the
/// `ctx.runQuery`/`ctx.runMutation` call that got here, 0 at the top), so the depth limit
/// counts across nested calls: each nested handler would otherwise start again at 0, and
/// recursion through `ctx.runQuery` would overflow the thread's stack and take the server
/// down. The call position is the `query(...)` declaration, which is where errors Rhai does
/// not locate itself (time and depth limits) point.
fn call_handler(
    engine: &Engine,
    module: &LoadedModule,
    def: &FunctionDef,
    level: usize,
    mut args: [Dynamic; 2],
) -> Result<Dynamic, Box<EvalAltResult>> {
    let mut global = engine.new_global_runtime_state();
    global.lib.push(module.ast.shared_lib().clone());
    global.source = Some(module.file.as_str().into());
    global.level = level;
    let context = NativeCallContext::new_with_all_fields(
        engine,
        def.handler.fn_name(),
        None,
        &global,
        def.declared_at,
    );
    def.handler.call_raw(&context, None, &mut args)
}

/// Names the error of a function called by `ctx.runQuery`/`ctx.runMutation` (see
/// [`run_inline`]), so that [`describe_error`] can tell which file each position is in.
const NESTED_CALL: &str = "pulsebase:nested-call:";

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
}

/// Reduces a Rhai error (possibly wrapped by nested calls) to what the user needs. `file` and
/// `function` say what was called; errors of functions it called through `ctx.runQuery` /
/// `ctx.runMutation` carry their own file and name (see [`run_inline`]).
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
            let function = token
                .clone()
                .try_cast::<Timeout>()
                .map_or(running, |t| t.function);
            described(
                ErrorKind::Limit,
                format!(
                    "Function execution timed out: {function} ran longer than the limit of {} s of user code per call (time in database calls is not counted); check for an endless loop",
                    USER_TIME_LIMIT.as_secs()
                ),
                None,
            )
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
                "Function exceeded the maximum call depth in {running} (limit: {MAX_CALL_DEPTH} nested calls, ctx.runQuery and ctx.runMutation included); check for unbounded recursion"
            ),
            None,
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) => described(
            ErrorKind::Limit,
            format!("{what} exceeds the sandbox size limit"),
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

/// `ctx.runQuery` / `ctx.runMutation`: runs `path` inline in the caller's transaction.
pub(crate) fn run_inline(
    call: &NativeCallContext,
    parent: &Arc<Exec>,
    path: &FunctionPath,
    kind: FunctionKind,
    args: Value,
) -> HostResult<Value> {
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
    let child = Arc::new(Exec::nested(parent, txn, kind, path.to_string()));
    let outcome = {
        let _current = Enter::new(child.clone());
        call_handler(
            &modules.engine,
            module,
            def,
            call.call_level(),
            [Ctx(child.clone()).into_dynamic(), to_dynamic(&args)],
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
    let value = outcome.map_err(|e| {
        if e.is_catchable() {
            // Wrapped so the report names the callee's file for the positions inside it, and
            // the call site for this one; `try`/`catch` in the caller still sees what the
            // callee threw (Rhai unwraps function-call errors for `catch`).
            Box::new(EvalAltResult::ErrorInFunctionCall(
                format!("{NESTED_CALL}{path}"),
                module.file.clone(),
                e,
                call.call_position(),
            ))
        } else {
            // Limits stay as they are: a wrapper would make them catchable.
            e
        }
    })?;
    with_txn(parent, |txn| Ok(check_result(def, &value, txn.catalog())))?
        .map_err(|e| host_error(format!("{path}: {}", e.message)))
}
