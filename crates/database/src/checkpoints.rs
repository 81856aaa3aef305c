//! [`CheckpointThread`]: the background thread that copies the WAL into the database file, so
//! no commit waits for that copy (see `storage::Checkpointer` for why, and for the WAL
//! restart the Committer finishes when this thread reports a long WAL).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use storage::Storage;

use crate::error::DbError;

/// WAL length (in frames, one page each) past which the Committer finishes a checkpoint
/// itself so that the WAL starts over: about 16 MB with 4 KiB pages.
const RESTART_WAL_AT_FRAMES: u64 = 4096;
/// How often the background thread looks at the WAL. Often enough that the tail the
/// Committer copies itself before a WAL restart stays small (a few ms with its fsync at
/// ~25,000 commits/s; every 100 ms it was 6-20 ms).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(20);
/// Frames committed since the last copy before the background thread copies them (SQLite's
/// own automatic checkpoint threshold).
const CHECKPOINT_AT_FRAMES: u64 = 1000;
/// Pause after a failed checkpoint (a full disk fails them all until space returns).
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The running checkpoint thread; dropping it stops the thread and waits for it.
pub(crate) struct CheckpointThread {
    /// Dropping the sender wakes the thread and tells it to stop.
    stop: Option<Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl CheckpointThread {
    /// Starts the thread, for an engine with a local WAL (SQLite; `None` for others). It
    /// sets `restart_due` when the WAL has grown past [`RESTART_WAL_AT_FRAMES`], and the
    /// Committer clears it once the WAL has started over.
    pub(crate) fn start(
        storage: &Storage,
        restart_due: Arc<AtomicBool>,
    ) -> Result<Option<CheckpointThread>, DbError> {
        let Some(mut checkpointer) = storage.checkpointer()? else {
            return Ok(None);
        };
        let (stop, stopped) = channel::<()>();
        let handle = std::thread::Builder::new()
            .name("checkpointer".into())
            .spawn(move || {
                let mut retry_at: Option<Instant> = None;
                // Wakes every CHECKPOINT_EVERY, or at once when the Database is dropped.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                    // The Committer finishes this one; a pass here would only make its attempt
                    // find the checkpoint lock taken.
                    if restart_due.load(Ordering::Acquire) {
                        continue;
                    }
                    if retry_at.is_some_and(|at| Instant::now() < at) {
                        continue;
                    }
                    match checkpointer.checkpoint_if_behind(CHECKPOINT_AT_FRAMES) {
                        Ok(Some(progress)) if progress.frames >= RESTART_WAL_AT_FRAMES => {
                            restart_due.store(true, Ordering::Release);
                            retry_at = None;
                        }
                        Ok(_) => retry_at = None,
                        Err(e) => {
                            // A full disk fails every attempt: wait before the next one, and
                            // say so once per failure spell rather than every 20 ms.
                            if retry_at.is_none() {
                                tracing::warn!(error = %e, "WAL checkpoint failed; retrying every {} s", RETRY_AFTER.as_secs());
                            }
                            retry_at = Some(Instant::now() + RETRY_AFTER);
                        }
                    }
                }
                // Leave a small WAL behind on shutdown.
                let _ = checkpointer.checkpoint();
            })
            .map_err(|e| DbError::internal(format!("cannot start the checkpointer thread: {e}")))?;
        Ok(Some(CheckpointThread {
            stop: Some(stop),
            handle: Some(handle),
        }))
    }
}

impl Drop for CheckpointThread {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
