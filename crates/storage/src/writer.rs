//! [`SqliteWriter`]: SQLite's one read-write connection, the [`WriteRows`] of a SQLite
//! database. It is created once by `Storage::open` and is not `Clone`, so holding it is the
//! capability to write; the database crate moves it into its Committer.

use std::os::raw::c_int;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{Connection, OpenFlags, params};

use crate::checkpointer::WalProgress;
use crate::conn;
use crate::durability::Durability;
use crate::error::StorageError;
use crate::rows::WriteRows;
use crate::unavailable::Unavailable;

/// The one read-write connection.
pub(crate) struct SqliteWriter {
    conn: Connection,
    path: PathBuf,
}

conn::sqlite_read_rows!(SqliteWriter);

impl SqliteWriter {
    /// Opens the writer; after each commit it stores the WAL's length (in frames) in
    /// `wal_frames`, which tells the `Checkpointer` when there is enough to copy.
    pub(crate) fn open(
        path: &Path,
        wal_frames: Arc<AtomicU64>,
        durability: Durability,
    ) -> Result<SqliteWriter, StorageError> {
        // The writer alone appends to the WAL; its VFS writes a commit's frames at once.
        let vfs = crate::wal_vfs::register()?;
        let mut conn = Connection::open_with_flags_and_vfs(path, OpenFlags::default(), vfs)?;
        conn::configure(&conn)?;
        conn.pragma_update(None, "synchronous", durability.pragma())?;
        // Checkpoints run on their own connection (see `Checkpointer`), so a commit never
        // waits for the WAL to be copied into the database file. (This pragma installs a WAL
        // hook of its own, so it must come before ours.)
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, frames: c_int| {
            wal_frames.store(u64::try_from(frames).unwrap_or(0), Ordering::Release);
            Ok(())
        }))?;
        // Outside `begin`/`commit`: each statement commits on its own (autocommit), and all
        // of them only create what does not exist yet.
        conn.execute_batch(conn::SCHEMA_SQL)?;
        Ok(SqliteWriter {
            conn,
            path: path.to_path_buf(),
        })
    }

    #[cfg(test)]
    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Runs a parameterless statement through the statement cache: these run several times
    /// per mutation, and `execute_batch` would parse them every time.
    fn execute_cached(&mut self, sql: &str) -> Result<(), StorageError> {
        self.conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    }
}

