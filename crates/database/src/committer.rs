//! The Committer: the one thread that owns the [`Writer`]. Every write transaction of the
//! database commits in this file: each mutation in [`Committer::commit_batch`], each schema
//! change (the one applied at startup, before the thread runs, and every online one) in
//! [`Committer::apply_schema`].
//!
//! Mutations run here one after another, so they are serializable by construction. Jobs that
//! queue up while a commit is in progress are taken together (group commit): each mutation
//! runs in its own savepoint, so one failure rolls back only its own writes, and the batch
//! shares one commit and one commit timestamp. After the commit the batch's write set is
//! matched against subscriptions, and only then are callers answered, so a caller that sees
//! its commit `ts` can rely on every invalidation up to `ts` having been issued.
//!
//! On a database other nodes commit to as well (PostgreSQL), `begin` waits for the
//! database-wide commit lock, the timestamp is picked above the latest commit of any node, and
//! the write set goes into the commit log instead: this node's subscriptions learn of the
//! commit from the commit-log tail (`commit_log.rs`), like every other node's, and callers
//! are answered at once (a session waits for its snapshot's commit to be processed anyway).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use schema::Schema;
use storage::{StoredResponse, Unavailable, Writer};
use tokio::sync::oneshot;

use crate::catalog::Catalog;
use crate::commit_log;
use crate::error::DbError;
use crate::failure_log::FailureLog;
use crate::job::{
    BatchRun, DedupKey, Job, MutationFn, MutationOutcome, QueuedMutation, recorded_responses,
};
use crate::mutation_txn::MutationTxn;
use crate::prune::Pruner;
use crate::read_set::WriteSet;
use crate::schema_change::{SCHEMA_CONFIG_KEY, SchemaChangeReport, apply_schema};
use crate::subscriptions::Subscriptions;
use crate::transaction::TxnLimits;
use crate::writer_state::{WriteFailure, WriterState};

/// Most jobs folded into one SQLite commit.
const MAX_BATCH: usize = 256;
pub(crate) struct Committer {
    state: Arc<Mutex<WriterState>>,
    /// Mutations per group commit: [`MAX_BATCH`], or fewer where the engine wants fewer
    /// savepoints per transaction.
    max_batch: usize,
    /// Other nodes commit to the same database (see `commit_log`): take the latest timestamp
    /// after `begin`, log each commit, and leave `on_commit` to the commit-log tail.
    shared: bool,
    /// The schema.toml text this node applied, which a shared database must still hold for
    /// this node to commit.
    schema_text: String,
    catalog: Arc<RwLock<Arc<Catalog>>>,
    subscriptions: Arc<Subscriptions>,
    limits: TxnLimits,
    last_ts: u64,
    /// Forgets de-duplication records and commit-log entries past their retention.
    pruner: Pruner,
    /// Set by the background checkpointer when the WAL is long: the Committer then copies
    /// the rest itself between two batches so the WAL can start over (see
    /// `storage::Checkpointer`).
    restart_wal: Arc<AtomicBool>,
    /// How long each batch takes from BEGIN to a finished COMMIT (`/metrics`).
    commit_latency: Arc<telemetry::Histogram>,
    /// Failed batches since the last commit that worked, and when one was last logged.
    failures: FailureLog,
}

