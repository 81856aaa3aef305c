//! The scheduler of a running app: the task that runs `_scheduled_functions` jobs when they
//! come due and turns the cron table of `functions/crons.rhai` into such jobs.
//!
//! The one thing to know: it never polls. Each round reads the pending jobs in order of
//! `scheduledTime` (the `by_state` index) up to the first one not yet due, and registers that
//! read as a subscription, exactly as a client's query would be: a commit that schedules an
//! earlier job, cancels one or finishes one invalidates it and wakes the task. Otherwise it
//! sleeps until the next due time (job, cron run or clean-up), whichever comes first.
//!
//! - `task.rs`: the loop (read, subscribe, dispatch, sleep), recovery at start (jobs left
//!   `inProgress` by a stop are `failed`, never re-run) and the retention clean-up;
//! - `dispatch.rs`: running one job (a mutation and its `success` in one commit; an action
//!   after its `inProgress` commit);
//! - `crons.rs`: the cron table, kept in step with the live functions.
//!
//! The transactions themselves are `functions::scheduled` (shared with `pulsebase test`).

mod crons;
mod dispatch;
mod task;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, Semaphore};

use crate::App;

pub use task::{RETENTION, SchedulerStart};

/// Jobs running at once (mutations queued on the Committer plus actions running).
pub const MAX_RUNNING_JOBS: usize = 256;
/// How long a job that could not be handed on (the Committer or the action pool was full)
/// waits before it is tried again.
const RETRY_DELAY: Duration = Duration::from_millis(200);

/// A cron job as the scheduler holds it: when it runs next (ms since the epoch; `None` when
/// its schedule has no later time) and the `_scheduled_functions` id of its last run.
#[derive(Clone, Debug)]
pub struct CronRun {
    pub name: String,
    pub next: Option<f64>,
    pub last_run: Option<String>,
}

/// What the scheduler task and the jobs it started share.
pub(crate) struct Scheduler {
    /// Wakes the task: a commit touched what it read, a job finished, the functions changed.
    wake: Arc<Notify>,
    /// Jobs handed on and not yet finished, which a round must not start again.
    running: Mutex<HashSet<String>>,
    slots: Arc<Semaphore>,
    crons: Mutex<crons::CronTable>,
}

impl Scheduler {
    fn new() -> Scheduler {
        Scheduler {
            wake: Arc::new(Notify::new()),
            running: Mutex::new(HashSet::new()),
            slots: Arc::new(Semaphore::new(MAX_RUNNING_JOBS)),
            crons: Mutex::new(crons::CronTable::default()),
        }
    }

    /// Makes the task look again (new functions, a finished job).
    pub(crate) fn poke(&self) {
        self.wake.notify_one();
    }
}

impl App {
    /// The cron jobs' next and last runs; empty on a node that does not run the scheduler
    /// (it has not started, or another node holds the scheduler lease).
    pub fn cron_runs(&self) -> Vec<CronRun> {
        self.scheduler
            .get()
            .map(|s| s.crons.lock().runs())
            .unwrap_or_default()
    }

    /// Starts the scheduler: first marks jobs left `inProgress` by a stop as failed and
    /// cleans up old jobs, then runs due jobs and cron jobs until the app is dropped. Call
    /// once, from inside a tokio runtime; a second call does nothing.
    pub async fn start_scheduler(self: &Arc<Self>) -> Result<SchedulerStart, database::DbError> {
        let scheduler = Arc::new(Scheduler::new());
        if self.scheduler.set(scheduler.clone()).is_err() {
            return Ok(SchedulerStart::default());
        }
        task::start(self, scheduler).await
    }
}
