//! [`Checkpointer`]: copies the WAL back into the database file from its own connection.
//!
//! SQLite's automatic checkpoint would run inside whichever commit crosses the threshold,
//! stalling the single writer for the copy and its fsync. The writer disables it and the
//! database crate calls [`Checkpointer::checkpoint`] from a background thread instead; those
//! passive checkpoints run concurrently with the writer.
//!
//! A passive checkpoint alone never lets the WAL shrink under a steady write load: SQLite
//! starts the WAL over from its beginning only once a checkpoint has copied *every* frame,
//! and a background copy always trails the frames appended meanwhile. The WAL file then grows
//! without bound (gigabytes within seconds under a benchmark) and every append pays for new
//! file blocks. So the background pass reports [`WalProgress`], and once the WAL is long the
//! writer copies the short remainder itself between two commits ([`crate::Writer::checkpoint`]),
//! after which the next commit restarts the WAL.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::error::StorageError;

pub struct Checkpointer {
    conn: Connection,
    wal: PathBuf,
}

impl Checkpointer {
    pub(crate) fn open(path: &Path) -> Result<Checkpointer, StorageError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        Ok(Checkpointer {
            conn,
            wal: PathBuf::from(wal),
        })
    }

    /// Size of the WAL file in bytes (0 when there is none).
    pub fn wal_bytes(&self) -> u64 {
        std::fs::metadata(&self.wal).map_or(0, |m| m.len())
    }

    /// Runs a passive checkpoint: it never blocks readers or the writer.
    pub fn checkpoint(&self) -> Result<WalProgress, StorageError> {
        passive_checkpoint(&self.conn)
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
