//! Running an HTTP action: one handler of `functions/http.rhai` for one request, with the
//! action's own `ctx`.
//!
//! An HTTP action is an action (its `ctx` is `action_ctx.rs`: `ctx.runQuery`,
//! `ctx.runMutation`, `ctx.runAction`, `fetch`, `env`; `ctx.db` is refused with a clear
//! error) that gets a request and returns a response. It runs in the same sandbox as queries,
//! with an action's 10-minute wall-clock limit instead of the user-time budget, and may verify
//! webhook signatures. The request is `http_request.rs`, the response `http_response.rs`, and
//! what a script can call is registered in `host_api/http.rs` and `host_api/action.rs`.

use std::sync::Arc;

use auth::Authorization;
use rhai::Dynamic;

use crate::action_ctx::{ActionCtx, ActionIdentity, HostGuard};
use crate::action_host::ActionHost;
use crate::definition::FunctionKind;
use crate::error::{ErrorKind, FunctionError};
use crate::error_report::describe_error;
use crate::http_request::{HttpRequest, RequestHandle};
use crate::http_response::{HttpResponse, response_from_dynamic};
use crate::http_router::{HTTP_MODULE, HttpRoute};
use crate::module_set::ModuleSet;
use crate::sandbox::{Enter, Exec};

/// The outcome of one action.
pub struct ActionExecution {
    pub result: Result<HttpResponse, FunctionError>,
    pub log_lines: Vec<String>,
}

/// One request for an action: what the server received and who sent it.
pub(crate) struct ActionCall {
    pub request: HttpRequest,
    /// From the request's bearer token; a refused token still runs the action.
    pub authorization: Authorization,
    pub host: Arc<dyn ActionHost>,
    /// Frozen clock for `ctx.now()`.
    pub now_ms: f64,
}

/// Runs `route`'s handler for the request of `call`. Blocking (Rhai, and the host's nested
/// calls): call it on a blocking thread.
pub(crate) fn run(set: &Arc<ModuleSet>, route: &HttpRoute, call: ActionCall) -> ActionExecution {
    let ActionCall {
        request,
        authorization,
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
    let exec = Arc::new(Exec::for_action(
        authorization.identity().cloned(),
        now_ms,
        set.clone(),
        format!("the HTTP action {}", route.describe()),
        FunctionKind::HttpAction,
    ));
    let ctx = ActionCtx::new(
        exec.clone(),
        host.clone(),
        Arc::new(ActionIdentity::from(&authorization)),
    );
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
