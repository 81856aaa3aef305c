//! Running an HTTP action: one handler of `functions/http.rhai` for one request, with the
//! action's own `ctx`.
//!
//! An action has no transaction. It reaches data through `ctx.runQuery` / `ctx.runMutation`,
//! which go to the [`ActionHost`] (implemented by the application, which runs each mutation
//! as its own transaction on the Committer), so `ctx.db` is refused with a clear error. It
//! runs in the same sandbox as queries (operation cap, user-time budget; time spent in nested
//! calls is not counted) and is the only code that may read the app's environment
//! (`env("NAME")`) or verify webhook signatures, because actions are not cached and need not
//! be deterministic. The request is `http_request.rs`, the response `http_response.rs`, and
//! what a script can call is registered in `host_api/http.rs`.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use rhai::{Dynamic, EvalAltResult, Position};

use crate::action_host::ActionHost;
use crate::convert::{from_dynamic, to_dynamic};
use crate::definition::FunctionKind;
use crate::error::{ErrorKind, FunctionError};
use crate::error_report::describe_error;
use crate::host_error::{HostResult, host_error};
use crate::http_request::{HttpRequest, RequestHandle, RequestIdentity};
use crate::http_response::{HttpResponse, response_from_dynamic};
use crate::http_router::{HTTP_MODULE, HttpRoute};
use crate::module_set::ModuleSet;
use crate::path::FunctionPath;
use crate::sandbox::{Enter, Exec, with_current};

/// The outcome of one action.
pub struct ActionExecution {
    pub result: Result<HttpResponse, FunctionError>,
    pub log_lines: Vec<String>,
}

/// One request for an action: what the server received and who sent it.
pub(crate) struct ActionCall {
    pub request: HttpRequest,
    pub identity: RequestIdentity,
    pub host: Arc<dyn ActionHost>,
    /// Frozen clock for `ctx.now()`.
    pub now_ms: f64,
}

/// Runs `route`'s handler for the request of `call`. Blocking (Rhai, and the host's nested
/// calls): call it on a blocking thread.
pub(crate) fn run(set: &Arc<ModuleSet>, route: &HttpRoute, call: ActionCall) -> ActionExecution {
    let ActionCall {
        request,
        identity,
        host,
        now_ms,
    } = call;
    let Some(module) = set.module(HTTP_MODULE) else {
        return ActionExecution {
            result: Err(FunctionError::new(
                ErrorKind::NotFound,
                "functions/http.rhai is not loaded",
            )),
            log_lines: Vec::new(),
        };
    };
    let user = match &identity {
        RequestIdentity::User(value) => Some(value.clone()),
        _ => None,
    };
    let exec = Arc::new(Exec::for_action(
        user,
        now_ms,
        set.clone(),
        format!("the HTTP action {}", route.describe()),
    ));
    let ctx = ActionCtx {
        exec: exec.clone(),
        host: host.clone(),
        identity: Arc::new(identity),
    };
    let outcome = {
        let _host = HostGuard::push(host);
        let _current = Enter::new(exec.clone());
        route.handler.call::<Dynamic>(
            set.engine(),
            &module.ast,
            (
                Dynamic::from(ctx),
                Dynamic::from(RequestHandle::new(request)),
            ),
        )
    };
    let result = match outcome {
        Ok(value) => response_from_dynamic(&value).map_err(|why| {
            FunctionError::new(
                ErrorKind::Uncaught,
                format!(
                    "{} (declared at {}): {why}",
                    route.describe(),
                    route.declared_at
                ),
            )
        }),
        Err(e) => Err(describe_error(&e, &module.file, None).into_function_error()),
    };
    let log_lines = std::mem::take(&mut *exec.logs.lock());
    ActionExecution { result, log_lines }
}

thread_local! {
    /// The host of the action running on this thread, for `env()`, which has no `ctx`.
    static HOSTS: RefCell<Vec<Arc<dyn ActionHost>>> = const { RefCell::new(Vec::new()) };
}

struct HostGuard;

impl HostGuard {
    fn push(host: Arc<dyn ActionHost>) -> HostGuard {
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

/// `ctx` of an action.
#[derive(Clone)]
pub(crate) struct ActionCtx {
    exec: Arc<Exec>,
    host: Arc<dyn ActionHost>,
    identity: Arc<RequestIdentity>,
}

impl ActionCtx {
    /// The action's execution (for `ctx.storage`, `host_api/storage.rs`).
    pub(crate) fn exec(&self) -> &Arc<Exec> {
        &self.exec
    }

    /// `ctx.now()`: the frozen clock of the action.
    pub(crate) fn now(&self) -> f64 {
        self.exec.now_ms
    }

    /// `ctx.auth`.
    pub(crate) fn auth(&self) -> ActionAuth {
        ActionAuth(self.identity.clone())
    }

    /// `ctx.runQuery` / `ctx.runMutation` from an action: through the host, each call its own
    /// transaction. Time spent there is not the action's user time.
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
            // A structured error is re-thrown as its data, so `catch (e)` sees the same map the
            // callee threw.
            Err(FunctionError {
                data: Some(data), ..
            }) => Err(Box::new(EvalAltResult::ErrorRuntime(
                to_dynamic(&data),
                Position::NONE,
            ))),
            Err(error) => {
                let message = error
                    .message
                    .strip_prefix("Uncaught Error: ")
                    .unwrap_or(&error.message);
                Err(host_error(format!("{path}: {message}")))
            }
        }
    }
}

/// `ctx.auth` of an action.
#[derive(Clone)]
pub(crate) struct ActionAuth(Arc<RequestIdentity>);

impl ActionAuth {
    /// `ctx.auth.getUserIdentity()`: `()` when anonymous; throws when the token was refused.
    pub(crate) fn user_identity(&self) -> HostResult<Dynamic> {
        match self.0.as_ref() {
            RequestIdentity::Anonymous => Ok(Dynamic::UNIT),
            RequestIdentity::User(value) => Ok(to_dynamic(value)),
            RequestIdentity::Invalid(message) => Err(host_error(message.clone())),
        }
    }
}

/// Refuses `what` outside an HTTP action.
pub(crate) fn action_only(what: &str) -> HostResult<()> {
    let in_action = with_current(|exec| exec.kind == FunctionKind::HttpAction).unwrap_or(false);
    if in_action {
        Ok(())
    } else {
        Err(host_error(format!(
            "{what} is only available in HTTP actions (queries and mutations must be deterministic)"
        )))
    }
}

/// `env(name)`: a variable of the app's environment, through the running action's host.
pub(crate) fn env_var(name: &str) -> HostResult<Option<String>> {
    action_only("env()")?;
    let host = HOSTS.with(|h| h.borrow().last().cloned());
    let host = host.ok_or_else(|| host_error("env() is only available in HTTP actions".into()))?;
    host.env_var(name)
        .map_err(|e| host_error(format!("env({name:?}): {e}")))
}
