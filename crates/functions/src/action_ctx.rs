//! The `ctx` of an action and of an HTTP action, and the host of the action running on this
//! thread (for `env()` and `fetch()`, which are called without `ctx`).
//!
//! An action has no transaction. `ctx.runQuery` / `ctx.runMutation` go to the [`ActionHost`]
//! (each its own transaction, as in Convex). `ctx.runAction` runs the other action inline, on
//! this thread, with the caller's identity and deadline; its call depth adds to the caller's
//! (`ModuleSet::call`), so recursion through `ctx.runAction` meets the depth limit.
//! `ctx.scheduler` goes to the host too (`host_api/scheduler.rs`).

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use auth::{Authorization, Identity};
use rhai::{Dynamic, EvalAltResult, NativeCallContext, Position};

use crate::action_host::ActionHost;
use crate::convert::{from_dynamic, to_dynamic};
use crate::definition::{Caller, FunctionKind};
use crate::error::FunctionError;
use crate::error_report::nested_call_error;
use crate::host_error::{HostResult, host_error};
use crate::path::FunctionPath;
use crate::sandbox::{Enter, Exec, with_current};
use crate::validation::{check_args, check_result};

thread_local! {
    /// The hosts of the actions running on this thread, innermost last.
    static HOSTS: RefCell<Vec<Arc<dyn ActionHost>>> = const { RefCell::new(Vec::new()) };
}

/// Makes `host` the host of this thread's running action until the guard drops.
pub(crate) struct HostGuard;

impl HostGuard {
    pub(crate) fn push(host: Arc<dyn ActionHost>) -> HostGuard {
        HOSTS.with(|h| h.borrow_mut().push(host));
        HostGuard
    }
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        HOSTS.with(|h| {
            h.borrow_mut().pop();
        });
    }
}

/// Refuses `what` outside an action or HTTP action.
pub(crate) fn action_only(what: &str) -> HostResult<()> {
    if with_current(Exec::is_action).unwrap_or(false) {
        Ok(())
    } else {
        Err(host_error(format!(
            "{what} is only available in actions and HTTP actions (queries and mutations must be deterministic)"
        )))
    }
}

/// The host of the action running on this thread, for `what`.
pub(crate) fn current_host(what: &str) -> HostResult<Arc<dyn ActionHost>> {
    action_only(what)?;
    HOSTS
        .with(|h| h.borrow().last().cloned())
        .ok_or_else(|| host_error(format!("{what} is only available in actions")))
}

/// `env(name)`: a variable of the app's environment, through the running action's host.
pub(crate) fn env_var(name: &str) -> HostResult<Option<String>> {
    current_host("env()")?
        .env_var(name)
        .map_err(|e| host_error(format!("env({name:?}): {e}")))
}

/// Who an action runs as, as `ctx.auth.getUserIdentity()` answers it.
pub(crate) enum ActionIdentity {
    /// A user, or anonymous.
    Known(Option<Identity>),
    /// An HTTP action's bearer token was refused: the request still runs and reading the
    /// identity throws this (Convex's behaviour).
    Refused(String),
}

impl From<&Authorization> for ActionIdentity {
    fn from(authorization: &Authorization) -> ActionIdentity {
        match authorization {
            Authorization::Rejected(rejection) => {
                ActionIdentity::Refused(rejection.client_message())
            }
            other => ActionIdentity::Known(other.identity().cloned()),
        }
    }
}

/// `ctx` of an action or HTTP action.
#[derive(Clone)]
pub(crate) struct ActionCtx {
    exec: Arc<Exec>,
    host: Arc<dyn ActionHost>,
    identity: Arc<ActionIdentity>,
}

impl ActionCtx {
    pub(crate) fn new(
        exec: Arc<Exec>,
        host: Arc<dyn ActionHost>,
        identity: Arc<ActionIdentity>,
    ) -> ActionCtx {
        ActionCtx {
            exec,
            host,
            identity,
        }
    }

    /// The action's execution (for `ctx.storage`, `host_api/storage.rs`).
    pub(crate) fn exec(&self) -> &Arc<Exec> {
        &self.exec
    }

