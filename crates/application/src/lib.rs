//! The running app: the [`Database`] plus the live version of the user's functions, and the
//! one way every transport (HTTP API, WebSocket sessions, admin calls, HTTP actions) runs a
//! query, a mutation or an action (`actions.rs`, on threads of their own, `action_pool.rs`),
//! and the scheduler that runs `_scheduled_functions` and cron jobs (`scheduler/`).
//!
//! Hot reload is a pointer swap: [`App::replace_modules`] installs a new [`Modules`] behind
//! an `Arc`; calls already running keep the version they started with.

mod action_host;
mod action_pool;
mod actions;
mod executions;
mod file_host;
mod files;
mod scheduler;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use auth::Identity;
use database::{Database, DbError, DedupKey, MutationOutcome};
use functions::{
    Call, Caller, ErrorKind, Execution, FunctionError, FunctionKind, FunctionPath, Modules, Ran,
};
use parking_lot::RwLock;
use value::Value;

pub use action_host::AppActionHost;
pub use action_pool::{ACTION_STACK_BYTES, ActionError, ActionLimits};
pub use actions::ActionOptions;
pub use executions::{
    ExecutedPath, ExecutionRecord, ExecutionStream, Executions, Finished, KINDS, StreamItem,
};
pub use file_host::AppFiles;
pub use files::{
    DEFAULT_MAX_UPLOAD_BYTES, FileError, FileStorage, STORAGE_TABLE, StoredFile, UPLOAD_URL_TTL_MS,
};
pub use scheduler::{CronRun, MAX_RUNNING_JOBS, RETENTION, SchedulerStart};

/// The outcome of a mutation call.
#[derive(Debug)]
pub struct MutationResult {
    pub result: Result<Value, FunctionError>,
    pub log_lines: Vec<String>,
    /// The commit timestamp, for successful mutations.
    pub ts: Option<u64>,
}

/// The outcome of a query call: the execution and the snapshot it ran at.
pub struct QueryResult {
    pub execution: Execution,
    pub ts: u64,
}

/// The running app.
pub struct App {
    db: Database,
    /// The live functions. Readers clone the `Arc` and release the lock at once.
    modules: RwLock<Arc<Modules>>,
    /// Bumped on every functions reload, so cached results can tell which code made them.
    modules_version: AtomicU64,
    /// The action threads and the outbound client, started by the first action.
    actions: actions::LazyActions,
    /// Stored files (`ctx.storage`, uploads), once enabled.
    files: OnceLock<Arc<FileStorage>>,
    /// Scheduled functions and cron jobs, once started (`scheduler/`).
    scheduler: OnceLock<Arc<scheduler::Scheduler>>,
    /// Every finished execution: metrics, the live log, structured log events.
    executions: Arc<Executions>,
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

impl App {
    /// An app with the default action options (fetch reaches public addresses only).
    pub fn new(db: Database, modules: Modules) -> Arc<App> {
        App::with_actions(db, modules, ActionOptions::default())
    }

    /// An app whose actions run under `options`.
    pub fn with_actions(db: Database, modules: Modules, options: ActionOptions) -> Arc<App> {
        Arc::new(App {
            db,
            modules: RwLock::new(Arc::new(modules)),
            modules_version: AtomicU64::new(0),
            executions: Arc::default(),
            actions: actions::LazyActions::new(options),
            files: OnceLock::new(),
            scheduler: OnceLock::new(),
        })
    }

    /// The execution log and function metrics.
    pub fn executions(&self) -> &Arc<Executions> {
        &self.executions
    }

