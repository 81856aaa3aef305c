//! Actions on the app: [`App::run_action`] (a client's `Action`, `/api/action`, `pulsebase
//! run`) and [`App::run_http_action`] (a route of `functions/http.rhai`), both on the action
//! pool (`action_pool.rs`), never on the threads that serve queries nor on the Committer, with
//! an [`AppActionHost`] for their `ctx`.
//!
//! The pool and the outbound client ([`fetch::Fetcher`]) start with the first action, so an
//! app that has none pays for neither.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use auth::{Authorization, Identity};
use fetch::{FetchLimits, Fetcher, NetworkPolicy};
use functions::{
    ActionExecution, ActionOutcome, Caller, FunctionKind, FunctionPath, HttpRequest, HttpRoute,
    Modules,
};
use value::Value;

use crate::action_host::AppActionHost;
use crate::action_pool::{ActionError, ActionLimits, ActionPool};
use crate::executions::{ExecutedPath, Finished};
use crate::{App, now_ms};

/// How the app runs actions: how many at once, and what `fetch` may reach.
#[derive(Clone, Debug, Default)]
pub struct ActionOptions {
    pub limits: ActionLimits,
    /// Public addresses only unless set (`pulsebase dev` allows private ones).
    pub network: NetworkPolicy,
    pub fetch: FetchLimits,
}

/// The action pool and the outbound client, started by the first action.
pub(crate) struct ActionRuntime {
    pool: ActionPool,
    fetcher: Arc<Fetcher>,
}

/// The app's [`ActionRuntime`], once started (or the reason it could not start).
pub(crate) struct LazyActions {
    options: ActionOptions,
    runtime: OnceLock<Option<ActionRuntime>>,
}

impl LazyActions {
    pub(crate) fn new(options: ActionOptions) -> LazyActions {
        LazyActions {
            options,
            runtime: OnceLock::new(),
        }
    }

    fn get(&self) -> Result<&ActionRuntime, ActionError> {
        self.runtime
            .get_or_init(|| {
                let started = ActionPool::new(self.options.limits.clone()).and_then(|pool| {
                    let fetcher =
                        Fetcher::new(self.options.network.clone(), self.options.fetch.clone())?;
                    Ok(ActionRuntime {
                        pool,
                        fetcher: Arc::new(fetcher),
                    })
                });
                started
                    .map_err(|e| tracing::error!(error = %e, "the action threads could not start"))
                    .ok()
            })
            .as_ref()
            .ok_or(ActionError::Internal)
    }

    /// Actions running or waiting now.
    pub(crate) fn in_flight(&self) -> usize {
        self.runtime
            .get()
            .and_then(Option::as_ref)
            .map_or(0, |runtime| runtime.pool.in_flight())
    }

    pub(crate) fn options(&self) -> &ActionOptions {
        &self.options
    }
}

impl App {
    /// Runs the action at `path` as `caller` with `identity`, on the action pool. `Err` only
    /// when it could not run at all (too many in flight, an internal failure); the action's
    /// own failure is in the outcome.
    pub async fn run_action(
        self: &Arc<Self>,
        path: FunctionPath,
        args: Value,
        identity: Option<Identity>,
        caller: Caller,
    ) -> Result<ActionOutcome, ActionError> {
        let runtime = self.actions.get()?;
        let modules = self.modules();
        let host = self.action_host(runtime, &modules, identity.clone())?;
        // Recorded on the action's thread as it finishes; the duration includes the wait for
        // a thread, what the caller waited for.
        let started = (SystemTime::now(), Instant::now());
        let app = self.clone();
        runtime
            .pool
            .run(move || {
                let outcome =
                    modules.run_action(&path, caller, args, identity.clone(), host, now_ms());
                app.executions.record(Finished {
                    path: ExecutedPath::Function(&path),
                    kind: FunctionKind::Action.as_str(),
                    caller,
                    identity: identity.as_ref(),
                    started: started.0,
                    duration: started.1.elapsed(),
                    error: outcome.result.as_ref().err(),
                    log_lines: &outcome.log_lines,
                });
                outcome
            })
            .await
    }

    /// Runs `route` (found in `modules`, the version the caller looked it up in) for
    /// `request`, on the action pool, as `authorization` (from the request's bearer token; a
    /// refused token still runs the action, whose `getUserIdentity()` then throws).
    pub async fn run_http_action(
        self: &Arc<Self>,
        modules: Arc<Modules>,
        route: HttpRoute,
        request: HttpRequest,
        authorization: Authorization,
    ) -> Result<ActionExecution, ActionError> {
        let runtime = self.actions.get()?;
        let identity = authorization.identity().cloned();
        let host = self.action_host(runtime, &modules, identity.clone())?;
        let started = (SystemTime::now(), Instant::now());
        let app = self.clone();
        runtime
            .pool
            .run(move || {
                let execution =
                    modules.run_http_action(&route, request, authorization, host, now_ms());
                app.executions.record(Finished {
                    path: ExecutedPath::Route(&route.describe()),
                    kind: FunctionKind::HttpAction.as_str(),
                    // An HTTP action's request is a client's, whatever its token.
                    caller: Caller::Client,
                    identity: identity.as_ref(),
                    started: started.0,
                    duration: started.1.elapsed(),
                    error: execution.result.as_ref().err(),
                    log_lines: &execution.log_lines,
                });
                execution
            })
            .await
    }

    /// Actions running or waiting for a thread now.
    pub fn actions_in_flight(&self) -> usize {
        self.actions.in_flight()
    }

    /// What `fetch` may reach.
    pub fn network_policy(&self) -> &NetworkPolicy {
        &self.actions.options().network
    }

    fn action_host(
        self: &Arc<Self>,
        runtime: &ActionRuntime,
        modules: &Modules,
        identity: Option<Identity>,
    ) -> Result<Arc<AppActionHost>, ActionError> {
        let handle = runtime.pool.handle().ok_or(ActionError::Internal)?;
        Ok(Arc::new(AppActionHost::new(
            self.clone(),
            handle,
            runtime.fetcher.clone(),
            identity,
            modules.app_dir().map(PathBuf::from),
        )))
    }
}
