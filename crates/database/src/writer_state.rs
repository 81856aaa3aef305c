//! [`WriterState`]: the one [`Writer`] and what the running mutation has written so far. The
//! Committer owns it behind a mutex and lends it to the running
//! [`MutationTxn`](crate::MutationTxn); the mutex is only ever contended by a stale handle.
//!
//! Each mutation gets a generation number. A `MutationTxn` may touch the writer only while its
//! generation is current, so a handle that outlives its mutation (a script stashing `ctx.db`)
//! gets an error instead of writing into someone else's transaction.

use storage::{StorageError, Unavailable, Writer};

use crate::error::DbError;
use crate::read_set::{IndexWrite, WriteSet};

/// The writer and the running mutation's bookkeeping.
pub(crate) struct WriterState {
    pub(crate) writer: Writer,
    /// Creation times strictly increase across all inserts.
    last_creation_time: f64,
    /// Index writes of the mutation in progress.
    pending_writes: WriteSet,
    /// Bumped when a mutation starts and when it ends.
    generation: u64,
    /// A write of the running mutation failed in storage: whatever the script does next,
    /// the Committer fails the whole batch (see `Committer::commit_batch`).
    poisoned: Option<WriteFailure>,
}

/// A storage failure that makes the open write transaction untrustworthy.
#[derive(Clone, Debug)]
pub(crate) struct WriteFailure {
    /// Set when it is a full disk, a read-only file system or a foreign lock.
    pub kind: Option<Unavailable>,
    /// What failed and SQLite's words, for the log.
    pub detail: String,
}

impl WriteFailure {
    /// The error every mutation of the failed batch gets.
    pub(crate) fn error(&self) -> DbError {
        match self.kind {
            Some(kind) => DbError::Unavailable {
                kind,
                detail: self.detail.clone(),
            },
            None => DbError::Internal(self.detail.clone()),
        }
    }
}

impl WriterState {
    pub(crate) fn new(writer: Writer) -> WriterState {
        WriterState {
            writer,
            last_creation_time: 0.0,
            pending_writes: WriteSet::default(),
            generation: 0,
            poisoned: None,
        }
    }

    /// Classifies a failed write, `what` naming it.
    pub(crate) fn failure(&self, what: &str, error: &StorageError) -> WriteFailure {
        WriteFailure {
            kind: self.writer.unavailable(error),
            detail: format!("{what}: {error}"),
        }
    }

    /// Records that a write of the running mutation failed; returns the error its script
    /// sees (the same the client will get).
    pub(crate) fn poison(&mut self, what: &str, error: &StorageError) -> DbError {
        let failure = self.failure(what, error);
        let shown = failure.error();
        self.poisoned.get_or_insert(failure);
        shown
    }

    /// The failure recorded during the running mutation, if any (and forgets it).
    pub(crate) fn take_poison(&mut self) -> Option<WriteFailure> {
        self.poisoned.take()
    }

    /// Starts a mutation in its own savepoint with an empty write set; returns the generation
    /// its `MutationTxn` must present.
    pub(crate) fn begin_mutation(&mut self) -> Result<u64, DbError> {
        self.writer.savepoint()?;
        self.pending_writes = WriteSet::default();
        self.generation += 1;
        Ok(self.generation)
    }

    /// Retires the running mutation's generation, so a handle that escaped it cannot write.
    pub(crate) fn retire_generation(&mut self) {
        self.generation += 1;
    }

    /// Whether a `MutationTxn` of `generation` may still use the writer.
    pub(crate) fn is_current(&self, generation: u64) -> bool {
        self.generation == generation
    }

    /// Adds one index change of the running mutation to its write set.
    pub(crate) fn record_write(&mut self, write: IndexWrite) {
        self.pending_writes.writes.push(write);
    }

    /// The running mutation's writes, handed over when it succeeds.
    pub(crate) fn take_writes(&mut self) -> WriteSet {
        std::mem::take(&mut self.pending_writes)
    }

    /// Forgets the running mutation's writes when it is rolled back.
    pub(crate) fn discard_writes(&mut self) {
        self.pending_writes = WriteSet::default();
    }

    /// The `_creationTime` of the next insert: `now_ms`, or just above the previous one when
    /// the clock has not moved past it.
    pub(crate) fn next_creation_time(&mut self, now_ms: f64) -> f64 {
        let t = if now_ms > self.last_creation_time {
            now_ms
        } else {
            self.last_creation_time.next_up()
        };
        self.last_creation_time = t;
        t
    }
}