    /// `ctx.now()`: the wall clock in ms (actions need not be deterministic, and a frozen clock
    /// would be useless to one that waits minutes on the network).
    pub(crate) fn now(&self) -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(self.exec.now_ms, |d| d.as_secs_f64() * 1000.0)
    }

    /// `ctx.auth`.
    pub(crate) fn auth(&self) -> ActionAuth {
        ActionAuth(self.identity.clone())
    }

    /// The host this action reaches data through (`ctx.scheduler` schedules through it).
    pub(crate) fn host(&self) -> &Arc<dyn ActionHost> {
        &self.host
    }

    /// `ctx.runQuery` / `ctx.runMutation`: through the host, each call its own transaction.
    /// Time spent there is not the action's user time.
    pub(crate) fn run(&self, path: &str, args: Dynamic, kind: FunctionKind) -> HostResult<Dynamic> {
        let args = from_dynamic(&args, "the arguments").map_err(host_error)?;
        let path = FunctionPath::parse(path);
        let started = Instant::now();
        let call = match kind {
            FunctionKind::Mutation => self.host.run_mutation(&path, args),
            _ => self.host.run_query(&path, args),
        };
        self.exec.add_db_time(started.elapsed());
        self.exec.append_logs(call.log_lines);
        match call.result {
            Ok(value) => Ok(to_dynamic(&value)),
            Err(error) => Err(rethrow(&path, error)),
        }
    }

    /// `ctx.runAction(path, args)`: the other action, inline on this thread.
    pub(crate) fn run_action(
        &self,
        call: &NativeCallContext,
        path: &str,
        args: Dynamic,
    ) -> HostResult<Dynamic> {
        let args = from_dynamic(&args, "the arguments").map_err(host_error)?;
        let path = FunctionPath::parse(path);
        let modules = self.exec.modules.clone();
        let (module, def) = modules
            .resolve(&path, FunctionKind::Action, Caller::Trusted)
            .map_err(|e| host_error(e.message))?;
        let ids = self.host.id_tables();
        let args = check_args(def, &path.to_string(), args, ids.as_ref())
            .map_err(|e| host_error(e.message))?;
        let exec = Arc::new(Exec::nested_action(&self.exec, path.to_string()));
        let child = ActionCtx::new(exec.clone(), self.host.clone(), self.identity.clone());
        let outcome = {
            let _current = Enter::new(exec.clone());
            modules.call(
                module,
                def,
                call.call_level(),
                [Dynamic::from(child), to_dynamic(&args)],
            )
        };
        self.exec
            .append_logs(std::mem::take(&mut *exec.logs.lock()));
        let value = outcome.map_err(|e| {
            nested_call_error(e, &path.to_string(), &module.file, call.call_position())
        })?;
        check_result(def, &path.to_string(), &value, ids.as_ref())
            .map(|v| to_dynamic(&v))
            .map_err(|e| host_error(format!("{path}: {}", e.message)))
    }
}

/// A nested call's error thrown into the calling script: structured data as the data itself,
/// so `catch (e)` sees the map the callee threw; anything else as a message naming the callee.
fn rethrow(path: &FunctionPath, error: FunctionError) -> Box<EvalAltResult> {
    match error {
        FunctionError {
            data: Some(data), ..
        } => Box::new(EvalAltResult::ErrorRuntime(
            to_dynamic(&data),
            Position::NONE,
        )),
        error => {
            let message = error
                .message
                .strip_prefix("Uncaught Error: ")
                .unwrap_or(&error.message);
            host_error(format!("{path}: {message}"))
        }
    }
}

/// `ctx.auth` of an action.
#[derive(Clone)]
pub(crate) struct ActionAuth(Arc<ActionIdentity>);

impl ActionAuth {
    /// `ctx.auth.getUserIdentity()`: `()` when anonymous; throws when the token was refused.
    pub(crate) fn user_identity(&self) -> HostResult<Dynamic> {
        match self.0.as_ref() {
            ActionIdentity::Known(None) => Ok(Dynamic::UNIT),
            ActionIdentity::Known(Some(identity)) => Ok(to_dynamic(identity.value())),
            ActionIdentity::Refused(message) => Err(host_error(message.clone())),
        }
    }
}
