//! [`Database`]: the handle the rest of the server holds. It owns the reader pool, the
//! current [`Catalog`], the job queue to the Committer thread and the [`Subscriptions`].
//!
//! Reads ([`Database::read`]) are blocking and run on the caller's thread; call them from a
//! blocking context. Mutations and schema changes are queued to the Committer and awaited.
//! The schema found at startup is applied by the Committer too, before its thread starts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use schema::Schema;
use storage::{Durability, Lease, Storage, Writer};
use tokio::sync::oneshot;

use crate::catalog::Catalog;
use crate::checkpoints::CheckpointThread;
use crate::commit_log::CommitTail;
use crate::committer::Committer;
use crate::error::DbError;
use crate::job::{DedupKey, Job, MutationFn, MutationOutcome};
use crate::query_txn::QueryTxn;
use crate::reader_pool::ReaderPool;
use crate::schema_change::SchemaChangeReport;
use crate::snapshot::Snapshot;
use crate::subscriptions::Subscriptions;
use crate::transaction::TxnLimits;

/// How long a mutation's caller waits for this node to process its commit on a shared
/// database (milliseconds, normally) before it is answered anyway.
const PROCESSED_WAIT: Duration = Duration::from_secs(5);

/// Jobs waiting for the Committer before callers are told to back off.
const COMMIT_QUEUE: usize = 10_000;

/// The database: one writer thread, a pool of snapshot readers, and the subscription index.
pub struct Database {
    readers: Arc<ReaderPool>,
    /// The live catalog, replaced by the Committer on a schema change.
    catalog: Arc<RwLock<Arc<Catalog>>>,
    /// Bounded queue to the Committer; a full queue is reported as overload, never waited on.
    /// `None` once [`Database::shutdown`] closed it.
    jobs: RwLock<Option<SyncSender<Job>>>,
    committer: Mutex<Option<JoinHandle<()>>>,
    /// Folds the WAL into the database file in the background; dropping it stops the thread.
    checkpointer: Option<CheckpointThread>,
    /// Feeds the commits of every node to the subscriptions, on a database shared with other
    /// nodes; dropping it stops the thread.
    tail: Option<CommitTail>,
    subscriptions: Arc<Subscriptions>,
    limits: TxnLimits,
    /// The database file, for [`Database::file_sizes`] (`None` for an engine without one).
    path: Option<PathBuf>,
    /// Batch commit times, recorded by the Committer.
    commit_latency: Arc<telemetry::Histogram>,
}

/// The size on disk of the database file and of its write-ahead log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileSizes {
    pub database_bytes: u64,
    pub wal_bytes: u64,
}

impl Database {
    /// Opens the database file, applies `schema` (creating and back-filling what it
    /// declares) and starts the Committer.
    pub fn open(
        path: &Path,
        schema: Schema,
        schema_text: &str,
    ) -> Result<(Database, SchemaChangeReport), DbError> {
        Database::open_with(path, schema, schema_text, Durability::Normal)
    }

    /// [`Database::open`] with the given durability of commits (`--durability`). A database
    /// that cannot be opened for writing because of its disk, its file system or another
    /// process's lock is refused with [`DbError::Unavailable`].
    pub fn open_with(
        path: &Path,
        schema: Schema,
        schema_text: &str,
        durability: Durability,
    ) -> Result<(Database, SchemaChangeReport), DbError> {
        let (storage, writer) =
            Storage::open_with(path, durability).map_err(|e| match e.unavailable(path) {
                Some(kind) => DbError::Unavailable {
                    kind,
                    detail: format!("opening {}: {e}", path.display()),
                },
                None => DbError::Storage(e),
            })?;
        Database::start(storage, writer, schema, schema_text)
    }