    /// The app's file storage, when enabled.
    pub fn files(&self) -> Option<&Arc<FileStorage>> {
        self.files.get()
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    pub fn modules(&self) -> Arc<Modules> {
        self.modules.read().clone()
    }

    pub fn modules_version(&self) -> u64 {
        self.modules_version.load(Ordering::Acquire)
    }

    /// Installs a new version of the functions; calls in flight finish on the old one.
    pub fn replace_modules(self: &Arc<Self>, modules: Modules) {
        self.attach_files_to(&modules);
        *self.modules.write() = Arc::new(modules);
        self.modules_version.fetch_add(1, Ordering::AcqRel);
        if let Some(scheduler) = self.scheduler.get() {
            scheduler.poke();
        }
    }

    /// Runs a query at the latest snapshot on this thread (blocking: Rhai and SQLite).
    pub fn run_query_blocking(
        &self,
        path: &FunctionPath,
        args: Value,
        identity: Option<&Identity>,
        caller: Caller,
    ) -> Result<QueryResult, DbError> {
        let started = (SystemTime::now(), Instant::now());
        let txn = self.db.snapshot()?;
        let ts = database::Transaction::ts(&txn);
        let modules = self.modules();
        let Ran { execution, .. } = modules.run(
            Call {
                path: path.clone(),
                kind: FunctionKind::Query,
                caller,
                args,
                identity: identity.cloned(),
                now_ms: now_ms(),
            },
            Box::new(txn),
        );
        self.executions.record(Finished {
            path: ExecutedPath::Function(path),
            kind: FunctionKind::Query.as_str(),
            caller,
            identity,
            started: started.0,
            duration: started.1.elapsed(),
            error: execution.result.as_ref().err(),
            log_lines: &execution.log_lines,
        });
        Ok(QueryResult { execution, ts })
    }

    /// Runs a query on the blocking pool.
    pub async fn run_query(
        self: &Arc<Self>,
        path: FunctionPath,
        args: Value,
        identity: Option<Identity>,
        caller: Caller,
    ) -> Result<QueryResult, DbError> {
        let app = self.clone();
        tokio::task::spawn_blocking(move || {
            app.run_query_blocking(&path, args, identity.as_ref(), caller)
        })
        .await
        .map_err(|e| DbError::internal(format!("query task failed: {e}")))?
    }

    /// Runs a mutation on the Committer. With `dedup`, a request already applied returns its
    /// stored result instead of running again.
    pub async fn run_mutation(
        &self,
        path: FunctionPath,
        args: Value,
        identity: Option<Identity>,
        caller: Caller,
        dedup: Option<DedupKey>,
    ) -> Result<MutationResult, DbError> {
        let started = (SystemTime::now(), Instant::now());
        let record_as = (path.clone(), identity.clone());
        let modules = self.modules();
        let run: database::MutationFn = Box::new(move |txn| {
            let Ran { execution, .. } = modules.run(
                Call {
                    path: path.clone(),
                    kind: FunctionKind::Mutation,
                    caller,
                    args,
                    identity,
                    now_ms: now_ms(),
                },
                Box::new(txn),
            );
            encode_outcome(execution)
        });
        let outcome = self.db.mutate(dedup, run).await?;
        let result = decode_outcome(outcome);
        // The duration includes the wait for the Committer: what the caller waited for.
        self.executions.record(Finished {
            path: ExecutedPath::Function(&record_as.0),
            kind: FunctionKind::Mutation.as_str(),
            caller,
            identity: record_as.1.as_ref(),
            started: started.0,
            duration: started.1.elapsed(),
            error: result.result.as_ref().err(),
            log_lines: &result.log_lines,
        });
        Ok(result)
    }
}

/// The stored form of a mutation outcome (also what de-duplication replays).
fn encode_outcome(execution: Execution) -> Result<String, String> {
    match execution.result {
        Ok(value) => Ok(format!(
            "{{\"value\":{},\"logLines\":{}}}",
            value.to_json_string(),
            serde_json::to_string(&execution.log_lines).unwrap_or_else(|_| "[]".to_string())
        )),
        Err(error) => Err(serde_json::json!({
            "message": error.message,
            "data": error.data.map(|d| d.to_json()),
            "kind": kind_name(error.kind),
            "logLines": execution.log_lines,
        })
        .to_string()),
    }
}

fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "NotFound",
        // The stored name predates the variant's rename; records already written keep it.
        ErrorKind::InternalFunction => "Internal",
        ErrorKind::BadArgs => "BadArgs",
        ErrorKind::Uncaught => "Uncaught",
        ErrorKind::Limit => "Limit",
        ErrorKind::Server => "Server",
    }
}

fn kind_from_name(name: &str) -> ErrorKind {
    match name {
        "NotFound" => ErrorKind::NotFound,
        "Internal" => ErrorKind::InternalFunction,
        "BadArgs" => ErrorKind::BadArgs,
        "Limit" => ErrorKind::Limit,
        "Server" => ErrorKind::Server,
        _ => ErrorKind::Uncaught,
    }
}

fn log_lines(json: &serde_json::Value) -> Vec<String> {
    json["logLines"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn decode_outcome(outcome: MutationOutcome) -> MutationResult {
    let corrupt = |why: String| {
        tracing::error!(%why, "a mutation's stored outcome cannot be read");
        MutationResult {
            result: Err(FunctionError::new(
                ErrorKind::Server,
                format!("internal error: {why}"),
            )),
            log_lines: Vec::new(),
            ts: None,
        }
    };
    match outcome {
        MutationOutcome::Committed { ts, response }
        | MutationOutcome::Replayed { ts, response } => {
            let json: serde_json::Value = match serde_json::from_str(&response) {
                Ok(json) => json,
                Err(e) => return corrupt(e.to_string()),
            };
            match Value::from_json(&json["value"]) {
                Ok(value) => MutationResult {
                    result: Ok(value),
                    log_lines: log_lines(&json),
                    ts: Some(ts),
                },
                Err(e) => corrupt(e.to_string()),
            }
        }
        MutationOutcome::Failed { response } => {
            let json: serde_json::Value = serde_json::from_str(&response).unwrap_or_default();
            let message = json["message"]
                .as_str()
                .unwrap_or("internal error: the mutation failed without a message")
                .to_string();
            let data = match &json["data"] {
                serde_json::Value::Null => None,
                data => Value::from_json(data).ok(),
            };
            MutationResult {
                result: Err(FunctionError {
                    kind: kind_from_name(json["kind"].as_str().unwrap_or_default()),
                    message,
                    data,
                }),
                log_lines: log_lines(&json),
                ts: None,
            }
        }
    }
}
