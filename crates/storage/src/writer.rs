//! [`Writer`]: the single read-write connection. It is created once and is not `Clone`, so
//! holding it is the capability to write; the database crate moves it into its Committer.
//!
//! Transactions are explicit: `begin` / `commit` / `rollback`, with savepoints so several
//! mutations can share one SQLite commit and still fail one at a time.

use std::os::raw::c_int;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{Connection, params};

use crate::checkpointer::WalProgress;
use crate::conn;
use crate::durability::Durability;
use crate::error::StorageError;
use crate::unavailable::Unavailable;

/// The one read-write connection.
pub struct Writer {
    conn: Connection,
    path: PathBuf,
}

impl conn::sealed::Connected for Writer {
    fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl conn::ReadRows for Writer {}

impl Writer {
    /// Opens the writer; after each commit it stores the WAL's length (in frames) in
    /// `wal_frames`, which tells the `Checkpointer` when there is enough to copy.
    pub(crate) fn open(
        path: &Path,
        wal_frames: Arc<AtomicU64>,
        durability: Durability,
    ) -> Result<Writer, StorageError> {
        let mut conn = Connection::open(path)?;
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
        Ok(Writer {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Whether a transaction is open. SQLite rolls a transaction back by itself after some
    /// failures (a full disk, an I/O error); the Committer checks this so that it never goes
    /// on writing outside the transaction it believes it is in.
    pub fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }

    /// Whether `error` means the database cannot be written for now (full disk, read-only
    /// file system, lock held by another process) rather than a fault of this server.
    pub fn unavailable(&self, error: &StorageError) -> Option<Unavailable> {
        Unavailable::of(error, &self.path)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn begin(&mut self) -> Result<(), StorageError> {
        self.execute_cached("BEGIN IMMEDIATE")
    }

    pub fn commit(&mut self) -> Result<(), StorageError> {
        self.execute_cached("COMMIT")
    }

    pub fn rollback(&mut self) -> Result<(), StorageError> {
        self.execute_cached("ROLLBACK")
    }

    /// Starts a nested unit that can be undone alone (one mutation inside a group commit).
    pub fn savepoint(&mut self) -> Result<(), StorageError> {
        self.execute_cached("SAVEPOINT mutation")
    }

    pub fn release_savepoint(&mut self) -> Result<(), StorageError> {
        self.execute_cached("RELEASE mutation")
    }

    pub fn rollback_to_savepoint(&mut self) -> Result<(), StorageError> {
        self.execute_cached("ROLLBACK TO mutation")?;
        self.execute_cached("RELEASE mutation")
    }

    /// Runs a parameterless statement through the statement cache: these run several times
    /// per mutation, and `execute_batch` would parse them every time.
    fn execute_cached(&mut self, sql: &str) -> Result<(), StorageError> {
        self.conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    }

    /// The last committed timestamp (or the one written in the open transaction).
    pub fn ts(&self) -> Result<u64, StorageError> {
        conn::read_ts(&self.conn)
    }

    pub fn set_ts(&mut self, ts: u64) -> Result<(), StorageError> {
        self.conn
            .prepare_cached("UPDATE _meta SET value = ?1 WHERE key = 'ts'")?
            .execute([ts as i64])?;
        Ok(())
    }

    pub fn create_table(&mut self, name: &str) -> Result<u32, StorageError> {
        self.conn
            .prepare_cached("INSERT INTO _tables (name) VALUES (?1)")?
            .execute([name])?;
        Ok(self.conn.last_insert_rowid() as u32)
    }

    pub fn create_index(
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
    pub fn drop_index(&mut self, index_id: u32) -> Result<(), StorageError> {
        self.conn
            .prepare_cached("DELETE FROM index_entries WHERE index_id = ?1")?
            .execute([index_id])?;
        self.conn
            .prepare_cached("DELETE FROM _indexes WHERE id = ?1")?
            .execute([index_id])?;
        Ok(())
    }

    /// Inserts or overwrites a document.
    pub fn put_document(
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

    pub fn delete_document(&mut self, id: &str) -> Result<(), StorageError> {
        self.conn
            .prepare_cached("DELETE FROM documents WHERE id = ?1")?
            .execute([id])?;
        Ok(())
    }

    pub fn insert_index_entry(
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

    pub fn delete_index_entry(&mut self, index_id: u32, key: &[u8]) -> Result<(), StorageError> {
        self.conn
            .prepare_cached("DELETE FROM index_entries WHERE index_id = ?1 AND key = ?2")?
            .execute(params![index_id, key])?;
        Ok(())
    }

    pub fn get_mutation_response(
        &self,
        session_id: &str,
        request_id: u64,
    ) -> Result<Option<conn::StoredResponse>, StorageError> {
        conn::get_mutation_response(&self.conn, session_id, request_id)
    }

    /// Records a mutation's response so a retry of the same request replays it.
    pub fn put_mutation_response(
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
    pub fn prune_mutation_responses(
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
        let next = if scanned.len() < limit {
            None
        } else {
            scanned
                .pop()
                .map(|((session, request), _)| (session, request as u64))
        };
        Ok((removed, next))
    }

    pub fn put_config(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO _config (key, value) VALUES (?1, ?2)")?
            .execute(params![key, value])?;
        Ok(())
    }

    pub fn delete_config(&mut self, key: &str) -> Result<(), StorageError> {
        self.conn
            .prepare_cached("DELETE FROM _config WHERE key = ?1")?
            .execute([key])?;
        Ok(())
    }

    /// Claims a one-time key (an upload URL's nonce) until `expires` (any unit the caller
    /// keeps to); `false` if it was claimed before. Claims roll back with the transaction.
    pub fn claim(&mut self, key: &str, expires: u64) -> Result<bool, StorageError> {
        let inserted = self
            .conn
            .prepare_cached("INSERT OR IGNORE INTO _claims (key, expires) VALUES (?1, ?2)")?
            // SQLite integers are signed: a far expiry (u64::MAX, "never") is stored as the
            // largest one rather than wrapping to a negative that pruning would delete.
            .execute(params![key, i64::try_from(expires).unwrap_or(i64::MAX)])?;
        Ok(inserted == 1)
    }

    /// Forgets claims that expired before `now`: an expired key is refused for its expiry.
    pub fn prune_claims(&mut self, now: u64) -> Result<usize, StorageError> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM _claims WHERE expires < ?1")?
            .execute([i64::try_from(now).unwrap_or(i64::MAX)])?)
    }

    /// Copies what is left of the WAL into the database file, between two transactions.
    /// While the writer does it no commit can append, so it completes (unless a reader
    /// holds an old snapshot) and the next commit starts the WAL over; see `Checkpointer`.
    pub fn checkpoint(&mut self) -> Result<WalProgress, StorageError> {
        crate::checkpointer::passive_checkpoint(&self.conn)
    }

    /// Copies the whole WAL into the database file and truncates the WAL to zero bytes, for
    /// a clean shutdown: the database file alone then holds every commit. Waits for readers
    /// (up to the busy timeout); `Ok(false)` when one still held an old snapshot.
    pub fn checkpoint_truncate(&mut self) -> Result<bool, StorageError> {
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
        Ok(busy == 0)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Order, ReadRows, Storage};

    #[test]
    fn writes_become_visible_to_new_snapshots_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (storage, mut writer) = Storage::open(&dir.path().join("db.sqlite3")).expect("open");
        writer.begin().expect("begin");
        let table = writer.create_table("todos").expect("table");
        let index = writer
            .create_index(table, "by_creation_time", "[]")
            .expect("index");
        writer.set_ts(5).expect("ts");
        writer.commit().expect("commit");

        let mut reader = storage.reader().expect("reader");
        assert_eq!(reader.begin().expect("snapshot"), 5);

        writer.begin().expect("begin");
        writer.put_document("a", table, "{}").expect("doc");
        writer
            .insert_index_entry(index, &[3, 1], "a")
            .expect("entry");
        writer.set_ts(6).expect("ts");
        writer.commit().expect("commit");

        assert!(
            reader.get_document("a").expect("read").is_none(),
            "old snapshot is stable"
        );
        reader.end();
        assert_eq!(reader.begin().expect("snapshot"), 6);
        let rows = reader.scan(index, &[], None, Order::Asc, 10).expect("scan");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].id, "a");
    }

    #[test]
    fn savepoints_undo_one_unit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_storage, mut writer) = Storage::open(&dir.path().join("db.sqlite3")).expect("open");
        writer.begin().expect("begin");
        writer.savepoint().expect("sp");
        writer.put_document("kept", 1, "{}").expect("doc");
        writer.release_savepoint().expect("release");
        writer.savepoint().expect("sp");
        writer.put_document("undone", 1, "{}").expect("doc");
        writer.rollback_to_savepoint().expect("rollback");
        writer.commit().expect("commit");
        assert!(writer.get_document("kept").expect("read").is_some());
        assert!(writer.get_document("undone").expect("read").is_none());
    }