impl WriteRows for SqliteWriter {
    /// Whether a transaction is open. SQLite rolls a transaction back by itself after some
    /// failures (a full disk, an I/O error); the Committer checks this so that it never goes
    /// on writing outside the transaction it believes it is in.
    fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }

    /// Whether `error` means the database cannot be written for now (full disk, read-only
    /// file system, lock held by another process) rather than a fault of this server.
    fn unavailable(&self, error: &StorageError) -> Option<Unavailable> {
        error.unavailable(&self.path)
    }

    fn begin(&mut self) -> Result<(), StorageError> {
        self.execute_cached("BEGIN IMMEDIATE")
    }

    fn commit(&mut self) -> Result<(), StorageError> {
        self.execute_cached("COMMIT")
    }

    fn rollback(&mut self) -> Result<(), StorageError> {
        self.execute_cached("ROLLBACK")
    }

    /// Starts a nested unit that can be undone alone (one mutation inside a group commit).
    fn savepoint(&mut self) -> Result<(), StorageError> {
        self.execute_cached("SAVEPOINT mutation")
    }

    fn release_savepoint(&mut self) -> Result<(), StorageError> {
        self.execute_cached("RELEASE mutation")
    }

    fn rollback_to_savepoint(&mut self) -> Result<(), StorageError> {
        self.execute_cached("ROLLBACK TO mutation")?;
        self.execute_cached("RELEASE mutation")
    }

    /// The last committed timestamp (or the one written in the open transaction).
    fn ts(&self) -> Result<u64, StorageError> {
        conn::read_ts(&self.conn)
    }

    fn set_ts(&mut self, ts: u64) -> Result<(), StorageError> {
        self.conn
            .prepare_cached("UPDATE _meta SET value = ?1 WHERE key = 'ts'")?
            .execute([ts as i64])?;
        Ok(())
    }

    fn create_table(&mut self, name: &str) -> Result<u32, StorageError> {
        self.conn
            .prepare_cached("INSERT INTO _tables (name) VALUES (?1)")?
            .execute([name])?;
        Ok(self.conn.last_insert_rowid() as u32)
    }

    fn create_index(
        &mut self,
        table_number: u32,
        name: &str,
        fields_json: &str,
    ) -> Result<u32, StorageError> {
        self.conn
            .prepare_cached(
                "INSERT INTO _indexes (table_number, name, fields) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![table_number, name, fields_json])?;
        Ok(self.conn.last_insert_rowid() as u32)
    }

    /// Removes an index and all its entries.
    fn drop_index(&mut self, index_id: u32) -> Result<(), StorageError> {
        self.conn
            .prepare_cached("DELETE FROM index_entries WHERE index_id = ?1")?
            .execute([index_id])?;
        self.conn
            .prepare_cached("DELETE FROM _indexes WHERE id = ?1")?
            .execute([index_id])?;
        Ok(())
    }

    /// Inserts or overwrites a document.
    fn put_document(
        &mut self,
        id: &str,
        table_number: u32,
        value: &str,
    ) -> Result<(), StorageError> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO documents (id, table_number, value) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![id, table_number, value])?;
        Ok(())
    }

    fn delete_document(&mut self, id: &str) -> Result<(), StorageError> {
        self.conn
            .prepare_cached("DELETE FROM documents WHERE id = ?1")?
            .execute([id])?;
        Ok(())
    }

    fn insert_index_entry(
        &mut self,
        index_id: u32,
        key: &[u8],
        id: &str,
    ) -> Result<(), StorageError> {
        self.conn
            .prepare_cached("INSERT INTO index_entries (index_id, key, id) VALUES (?1, ?2, ?3)")?
            .execute(params![index_id, key, id])?;
        Ok(())
    }

    fn delete_index_entry(&mut self, index_id: u32, key: &[u8]) -> Result<(), StorageError> {
        self.conn
            .prepare_cached("DELETE FROM index_entries WHERE index_id = ?1 AND key = ?2")?
            .execute(params![index_id, key])?;
        Ok(())
    }

    /// Records a mutation's response so a retry of the same request replays it.
    fn put_mutation_response(
        &mut self,
        session_id: &str,
        request_id: u64,
        ts: u64,
        response: &str,
    ) -> Result<(), StorageError> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO _mutations (session_id, request_id, ts, response) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![session_id, request_id as i64, ts as i64, response])?;
        Ok(())
    }

    /// Forgets the de-duplication records older than `before_ts` among the next `limit`
    /// records in key order after `after` (from the start when `None`). Returns how many were
    /// removed and where the next call goes on (`None` once the end was reached). The table is
    /// keyed by session and request, not by time, so a prune walks it a slice at a time: the
    /// work of each call is bounded whatever the table's size.
    fn prune_mutation_responses(
        &mut self,
        before_ts: u64,
        after: Option<&(String, u64)>,
        limit: usize,
    ) -> Result<(usize, Option<(String, u64)>), StorageError> {
        let (session, request) = after.map_or(("", -1), |(s, r)| (s.as_str(), *r as i64));
        let mut scanned = Vec::with_capacity(limit.min(4096));
        {
            let mut select = self.conn.prepare_cached(
                "SELECT session_id, request_id, ts FROM _mutations WHERE (session_id, request_id) > (?1, ?2) ORDER BY session_id, request_id LIMIT ?3",
            )?;
            let mut rows = select.query(params![session, request, limit as i64])?;
            while let Some(row) = rows.next()? {
                let key: (String, i64) = (row.get(0)?, row.get(1)?);
                let ts: i64 = row.get(2)?;
                scanned.push((key, ts));
            }
        }
        let mut removed = 0;
        let mut delete = self
            .conn
            .prepare_cached("DELETE FROM _mutations WHERE session_id = ?1 AND request_id = ?2")?;
        for ((session, request), ts) in &scanned {
            if (*ts as u64) < before_ts {
                removed += delete.execute(params![session, request])?;
            }
        }
        Ok((removed, crate::rows::next_prune_slice(scanned, limit)))
    }

    fn put_config(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO _config (key, value) VALUES (?1, ?2)")?
            .execute(params![key, value])?;
        Ok(())
    }

    fn delete_config(&mut self, key: &str) -> Result<(), StorageError> {
        self.conn
            .prepare_cached("DELETE FROM _config WHERE key = ?1")?
            .execute([key])?;
        Ok(())
    }

    /// Claims a one-time key (an upload URL's nonce) until `expires` (any unit the caller
    /// keeps to); `false` if it was claimed before. Claims roll back with the transaction.
    fn claim(&mut self, key: &str, expires: u64) -> Result<bool, StorageError> {
        let inserted = self
            .conn
            .prepare_cached("INSERT OR IGNORE INTO _claims (key, expires) VALUES (?1, ?2)")?
            // SQLite integers are signed: a far expiry (u64::MAX, "never") is stored as the
            // largest one rather than wrapping to a negative that pruning would delete.
            .execute(params![key, i64::try_from(expires).unwrap_or(i64::MAX)])?;
        Ok(inserted == 1)
    }

    /// Forgets claims that expired before `now`: an expired key is refused for its expiry.
    fn prune_claims(&mut self, now: u64) -> Result<usize, StorageError> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM _claims WHERE expires < ?1")?
            .execute([i64::try_from(now).unwrap_or(i64::MAX)])?)
    }

    /// Copies what is left of the WAL into the database file, between two transactions.
    /// While the writer does it no commit can append, so it completes (unless a reader
    /// holds an old snapshot) and the next commit starts the WAL over; see `Checkpointer`.
    fn checkpoint(&mut self) -> Result<WalProgress, StorageError> {
        crate::checkpointer::passive_checkpoint(&self.conn)
    }

    /// Copies the whole WAL into the database file and truncates the WAL to zero bytes, for
    /// a clean shutdown: the database file alone then holds every commit. Waits for readers
    /// (up to the busy timeout); `Ok(false)` when one still held an old snapshot.
    fn checkpoint_truncate(&mut self) -> Result<bool, StorageError> {
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
        Ok(busy == 0)
    }
}
