//! [`Lifecycle`]: how a running server stops. The accept loop calls
//! [`Lifecycle::begin_shutdown`] once its shutdown future resolves; from then on every
//! connection task and WebSocket session sees [`Lifecycle::stopping`] and has until
//! [`Lifecycle::deadline`] to finish what it holds, after which it drops it. The accept loop
//! waits for the tasks it tracks ([`Lifecycle::spawn`]) with [`Lifecycle::drained`].

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;

/// The shutdown signal, its deadline and the tasks that must end before the server does.
#[derive(Clone, Default)]
pub(crate) struct Lifecycle {
    token: CancellationToken,
    tasks: TaskTracker,
    deadline: Arc<OnceLock<Instant>>,
}

impl Lifecycle {
    /// Tells every tracked task to finish within `grace`.
    pub(crate) fn begin_shutdown(&self, grace: Duration) {
        let _ = self.deadline.set(Instant::now() + grace);
        self.token.cancel();
    }

    /// Completes once the shutdown has begun.
    pub(crate) fn stopping(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// A token that is cancelled when the shutdown begins (for code outside this crate).
    pub(crate) fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Counts the caller as a task the shutdown waits for, while the token lives (for
    /// tasks spawned by others, such as WebSocket connections).
    pub(crate) fn track(&self) -> tokio_util::task::task_tracker::TaskTrackerToken {
        self.tasks.token()
    }

    /// When tasks must have let go: set by `begin_shutdown` (far ahead before that).
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
            .get()
            .copied()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    /// Runs `task` as one the shutdown waits for.
    pub(crate) fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task)
    }

    /// Tasks still running.
    pub(crate) fn running(&self) -> usize {
        self.tasks.len()
    }

    /// Waits until every tracked task has ended, or a second past the deadline (the tasks
    /// end themselves at the deadline; the margin covers their last writes). `false` when
    /// some were still running.
    pub(crate) async fn drained(&self) -> bool {
        self.tasks.close();
        tokio::time::timeout_at(self.deadline() + Duration::from_secs(1), self.tasks.wait())
            .await
            .is_ok()
    }
}