    /// Pruning walks the table a slice at a time, removes only records older than the
    /// cutoff, and starts over at the end.
    #[test]
    fn pruning_walks_the_table_in_slices() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_storage, mut writer) = Storage::open(&dir.path().join("db.sqlite3")).expect("open");
        writer.begin().expect("begin");
        for session in ["a", "b", "c"] {
            for request in 0..10u64 {
                // Requests below 5 are old.
                let ts = if request < 5 { 100 } else { 1_000 };
                writer
                    .put_mutation_response(session, request, ts, "{}")
                    .expect("put");
            }
        }
        writer.commit().expect("commit");
        writer.begin().expect("begin");
        let mut cursor = None;
        let mut removed = 0;
        let mut slices = 0;
        loop {
            let (n, next) = writer
                .prune_mutation_responses(500, cursor.as_ref(), 7)
                .expect("prune");
            removed += n;
            slices += 1;
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        writer.commit().expect("commit");
        assert_eq!(removed, 15, "the old half of every session");
        assert_eq!(slices, 5, "30 records in slices of 7");
        for session in ["a", "b", "c"] {
            assert!(
                writer
                    .get_mutation_response(session, 4)
                    .expect("get")
                    .is_none()
            );
            assert!(
                writer
                    .get_mutation_response(session, 5)
                    .expect("get")
                    .is_some()
            );
        }
    }
}
