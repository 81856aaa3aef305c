//! [`PgWriter`]: a node's one connection that writes.
//!
//! Several nodes may write to one database, one transaction at a time: `begin` locks the
//! commit-timestamp row of `_meta` (`SELECT ... FOR UPDATE`) and holds it until the
//! transaction ends, so the transactions of all nodes form one serial history, each reads
//! the latest commit's timestamp under the lock and picks a larger one, and a node cut off
//! from the database cannot commit at all (it never forks history). A node that dies inside
//! a transaction loses its connection, and PostgreSQL rolls back and frees the lock; one that
//! goes silent inside a transaction is cut off after [`IDLE_IN_TRANSACTION`]. A writer whose
//! connection dropped reconnects before its next transaction.
//!
//! Writes that need no answer are held back and sent together before the next read or with
//! the `COMMIT` (`deferred.rs`): a mutation costs one round trip, not one per statement. So
//! a failing write (a duplicate key) is reported by the next read or by `commit`, not by the
//! write itself; the Committer fails the whole batch on any storage error either way.
//!
//! PostgreSQL aborts a transaction at its first failed statement and later turns `COMMIT`
//! into a silent `ROLLBACK`; the writer keeps track, so a failed transaction is never
//! reported as committed.

use std::cell::{Cell, RefCell};

use postgres::Config;
use storage::{StorageError, StoredResponse, Unavailable, WriteRows};

use crate::conn::{ENGINE, PgConn, missing};
use crate::deferred::{Deferred, Literal, RowKind};

/// How long a writer may sit inside a transaction without a statement before PostgreSQL ends
/// its session (and frees the commit lock for the other nodes). Transactions here run for
/// milliseconds; a mutation's script runs within its own time limit, well below this.
pub(crate) const IDLE_IN_TRANSACTION: &str = "10s";

/// Starts a transaction and takes the commit lock, in one round trip.
const BEGIN: &str = "BEGIN; SELECT 1 FROM _meta WHERE key = 'ts' FOR UPDATE";

/// Savepoints per transaction past which PostgreSQL's per-backend cache of subtransactions
/// overflows and every concurrent snapshot pays for looking them up (`PGPROC_MAX_CACHED_SUBXIDS`).
const SAVEPOINTS_PER_TRANSACTION: usize = 64;

pub(crate) struct PgWriter {
    conn: PgConn,
    /// Writes not sent yet (see the module docs).
    pending: RefCell<Deferred>,
    /// A transaction is open (from `begin` to `commit`/`rollback`).
    in_transaction: Cell<bool>,
    /// A savepoint is open.
    in_savepoint: Cell<bool>,
    /// A statement failed since the savepoint was taken: only `rollback_to_savepoint` (or a
    /// rollback) makes the transaction usable again.
    savepoint_failed: Cell<bool>,
    /// A statement failed outside any savepoint: only a rollback ends this transaction.
    transaction_failed: Cell<bool>,
}

// The writer's reads go through its connection, inside the open transaction, after what is
// held back (`rows` sends it first).
crate::conn::pg_read_rows!(PgWriter);