    /// Starts on an opened engine (`crates/pgstore` opens PostgreSQL): applies `schema`
    /// with `writer` and starts the Committer.
    pub fn start(
        storage: Storage,
        writer: Writer,
        schema: Schema,
        schema_text: &str,
    ) -> Result<(Database, SchemaChangeReport), DbError> {
        // The startup schema keeps the stored timestamp, so this is the one it leaves.
        let ts = writer.ts()?;
        let catalog = Arc::new(RwLock::new(Arc::new(Catalog::default())));
        let subscriptions = Arc::new(Subscriptions::new(ts));
        let limits = TxnLimits::default();
        let restart_wal = Arc::new(AtomicBool::new(false));
        let mut committer = Committer::new(
            writer,
            catalog.clone(),
            subscriptions.clone(),
            limits,
            restart_wal.clone(),
        )?;
        let report = committer.apply_startup_schema(Arc::new(schema), schema_text)?;
        let commit_latency = committer.commit_latency();
        let checkpointer = CheckpointThread::start(&storage, restart_wal)?;
        let tail = match storage.commit_feed()? {
            Some(feed) => Some(CommitTail::start(feed, subscriptions.clone(), ts)?),
            None => None,
        };
        let storage_path = storage.path().map(Path::to_path_buf);
        let (jobs, receiver) = sync_channel(COMMIT_QUEUE);
        let handle = std::thread::Builder::new()
            .name("committer".into())
            .spawn(move || committer.run(receiver))
            .map_err(|e| DbError::internal(format!("cannot start the committer thread: {e}")))?;
        Ok((
            Database {
                readers: Arc::new(ReaderPool::new(storage)),
                catalog,
                jobs: RwLock::new(Some(jobs)),
                committer: Mutex::new(Some(handle)),
                checkpointer,
                tail,
                subscriptions,
                limits,
                path: storage_path,
                commit_latency,
            },
            report,
        ))
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().clone()
    }

    pub fn subscriptions(&self) -> &Arc<Subscriptions> {
        &self.subscriptions
    }

    /// How long each group commit took, from BEGIN to a finished COMMIT.
    pub fn commit_latency(&self) -> &telemetry::Histogram {
        &self.commit_latency
    }

    /// The database file's and its WAL's sizes now (0 for a file that does not exist).
    pub fn file_sizes(&self) -> FileSizes {
        let Some(path) = &self.path else {
            return FileSizes::default();
        };
        let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        FileSizes {
            database_bytes: size(path),
            wal_bytes: size(Path::new(&wal)),
        }
    }

    /// Takes the lease named `name` if no other node holds it (always, on a database only
    /// this process uses). Blocking.
    pub fn try_lease(&self, name: &str) -> Result<Option<Box<dyn Lease>>, DbError> {
        Ok(self.readers.storage().try_lease(name)?)
    }

