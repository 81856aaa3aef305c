//! [`AppActionHost`]: what an action's (or HTTP action's) `ctx.runQuery` / `ctx.runMutation`,
//! `env()` and `fetch()` reach.
//!
//! The one thing to know: an action is not a transaction. Each `ctx.runMutation` is a mutation
//! of its own, queued on the Committer like a client's and awaited from the action's thread
//! through the action pool's runtime [`Handle`]; each `ctx.runQuery` reads the latest snapshot
//! on the action's thread. Both run with the caller's identity and may call internal
//! functions. `fetch` goes through the app's [`fetch::Fetcher`], its address policy and
//! limits, blocking the action's thread (never a thread that serves clients).

use std::path::PathBuf;
use std::sync::Arc;

use auth::Identity;
use database::DbError;
use functions::{
    ActionHost, Caller, ErrorKind, FetchRequest, FetchResponse, FunctionError, FunctionPath,
    NestedCall,
};
use tokio::runtime::Handle;
use value::Value;

use crate::App;

/// The application side of an action's nested calls, environment and network.
pub struct AppActionHost {
    app: Arc<App>,
    /// The action pool's runtime, to wait for a mutation's commit.
    handle: Handle,
    fetcher: Arc<fetch::Fetcher>,
    identity: Option<Identity>,
    /// Where `.env.local` / `.env` are; `None` reads the process environment only.
    app_dir: Option<PathBuf>,
}

impl AppActionHost {
    pub(crate) fn new(
        app: Arc<App>,
        handle: Handle,
        fetcher: Arc<fetch::Fetcher>,
        identity: Option<Identity>,
        app_dir: Option<PathBuf>,
    ) -> AppActionHost {
        AppActionHost {
            app,
            handle,
            fetcher,
            identity,
            app_dir,
        }
    }

    fn internal_error(error: DbError) -> NestedCall {
        tracing::error!(error = %error, "a call from an action failed inside the database");
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

    fn fetch(&self, request: FetchRequest) -> Result<FetchResponse, String> {
        let limits = self.fetcher.limits();
        let mut timeout = request
            .timeout
            .unwrap_or(limits.default_timeout)
            .min(limits.max_timeout);
        if let Some(left) = request.time_left {
            timeout = timeout.min(left);
        }
        let outbound = fetch::Request {
            url: request.url,
            method: request.method,
            headers: request.headers,
            body: request.body,
            timeout: Some(timeout),
        };
        match self.fetcher.fetch_blocking(outbound) {
            Ok(response) => Ok(FetchResponse {
                status: response.status,
                status_text: response.status_text,
                url: response.url,
                headers: response.headers,
                body: response.body,
            }),
            Err(error) => {
                tracing::debug!(error = %error, "fetch failed");
                Err(error.to_string())
            }
        }
    }

    fn id_tables(&self) -> Arc<dyn schema::IdTables + Send + Sync> {
        self.app.db().catalog()
    }
}
