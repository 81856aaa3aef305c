//! [`Checkpointer`]: copies the WAL back into the database file from its own connection.
//!
//! SQLite's automatic checkpoint would run inside whichever commit crosses the threshold,
//! stalling the single writer for the copy and its fsync. The writer disables it and the
//! database crate calls [`Checkpointer::checkpoint_if_behind`] from a background thread instead; those
//! passive checkpoints run concurrently with the writer.
//!
//! A passive checkpoint alone never lets the WAL shrink under a steady write load: SQLite
//! starts the WAL over from its beginning only once a checkpoint has copied *every* frame,
//! and a background copy always trails the frames appended meanwhile. The WAL file then grows
//! without bound (gigabytes within seconds under a benchmark) and every append pays for new
//! file blocks. So the background pass reports [`WalProgress`], and once the WAL is long the
//! writer copies the short remainder itself between two commits ([`crate::WriteRows::checkpoint`]),
//! after which the next commit restarts the WAL.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;

use crate::error::StorageError;

pub struct Checkpointer {
    conn: Connection,
    /// The WAL's length after the writer's last commit (see `Writer::open`).
    wal_frames: Arc<AtomicU64>,
    /// Frames of the current WAL already copied by this checkpointer.
    backfilled: u64,
}

impl Checkpointer {
    pub(crate) fn open(
        path: &Path,
        wal_frames: Arc<AtomicU64>,
    ) -> Result<Checkpointer, StorageError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(Checkpointer {
            conn,
            wal_frames,
            backfilled: 0,
        })
    }

    /// Runs a passive checkpoint: it never blocks readers or the writer.
    pub fn checkpoint(&mut self) -> Result<WalProgress, StorageError> {
        let progress = passive_checkpoint(&self.conn)?;
        self.backfilled = progress.checkpointed;
        Ok(progress)
    }

    /// Runs a passive checkpoint when at least `min_frames` frames were committed since the
    /// last copy, like SQLite's own automatic checkpoint; `None` when there was too little.
    /// Copying each small commit at once would put an fsync of the database file beside
    /// nearly every commit, and a commit waits for the file system's journal behind it
    /// (a lone HTTP mutation went from 0.3 to 2.5 ms).
    pub fn checkpoint_if_behind(
        &mut self,
        min_frames: u64,
    ) -> Result<Option<WalProgress>, StorageError> {
        let frames = self.wal_frames.load(Ordering::Acquire);
        if frames < self.backfilled {
            // The WAL started over since the last copy.
            self.backfilled = 0;
        }
        if frames - self.backfilled < min_frames {
            return Ok(None);
        }
        self.checkpoint().map(Some)
    }
}

/// Where the WAL stands after a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalProgress {
    /// Frames in the WAL since it last started over.
    pub frames: u64,
    /// How many of them are copied into the database file.
    pub checkpointed: u64,
}

impl WalProgress {
    /// No log at all (an engine without one), which is trivially complete.
    pub const EMPTY: WalProgress = WalProgress {
        frames: 0,
        checkpointed: 0,
    };

    /// Every frame is copied: the next commit starts the WAL over from its beginning
    /// (unless a reader still uses an old snapshot).
    pub fn is_complete(&self) -> bool {
        self.checkpointed >= self.frames
    }
}

pub(crate) fn passive_checkpoint(conn: &Connection) -> Result<WalProgress, StorageError> {
    let (frames, checkpointed) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    })?;
    // SQLite reports -1 for both when the database is not in WAL mode.
    Ok(WalProgress {
        frames: frames.max(0) as u64,
        checkpointed: checkpointed.max(0) as u64,
    })
}
