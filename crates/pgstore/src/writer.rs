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
//! PostgreSQL aborts a transaction at its first failed statement and later turns `COMMIT`
//! into a silent `ROLLBACK`; the writer keeps track, so a failed transaction is never
//! reported as committed.

use postgres::Config;
use storage::{StorageError, Unavailable, WriteRows};

use crate::conn::{ENGINE, PgConn, missing};

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
    /// A transaction is open (from `begin` to `commit`/`rollback`).
    in_transaction: bool,
    /// A savepoint is open.
    in_savepoint: bool,
    /// A statement failed since the savepoint was taken: only `rollback_to_savepoint` (or a
    /// rollback) makes the transaction usable again.
    savepoint_failed: bool,
    /// A statement failed outside any savepoint: only a rollback ends this transaction.
    transaction_failed: bool,
}

// The writer's reads go through its connection, inside the open transaction.
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
            in_transaction: false,
            in_savepoint: false,
            savepoint_failed: false,
            transaction_failed: false,
        })
    }

    /// Runs `f`, remembering a failure for `commit` (see the module docs).
    fn track<T>(
        &mut self,
        f: impl FnOnce(&PgConn) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let result = f(&self.conn);
        if result.is_err() && self.in_transaction {
            if self.in_savepoint {
                self.savepoint_failed = true;
            } else {
                self.transaction_failed = true;
            }
        }
        result
    }

    /// Replaces a dropped connection.
    fn reconnect(&mut self) -> Result<(), StorageError> {
        self.conn.reconnect()?;
        configure(&self.conn)
    }

    fn end_transaction(&mut self) {
        self.in_transaction = false;
        self.in_savepoint = false;
        self.savepoint_failed = false;
        self.transaction_failed = false;
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
    conn.batch(&format!(
        "SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION}'"
    ))
}

impl WriteRows for PgWriter {
    fn in_transaction(&self) -> bool {
        self.in_transaction && !self.conn.is_closed()
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
        // One round trip: the record, and the announcement PostgreSQL sends when (and only
        // if) this transaction commits, on the channel the feeds listen to (`feed::CHANNEL`).
        self.track(|c| {
            c.query(
                "WITH logged AS (INSERT INTO _commits (ts, writes) VALUES ($1, $2)) \
                 SELECT pg_notify('pulsebase_commits', '')",
                &[&(ts as i64), &record],
            )
        })?;
        Ok(())
    }

    fn prune_commit_log(&mut self, before_ts: u64) -> Result<usize, StorageError> {
        let before = i64::try_from(before_ts).unwrap_or(i64::MAX);
        let removed =
            self.track(|c| c.execute("DELETE FROM _commits WHERE ts < $1", &[&before]))?;
        Ok(removed as usize)
    }

    fn savepoints_per_transaction(&self) -> usize {
        SAVEPOINTS_PER_TRANSACTION
    }

