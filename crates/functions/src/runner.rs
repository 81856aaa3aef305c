//! Running a query or mutation: resolve the path, check visibility and kind, validate the
//! arguments, call the handler in the sandbox with a transaction, and turn the outcome into an
//! [`Execution`]: the result or a [`FunctionError`], the log lines, the read set, and whether
//! the function read the caller's identity (which decides whether its result can be shared
//! between users). Calls made from inside a handler (`ctx.runQuery`) run inline instead, in
//! `host_api/ctx.rs`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use auth::Identity;
use database::{ReadSet, Transaction};
use value::Value;

use crate::convert::to_dynamic;
use crate::definition::{Caller, FunctionKind};
use crate::error::FunctionError;
use crate::error_report::describe_error;
use crate::host_api::ctx::Ctx;
use crate::module_set::ModuleSet;
use crate::path::FunctionPath;
use crate::sandbox::{Enter, Exec};
use crate::validation::{UnknownIds, check_args, check_result};

/// The outcome of one call.
pub struct Execution {
    pub result: Result<Value, FunctionError>,
    pub log_lines: Vec<String>,
    pub read_set: ReadSet,
    /// The function called `ctx.auth.getUserIdentity()`.
    pub read_identity: bool,
}

/// One query or mutation to run: what, of which kind, by whom, and with what.
pub struct Call {
    pub path: FunctionPath,
    pub kind: FunctionKind,
    pub caller: Caller,
    pub args: Value,
    pub identity: Option<Identity>,
    /// Frozen clock for `ctx.now()`.
    pub now_ms: f64,
}

/// A finished call: its outcome, and the transaction it was lent, given back for the next call
/// in the same snapshot.
pub struct Ran {
    pub execution: Execution,
    /// `None` only if the transaction could not be taken back from the sandbox.
    pub txn: Option<Box<dyn Transaction + Send>>,
}

/// Runs `call` with `txn` and gives the transaction back with the outcome.
pub(crate) fn run(set: &Arc<ModuleSet>, call: Call, mut txn: Box<dyn Transaction + Send>) -> Ran {
    let Call {
        path,
        kind,
        caller,
        args,
        identity,
        now_ms,
    } = call;
    let failed = |error: FunctionError, mut txn: Box<dyn Transaction + Send>| {
        let read_set = txn.take_read_set();
        Ran {
            execution: Execution {
                result: Err(error),
                log_lines: Vec::new(),
                read_set,
                read_identity: false,
            },
            txn: Some(txn),
        }
    };
    let (module, def) = match set.resolve(&path, kind, caller) {
        Ok(found) => found,
        Err(e) => return failed(e, txn),
    };
    let args = match check_args(def, &path.to_string(), args, txn.catalog()) {
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
        set.clone(),
        function.clone(),
    ));
    let outcome = {
        let _current = Enter::new(exec.clone());
        set.call(
            module,
            def,
            0,
            [Ctx(exec.clone()).into_dynamic(), to_dynamic(&args)],
        )
    };
    let mut txn = exec.txn.lock().take();
    let result = match outcome {
        Ok(value) => match txn.as_deref() {
            Some(txn) => check_result(def, &function, &value, txn.catalog()),
            None => check_result(def, &function, &value, &UnknownIds),
        },
        Err(e) => Err(describe_error(&e, &module.file, Some(&function)).into_function_error()),
    };
    let read_set = txn.as_mut().map(|t| t.take_read_set()).unwrap_or_default();
    let log_lines = std::mem::take(&mut *exec.logs.lock());
    Ran {
        execution: Execution {
            result,
            log_lines,
            read_set,
            read_identity: exec.identity_read.load(Ordering::Relaxed),
        },
        txn,
    }
}
