//! [`Database`]: the handle the rest of the server holds. It owns the reader pool, the
//! current [`Catalog`], the job queue to the Committer thread and the [`Subscriptions`].
//!
//! Reads ([`Database::read`]) are blocking and run on the caller's thread; call them from a
//! blocking context. Mutations and schema changes are queued to the Committer and awaited.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use parking_lot::{Mutex, RwLock};
use schema::Schema;
use storage::{Reader, Storage};
use tokio::sync::oneshot;

use crate::catalog::Catalog;
use crate::committer::{Committer, DedupKey, Job, MutationFn, MutationOutcome};
use crate::error::DbError;
use crate::schema_change::{SchemaChangeReport, apply_schema};
use crate::subscriptions::Subscriptions;
use crate::transaction::{QueryTxn, TxnLimits};

/// Jobs waiting for the Committer before callers are told to back off.
const COMMIT_QUEUE: usize = 10_000;
/// Idle read connections kept open.
const IDLE_READERS: usize = 16;

/// The database: one writer thread, a pool of snapshot readers, and the subscription index.
pub struct Database {
    readers: Arc<ReaderPool>,
    /// The live catalog, replaced by the Committer on a schema change.
    catalog: Arc<RwLock<Arc<Catalog>>>,
    /// Bounded queue to the Committer; a full queue is reported as overload, never waited on.
    jobs: Option<SyncSender<Job>>,
    committer: Option<JoinHandle<()>>,
    /// Folds the WAL into the database file in the background; dropping the sender stops it.
    checkpointer: Option<(std::sync::mpsc::Sender<()>, JoinHandle<()>)>,
    subscriptions: Arc<Subscriptions>,
    limits: TxnLimits,
}

impl Database {
    /// Opens the database file, applies `schema` (creating and back-filling what it
    /// declares) and starts the Committer.
    pub fn open(
        path: &Path,
        schema: Schema,
        schema_text: &str,
    ) -> Result<(Database, SchemaChangeReport), DbError> {
        let (storage, mut writer) = Storage::open(path)?;
        let schema = Arc::new(schema);
        writer.begin()?;
        let applied = apply_schema(&mut writer, schema, schema_text);
        let (catalog, report) = match applied {
            Ok(done) => done,
            Err(e) => {
                let _ = writer.rollback();
                return Err(e);
            }
        };
        writer.commit()?;
        let ts = writer.ts()?;
        let catalog = Arc::new(RwLock::new(Arc::new(catalog)));
        let subscriptions = Arc::new(Subscriptions::new(ts));
        let limits = TxnLimits::default();
        let restart_wal = Arc::new(AtomicBool::new(false));
        let committer = Committer::new(
            writer,
            catalog.clone(),
            subscriptions.clone(),
            limits,
            restart_wal.clone(),
        )?;
        let checkpointer = start_checkpointer(&storage, restart_wal)?;
        let (jobs, receiver) = sync_channel(COMMIT_QUEUE);
        let handle = std::thread::Builder::new()
            .name("committer".into())
            .spawn(move || committer.run(receiver))
            .map_err(|e| DbError::Corrupt(format!("cannot start the committer thread: {e}")))?;
        Ok((
            Database {
                readers: Arc::new(ReaderPool {
                    storage,
                    idle: Mutex::new(Vec::new()),
                }),
                catalog,
                jobs: Some(jobs),
                committer: Some(handle),
                checkpointer: Some(checkpointer),
                subscriptions,
                limits,
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

    /// Opens a snapshot read transaction at the latest commit. Blocking; dropping the
    /// transaction ends the snapshot.
    pub fn snapshot(&self) -> Result<QueryTxn, DbError> {
        let reader = self.readers.take()?;
        QueryTxn::new(reader, self.readers.clone(), self.catalog(), self.limits)
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
        outcome.await.map_err(|_| DbError::CommitterStopped)?
    }

    /// Like [`Database::mutate`], for callers on a plain thread (benchmarks, tools).
    pub fn mutate_blocking(
        &self,
        dedup: Option<DedupKey>,
        run: MutationFn,
    ) -> Result<MutationOutcome, DbError> {
        let (reply, outcome) = oneshot::channel();
        self.submit(Job::Mutation { dedup, run, reply })?;
        outcome
            .blocking_recv()
            .map_err(|_| DbError::CommitterStopped)?
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

    fn submit(&self, job: Job) -> Result<(), DbError> {
        let jobs = self.jobs.as_ref().ok_or(DbError::CommitterStopped)?;
        jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => DbError::Limit(format!(
                "the server is overloaded: {COMMIT_QUEUE} mutations are already queued; retry shortly"
            )),
            TrySendError::Disconnected(_) => DbError::CommitterStopped,
        })
    }
}

/// Idle read-only connections, shared with every open [`QueryTxn`] so it can give its
/// reader back when dropped.
pub(crate) struct ReaderPool {
    storage: Storage,
    /// A plain mutex: it is held only to push or pop.
    idle: Mutex<Vec<Reader>>,
}

impl ReaderPool {
    fn take(&self) -> Result<Reader, DbError> {
        match self.idle.lock().pop() {
            Some(reader) => Ok(reader),
            None => Ok(self.storage.reader()?),
        }
    }

    pub(crate) fn put(&self, reader: Reader) {
        let mut idle = self.idle.lock();
        if idle.len() < IDLE_READERS {
            idle.push(reader);
        }
    }
}

/// WAL length (in frames, one page each) past which the Committer finishes a checkpoint
/// itself so that the WAL starts over: about 16 MB with 4 KiB pages.
const RESTART_WAL_AT_FRAMES: u64 = 4096;
/// How often the background thread looks at the WAL. Often enough that the tail the
/// Committer copies itself before a WAL restart stays small (a few ms with its fsync at
/// ~25,000 commits/s; every 100 ms it was 6-20 ms).
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(20);
/// Frames committed since the last copy before the background thread copies them (SQLite's
/// own automatic checkpoint threshold).
const CHECKPOINT_AT_FRAMES: u64 = 1000;

fn start_checkpointer(
    storage: &Storage,
    restart_due: Arc<AtomicBool>,
) -> Result<(std::sync::mpsc::Sender<()>, JoinHandle<()>), DbError> {
    let mut checkpointer = storage.checkpointer()?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let handle = std::thread::Builder::new()
        .name("checkpointer".into())
        .spawn(move || {
            // Wakes every CHECKPOINT_EVERY, or at once when the Database is dropped.
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                // The Committer finishes this one; a pass here would only make its attempt
                // find the checkpoint lock taken.
                if restart_due.load(Ordering::Acquire) {
                    continue;
                }
                match checkpointer.checkpoint_if_behind(CHECKPOINT_AT_FRAMES) {
                    Ok(Some(progress)) if progress.frames >= RESTART_WAL_AT_FRAMES => {
                        restart_due.store(true, Ordering::Release);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; will retry"),
                }
            }
            // Leave a small WAL behind on shutdown.
            let _ = checkpointer.checkpoint();
        })
        .map_err(|e| DbError::Corrupt(format!("cannot start the checkpointer thread: {e}")))?;
    Ok((stop, handle))
}

impl Drop for Database {
    fn drop(&mut self) {
        // Closing the queue lets the Committer finish what is queued and exit.
        self.jobs.take();
        if let Some(handle) = self.committer.take() {
            let _ = handle.join();
        }
        if let Some((stop, handle)) = self.checkpointer.take() {
            drop(stop);
            let _ = handle.join();
        }
    }
}
