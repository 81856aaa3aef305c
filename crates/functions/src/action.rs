//! Running an action (`action(...)` / `internalAction(...)`) called by a client, the admin
//! endpoint or an HTTP API request: resolve the path, check who may call it, validate the
//! arguments, call the handler with an action's `ctx` (`action_ctx.rs`), validate the result.
//!
//! Blocking: the handler may wait on the network (`fetch`) and on the Committer
//! (`ctx.runMutation`) for up to the action time limit, so the application runs it on threads
//! of its own, never on the threads that serve queries and never on the Committer.

use std::sync::Arc;

use auth::Identity;
use rhai::Dynamic;
use value::Value;

use crate::action_ctx::{ActionCtx, ActionIdentity, HostGuard};
use crate::action_host::ActionHost;
use crate::convert::to_dynamic;
use crate::definition::{Caller, FunctionKind};
use crate::error::FunctionError;
use crate::error_report::describe_error;
use crate::module_set::ModuleSet;
use crate::path::FunctionPath;
use crate::sandbox::{Enter, Exec};
use crate::validation::{check_args, check_result};

/// The outcome of one action.
pub struct ActionOutcome {
    pub result: Result<Value, FunctionError>,
    pub log_lines: Vec<String>,
}

/// One action to run: what, by whom, with what, and where its `ctx` leads.
pub(crate) struct ActionRun {
    pub path: FunctionPath,
    pub caller: Caller,
    pub args: Value,
    pub identity: Option<Identity>,
    pub host: Arc<dyn ActionHost>,
    /// The clock when the call started (ms), the fallback of `ctx.now()`.
    pub now_ms: f64,
}

/// Runs the action of `run`. Blocking; see the module docs.
pub(crate) fn run(set: &Arc<ModuleSet>, run: ActionRun) -> ActionOutcome {
    let ActionRun {
        path,
        caller,
        args,
        identity,
        host,
        now_ms,
    } = run;
    let failed = |error: FunctionError| ActionOutcome {
        result: Err(error),
        log_lines: Vec::new(),
    };
    let (module, def) = match set.resolve(&path, FunctionKind::Action, caller) {
        Ok(found) => found,
        Err(e) => return failed(e),
    };
    let ids = host.id_tables();
    let function = path.to_string();
    let args = match check_args(def, &function, args, ids.as_ref()) {
        Ok(args) => args,
        Err(e) => return failed(e),
    };
    let exec = Arc::new(Exec::for_action(
        identity.clone(),
        now_ms,
        set.clone(),
        function.clone(),
        FunctionKind::Action,
    ));
    let ctx = ActionCtx::new(
        exec.clone(),
        host.clone(),
        Arc::new(ActionIdentity::Known(identity)),
    );
    let outcome = {
        let _host = HostGuard::push(host);
        let _current = Enter::new(exec.clone());
        set.call(module, def, 0, [Dynamic::from(ctx), to_dynamic(&args)])
    };
    let result = match outcome {
        Ok(value) => check_result(def, &function, &value, ids.as_ref()),
        Err(e) => Err(describe_error(&e, &module.file, Some(&function)).into_function_error()),
    };
    let log_lines = std::mem::take(&mut *exec.logs.lock());
    ActionOutcome { result, log_lines }
}
