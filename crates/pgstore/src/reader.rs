//! [`PgReader`]: a read-only connection. A snapshot is a `REPEATABLE READ` transaction whose
//! first statement reads the commit timestamp: PostgreSQL takes the snapshot at that first
//! statement, so every later read until `end` sees exactly the commit `begin` reported.

use postgres::Config;
use storage::{SnapshotRows, StorageError};

use crate::conn::PgConn;

pub(crate) struct PgReader {
    conn: PgConn,
    in_snapshot: bool,
}

crate::conn::pg_read_rows!(PgReader);

impl PgReader {
    /// The connection (a reader holds nothing back).
    pub(crate) fn rows(&self) -> Result<&PgConn, StorageError> {
        Ok(&self.conn)
    }

    pub(crate) fn open(config: &Config) -> Result<PgReader, StorageError> {
        Ok(PgReader {
            conn: PgConn::connect(config)?,
            in_snapshot: false,
        })
    }
}

impl SnapshotRows for PgReader {
    fn begin(&mut self) -> Result<u64, StorageError> {
        if self.in_snapshot {
            self.end();
        }
        const BEGIN: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
        if self.conn.is_closed() {
            self.conn.reconnect()?;
        }
        if let Err(e) = self.conn.batch(BEGIN) {
            // A connection the server cut since its last use (a restart) shows only now;
            // nothing was read yet, so a new connection can take over.
            if !self.conn.is_closed() {
                return Err(e);
            }
            self.conn.reconnect()?;
            self.conn.batch(BEGIN)?;
        }
        match self.conn.read_ts() {
            Ok(ts) => {
                self.in_snapshot = true;
                Ok(ts)
            }
            Err(e) => {
                let _ = self.conn.batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn end(&mut self) {
        if self.in_snapshot {
            self.in_snapshot = false;
            if let Err(e) = self.conn.batch("COMMIT") {
                tracing::warn!(error = %e, "ending a read snapshot failed");
            }
        }
    }
}

impl Drop for PgReader {
    fn drop(&mut self) {
        self.end();
    }
}
