//! The rows of `_scheduled_functions` and every read and write of them: a job is inserted by
//! `ctx.scheduler.runAfter/runAt` (or a cron run) in the scheduling transaction, read through
//! the `by_state` index (`state.kind`, then `scheduledTime`), and moved from `pending` to a
//! final state by the transaction that runs it (mutations) or by small commits of their own
//! (actions: `inProgress` before they start, then `success`/`failed`).
//!
//! The document has Convex's shape: `name` (the function path), `args` (a one-element array
//! holding the arguments), `scheduledTime` and `completedTime` in ms since the epoch, and
//! `state: { kind, error? }`; `cron` names the cron job that made a run.

use std::collections::HashSet;

use database::{Document, Order, ScanCursor, Transaction};
use value::{IndexKey, KeyRange, Object, Value};

use crate::definition::{Caller, FunctionKind};
use crate::module_set::ModuleSet;
use crate::path::FunctionPath;
use crate::validation::check_args;

/// The system table of scheduled jobs.
pub const SCHEDULED_TABLE: &str = "_scheduled_functions";
/// Its index by `state.kind`, then `scheduledTime`.
pub const BY_STATE: &str = "by_state";
/// The error recorded for an action that was running when the server stopped.
pub const STOPPED_WHILE_RUNNING: &str = "the server stopped while this action ran; it was not re-run (scheduled actions run at most once)";

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobState {
    Pending,
    InProgress,
    Success,
    Failed,
    Canceled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::InProgress => "inProgress",
            JobState::Success => "success",
            JobState::Failed => "failed",
            JobState::Canceled => "canceled",
        }
    }

    fn parse(text: &str) -> Option<JobState> {
        Some(match text {
            "pending" => JobState::Pending,
            "inProgress" => JobState::InProgress,
            "success" => JobState::Success,
            "failed" => JobState::Failed,
            "canceled" => JobState::Canceled,
            _ => return None,
        })
    }

    /// Whether the job is done (nothing will change it any more).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Success | JobState::Failed | JobState::Canceled
        )
    }
}

/// One row of `_scheduled_functions`, read back.
#[derive(Clone, Debug)]
pub struct ScheduledJob {
    pub id: String,
    pub path: FunctionPath,
    /// The arguments (the one element of the stored `args` array).
    pub args: Value,
    pub scheduled_time: f64,
    pub state: JobState,
    pub cron: Option<String>,
}

