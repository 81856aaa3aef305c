//! Running a due job's transactions: a scheduled mutation runs and its job becomes `success`
//! in one transaction (so it runs exactly once: either both commit or neither does); a
//! failed one rolls back and [`fail_job`] records the failure in a commit of its own. An
//! action's job becomes `inProgress` in a commit before the action starts ([`start_action_job`])
//! and `success`/`failed` after it ([`finish_action_job`]), so it runs at most once.
//!
//! Each function checks the job is still in the state it expects, so a job canceled (or run)
//! between being read and being handled is left alone.

use database::{MutationTxn, Transaction};
use value::Value;

use crate::definition::{Caller, FunctionKind};
use crate::modules::Modules;
use crate::runner::{Call, Ran};
use crate::scheduled::jobs::{JobState, read_job, set_state};

/// The `Ok` of a job's transaction when it found the job no longer waiting for it.
pub const SKIPPED: &str = "skipped";
/// The `Ok` of a job's transaction that did its work.
pub const DONE: &str = "done";

/// The body of the transaction that runs scheduled mutation `id` at `now_ms` (the job's
/// scheduled time in tests). `Err` is the function's error: the caller rolls back and then
/// commits [`fail_job`].
pub fn run_mutation_job(
    modules: &Modules,
    txn: MutationTxn,
    id: &str,
    now_ms: f64,
) -> Result<String, String> {
    let mut txn: Box<dyn Transaction + Send> = Box::new(txn);
    let job = match read_job(txn.as_mut(), id) {
        Ok(Some(job)) if job.state == JobState::Pending => job,
        Ok(_) => return Ok(SKIPPED.to_string()),
        Err(e) => return Err(e),
    };
    let Ran { execution, txn } = modules.run(
        Call {
            path: job.path.clone(),
            kind: FunctionKind::Mutation,
            caller: Caller::Trusted,
            args: job.args,
            identity: None,
            now_ms,
        },
        txn,
    );
    for line in &execution.log_lines {
        tracing::info!(function = %job.path, "{line}");
    }
    match execution.result {
        Ok(_) => {
            let Some(mut txn) = txn else {
                return Err("internal error: the transaction was lost".to_string());
            };
            set_state(txn.as_mut(), id, JobState::Success, None, now_ms)?;
            Ok(DONE.to_string())
        }
        Err(error) => Err(error.message),
    }
}

/// Records that job `id` failed with `error`, if nothing else finished it meanwhile.
pub fn fail_job(
    txn: &mut dyn Transaction,
    id: &str,
    error: &str,
    now_ms: f64,
) -> Result<String, String> {
    match read_job(txn, id)? {
        Some(job) if !job.state.is_final() => {
            set_state(txn, id, JobState::Failed, Some(error), now_ms)?;
            Ok(DONE.to_string())
        }
        _ => Ok(SKIPPED.to_string()),
    }
}

/// Moves pending action job `id` to `inProgress`; [`SKIPPED`] when it is no longer pending
/// (canceled meanwhile), and then the action must not start.
pub fn start_action_job(
    txn: &mut dyn Transaction,
    id: &str,
    now_ms: f64,
) -> Result<String, String> {
    match read_job(txn, id)? {
        Some(job) if job.state == JobState::Pending => {
            set_state(txn, id, JobState::InProgress, None, now_ms)?;
            Ok(DONE.to_string())
        }
        _ => Ok(SKIPPED.to_string()),
    }
}

/// Records the outcome of action job `id`.
pub fn finish_action_job(
    txn: &mut dyn Transaction,
    id: &str,
    outcome: &Result<Value, String>,
    now_ms: f64,
) -> Result<String, String> {
    match outcome {
        Ok(_) => match read_job(txn, id)? {
            Some(job) if job.state == JobState::InProgress => {
                set_state(txn, id, JobState::Success, None, now_ms)?;
                Ok(DONE.to_string())
            }
            _ => Ok(SKIPPED.to_string()),
        },
        Err(error) => fail_job(txn, id, error, now_ms),
    }
}
