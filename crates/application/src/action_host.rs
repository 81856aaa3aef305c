//! HTTP actions on the app: [`App::run_http_action`] runs a route's handler on a blocking
//! thread, and [`AppActionHost`] is what its `ctx.runQuery` / `ctx.runMutation` / `env()`
//! reach.
//!
//! The one thing to know: an action is not a transaction. Each `ctx.runMutation` is a mutation
//! of its own, queued on the Committer like a client's and awaited from the action's blocking
//! thread through the runtime [`Handle`]; each `ctx.runQuery` reads the latest snapshot. Both
//! run with the request's identity and may call internal functions.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use database::DbError;
use functions::{
    ActionExecution, ActionHost, Caller, ErrorKind, FunctionError, FunctionKind, FunctionPath,
    HttpRequest, HttpRoute, Modules, NestedCall, RequestIdentity,
};
use tokio::runtime::Handle;
use value::Value;

use crate::executions::{ExecutedPath, Finished};
use crate::{App, Identity, now_ms};

/// Who sent an HTTP action's request.
#[derive(Debug, Clone)]
pub enum ActionCaller {
    Anonymous,
    User(Identity),
    /// The bearer token was refused; the action still runs and `getUserIdentity()` throws
    /// this message (Convex's behaviour).
    InvalidToken(String),
}

/// The application side of an action's nested calls.
pub struct AppActionHost {
    app: Arc<App>,
    handle: Handle,
    identity: Option<Identity>,
    /// Where `.env.local` / `.env` are; `None` reads the process environment only.
    app_dir: Option<PathBuf>,
}

impl AppActionHost {
    fn internal_error(error: DbError) -> NestedCall {
        tracing::error!(error = %error, "a call from an HTTP action failed inside the database");
        NestedCall {
            result: Err(FunctionError::new(
                ErrorKind::Uncaught,
                "internal error in the database; see the server log",
            )),
            log_lines: Vec::new(),
        }
    }
}

impl ActionHost for AppActionHost {
    fn run_query(&self, path: &FunctionPath, args: Value) -> NestedCall {
        match self
            .app
            .run_query_blocking(path, args, self.identity.as_ref(), Caller::Trusted)
        {
            Ok(done) => NestedCall {
                result: done.execution.result,
                log_lines: done.execution.log_lines,
            },
            Err(e) => Self::internal_error(e),
        }
    }

    fn run_mutation(&self, path: &FunctionPath, args: Value) -> NestedCall {
        let outcome = self.handle.block_on(self.app.run_mutation(
            path.clone(),
            args,
            self.identity.clone(),
            Caller::Trusted,
            None,
        ));
        match outcome {
            Ok(done) => NestedCall {
                result: done.result,
                log_lines: done.log_lines,
            },
            Err(e) => Self::internal_error(e),
        }
    }

    fn env_var(&self, name: &str) -> Result<Option<String>, String> {
        match &self.app_dir {
            // Read on every call: the files are tiny, and an edit applies without a reload.
            Some(dir) => authenticator::EnvFiles::load(dir)
                .map(|files| files.lookup(name))
                .map_err(|e| e.to_string()),
            None => Ok(std::env::var(name).ok()),
        }
    }
}

impl App {
    /// Runs `route` (found in `modules`, the version the caller looked it up in) for
    /// `request` on the blocking pool.
    pub async fn run_http_action(
        self: &Arc<Self>,
        modules: Arc<Modules>,
        route: HttpRoute,
        request: HttpRequest,
        caller: ActionCaller,
    ) -> Result<ActionExecution, DbError> {
        let (identity, request_identity) = match caller {
            ActionCaller::Anonymous => (None, RequestIdentity::Anonymous),
            ActionCaller::User(identity) => {
                let value = identity.value().clone();
                (Some(identity), RequestIdentity::User(value))
            }
            ActionCaller::InvalidToken(message) => (None, RequestIdentity::Invalid(message)),
        };
        let host = Arc::new(AppActionHost {
            app: self.clone(),
            handle: Handle::current(),
            identity,
            app_dir: modules.app_dir().map(PathBuf::from),
        });
        let started = (SystemTime::now(), Instant::now());
        let app = self.clone();
        tokio::task::spawn_blocking(move || {
            let identity = host.identity.clone();
            let execution =
                modules.run_http_action(&route, request, request_identity, host, now_ms());
            app.executions().record(Finished {
                path: ExecutedPath::Route(&route.describe()),
                kind: FunctionKind::HttpAction.as_str(),
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
        .map_err(|e| DbError::internal(format!("HTTP action task failed: {e}")))
    }
}