    /// Whether other nodes commit to this database too (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        self.tail.is_some()
    }

    /// Opens a snapshot read transaction at the latest commit. Blocking; dropping the
    /// transaction ends the snapshot.
    pub fn snapshot(&self) -> Result<QueryTxn, DbError> {
        QueryTxn::open(self.readers.clone(), self.catalog(), self.limits)
    }

    /// A read of the whole database at the latest commit, without read limits or read set
    /// (export, backup, file serving). Blocking; on a connection of its own.
    pub fn full_snapshot(&self) -> Result<Snapshot, DbError> {
        Snapshot::open(self.readers.storage(), self.catalog())
    }

    /// Runs `f` in a snapshot read transaction on this thread (blocking).
    pub fn read<R>(&self, f: impl FnOnce(&mut QueryTxn) -> R) -> Result<R, DbError> {
        let mut txn = self.snapshot()?;
        Ok(f(&mut txn))
    }

    /// Queues a mutation for the Committer and waits for its outcome.
    pub async fn mutate(
        &self,
        dedup: Option<DedupKey>,
        run: MutationFn,
    ) -> Result<MutationOutcome, DbError> {
        let (reply, outcome) = oneshot::channel();
        self.submit(Job::Mutation { dedup, run, reply })?;
        let outcome = outcome.await.map_err(|_| DbError::CommitterStopped)??;
        if let Some(ts) = self.unprocessed(&outcome) {
            let mut processed = self.subscriptions.watch_processed();
            let _ = tokio::time::timeout(PROCESSED_WAIT, processed.wait_for(|p| *p >= ts)).await;
        }
        Ok(outcome)
    }

    /// The commit `outcome` made, when this node's subscriptions may not have processed it
    /// yet: on a shared database the commit-log tail processes commits, not the Committer,
    /// and callers of [`Database::mutate`] rely on every invalidation up to their commit
    /// being issued when they hear of it (a session's next Transition reaches it).
    fn unprocessed(&self, outcome: &MutationOutcome) -> Option<u64> {
        match outcome {
            MutationOutcome::Committed { ts, .. } if self.tail.is_some() => Some(*ts),
            _ => None,
        }
    }

    /// Queues a mutation now and gives the receiver of its outcome. Mutations queued one
    /// after another run in that order (the scheduler queues jobs due together this way).
    pub fn queue_mutation(
        &self,
        dedup: Option<DedupKey>,
        run: MutationFn,
    ) -> Result<oneshot::Receiver<Result<MutationOutcome, DbError>>, DbError> {
        let (reply, outcome) = oneshot::channel();
        self.submit(Job::Mutation { dedup, run, reply })?;
        Ok(outcome)
    }

    /// Like [`Database::mutate`], for callers on a plain thread (benchmarks, tools).
    pub fn mutate_blocking(
        &self,
        dedup: Option<DedupKey>,
        run: MutationFn,
    ) -> Result<MutationOutcome, DbError> {
        let (reply, outcome) = oneshot::channel();
        self.submit(Job::Mutation { dedup, run, reply })?;
        let outcome = outcome
            .blocking_recv()
            .map_err(|_| DbError::CommitterStopped)??;
        if let Some(ts) = self.unprocessed(&outcome) {
            self.subscriptions.wait_processed(ts, PROCESSED_WAIT);
        }
        Ok(outcome)
    }

    /// Applies a new schema online, on the Committer; refused changes leave the old one.
    pub async fn apply_schema(
        &self,
        schema: Schema,
        text: String,
    ) -> Result<SchemaChangeReport, DbError> {
        let (reply, outcome) = oneshot::channel();
        self.submit(Job::ApplySchema {
            schema: Arc::new(schema),
            text,
            reply,
        })?;
        outcome.await.map_err(|_| DbError::CommitterStopped)?
    }

    /// Stops taking mutations (later ones fail with [`DbError::CommitterStopped`]), lets the
    /// Committer answer every one already queued, and waits up to `timeout` for it to stop,
    /// which it does after checkpointing the WAL into the database file. `false` when the
    /// Committer was still busy at the timeout (it finishes on its own; nothing is lost).
    pub fn shutdown(&self, timeout: Duration) -> bool {
        self.jobs.write().take();
        let deadline = Instant::now() + timeout;
        let mut committer = self.committer.lock();
        while committer.as_ref().is_some_and(|h| !h.is_finished()) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(handle) = committer.take() {
            let _ = handle.join();
        }
        true
    }

    fn submit(&self, job: Job) -> Result<(), DbError> {
        let jobs = self.jobs.read();
        let jobs = jobs.as_ref().ok_or(DbError::CommitterStopped)?;
        jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => DbError::Limit(format!(
                "the server is overloaded: {COMMIT_QUEUE} mutations are already queued; retry shortly"
            )),
            TrySendError::Disconnected(_) => DbError::CommitterStopped,
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Closing the queue lets the Committer finish what is queued and exit.
        self.jobs.write().take();
        if let Some(handle) = self.committer.lock().take() {
            let _ = handle.join();
        }
        // Then the checkpointer, which leaves a small WAL behind, and the commit-log tail.
        self.checkpointer.take();
        self.tail.take();
    }
}
