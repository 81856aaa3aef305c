//! [`Writeback`]: starts a large upload's disk writes while its bytes are still arriving.
//!
//! A blob is fsynced before it is recorded, and an fsync has to write every page still dirty.
//! Left to the end, that is the whole file: for 100 MiB, about 60 ms here after the last byte.
//! Past every [`STEP`] bytes the writer asks a helper thread to `fdatasync` a clone of the
//! file, so the disk writes what has arrived so far while the rest is still being received,
//! and the final fsync in `BlobWriter::finish` has only the tail left to write. Requests that
//! arrive while a sync runs are folded into the next one; the thread starts only for blobs
//! larger than one step (small files never pay for it) and ends when the writer is dropped.
//!
//! The helper's syncs are an optimisation only: their errors are logged, never relied on, and
//! the final fsync decides whether the blob is stored.

use std::fs::File;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

/// Bytes written between two early syncs.
pub(crate) const STEP: u64 = 16 << 20;

/// The helper thread of one blob, started by the first [`Writeback::note`] past [`STEP`].
#[derive(Default)]
pub(crate) struct Writeback {
    /// Wakes the helper; `None` until it starts (or when it could not be started).
    wake: Option<SyncSender<()>>,
    /// Bytes written when the last sync was asked for.
    asked_at: u64,
    /// Starting the helper failed once: do not try again for this blob.
    failed: bool,
}

impl Writeback {
    /// Called after bytes reach the file (not only its buffer): asks for a sync every
    /// [`STEP`] bytes.
    pub(crate) fn note(&mut self, file: &File, written: u64) {
        if self.failed || written < self.asked_at + STEP {
            return;
        }
        self.asked_at = written;
        if self.wake.is_none() {
            self.wake = start(file);
            self.failed = self.wake.is_none();
        }
        if let Some(wake) = &self.wake {
            // Full: a sync is already pending and will cover these bytes too.
            if let Err(TrySendError::Disconnected(())) = wake.try_send(()) {
                self.wake = None;
                self.failed = true;
            }
        }
    }
}

/// Starts the helper on a clone of the file; `None` when the clone or the thread fails.
fn start(file: &File) -> Option<SyncSender<()>> {
    let clone = file
        .try_clone()
        .map_err(|e| tracing::debug!(error = %e, "no early writeback for this upload"))
        .ok()?;
    let (wake, woken) = sync_channel::<()>(1);
    let spawned = std::thread::Builder::new()
        .name("blob-writeback".into())
        .spawn(move || {
            while woken.recv().is_ok() {
                if let Err(e) = clone.sync_data() {
                    tracing::debug!(error = %e, "an early sync of an upload failed; the final fsync decides");
                    return;
                }
            }
        });
    match spawned {
        Ok(_) => Some(wake),
        Err(e) => {
            tracing::debug!(error = %e, "no early writeback for this upload");
            None
        }
    }
}