impl PgWriter {
    /// Connects and creates the tables that do not exist yet (under a lock, so nodes
    /// starting together do not race to create them).
    pub(crate) fn open(config: &Config) -> Result<PgWriter, StorageError> {
        let conn = connect(config)?;
        conn.batch(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({LAYOUT_LOCK}); {} COMMIT;",
            crate::conn::SCHEMA_SQL
        ))?;
        Ok(PgWriter {
            conn,
            pending: RefCell::default(),
            in_transaction: Cell::new(false),
            in_savepoint: Cell::new(false),
            savepoint_failed: Cell::new(false),
            transaction_failed: Cell::new(false),
        })
    }

    /// The connection, once everything held back is sent: what every read and every
    /// statement with an answer goes through.
    pub(crate) fn rows(&self) -> Result<&PgConn, StorageError> {
        let sql = self.pending.borrow_mut().take();
        if !sql.is_empty() {
            self.track(|c| c.batch(&sql))?;
        }
        Ok(&self.conn)
    }

    /// Holds back a statement without an answer.
    fn defer(&self, sql: &str, values: &[Literal<'_>]) {
        self.pending.borrow_mut().push(sql, values);
    }

    /// Holds back one row of a statement without an answer, to be sent with the batch's
    /// other rows of its kind (`deferred.rs`).
    fn defer_row(&self, kind: RowKind, values: &[Literal<'_>]) {
        self.pending.borrow_mut().push_row(kind, values);
    }

    /// Runs `f`, remembering a failure for `commit` (see the module docs).
    fn track<T>(
        &self,
        f: impl FnOnce(&PgConn) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let result = f(&self.conn);
        if result.is_err() && self.in_transaction.get() {
            if self.in_savepoint.get() {
                self.savepoint_failed.set(true);
            } else {
                self.transaction_failed.set(true);
            }
        }
        result
    }

    /// Starts a transaction with `sql` (a `BEGIN` and what goes with it); the rows it read.
    fn start(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, StorageError> {
        self.end_transaction();
        if self.conn.is_closed() {
            self.reconnect()?;
        }
        let rows = match self.conn.text_rows(sql) {
            Ok(rows) => rows,
            // A connection the server cut since the last commit (a restart) shows only now;
            // no transaction was open, so a new connection can take over.
            Err(_) if self.conn.is_closed() => {
                self.reconnect()?;
                self.conn.text_rows(sql)?
            }
            Err(e) => return Err(e),
        };
        self.in_transaction.set(true);
        Ok(rows)
    }

    /// Replaces a dropped connection.
    fn reconnect(&mut self) -> Result<(), StorageError> {
        self.conn.reconnect()?;
        configure(&self.conn)
    }

    fn end_transaction(&mut self) {
        self.pending.borrow_mut().clear();
        self.in_transaction.set(false);
        self.in_savepoint.set(false);
        self.savepoint_failed.set(false);
        self.transaction_failed.set(false);
    }
}

/// The advisory lock taken while creating the tables: "pulsebas" in ASCII, unlikely to
/// collide with the locks of other software sharing the database.
const LAYOUT_LOCK: i64 = 0x7075_6c73_6562_6173;

fn connect(config: &Config) -> Result<PgConn, StorageError> {
    let conn = PgConn::connect(config)?;
    configure(&conn)?;
    Ok(conn)
}

fn configure(conn: &PgConn) -> Result<(), StorageError> {
    // Held-back values are literals whose backslashes must mean themselves (`deferred.rs`).
    conn.batch(&format!(
        "SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION}'; SET standard_conforming_strings = on"
    ))
}

impl WriteRows for PgWriter {
    fn in_transaction(&self) -> bool {
        self.in_transaction.get() && !self.conn.is_closed()
    }

    fn unavailable(&self, error: &StorageError) -> Option<Unavailable> {
        match error {
            StorageError::Engine { unavailable, .. } => *unavailable,
            _ => None,
        }
    }

    fn shared(&self) -> bool {
        true
    }

    fn log_commit(&mut self, ts: u64, record: &[u8]) -> Result<(), StorageError> {
        // PostgreSQL sends the announcement when (and only if) this transaction commits, on
        // the channel the feeds listen to (`feed::CHANNEL`).
        self.defer(
            "INSERT INTO _commits (ts, writes) VALUES ($1, $2); NOTIFY pulsebase_commits",
            &[Literal::Int(ts as i64), Literal::Bytes(record)],
        );
        Ok(())
    }

    fn prune_commit_log(&mut self, before_ts: u64) -> Result<usize, StorageError> {
        let before = i64::try_from(before_ts).unwrap_or(i64::MAX);
        let removed = self
            .rows()?
            .execute("DELETE FROM _commits WHERE ts < $1", &[&before]);
        Ok(self.track(|_| removed)? as usize)
    }

    fn savepoints_per_transaction(&self) -> usize {
        SAVEPOINTS_PER_TRANSACTION
    }

    fn begin(&mut self) -> Result<(), StorageError> {
        self.start(BEGIN).map(|_| ())
    }

    fn begin_shared(&mut self, config_key: &str) -> Result<(u64, Option<String>), StorageError> {
        // The BEGIN, the commit lock and both reads in one round trip.
        let mut key = Deferred::default();
        key.push(
            "BEGIN; SELECT m.value, c.value FROM _meta m LEFT JOIN _config c ON c.key = $1 \
             WHERE m.key = 'ts' FOR UPDATE OF m",
            &[Literal::Text(config_key)],
        );
        let rows = self.start(&key.take())?;
        let row = rows
            .first()
            .ok_or_else(|| missing("the commit timestamp row of _meta"))?;
        let ts = row
            .first()
            .and_then(|v| v.as_deref())
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| missing("a readable commit timestamp"))?;
        Ok((ts as u64, row.get(1).cloned().flatten()))
    }

    fn commit(&mut self) -> Result<(), StorageError> {
        if self.transaction_failed.get() || self.savepoint_failed.get() {
            self.pending.borrow_mut().clear();
            let rolled_back = self.conn.batch("ROLLBACK");
            self.end_transaction();
            rolled_back?;
            return Err(StorageError::Engine {
                engine: ENGINE,
                message: "a statement of this transaction failed, so it was rolled back".into(),
                unavailable: None,
            });
        }
        // What is held back and the COMMIT, in one round trip; a failure before the COMMIT
        // leaves the transaction aborted, so it is rolled back.
        let mut sql = self.pending.borrow_mut().take();
        sql.push_str("COMMIT");
        let committed = self.conn.batch(&sql);
        if committed.is_err() && !self.conn.is_closed() {
            let _ = self.conn.batch("ROLLBACK");
        }
        self.end_transaction();
        committed
    }

    fn rollback(&mut self) -> Result<(), StorageError> {
        self.pending.borrow_mut().clear();
        let rolled_back = self.conn.batch("ROLLBACK");
        self.end_transaction();
        rolled_back
    }

    fn savepoint(&mut self) -> Result<(), StorageError> {
        self.pending.borrow_mut().savepoint();
        self.in_savepoint.set(true);
        self.savepoint_failed.set(false);
        Ok(())
    }

    fn release_savepoint(&mut self) -> Result<(), StorageError> {
        self.in_savepoint.set(false);
        if self.savepoint_failed.get() {
            self.transaction_failed.set(true);
            return Err(StorageError::Engine {
                engine: ENGINE,
                message: "a statement since the savepoint failed; roll back to it instead".into(),
                unavailable: None,
            });
        }
        if !self.pending.borrow_mut().release_savepoint() {
            self.defer("RELEASE SAVEPOINT mutation", &[]);
        }
        Ok(())
    }

    fn rollback_to_savepoint(&mut self) -> Result<(), StorageError> {
        self.in_savepoint.set(false);
        if self.pending.borrow_mut().drop_savepoint() {
            // Nothing since the savepoint was sent: dropping it undid everything.
            self.savepoint_failed.set(false);
            return Ok(());
        }
        let result = self
            .rows()
            .and_then(|c| c.batch("ROLLBACK TO SAVEPOINT mutation; RELEASE SAVEPOINT mutation"));
        match result {
            Ok(()) => self.savepoint_failed.set(false),
            Err(_) => self.transaction_failed.set(true),
        }
        result
    }

    fn ts(&self) -> Result<u64, StorageError> {
        self.rows()?.read_ts()
    }

    fn set_ts(&mut self, ts: u64) -> Result<(), StorageError> {
        self.defer(
            "UPDATE _meta SET value = $1 WHERE key = 'ts'",
            &[Literal::Int(ts as i64)],
        );
        Ok(())
    }

    fn create_table(&mut self, name: &str) -> Result<u32, StorageError> {
        // Numbered like SQLite's `INTEGER PRIMARY KEY` (the largest plus one); the commit
        // lock is held, so no two transactions race for a number.
        let rows = self.rows()?.query(
            "INSERT INTO _tables (number, name) SELECT COALESCE(MAX(number), 0) + 1, $1 FROM _tables RETURNING number",
            &[&name],
        );
        let number: i64 = self
            .track(|_| rows)?
            .first()
            .map(|r| r.get(0))
            .ok_or_else(|| missing("the new table's number"))?;
        Ok(number as u32)
    }

    fn create_index(
        &mut self,
        table_number: u32,
        name: &str,
        fields_json: &str,
    ) -> Result<u32, StorageError> {
        let rows = self.rows()?.query(
            "INSERT INTO _indexes (id, table_number, name, fields) SELECT COALESCE(MAX(id), 0) + 1, $1, $2, $3 FROM _indexes RETURNING id",
            &[&i64::from(table_number), &name, &fields_json],
        );
        let id: i64 = self
            .track(|_| rows)?
            .first()
            .map(|r| r.get(0))
            .ok_or_else(|| missing("the new index's id"))?;
        Ok(id as u32)
    }

    fn drop_index(&mut self, index_id: u32) -> Result<(), StorageError> {
        let id = Literal::Int(i64::from(index_id));
        self.defer("DELETE FROM index_entries WHERE index_id = $1", &[id]);
        self.defer(
            "DELETE FROM _indexes WHERE id = $1",
            &[Literal::Int(i64::from(index_id))],
        );
        Ok(())
    }

    fn put_document(
        &mut self,
        id: &str,
        table_number: u32,
        value: &str,
    ) -> Result<(), StorageError> {
        self.defer_row(
            RowKind::PutDocument,
            &[
                Literal::Text(id),
                Literal::Int(i64::from(table_number)),
                Literal::Text(value),
            ],
        );
        Ok(())
    }

    fn delete_document(&mut self, id: &str) -> Result<(), StorageError> {
        self.defer_row(RowKind::DeleteDocument, &[Literal::Text(id)]);
        Ok(())
    }

    fn insert_index_entry(
        &mut self,
        index_id: u32,
        key: &[u8],
        id: &str,
    ) -> Result<(), StorageError> {
        self.defer_row(
            RowKind::InsertIndexEntry,
            &[
                Literal::Int(i64::from(index_id)),
                Literal::Bytes(key),
                Literal::Text(id),
            ],
        );
        Ok(())
    }

    fn delete_index_entry(&mut self, index_id: u32, key: &[u8]) -> Result<(), StorageError> {
        self.defer_row(
            RowKind::DeleteIndexEntry,
            &[Literal::Int(i64::from(index_id)), Literal::Bytes(key)],
        );
        Ok(())
    }

    fn put_mutation_response(
        &mut self,
        session_id: &str,
        request_id: u64,
        ts: u64,
        response: &str,
    ) -> Result<(), StorageError> {
        self.defer_row(
            RowKind::PutMutationResponse,
            &[
                Literal::Text(session_id),
                Literal::Int(request_id as i64),
                Literal::Int(ts as i64),
                Literal::Text(response),
            ],
        );
        Ok(())
    }

    fn get_mutation_responses(
        &self,
        keys: &[(&str, u64)],
    ) -> Result<Vec<Option<StoredResponse>>, StorageError> {
        let found = self.rows()?.get_mutation_responses(keys);
        self.track(|_| found)
    }

    fn prune_mutation_responses(
        &mut self,
        before_ts: u64,
        after: Option<&(String, u64)>,
        limit: usize,
    ) -> Result<(usize, Option<(String, u64)>), StorageError> {
        let scanned = self.rows()?.mutation_slice(after, limit);
        let scanned = self.track(|_| scanned)?;
        let mut removed = 0;
        for ((session, request), ts) in &scanned {
            if (*ts as u64) < before_ts {
                self.defer(
                    "DELETE FROM _mutations WHERE session_id = $1 AND request_id = $2",
                    &[Literal::Text(session), Literal::Int(*request)],
                );
                removed += 1;
            }
        }
        Ok((removed, storage::next_prune_slice(scanned, limit)))
    }

    fn put_config(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
        self.defer(
            "INSERT INTO _config (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[Literal::Text(key), Literal::Text(value)],
        );
        Ok(())
    }

    fn delete_config(&mut self, key: &str) -> Result<(), StorageError> {
        self.defer("DELETE FROM _config WHERE key = $1", &[Literal::Text(key)]);
        Ok(())
    }

    fn claim(&mut self, key: &str, expires: u64) -> Result<bool, StorageError> {
        let expires = i64::try_from(expires).unwrap_or(i64::MAX);
        let inserted = self.rows()?.execute(
            "INSERT INTO _claims (key, expires) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&key, &expires],
        );
        Ok(self.track(|_| inserted)? == 1)
    }

    fn prune_claims(&mut self, now: u64) -> Result<usize, StorageError> {
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let removed = self
            .rows()?
            .execute("DELETE FROM _claims WHERE expires < $1", &[&now]);
        Ok(self.track(|_| removed)? as usize)
    }
}
