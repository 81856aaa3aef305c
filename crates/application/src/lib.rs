//! The running app: the [`Database`] plus the live version of the user's functions, and the
//! one way every transport (HTTP API, WebSocket sessions, admin calls, HTTP actions) runs a
//! query or a mutation.
//!
//! Hot reload is a pointer swap: [`App::replace_modules`] installs a new [`Modules`] behind
//! an `Arc`; calls already running keep the version they started with.

mod action_host;
mod executions;
mod identity;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use database::{Database, DbError, DedupKey, MutationOutcome};
use functions::{Caller, ErrorKind, Execution, FunctionError, FunctionKind, FunctionPath, Modules};
use parking_lot::RwLock;
use value::Value;

pub use action_host::{ActionCaller, AppActionHost};
pub use executions::{
    ExecutedPath, ExecutionRecord, ExecutionStream, Executions, Finished, KINDS, StreamItem,
};
pub use identity::Identity;

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
    /// Every finished execution: metrics, the live log, structured log events.
    executions: Arc<Executions>,
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

impl App {
    pub fn new(db: Database, modules: Modules) -> Arc<App> {
        Arc::new(App {
            db,
            modules: RwLock::new(Arc::new(modules)),
            modules_version: AtomicU64::new(0),
            executions: Arc::default(),
        })
    }

    /// The execution log and function metrics.
    pub fn executions(&self) -> &Arc<Executions> {
        &self.executions
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
    pub fn replace_modules(&self, modules: Modules) {
        *self.modules.write() = Arc::new(modules);
        self.modules_version.fetch_add(1, Ordering::AcqRel);
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
        let (execution, _) = modules.run(
            path,
            FunctionKind::Query,
            caller,
            args,
            identity.map(|i| i.value().clone()),
            Box::new(txn),
            now_ms(),
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
            let (execution, _) = modules.run(
                &path,
                FunctionKind::Mutation,
                caller,
                args,
                identity.map(|i| i.value().clone()),
                Box::new(txn),
                now_ms(),
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
        ErrorKind::Internal => "Internal",
        ErrorKind::BadArgs => "BadArgs",
        ErrorKind::Uncaught => "Uncaught",
        ErrorKind::Limit => "Limit",
    }
}

fn kind_from_name(name: &str) -> ErrorKind {
    match name {
        "NotFound" => ErrorKind::NotFound,
        "Internal" => ErrorKind::Internal,
        "BadArgs" => ErrorKind::BadArgs,
        "Limit" => ErrorKind::Limit,
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
    let corrupt = |why: String| MutationResult {
        result: Err(FunctionError::new(
            ErrorKind::Uncaught,
            format!("internal error: {why}"),
        )),
        log_lines: Vec::new(),
        ts: None,
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
