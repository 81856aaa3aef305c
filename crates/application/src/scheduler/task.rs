//! The scheduler's loop. Each round: bring the cron table in step with the live functions and
//! start the cron runs that are due; clean up old jobs when it is time; read the pending jobs
//! due now (skipping those already handed on) and the time of the next one, subscribe to that
//! read; hand each due job to its own task while slots are free; then sleep until the next
//! due time, or until the subscription, a finished job or a reload wakes it.
//!
//! At start, before the loop, jobs left `inProgress` (actions that were running when the
//! server stopped) are marked `failed` with the reason, never re-run: scheduled actions run at
//! most once. Pending jobs whose time passed while the server was down are simply due.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use database::{DbError, MutationOutcome, Registration, SubscriptionId, Transaction};
use functions::scheduled::jobs::{
    JobState, ScheduledJob, delete_finished_before, fail_interrupted, jobs_in_state, read_job,
    schedule,
};
use functions::scheduled::run::SKIPPED;
use tokio::sync::Notify;

use crate::scheduler::{Scheduler, dispatch};
use crate::{App, now_ms};

/// How long finished jobs (success, failed, canceled) are kept: 7 days, as Convex does.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often old jobs are cleaned up, and how many one clean-up commit deletes.
const CLEANUP_EVERY: Duration = Duration::from_secs(3600);
const CLEANUP_BATCH: usize = 1_000;
/// How long the loop pauses after a failed read before it tries again.
const READ_RETRY: Duration = Duration::from_secs(1);

/// What the start found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedulerStart {
    /// Actions that were running when the server stopped, now marked `failed`.
    pub interrupted: usize,
}

fn count(outcome: &MutationOutcome) -> usize {
    match outcome {
        MutationOutcome::Committed { response, .. } => response.parse().unwrap_or(0),
        _ => 0,
    }
}

pub(crate) async fn start(
    app: &Arc<App>,
    scheduler: Arc<Scheduler>,
) -> Result<SchedulerStart, DbError> {
    let outcome = app
        .db()
        .mutate(
            None,
            Box::new(|mut txn| fail_interrupted(&mut txn, now_ms()).map(|n| n.to_string())),
        )
        .await?;
    let interrupted = count(&outcome);
    if interrupted > 0 {
        tracing::warn!(
            interrupted,
            "scheduled actions were running when the server stopped; marked failed, not re-run"
        );
    }
    tokio::spawn(run_loop(Arc::downgrade(app), scheduler));
    Ok(SchedulerStart { interrupted })
}

async fn run_loop(app: Weak<App>, scheduler: Arc<Scheduler>) {
    let mut next_cleanup = now_ms();
    let mut subscription: Option<SubscriptionId> = None;
    loop {
        let Some(app) = app.upgrade() else { break };
        if let Some(id) = subscription.take() {
            app.db().subscriptions().unsubscribe(id);
        }
        let now = now_ms();
        let cron_next = start_due_crons(&app, &scheduler, now).await;
        if now >= next_cleanup {
            next_cleanup = cleanup(&app, now).await;
        }
        let mut wake_at = [cron_next, Some(next_cleanup)]
            .into_iter()
            .flatten()
            .fold(f64::INFINITY, f64::min);
        let free = scheduler.slots.available_permits();
        // With no free slot, a finished job wakes the loop; reading now would only find work
        // it cannot start.
        if free > 0 {
            let skip = scheduler.running.lock().clone();
            let wake = scheduler.wake.clone();
            let reader = app.clone();
            let read =
                tokio::task::spawn_blocking(move || read_due(&reader, now, free, &skip, wake))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r);
            match read {
                Ok((due, next, registered)) => {
                    subscription = registered;
                    if let Some(next) = next {
                        wake_at = wake_at.min(next);
                    }
                    for job in due {
                        let Ok(permit) = scheduler.slots.clone().try_acquire_owned() else {
                            break;
                        };
                        scheduler.running.lock().insert(job.id.clone());
                        let queued = dispatch::queue_if_mutation(&app, &job);
                        tokio::spawn(dispatch::run_job(
                            app.clone(),
                            scheduler.clone(),
                            job,
                            permit,
                            queued,
                        ));
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "the scheduler could not read the due jobs; retrying");
                    wake_at = wake_at.min(now + READ_RETRY.as_secs_f64() * 1000.0);
                }
            }
        }
        drop(app);
        let wait = (wake_at - now_ms()).max(0.0);
        let sleep = if wait.is_finite() {
            Duration::from_secs_f64(wait / 1000.0)
        } else {
            CLEANUP_EVERY
        };
        tokio::select! {
            () = scheduler.wake.notified() => {}
            () = tokio::time::sleep(sleep) => {}
        }
    }
}

