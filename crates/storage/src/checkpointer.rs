//! [`Checkpointer`]: copies the WAL back into the database file from its own connection.
//!
//! SQLite's automatic checkpoint would run inside whichever commit crosses the threshold,
//! stalling the single writer for the copy and its fsync. The writer disables it and the
//! database crate calls [`Checkpointer::run_if_needed`] from a background thread instead;
//! WAL checkpoints run concurrently with writers.

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

    /// Runs a passive checkpoint when the WAL holds more than `threshold` bytes; returns
    /// whether it ran. Passive: it never blocks readers or the writer.
    pub fn run_if_needed(&self, threshold: u64) -> Result<bool, StorageError> {
        if self.wal_bytes() <= threshold {
            return Ok(false);
        }
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(true)
    }
}
