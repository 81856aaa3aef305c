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

use auth::{Authorization, Identity};
use database::DbError;
use functions::{
    ActionExecution, ActionHost, Caller, ErrorKind, FunctionError, FunctionPath, HttpRequest,
    HttpRoute, Modules, NestedCall,
};
use tokio::runtime::Handle;
use value::Value;

use crate::{App, now_ms};

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
                ErrorKind::Server,
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
    /// `request` on the blocking pool, as `authorization` (from the request's bearer token; a
    /// refused token still runs the action, whose `getUserIdentity()` then throws).
    pub async fn run_http_action(
        self: &Arc<Self>,
        modules: Arc<Modules>,
        route: HttpRoute,
        request: HttpRequest,
        authorization: Authorization,
    ) -> Result<ActionExecution, DbError> {
        let host = Arc::new(AppActionHost {
            app: self.clone(),
            handle: Handle::current(),
            identity: authorization.identity().cloned(),
            app_dir: modules.app_dir().map(PathBuf::from),
        });
        tokio::task::spawn_blocking(move || {
            modules.run_http_action(&route, request, authorization, host, now_ms())
        })
        .await
        .map_err(|e| DbError::internal(format!("HTTP action task failed: {e}")))
    }
}