impl ScheduledJob {
    /// Reads a stored row; `None` for a row this server cannot have written.
    pub fn from_document(doc: &Document) -> Option<ScheduledJob> {
        let fields = &doc.fields;
        let name = fields.get("name")?.as_str()?;
        let args = match fields.get("args")? {
            Value::Array(items) => items
                .first()
                .cloned()
                .unwrap_or(Value::Object(Object::new())),
            _ => return None,
        };
        let scheduled_time = number(fields.get("scheduledTime")?)?;
        let state = fields
            .get("state")?
            .as_object()?
            .get("kind")?
            .as_str()
            .and_then(JobState::parse)?;
        Some(ScheduledJob {
            id: doc.id.to_string(),
            path: FunctionPath::parse(name),
            args,
            scheduled_time,
            state,
            cron: fields
                .get("cron")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Float64(f) => Some(*f),
        Value::Int64(i) => Some(*i as f64),
        _ => None,
    }
}

fn state_value(state: JobState, error: Option<&str>) -> Value {
    let mut object = Object::new();
    object.insert("kind".into(), Value::String(state.as_str().into()));
    if let Some(error) = error {
        object.insert("error".into(), Value::String(error.into()));
    }
    Value::Object(object)
}

/// Checks what a job would run: a mutation or action at `path` (internal ones included: a
/// scheduled call is trusted, as in Convex) that takes `args`. Gives the function's kind and
/// the checked arguments, or the message the scheduling call fails with.
pub(crate) fn check_target(
    set: &ModuleSet,
    path: &FunctionPath,
    args: Value,
    ids: &dyn schema::IdTables,
) -> Result<(FunctionKind, Value), String> {
    let Some((_, def)) = set.get(path) else {
        // The resolver's message names the module and what it exports.
        let message = set
            .resolve(path, FunctionKind::Mutation, Caller::Trusted)
            .err()
            .map_or_else(|| format!("there is no function {path}"), |e| e.message);
        return Err(message);
    };
    if !matches!(def.kind, FunctionKind::Mutation | FunctionKind::Action) {
        return Err(format!(
            "{path} is {}; only mutations and actions can be scheduled",
            def.kind.with_article()
        ));
    }
    let args = check_args(def, &path.to_string(), args, ids).map_err(|e| e.message)?;
    Ok((def.kind, args))
}

/// Inserts a pending job in `txn` (checked first with [`check_target`]); gives its id.
pub(crate) fn insert_job(
    txn: &mut dyn Transaction,
    set: &ModuleSet,
    path: &FunctionPath,
    args: Value,
    time_ms: f64,
    cron: Option<&str>,
) -> Result<String, String> {
    if !time_ms.is_finite() {
        return Err(format!(
            "the scheduled time must be a finite number of ms, not {time_ms}"
        ));
    }
    let (_, args) = check_target(set, path, args, txn.catalog())?;
    let mut fields = Object::new();
    fields.insert("name".into(), Value::String(path.to_string()));
    fields.insert("args".into(), Value::Array(vec![args]));
    fields.insert("scheduledTime".into(), Value::Float64(time_ms));
    fields.insert("state".into(), state_value(JobState::Pending, None));
    if let Some(cron) = cron {
        fields.insert("cron".into(), Value::String(cron.into()));
    }
    txn.system_insert(SCHEDULED_TABLE, fields)
        .map(|id| id.to_string())
        .map_err(|e| e.to_string())
}

/// Reads the job `id` in `txn`; `Err` when `id` is not an id of `_scheduled_functions`.
pub fn read_job(txn: &mut dyn Transaction, id: &str) -> Result<Option<ScheduledJob>, String> {
    let table = txn
        .catalog()
        .resolve_id(id)
        .map(|(_, t)| t.name.clone())
        .map_err(|e| e.to_string())?;
    if table != SCHEDULED_TABLE {
        return Err(format!(
            "{id:?} is an id of {table}, not of a scheduled function (_scheduled_functions)"
        ));
    }
    let doc = txn.get(id).map_err(|e| e.to_string())?;
    Ok(doc.as_ref().and_then(ScheduledJob::from_document))
}

/// Moves job `id` to `state` (with `error` for `failed`), setting `completedTime` for final
/// states.
pub fn set_state(
    txn: &mut dyn Transaction,
    id: &str,
    state: JobState,
    error: Option<&str>,
    now_ms: f64,
) -> Result<(), String> {
    let mut fields = Object::new();
    fields.insert("state".into(), state_value(state, error));
    if state.is_final() {
        fields.insert("completedTime".into(), Value::Float64(now_ms));
    }
    txn.system_patch(id, fields).map_err(|e| e.to_string())
}

/// `ctx.scheduler.cancel(id)`: a pending job becomes `canceled` and never runs. A job that
/// is running (an action) goes on, and a finished one keeps its state, as in Convex.
pub(crate) fn cancel_job(txn: &mut dyn Transaction, id: &str, now_ms: f64) -> Result<(), String> {
    match read_job(txn, id)? {
        Some(job) if job.state == JobState::Pending => {
            set_state(txn, id, JobState::Canceled, None, now_ms)
        }
        Some(_) => Ok(()),
        None => Err(format!("there is no scheduled function with id {id:?}")),
    }
}

/// The jobs in `state` in order of `scheduledTime`, at most `limit`, skipping `skip`, and
/// stopping before the first one later than `until`. Also gives the `scheduledTime` of that
/// first later job (the next due time), so the caller reads exactly up to it: the read set
/// covers the jobs due by then and the next one, so an earlier job committed later wakes it.
pub fn jobs_in_state(
    txn: &mut dyn Transaction,
    state: JobState,
    until: f64,
    limit: usize,
    skip: &HashSet<String>,
) -> Result<(Vec<ScheduledJob>, Option<f64>), String> {
    let index = txn
        .catalog()
        .index(SCHEDULED_TABLE, BY_STATE)
        .map_err(|e| e.to_string())?
        .clone();
    let state_key = Value::String(state.as_str().into());
    let range = KeyRange::prefix(IndexKey::prefix(&[Some(&state_key)]));
    let mut cursor = ScanCursor::new(&index, range, Order::Asc);
    let mut due = Vec::new();
    let mut next = None;
    while let Some(doc) = txn.scan_next(&mut cursor).map_err(|e| e.to_string())? {
        let Some(job) = ScheduledJob::from_document(&doc) else {
            continue;
        };
        if job.state != state {
            // The index disagrees with the document: never run (or loop on) such a job.
            tracing::warn!(job = %job.id, "a _scheduled_functions index entry is stale; skipped");
            continue;
        }
        if skip.contains(&job.id) {
            continue;
        }
        if job.scheduled_time > until || due.len() >= limit {
            next = Some(job.scheduled_time);
            break;
        }
        due.push(job);
    }
    txn.finish_scan(cursor).map_err(|e| e.to_string())?;
    Ok((due, next))
}

/// Marks every job left `inProgress` (actions running when the server stopped) `failed`
/// with [`STOPPED_WHILE_RUNNING`]; gives how many.
pub fn fail_interrupted(txn: &mut dyn Transaction, now_ms: f64) -> Result<usize, String> {
    let (jobs, _) = jobs_in_state(
        txn,
        JobState::InProgress,
        f64::INFINITY,
        10_000,
        &HashSet::new(),
    )?;
    for job in &jobs {
        set_state(
            txn,
            &job.id,
            JobState::Failed,
            Some(STOPPED_WHILE_RUNNING),
            now_ms,
        )?;
    }
    Ok(jobs.len())
}

/// Deletes up to `limit` finished jobs that completed before `cutoff_ms`; gives how many.
pub fn delete_finished_before(
    txn: &mut dyn Transaction,
    cutoff_ms: f64,
    limit: usize,
) -> Result<usize, String> {
    let mut deleted = 0;
    for state in [JobState::Success, JobState::Failed, JobState::Canceled] {
        // completedTime >= scheduledTime, so the candidates are scheduled before the cutoff.
        let (jobs, _) = jobs_in_state(txn, state, cutoff_ms, limit - deleted, &HashSet::new())?;
        for job in jobs {
            let doc = txn.get(&job.id).map_err(|e| e.to_string())?;
            let completed = doc
                .as_ref()
                .and_then(|d| d.fields.get("completedTime"))
                .and_then(number)
                .unwrap_or(job.scheduled_time);
            if completed < cutoff_ms {
                txn.system_delete(&job.id).map_err(|e| e.to_string())?;
                deleted += 1;
            }
        }
        if deleted >= limit {
            break;
        }
    }
    Ok(deleted)
}

/// Schedules `path` with `args` at `time_ms` in `txn` (a job of `cron` when given): what
/// `ctx.scheduler` does in a mutation, for callers outside a script (an action's host, the
/// cron runner). The path and arguments are checked against `modules`.
pub fn schedule(
    txn: &mut dyn Transaction,
    modules: &crate::Modules,
    path: &FunctionPath,
    args: Value,
    time_ms: f64,
    cron: Option<&str>,
) -> Result<String, String> {
    insert_job(txn, modules.module_set(), path, args, time_ms, cron)
}

/// Cancels job `id` in `txn` (see [`cancel_job`]).
pub fn cancel(txn: &mut dyn Transaction, id: &str, now_ms: f64) -> Result<(), String> {
    cancel_job(txn, id, now_ms)
}