    fn begin(&mut self) -> Result<(), StorageError> {
        self.end_transaction();
        if self.conn.is_closed() {
            self.reconnect()?;
        }
        if let Err(e) = self.conn.batch(BEGIN) {
            // A connection the server cut since the last commit (a restart) shows only now;
            // no transaction was open, so a new connection can take over.
            if !self.conn.is_closed() {
                return Err(e);
            }
            self.reconnect()?;
            self.conn.batch(BEGIN)?;
        }
        self.in_transaction = true;
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StorageError> {
        if self.transaction_failed || self.savepoint_failed {
            let rolled_back = self.conn.batch("ROLLBACK");
            self.end_transaction();
            rolled_back?;
            return Err(StorageError::Engine {
                engine: ENGINE,
                message: "a statement of this transaction failed, so it was rolled back".into(),
                unavailable: None,
            });
        }
        let committed = self.conn.batch("COMMIT");
        self.end_transaction();
        committed
    }

    fn rollback(&mut self) -> Result<(), StorageError> {
        let rolled_back = self.conn.batch("ROLLBACK");
        self.end_transaction();
        rolled_back
    }

    fn savepoint(&mut self) -> Result<(), StorageError> {
        self.track(|c| c.batch("SAVEPOINT mutation"))?;
        self.in_savepoint = true;
        self.savepoint_failed = false;
        Ok(())
    }

    fn release_savepoint(&mut self) -> Result<(), StorageError> {
        self.in_savepoint = false;
        if self.savepoint_failed {
            self.transaction_failed = true;
            return Err(StorageError::Engine {
                engine: ENGINE,
                message: "a statement since the savepoint failed; roll back to it instead".into(),
                unavailable: None,
            });
        }
        self.track(|c| c.batch("RELEASE SAVEPOINT mutation"))
    }

    fn rollback_to_savepoint(&mut self) -> Result<(), StorageError> {
        let result =
            self.track(|c| c.batch("ROLLBACK TO SAVEPOINT mutation; RELEASE SAVEPOINT mutation"));
        if result.is_ok() {
            self.savepoint_failed = false;
        } else {
            self.transaction_failed = true;
        }
        self.in_savepoint = false;
        result
    }

    fn ts(&self) -> Result<u64, StorageError> {
        self.conn.read_ts()
    }

    fn set_ts(&mut self, ts: u64) -> Result<(), StorageError> {
        self.track(|c| {
            c.execute(
                "UPDATE _meta SET value = $1 WHERE key = 'ts'",
                &[&(ts as i64)],
            )
        })?;
        Ok(())
    }

    fn create_table(&mut self, name: &str) -> Result<u32, StorageError> {
        // Numbered like SQLite's `INTEGER PRIMARY KEY` (the largest plus one); one writer, so
        // no two transactions race for a number.
        let rows = self.track(|c| {
            c.query(
                "INSERT INTO _tables (number, name) SELECT COALESCE(MAX(number), 0) + 1, $1 FROM _tables RETURNING number",
                &[&name],
            )
        })?;
        let number: i64 = rows
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
        let rows = self.track(|c| {
            c.query(
                "INSERT INTO _indexes (id, table_number, name, fields) SELECT COALESCE(MAX(id), 0) + 1, $1, $2, $3 FROM _indexes RETURNING id",
                &[&i64::from(table_number), &name, &fields_json],
            )
        })?;
        let id: i64 = rows
            .first()
            .map(|r| r.get(0))
            .ok_or_else(|| missing("the new index's id"))?;
        Ok(id as u32)
    }

    fn drop_index(&mut self, index_id: u32) -> Result<(), StorageError> {
        let id = i64::from(index_id);
        self.track(|c| {
            c.execute("DELETE FROM index_entries WHERE index_id = $1", &[&id])?;
            c.execute("DELETE FROM _indexes WHERE id = $1", &[&id])
        })?;
        Ok(())
    }

    fn put_document(
        &mut self,
        id: &str,
        table_number: u32,
        value: &str,
    ) -> Result<(), StorageError> {
        self.track(|c| {
            c.execute(
                "INSERT INTO documents (id, table_number, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET table_number = EXCLUDED.table_number, value = EXCLUDED.value",
                &[&id, &i64::from(table_number), &value],
            )
        })?;
        Ok(())
    }

    fn delete_document(&mut self, id: &str) -> Result<(), StorageError> {
        self.track(|c| c.execute("DELETE FROM documents WHERE id = $1", &[&id]))?;
        Ok(())
    }

    fn insert_index_entry(
        &mut self,
        index_id: u32,
        key: &[u8],
        id: &str,
    ) -> Result<(), StorageError> {
        self.track(|c| {
            c.execute(
                "INSERT INTO index_entries (index_id, key, id) VALUES ($1, $2, $3)",
                &[&i64::from(index_id), &key, &id],
            )
        })?;
        Ok(())
    }

    fn delete_index_entry(&mut self, index_id: u32, key: &[u8]) -> Result<(), StorageError> {
        self.track(|c| {
            c.execute(
                "DELETE FROM index_entries WHERE index_id = $1 AND key = $2",
                &[&i64::from(index_id), &key],
            )
        })?;
        Ok(())
    }

    fn put_mutation_response(
        &mut self,
        session_id: &str,
        request_id: u64,
        ts: u64,
        response: &str,
    ) -> Result<(), StorageError> {
        self.track(|c| {
            c.execute(
                "INSERT INTO _mutations (session_id, request_id, ts, response) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (session_id, request_id) DO UPDATE SET ts = EXCLUDED.ts, response = EXCLUDED.response",
                &[&session_id, &(request_id as i64), &(ts as i64), &response],
            )
        })?;
        Ok(())
    }

    fn prune_mutation_responses(
        &mut self,
        before_ts: u64,
        after: Option<&(String, u64)>,
        limit: usize,
    ) -> Result<(usize, Option<(String, u64)>), StorageError> {
        let (session, request) = after.map_or(("", -1), |(s, r)| (s.as_str(), *r as i64));
        let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut scanned: Vec<((String, i64), i64)> = self
            .track(|c| {
                c.query(
                    "SELECT session_id, request_id, ts FROM _mutations WHERE (session_id, request_id) > ($1, $2) \
                     ORDER BY session_id, request_id LIMIT $3",
                    &[&session, &request, &limit_sql],
                )
            })?
            .iter()
            .map(|r| ((r.get(0), r.get(1)), r.get(2)))
            .collect();
        let mut removed = 0;
        for ((session, request), ts) in &scanned {
            if (*ts as u64) < before_ts {
                removed += self.track(|c| {
                    c.execute(
                        "DELETE FROM _mutations WHERE session_id = $1 AND request_id = $2",
                        &[session, request],
                    )
                })?;
            }
        }
        let next = if scanned.len() < limit {
            None
        } else {
            scanned
                .pop()
                .map(|((session, request), _)| (session, request as u64))
        };
        Ok((removed as usize, next))
    }

    fn put_config(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
        self.track(|c| {
            c.execute(
                "INSERT INTO _config (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&key, &value],
            )
        })?;
        Ok(())
    }

    fn delete_config(&mut self, key: &str) -> Result<(), StorageError> {
        self.track(|c| c.execute("DELETE FROM _config WHERE key = $1", &[&key]))?;
        Ok(())
    }

    fn claim(&mut self, key: &str, expires: u64) -> Result<bool, StorageError> {
        let expires = i64::try_from(expires).unwrap_or(i64::MAX);
        let inserted = self.track(|c| {
            c.execute(
                "INSERT INTO _claims (key, expires) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&key, &expires],
            )
        })?;
        Ok(inserted == 1)
    }

    fn prune_claims(&mut self, now: u64) -> Result<usize, StorageError> {
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let removed =
            self.track(|c| c.execute("DELETE FROM _claims WHERE expires < $1", &[&now]))?;
        Ok(removed as usize)
    }
}
