//! Running one due job, on a task of its own, holding one of the scheduler's slots.
//!
//! - A mutation: one commit runs it and marks its job `success` (`run_mutation_job`), so it
//!   runs exactly once; when it fails, that commit rolls back and a second one marks the job
//!   `failed` with the error. If the server stops between the two, the job is still
//!   `pending` with nothing of it committed, and runs again at start.
//! - An action: a commit marks it `inProgress` first (`start_action_job`; a job canceled
//!   meanwhile stops here), then it runs on the action pool as a trusted caller without an
//!   identity, then a commit records `success` or `failed` (`finish_action_job`). An action
//!   the pool refused (too many in flight) has not started: its job goes back to `pending`,
//!   a little later.
//! - A job whose function no longer exists (or is no longer a mutation or action) fails
//!   with that reason.

use std::sync::Arc;

use database::{DbError, MutationFn, MutationOutcome};
use functions::scheduled::jobs::{JobState, ScheduledJob, set_state};
use functions::scheduled::run::{
    DONE, fail_job, finish_action_job, run_mutation_job, start_action_job,
};
use functions::{Caller, FunctionKind};
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::oneshot::Receiver;
use value::{Object, Value};

use crate::scheduler::{RETRY_DELAY, Scheduler};
use crate::{App, now_ms};

/// Whether the job reached the database (else it is tried again after a pause).
enum Handled {
    Yes,
    Retry,
}

async fn commit(app: &App, run: MutationFn) -> Result<MutationOutcome, DbError> {
    app.db().mutate(None, run).await
}

/// A mutation job's transaction, queued on the Committer by the caller (so jobs due together
/// commit in the order they were read), or `None` to let [`run_job`] look at the job.
pub(crate) type Queued = Option<Receiver<Result<MutationOutcome, DbError>>>;

/// Queues mutation job `job` on the Committer now, if its function is a mutation.
pub(crate) fn queue_if_mutation(app: &App, job: &ScheduledJob) -> Queued {
    let modules = app.modules();
    if !matches!(modules.get(&job.path), Some((_, def)) if def.kind == FunctionKind::Mutation) {
        return None;
    }
    let id = job.id.clone();
    app.db()
        .queue_mutation(
            None,
            Box::new(move |txn| run_mutation_job(&modules, txn, &id, now_ms())),
        )
        .ok()
}

/// Runs `job` (or waits for its `queued` transaction), then frees its slot and wakes the
/// scheduler.
pub(crate) async fn run_job(
    app: Arc<App>,
    scheduler: Arc<Scheduler>,
    job: ScheduledJob,
    permit: OwnedSemaphorePermit,
    queued: Queued,
) {
    let result = match queued {
        Some(outcome) => match outcome.await {
            Ok(outcome) => match outcome {
                Ok(outcome) => mutation_done(&app, &job, outcome).await,
                Err(e) => Err(e),
            },
            Err(_) => Err(DbError::CommitterStopped),
        },
        None => run(&app, &job).await,
    };
    let handled = match result {
        Ok(handled) => handled,
        Err(e) => {
            tracing::warn!(job = %job.id, function = %job.path, error = %e, "a scheduled function could not be handed to the database; retrying");
            Handled::Retry
        }
    };
    if matches!(handled, Handled::Retry) {
        tokio::time::sleep(RETRY_DELAY).await;
    }
    scheduler.running.lock().remove(&job.id);
    drop(permit);
    scheduler.poke();
}

async fn run(app: &Arc<App>, job: &ScheduledJob) -> Result<Handled, DbError> {
    let modules = app.modules();
    let kind = modules.get(&job.path).map(|(_, def)| def.kind);
    match kind {
        Some(FunctionKind::Mutation) => run_mutation(app, job).await,
        Some(FunctionKind::Action) => run_action(app, job).await,
        _ => {
            let error = format!(
                "{} is no longer a mutation or action of the app's functions",
                job.path
            );
            record_failure(app, &job.id, error).await
        }
    }
}

async fn record_failure(app: &App, id: &str, error: String) -> Result<Handled, DbError> {
    let id = id.to_string();
    commit(
        app,
        Box::new(move |mut txn| fail_job(&mut txn, &id, &error, now_ms())),
    )
    .await?;
    Ok(Handled::Yes)
}

async fn run_mutation(app: &Arc<App>, job: &ScheduledJob) -> Result<Handled, DbError> {
    let modules = app.modules();
    let id = job.id.clone();
    let outcome = commit(
        app,
        Box::new(move |txn| run_mutation_job(&modules, txn, &id, now_ms())),
    )
    .await?;
    mutation_done(app, job, outcome).await
}

async fn mutation_done(
    app: &App,
    job: &ScheduledJob,
    outcome: MutationOutcome,
) -> Result<Handled, DbError> {
    match outcome {
        MutationOutcome::Failed { response } => {
            tracing::info!(job = %job.id, function = %job.path, error = %response, "a scheduled mutation failed");
            record_failure(app, &job.id, response).await
        }
        _ => Ok(Handled::Yes),
    }
}

async fn run_action(app: &Arc<App>, job: &ScheduledJob) -> Result<Handled, DbError> {
    let id = job.id.clone();
    let started = commit(
        app,
        Box::new(move |mut txn| start_action_job(&mut txn, &id, now_ms())),
    )
    .await?;
    if !matches!(&started, MutationOutcome::Committed { response, .. } if response == DONE) {
        // Canceled or finished meanwhile: nothing to run.
        return Ok(Handled::Yes);
    }
    let outcome = app
        .run_action(job.path.clone(), job.args.clone(), None, Caller::Trusted)
        .await;
    let result = match outcome {
        Ok(outcome) => {
            for line in &outcome.log_lines {
                tracing::info!(function = %job.path, "{line}");
            }
            outcome.result.map_err(|e| e.message)
        }
        Err(refused) => {
            tracing::warn!(job = %job.id, error = %refused, "a scheduled action could not start; it goes back to pending");
            return put_back(app, &job.id).await;
        }
    };
    if let Err(error) = &result {
        tracing::info!(job = %job.id, function = %job.path, %error, "a scheduled action failed");
    }
    let id = job.id.clone();
    commit(
        app,
        Box::new(move |mut txn| finish_action_job(&mut txn, &id, &result, now_ms())),
    )
    .await?;
    Ok(Handled::Yes)
}

/// An action that never started goes back to `pending`, due again after [`RETRY_DELAY`].
async fn put_back(app: &App, id: &str) -> Result<Handled, DbError> {
    let id = id.to_string();
    commit(
        app,
        Box::new(move |mut txn| {
            let later = now_ms() + RETRY_DELAY.as_secs_f64() * 1000.0;
            set_state(&mut txn, &id, JobState::Pending, None, later)?;
            let mut fields = Object::new();
            fields.insert("scheduledTime".into(), Value::Float64(later));
            database::Transaction::system_patch(&mut txn, &id, fields)
                .map_err(|e| e.to_string())?;
            Ok(DONE.to_string())
        }),
    )
    .await?;
    Ok(Handled::Yes)
}
