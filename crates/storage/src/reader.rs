//! [`SqliteReader`]: SQLite's read-only connections and their snapshot transactions.
//!
//! [`SqliteReader::begin`] starts with `BEGIN` and immediately reads the commit timestamp: in WAL
//! mode the first read fixes the snapshot, so every later read until [`SqliteReader::end`] sees
//! exactly the commit `begin` reported. Keep snapshots short: they hold back checkpoints.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::conn;
use crate::error::StorageError;
use crate::rows::SnapshotRows;

/// One read-only connection.
pub(crate) struct SqliteReader {
    conn: Connection,
    in_snapshot: bool,
}

impl SqliteReader {
    pub(crate) fn open(path: &Path) -> Result<SqliteReader, StorageError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "cache_size", -16_000)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(SqliteReader {
            conn,
            in_snapshot: false,
        })
    }
}

impl SnapshotRows for SqliteReader {
    /// Writes a consistent copy of the database as of now into the new file `dest`
    /// (`VACUUM INTO`: a read transaction of its own, so commits go on meanwhile).
    fn vacuum_into(&mut self, dest: &Path) -> Result<(), StorageError> {
        if self.in_snapshot {
            self.end();
        }
        let dest = dest.to_str().ok_or_else(|| StorageError::Io {
            path: dest.to_path_buf(),
            source: std::io::Error::other("the backup path is not valid UTF-8"),
        })?;
        self.conn.execute("VACUUM INTO ?1", [dest])?;
        Ok(())
    }

    /// Starts a snapshot read and returns the commit timestamp it reflects. Every read until
    /// [`SqliteReader::end`] sees exactly that commit.
    fn begin(&mut self) -> Result<u64, StorageError> {
        if self.in_snapshot {
            self.end();
        }
        self.conn.execute_batch("BEGIN")?;
        match conn::read_ts(&self.conn) {
            Ok(ts) => {
                self.in_snapshot = true;
                Ok(ts)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Ends the snapshot (a no-op when none is open).
    fn end(&mut self) {
        if self.in_snapshot {
            self.in_snapshot = false;
            if let Err(e) = self.conn.execute_batch("COMMIT") {
                tracing::warn!(error = %e, "ending a read snapshot failed");
            }
        }
    }
}

conn::sqlite_read_rows!(SqliteReader);

impl Drop for SqliteReader {
    fn drop(&mut self) {
        self.end();
    }
}