/// Reads the pending jobs due by `now` (at most `limit`, skipping `skip`) and the time of the
/// next one, and subscribes to that read so that a commit changing it wakes the loop.
#[allow(clippy::type_complexity)]
fn read_due(
    app: &App,
    now: f64,
    limit: usize,
    skip: &HashSet<String>,
    wake: Arc<Notify>,
) -> Result<(Vec<ScheduledJob>, Option<f64>, Option<SubscriptionId>), String> {
    let mut txn = app.db().snapshot().map_err(|e| e.to_string())?;
    let ts = txn.ts();
    let (due, next) = jobs_in_state(&mut txn, JobState::Pending, now, limit, skip)?;
    let read_set = Arc::new(txn.take_read_set());
    drop(txn);
    let waker = wake.clone();
    let registered = match app.db().subscriptions().subscribe(
        read_set,
        ts,
        Box::new(move |_| waker.notify_one()),
    ) {
        Registration::Subscribed(id) => Some(id),
        Registration::Invalidated { .. } => {
            wake.notify_one();
            None
        }
    };
    Ok((due, next, registered))
}

/// Starts the cron runs due by `now`; gives the next cron time.
async fn start_due_crons(app: &Arc<App>, scheduler: &Scheduler, now: f64) -> Option<f64> {
    let modules = app.modules();
    let due = {
        let mut table = scheduler.crons.lock();
        table.sync(&modules, now);
        table.take_due(now)
    };
    for run in due {
        let name = run.job.name.clone();
        let job = run.job.clone();
        let runner = modules.clone();
        let outcome = app
            .db()
            .mutate(
                None,
                Box::new(move |mut txn| {
                    if let Some(last) = &run.last_run
                        && let Ok(Some(previous)) = read_job(&mut txn, last)
                        && !previous.state.is_final()
                    {
                        return Ok(SKIPPED.to_string());
                    }
                    schedule(
                        &mut txn,
                        &runner,
                        &job.path,
                        job.args.clone(),
                        run.time,
                        Some(&job.name),
                    )
                }),
            )
            .await;
        match outcome {
            Ok(MutationOutcome::Committed { response, .. }) if response == SKIPPED => {
                tracing::info!(cron = %name, "cron run skipped: the previous run is still going");
            }
            Ok(MutationOutcome::Committed { response, .. }) => {
                scheduler.crons.lock().started(&name, response);
            }
            Ok(MutationOutcome::Failed { response }) => {
                tracing::warn!(cron = %name, error = %response, "a cron run could not be scheduled");
            }
            Ok(MutationOutcome::Replayed { .. }) => {}
            Err(e) => tracing::warn!(cron = %name, error = %e, "a cron run could not be scheduled"),
        }
    }
    scheduler.crons.lock().next_time()
}

/// Deletes finished jobs older than [`RETENTION`]; gives when to look again.
async fn cleanup(app: &App, now: f64) -> f64 {
    let cutoff = now - RETENTION.as_secs_f64() * 1000.0;
    let outcome = app
        .db()
        .mutate(
            None,
            Box::new(move |mut txn| {
                delete_finished_before(&mut txn, cutoff, CLEANUP_BATCH).map(|n| n.to_string())
            }),
        )
        .await;
    match outcome {
        Ok(outcome) if count(&outcome) >= CLEANUP_BATCH => now + 1_000.0,
        Ok(_) => now + CLEANUP_EVERY.as_secs_f64() * 1000.0,
        Err(e) => {
            tracing::warn!(error = %e, "cleaning up old scheduled jobs failed");
            now + CLEANUP_EVERY.as_secs_f64() * 1000.0
        }
    }
}
