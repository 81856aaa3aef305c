//! Read-only connections and their snapshot transactions.
//!
//! [`Reader::begin`] starts with `BEGIN` and immediately reads the commit timestamp: in WAL
//! mode the first read fixes the snapshot, so every later read until [`Reader::end`] sees
//! exactly the commit `begin` reported. Keep snapshots short: they hold back checkpoints.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::conn;
use crate::error::StorageError;

/// One read-only connection.
pub struct Reader {
    conn: Connection,
    in_snapshot: bool,
}

impl Reader {
    pub(crate) fn open(path: &Path) -> Result<Reader, StorageError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "cache_size", -16_000)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Reader {
            conn,
            in_snapshot: false,
        })
    }

    /// Writes a consistent copy of the database as of now into the new file `dest`
    /// (`VACUUM INTO`: a read transaction of its own, so commits go on meanwhile).
    pub fn vacuum_into(&mut self, dest: &Path) -> Result<(), StorageError> {
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
    /// [`Reader::end`] sees exactly that commit.
    pub fn begin(&mut self) -> Result<u64, StorageError> {
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
    pub fn end(&mut self) {
        if self.in_snapshot {
            self.in_snapshot = false;
            if let Err(e) = self.conn.execute_batch("COMMIT") {
                tracing::warn!(error = %e, "ending a read snapshot failed");
            }
        }
    }
}

impl conn::sealed::Connected for Reader {
    fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl conn::ReadRows for Reader {}

impl Drop for Reader {
    fn drop(&mut self) {
        self.end();
    }
}