pub(crate) fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Committer {
    pub(crate) fn new(
        writer: Writer,
        catalog: Arc<RwLock<Arc<Catalog>>>,
        subscriptions: Arc<Subscriptions>,
        limits: TxnLimits,
        restart_wal: Arc<AtomicBool>,
    ) -> Result<Committer, DbError> {
        let last_ts = writer.ts()?;
        let max_batch = MAX_BATCH.min(writer.savepoints_per_transaction()).max(1);
        let shared = writer.shared();
        Ok(Committer {
            max_batch,
            shared,
            schema_text: String::new(),
            state: Arc::new(Mutex::new(WriterState::new(writer))),
            catalog,
            subscriptions,
            limits,
            last_ts,
            pruner: Pruner::default(),
            restart_wal,
            commit_latency: Arc::default(),
            failures: FailureLog::default(),
        })
    }

    /// The histogram of batch commit times this Committer records into.
    pub(crate) fn commit_latency(&self) -> Arc<telemetry::Histogram> {
        self.commit_latency.clone()
    }

    /// Serves jobs until every sender is gone.
    pub(crate) fn run(mut self, jobs: Receiver<Job>) {
        while let Ok(first) = jobs.recv() {
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let mut mutations = Vec::with_capacity(batch.len());
            for job in batch {
                match job {
                    Job::Mutation { dedup, run, reply } => {
                        mutations.push(QueuedMutation { dedup, run, reply });
                    }
                    Job::ApplySchema {
                        schema,
                        text,
                        reply,
                    } => {
                        // Schema changes commit alone, after the mutations queued before them.
                        self.commit_batch(std::mem::take(&mut mutations));
                        let ts = self.next_ts();
                        let result = self.apply_schema(schema, &text, Some(ts));
                        let _ = reply.send(result);
                    }
                }
            }
            self.commit_batch(mutations);
            if self.restart_wal.load(Ordering::Acquire) {
                self.finish_checkpoint();
            }
        }
        // Every sender is gone and every queued job answered: fold the WAL into the
        // database file, so the file alone holds every commit.
        match self.state.lock().writer.checkpoint_truncate() {
            Ok(true) => {
                tracing::info!("committer stopped; the WAL is checkpointed into the database file")
            }
            Ok(false) => tracing::warn!(
                "committer stopped; a reader still held an old snapshot, so part of the WAL was left for the next start"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "committer stopped; the final WAL checkpoint failed (the next start completes it)")
            }
        }
    }

    /// Copies the tail of the WAL while no commit can append to it, so the next commit
    /// starts the WAL over instead of growing it. Callers of the batch just committed are
    /// already answered; the jobs queued meanwhile wait for this copy (a few frames, since
    /// the background thread copied the rest) and its fsync.
    fn finish_checkpoint(&mut self) {
        match self.state.lock().writer.checkpoint() {
            Ok(progress) if progress.is_complete() => {
                self.restart_wal.store(false, Ordering::Release);
                tracing::debug!(frames = progress.frames, "WAL fully checkpointed");
            }
            // A reader still holds an old snapshot; try again after the next batch.
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint on the writer failed"),
        }
    }

    /// Commit timestamps are nanoseconds since the epoch when the clock allows, and always
    /// strictly increasing (also across restarts, since `last_ts` is stored).
    fn next_ts(&self) -> u64 {
        now_nanos().max(self.last_ts + 1)
    }

    /// Where every mutation commits: runs a batch of mutations and commits them together.
    ///
    /// Nothing is ever half-applied: a storage failure while the batch runs (a write a
    /// script made, a savepoint, the de-duplication record, SQLite rolling the transaction
    /// back by itself) fails every mutation of the batch and rolls all of it back, and a
    /// failed COMMIT answers every mutation that would have committed with the error. Only a
    /// batch that committed is ever acknowledged.
    fn commit_batch(&mut self, batch: Vec<QueuedMutation>) {
        if batch.is_empty() {
            return;
        }
        self.pruner
            .count_dedup(batch.iter().filter(|m| m.dedup.is_some()).count());
        let catalog = self.catalog.read().clone();
        let started = Instant::now();
        let begun = self.begin_batch();
        if let Err(failure) = begun {
            let _ = self.state.lock().writer.rollback();
            self.fail_batch(&failure, batch.into_iter().map(|q| q.reply).collect());
            return;
        }
        let replays = {
            let state = self.state.lock();
            recorded_responses(&state.writer, &batch)
                .map_err(|e| state.failure("reading de-duplication records", &e))
        };
        let replays = match replays {
            Ok(replays) => replays,
            Err(failure) => {
                let _ = self.state.lock().writer.rollback();
                self.fail_batch(&failure, batch.into_iter().map(|q| q.reply).collect());
                return;
            }
        };
        let ts = self.next_ts();
        // Creation times follow the commit timestamp: the clock while it runs ahead, and above
        // every earlier commit (of any node, stored) when it does not, so they never go back.
        let mut run = BatchRun {
            ts,
            now_ms: ts as f64 / 1e6,
            writes: WriteSet::default(),
            replays,
        };
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut any_committed = false;
        let mut queued = batch.into_iter();
        let mut failure = None;
        for QueuedMutation {
            dedup,
            run: f,
            reply,
        } in queued.by_ref()
        {
            match self.run_one(&catalog, dedup, f, &mut run) {
                Ok(outcome) => {
                    any_committed |= matches!(outcome, MutationOutcome::Committed { .. });
                    outcomes.push((outcome, reply));
                }
                Err(batch_failure) => {
                    failure = Some((batch_failure, reply));
                    break;
                }
            }
        }
        if let Some((failure, reply)) = failure {
            let _ = self.state.lock().writer.rollback();
            let mut replies: Vec<_> = outcomes.into_iter().map(|(_, reply)| reply).collect();
            replies.push(reply);
            replies.extend(queued.map(|q| q.reply));
            self.fail_batch(&failure, replies);
            return;
        }

        if any_committed {
            let mut state = self.state.lock();
            self.pruner.maybe_prune(&mut state.writer, self.shared, ts);
        }
        let finish = {
            let mut state = self.state.lock();
            let finish = if any_committed {
                commit_log::stamp(&mut state.writer, self.shared, ts, &run.writes)
                    .and_then(|()| state.writer.commit())
            } else {
                state.writer.rollback()
            };
            finish.map_err(|e| state.failure("committing", &e))
        };
        if let Err(failure) = finish {
            let _ = self.state.lock().writer.rollback();
            self.failures.failed(&failure, outcomes.len());
            for (outcome, reply) in outcomes {
                let outcome = match outcome {
                    MutationOutcome::Committed { .. } => Err(failure.error()),
                    other => Ok(other),
                };
                let _ = reply.send(outcome);
            }
            return;
        }
        self.failures.succeeded();
        if any_committed {
            self.commit_latency.observe(started.elapsed());
            self.last_ts = ts;
            if !self.shared {
                self.subscriptions.on_commit(ts, Arc::new(run.writes));
            }
        }
        for (outcome, reply) in outcomes {
            let _ = reply.send(Ok(outcome));
        }
    }

    /// Answers every mutation of a batch that was rolled back as a whole.
    fn fail_batch(
        &mut self,
        failure: &WriteFailure,
        replies: Vec<oneshot::Sender<Result<MutationOutcome, DbError>>>,
    ) {
        self.failures.failed(failure, replies.len());
        for reply in replies {
            let _ = reply.send(Err(failure.error()));
        }
    }

    /// Runs one mutation in its own savepoint. `Err` means the write transaction itself
    /// failed and the whole batch must be rolled back.
    fn run_one(
        &mut self,
        catalog: &Arc<Catalog>,
        dedup: Option<DedupKey>,
        run: MutationFn,
        batch: &mut BatchRun,
    ) -> Result<MutationOutcome, WriteFailure> {
        let (ts, now_ms) = (batch.ts, batch.now_ms);
        if let Some(stored) = dedup.as_ref().and_then(|key| batch.replays.get(key)) {
            return Ok(MutationOutcome::Replayed {
                ts: stored.ts,
                response: stored.response.clone(),
            });
        }
        let generation = {
            let mut state = self.state.lock();
            match state.begin_mutation() {
                Ok(generation) => generation,
                Err(DbError::Storage(e)) => return Err(state.failure("opening a savepoint", &e)),
                Err(other) => {
                    return Err(WriteFailure {
                        kind: None,
                        detail: format!("opening a savepoint: {other}"),
                    });
                }
            }
        };
        let txn = MutationTxn::new(
            self.state.clone(),
            generation,
            catalog.clone(),
            ts,
            now_ms,
            self.limits,
        );
        let result = catch_unwind(AssertUnwindSafe(|| run(txn))).unwrap_or_else(|_| {
            tracing::error!("a mutation panicked; its writes are rolled back");
            Err(String::new())
        });
        let mut state = self.state.lock();
        state.retire_generation();
        if let Some(failure) = state.take_poison() {
            return Err(failure);
        }
        if !state.writer.in_transaction() {
            return Err(WriteFailure {
                kind: None,
                detail: "SQLite rolled the write transaction back by itself".into(),
            });
        }
        let finished = match result {
            Ok(response) => state.writer.release_savepoint().and_then(|()| {
                if let Some(key) = dedup {
                    state.writer.put_mutation_response(
                        &key.session_id,
                        key.request_id,
                        ts,
                        &response,
                    )?;
                    // The same request again later in this batch replays this.
                    let stored = StoredResponse {
                        ts,
                        response: response.clone(),
                    };
                    batch.replays.insert(key, stored);
                }
                Ok(MutationOutcome::Committed { ts, response })
            }),
            Err(response) => state
                .writer
                .rollback_to_savepoint()
                .map(|()| MutationOutcome::Failed { response }),
        };
        match finished {
            Ok(outcome @ MutationOutcome::Committed { .. }) => {
                batch.writes.extend(state.take_writes());
                Ok(outcome)
            }
            Ok(outcome) => {
                state.discard_writes();
                Ok(outcome)
            }
            Err(e) => Err(state.failure("finishing a mutation", &e)),
        }
    }

    /// Applies the schema found at startup, before the Committer thread runs. It keeps the
    /// stored commit timestamp: nothing has read or subscribed yet, so there is no one a new
    /// timestamp would tell about the change.
    pub(crate) fn apply_startup_schema(
        &mut self,
        schema: Arc<Schema>,
        text: &str,
    ) -> Result<SchemaChangeReport, DbError> {
        self.apply_schema(schema, text, None)
    }

    /// Where every schema change commits, in a write transaction of its own; refused changes
    /// roll back and leave the catalog as it was. `ts` is the new commit timestamp, `None` at
    /// startup.
    fn apply_schema(
        &mut self,
        schema: Arc<Schema>,
        text: &str,
        ts: Option<u64>,
    ) -> Result<SchemaChangeReport, DbError> {
        let state = self.state.clone();
        let mut state = state.lock();
        state.writer.begin()?;
        // On a shared database the timestamp is picked under the commit lock, above every
        // node's commits (a schema change is not refused for differing from the stored one:
        // it is how a new schema comes into force).
        let ts = match (ts, self.shared) {
            (Some(_), true) => match state.writer.ts() {
                Ok(latest) => {
                    self.last_ts = self.last_ts.max(latest);
                    Some(self.next_ts())
                }
                Err(e) => {
                    let _ = state.writer.rollback();
                    return Err(e.into());
                }
            },
            (ts, _) => ts,
        };
        let result = apply_schema(&mut state.writer, schema, text).and_then(|applied| match ts {
            Some(ts) => commit_log::stamp(&mut state.writer, self.shared, ts, &WriteSet::default())
                .map_err(DbError::from)
                .map(|()| applied),
            None => Ok(applied),
        });
        match result {
            Ok((catalog, report)) => {
                state.writer.commit()?;
                drop(state);
                *self.catalog.write() = Arc::new(catalog);
                self.schema_text = text.to_string();
                if let Some(ts) = ts {
                    self.last_ts = ts;
                    // A schema change is a commit with no document writes; advancing
                    // processed_ts keeps the invariant that every committed ts is processed
                    // (on a shared database the commit-log tail does it).
                    if !self.shared {
                        self.subscriptions
                            .on_commit(ts, Arc::new(WriteSet::default()));
                    }
                }
                Ok(report)
            }
            Err(e) => {
                let _ = state.writer.rollback();
                Err(e)
            }
        }
    }

    /// Begins a batch's write transaction. On a shared database this takes the commit lock,
    /// moves `last_ts` up to the latest commit of any node, and refuses to commit when the
    /// schema in force is not the one this node applied (another node deployed a new one:
    /// this node must be restarted with it before it writes again).
    fn begin_batch(&mut self) -> Result<(), WriteFailure> {
        let mut state = self.state.lock();
        if !self.shared {
            let begun = state.writer.begin();
            return begun.map_err(|e| state.failure("beginning a write transaction", &e));
        }
        let (latest, in_force) = state
            .writer
            .begin_shared(SCHEMA_CONFIG_KEY)
            .map_err(|e| state.failure("beginning a write transaction", &e))?;
        drop(state);
        if in_force.as_deref().unwrap_or_default() != self.schema_text {
            return Err(WriteFailure {
                kind: Some(Unavailable::SchemaOutdated),
                detail: "the schema.toml in force differs from the one this node applied; this node refuses to write until it is restarted with the deployed app".into(),
            });
        }
        self.last_ts = self.last_ts.max(latest);
        Ok(())
    }
}
