//! [`ActionPool`]: the threads actions run on, apart from everything that serves clients.
//!
//! Rhai is synchronous, so a running action holds a thread for as long as it runs, including
//! while it waits on `fetch` or on the Committer; an action may run for 10 minutes. Running
//! actions on tokio's blocking pool (16 threads, shared with every query) would let a few slow
//! actions stall every subscription, and running them on the Committer would stall every
//! mutation. So actions get a pool of their own: the blocking threads of a tokio runtime that
//! does nothing else, at most [`ActionLimits::max_running`] of them, with small stacks, idle
//! ones retired after a few seconds.
//!
//! Admission is one semaphore counting running plus waiting actions: past
//! `max_running + max_queued` a new action is refused at once with
//! [`ActionError::TooManyActions`] instead of queueing without bound. Nested `ctx.runAction`
//! calls run on their caller's thread and take no slot, so they can never wait for one.

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};
use tokio::sync::Semaphore;

/// How many actions may run and wait.
#[derive(Clone, Debug)]
pub struct ActionLimits {
    /// Actions running at once, each on its own thread.
    pub max_running: usize,
    /// Actions waiting for a thread beyond those (ten times as many by default); more are
    /// refused.
    pub max_queued: usize,
    /// Stack of each action thread.
    pub stack_bytes: usize,
}

impl Default for ActionLimits {
    fn default() -> ActionLimits {
        ActionLimits {
            max_running: 1_000,
            max_queued: 10_000,
            stack_bytes: ACTION_STACK_BYTES,
        }
    }
}

/// Stack of an action thread. Rhai's call depth is capped at 64 (counted across
/// `ctx.runAction`), which `tests/action_stack.rs` shows fits with room to spare; most of it
/// is never touched, so a thread costs far less memory than this.
pub const ACTION_STACK_BYTES: usize = 1 << 20;

/// Why an action could not run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ActionError {
    #[error(
        "too many actions in flight: {running} running and {queued} waiting is the server's limit; try again later (the server's --max-actions sets how many run at once)"
    )]
    TooManyActions { running: usize, queued: usize },
    /// The thread pool could not start or the action's thread died; details are in the log.
    #[error("internal server error while running an action; see the server log")]
    Internal,
}

/// The action threads and their admission.
pub(crate) struct ActionPool {
    /// Only its blocking pool is used; shut down in the background when dropped, since
    /// dropping a runtime in place would block, which async code may not do.
    runtime: Option<Runtime>,
    admission: Arc<Semaphore>,
    limits: ActionLimits,
}

impl ActionPool {
    pub(crate) fn new(limits: ActionLimits) -> std::io::Result<ActionPool> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(limits.max_running.max(1))
            .thread_stack_size(limits.stack_bytes)
            .thread_keep_alive(Duration::from_secs(10))
            .thread_name("action")
            .enable_all()
            .build()?;
        Ok(ActionPool {
            runtime: Some(runtime),
            admission: Arc::new(Semaphore::new(limits.max_running + limits.max_queued)),
            limits,
        })
    }

    /// Runs `job` on an action thread, or refuses it when the pool is full.
    pub(crate) async fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, ActionError> {
        let Some(runtime) = &self.runtime else {
            return Err(ActionError::Internal);
        };
        let permit = self.admission.clone().try_acquire_owned().map_err(|_| {
            ActionError::TooManyActions {
                running: self.limits.max_running,
                queued: self.limits.max_queued,
            }
        })?;
        runtime
            .spawn_blocking(move || {
                let _slot = permit;
                job()
            })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "an action thread failed");
                ActionError::Internal
            })
    }

    /// The pool's runtime, for an action thread to wait on async work (a mutation's commit).
    pub(crate) fn handle(&self) -> Option<Handle> {
        self.runtime.as_ref().map(|r| r.handle().clone())
    }

    /// Actions running or waiting now.
    pub(crate) fn in_flight(&self) -> usize {
        (self.limits.max_running + self.limits.max_queued)
            .saturating_sub(self.admission.available_permits())
    }
}

impl Drop for ActionPool {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
