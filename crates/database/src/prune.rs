//! [`Pruner`]: forgets, a bounded slice at a time between commits, the mutation
//! de-duplication records past their retention and, on a shared database, the commit log past
//! its own.

use std::time::{Duration, Instant};

use storage::Writer;

/// How long mutation de-duplication records are kept (the client retries after reconnects).
const DEDUP_RETENTION: Duration = Duration::from_secs(3600);
/// How long a shared database keeps the commit log (see `commit_log`).
const COMMIT_LOG_RETENTION: Duration = Duration::from_secs(600);
/// How often the next slice of de-duplication records is checked for ones past
/// [`DEDUP_RETENTION`], and the least a slice holds. A slice is also at least twice the
/// records written since the last one, so a pass over the table is never slower than the
/// writes that fill it: a record lives at most about twice the retention, and no prune
/// reads the whole table at once (the old once-a-minute `DELETE ... WHERE ts < ?` did).
const PRUNE_EVERY: Duration = Duration::from_secs(1);
const PRUNE_SLICE: usize = 10_000;

#[derive(Default)]
pub(crate) struct Pruner {
    last_prune: Option<Instant>,
    /// Where the next prune slice starts (`None`: at the start of the table).
    prune_cursor: Option<(String, u64)>,
    /// De-duplication records written since the last prune: a slice is at least twice that,
    /// so pruning keeps pace with any write rate.
    dedup_since_prune: usize,
}

impl Pruner {
    /// `n` more de-duplication records were written.
    pub(crate) fn count_dedup(&mut self, n: usize) {
        self.dedup_since_prune += n;
    }

    /// In the open write transaction, after a batch committed mutations at `ts`: prunes once
    /// per [`PRUNE_EVERY`].
    pub(crate) fn maybe_prune(&mut self, writer: &mut Writer, shared: bool, ts: u64) {
        if self.last_prune.is_some_and(|at| at.elapsed() < PRUNE_EVERY) {
            return;
        }
        self.last_prune = Some(Instant::now());
        let cutoff = ts.saturating_sub(DEDUP_RETENTION.as_nanos() as u64);
        let slice = PRUNE_SLICE.max(2 * std::mem::take(&mut self.dedup_since_prune));
        let pruned = writer.prune_mutation_responses(cutoff, self.prune_cursor.as_ref(), slice);
        match pruned {
            Ok((_, next)) => self.prune_cursor = next,
            Err(e) => {
                tracing::warn!(error = %e, "pruning mutation de-duplication records failed");
            }
        }
        if shared {
            // Every node's tail is far past a commit this old (a node that lagged this long
            // restarts from the stored timestamp anyway).
            let before = ts.saturating_sub(COMMIT_LOG_RETENTION.as_nanos() as u64);
            if let Err(e) = writer.prune_commit_log(before) {
                tracing::warn!(error = %e, "pruning the commit log failed");
            }
        }
    }
}
