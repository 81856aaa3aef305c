//! Scheduled functions under `pulsebase test`: the test clock drives them. [`TestScheduler`]
//! listens to the clock (`clock.rs`): every `t.advanceTime(ms)` runs, in order of
//! `scheduledTime`, every pending job due by the new time, jobs those jobs schedule included
//! when they are due too, with `ctx.now()` at the clock's time. `t.finishInProgressScheduledFunctions()`
//! runs what is due now; `t.finishAllScheduledFunctions()` also moves the clock to each later
//! job until none is pending.
//!
//! Jobs run exactly as the server runs them (`scheduled/run.rs`): a mutation and its job's
//! `success` in one commit, a failure recorded after the rollback. Actions do not run under
//! `pulsebase test` (it has no action runtime): a scheduled action's job is marked `failed`
//! with that reason, so a test sees it instead of waiting forever.

use std::collections::HashSet;
use std::sync::{Arc, Weak};

use database::MutationOutcome;

use crate::definition::FunctionKind;
use crate::host_error::{HostResult, host_error};
use crate::scheduled::jobs::{JobState, ScheduledJob, jobs_in_state};
use crate::scheduled::run::{fail_job, run_mutation_job};
use crate::testing::client::{TestClient, TestEnv, not_inside_run};
use crate::testing::clock::ClockListener;

/// Most jobs one advance or `finishAllScheduledFunctions()` runs: past it, a job that keeps
/// scheduling itself is reported instead of hanging the test.
const MAX_RUNS: usize = 10_000;

/// Why a scheduled action's job fails in a test.
const NO_ACTIONS: &str =
    "scheduled actions do not run under pulsebase test (it runs queries and mutations only)";

/// Runs due jobs whenever the test clock moves.
pub(crate) struct TestScheduler {
    env: Weak<TestEnv>,
}

impl TestScheduler {
    pub(crate) fn new(env: &Arc<TestEnv>) -> TestScheduler {
        TestScheduler {
            env: Arc::downgrade(env),
        }
    }
}

impl ClockListener for TestScheduler {
    fn advanced(&self, _from_ms: f64, to_ms: f64) -> Result<(), String> {
        match self.env.upgrade() {
            Some(env) => run_due(&env, to_ms).map(|_| ()),
            None => Ok(()),
        }
    }
}

/// The earliest pending job due by `until`, if any.
fn next_due(env: &TestEnv, until: f64) -> Result<Option<ScheduledJob>, String> {
    let mut txn = env.db().snapshot().map_err(|e| e.to_string())?;
    let (mut due, _) = jobs_in_state(&mut txn, JobState::Pending, until, 1, &HashSet::new())?;
    Ok(due.pop())
}

/// Runs every pending job due by `until`, earliest first; gives how many ran.
fn run_due(env: &TestEnv, until: f64) -> Result<usize, String> {
    let mut ran = 0;
    while let Some(job) = next_due(env, until)? {
        if ran == MAX_RUNS {
            return Err(format!(
                "more than {MAX_RUNS} scheduled functions came due at once; does a function keep scheduling itself?"
            ));
        }
        run_job(env, job)?;
        ran += 1;
    }
    Ok(ran)
}

fn commit(env: &TestEnv, run: database::MutationFn) -> Result<MutationOutcome, String> {
    env.db()
        .mutate_blocking(None, run)
        .map_err(|e| format!("a scheduled function could not commit: {e}"))
}

/// Runs one job as the server would.
fn run_job(env: &TestEnv, job: ScheduledJob) -> Result<(), String> {
    let now = env.clock().now();
    let modules = env.modules().clone();
    let kind = modules.get(&job.path).map(|(_, def)| def.kind);
    let error = match kind {
        Some(FunctionKind::Mutation) => {
            let id = job.id.clone();
            let runner = modules.clone();
            let outcome = commit(
                env,
                Box::new(move |txn| run_mutation_job(&runner, txn, &id, now)),
            )?;
            match outcome {
                MutationOutcome::Failed { response } => Some(response),
                _ => None,
            }
        }
        Some(FunctionKind::Action) => Some(NO_ACTIONS.to_string()),
        _ => Some(format!(
            "{} is not a mutation or action of the current functions",
            job.path
        )),
    };
    if let Some(error) = error {
        env.log(
            &job.path.to_string(),
            vec![format!("scheduled run failed: {error}")],
        );
        let id = job.id.clone();
        let recorded = commit(
            env,
            Box::new(move |mut txn| fail_job(&mut txn, &id, &error, now)),
        )?;
        if let MutationOutcome::Failed { response } = recorded {
            return Err(format!(
                "the failure of scheduled function {} could not be recorded: {response}",
                job.path
            ));
        }
    }
    Ok(())
}

impl TestClient {
    /// `t.finishInProgressScheduledFunctions()`: runs every job due now.
    pub(crate) fn finish_due_scheduled(&self) -> HostResult<()> {
        not_inside_run("t.finishInProgressScheduledFunctions")?;
        let env = self.env();
        run_due(env, env.clock().now())
            .map(|_| ())
            .map_err(host_error)
    }

    /// `t.finishAllScheduledFunctions()`: runs every pending job, moving the clock to each
    /// later one, until none is left.
    pub(crate) fn finish_all_scheduled(&self) -> HostResult<()> {
        not_inside_run("t.finishAllScheduledFunctions")?;
        let env = self.env();
        for _ in 0..MAX_RUNS {
            run_due(env, env.clock().now()).map_err(host_error)?;
            let Some(next) = next_due(env, f64::INFINITY).map_err(host_error)? else {
                return Ok(());
            };
            let step = (next.scheduled_time - env.clock().now()).max(0.0);
            env.clock().advance(step).map_err(host_error)?;
        }
        Err(host_error(format!(
            "t.finishAllScheduledFunctions(): still jobs pending after {MAX_RUNS} rounds; does a function keep scheduling itself?"
        )))
    }
}
