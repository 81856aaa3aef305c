//! [`FailureLog`]: how the Committer reports batches that failed in storage (a full disk, a
//! read-only file system, a foreign lock, anything else): at most one line per
//! [`FAILURE_LOG_EVERY`], with the number of mutations refused since the previous line, and
//! one line when writes work again. A client retrying in a loop must not flood the log.

use std::time::{Duration, Instant};

use crate::writer_state::WriteFailure;

/// Shortest interval between two log lines about failing batches.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(5);

/// Failed batches since the last commit that worked, and when one was last logged.
#[derive(Default)]
pub(crate) struct FailureLog {
    since_ok: u64,
    unlogged: u64,
    last: Option<Instant>,
}

impl FailureLog {
    /// A batch of `mutations` failed with `failure`.
    pub(crate) fn failed(&mut self, failure: &WriteFailure, mutations: usize) {
        self.since_ok += 1;
        self.unlogged += mutations as u64;
        if self
            .last
            .is_some_and(|last| last.elapsed() < FAILURE_LOG_EVERY)
        {
            return;
        }
        self.last = Some(Instant::now());
        let failed = std::mem::take(&mut self.unlogged);
        match failure.kind {
            Some(kind) => tracing::error!(
                code = kind.code(),
                detail = %failure.detail,
                "database writes refused: {kind}; {failed} mutation(s) failed since the last report and nothing of them was written; {}",
                kind.remedy()
            ),
            None => tracing::error!(
                detail = %failure.detail,
                "a write transaction failed; {failed} mutation(s) failed since the last report and nothing of them was written"
            ),
        }
    }

    /// A commit worked: says so once after failures.
    pub(crate) fn succeeded(&mut self) {
        if self.since_ok > 0 {
            tracing::info!(
                "database writes work again after {} failed batch(es)",
                self.since_ok
            );
            *self = FailureLog::default();
        }
    }
}
