//! [`PgConn`]: one PostgreSQL connection with its prepared statements, the table layout, the
//! read statements shared by the writer and the readers, and how a driver error becomes a
//! [`StorageError`].
//!
//! The layout mirrors SQLite's (`crates/storage/src/conn.rs`) so both engines answer every
//! read the same way: text keys use the `"C"` collation and index keys are `bytea`, so both
//! compare as bytes, exactly as SQLite's `memcmp` does.

use std::cell::RefCell;
use std::collections::HashMap;

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, Config, NoTls, Row, Statement};
use storage::{
    Catalog, IndexRow, Order, ScanRow, StorageError, StoredDocument, StoredResponse, TableRow,
    Unavailable,
};

/// Table layout. Every statement only creates what does not exist yet.
pub(crate) const SCHEMA_SQL: &str = r#"
CREATE TABLE IF NOT EXISTS _meta (key TEXT COLLATE "C" PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS _tables (number BIGINT PRIMARY KEY, name TEXT COLLATE "C" NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS _indexes (
    id BIGINT PRIMARY KEY,
    table_number BIGINT NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    fields TEXT NOT NULL,
    UNIQUE (table_number, name)
);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT COLLATE "C" PRIMARY KEY,
    table_number BIGINT NOT NULL,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS index_entries (
    index_id BIGINT NOT NULL,
    key BYTEA NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (index_id, key)
);
CREATE TABLE IF NOT EXISTS _mutations (
    session_id TEXT COLLATE "C" NOT NULL,
    request_id BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    response TEXT NOT NULL,
    PRIMARY KEY (session_id, request_id)
);
CREATE TABLE IF NOT EXISTS _config (key TEXT COLLATE "C" PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _claims (key TEXT COLLATE "C" PRIMARY KEY, expires BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS _commits (ts BIGINT PRIMARY KEY, writes BYTEA NOT NULL);
INSERT INTO _meta (key, value) VALUES ('ts', 0) ON CONFLICT DO NOTHING;
"#;

/// A de-duplication record's key (session id, request id) and commit ts.
pub(crate) type DedupRecord = ((String, i64), i64);

/// What error messages call this engine.
pub(crate) const ENGINE: &str = "PostgreSQL";

/// One connection and the statements prepared on it. Interior mutability because reads take
/// `&self` (as SQLite's connection does); a connection is used by one thread at a time.
pub(crate) struct PgConn {
    config: Config,
    client: RefCell<Client>,
    statements: RefCell<HashMap<&'static str, Statement>>,
}

impl PgConn {
    pub(crate) fn connect(config: &Config) -> Result<PgConn, StorageError> {
        let client = config.connect(NoTls).map_err(engine_error)?;
        Ok(PgConn {
            config: config.clone(),
            client: RefCell::new(client),
            statements: RefCell::new(HashMap::new()),
        })
    }

    /// Whether the server closed the connection (restart, network cut).
    pub(crate) fn is_closed(&self) -> bool {
        self.client.borrow().is_closed()
    }

    /// Opens a new connection in place of a closed one; prepared statements are per
    /// connection, so they are prepared again.
    pub(crate) fn reconnect(&self) -> Result<(), StorageError> {
        let client = self.config.connect(NoTls).map_err(engine_error)?;
        *self.client.borrow_mut() = client;
        self.statements.borrow_mut().clear();
        Ok(())
    }

    fn statement(&self, sql: &'static str) -> Result<Statement, StorageError> {
        if let Some(statement) = self.statements.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self
            .client
            .borrow_mut()
            .prepare(sql)
            .map_err(engine_error)?;
        self.statements.borrow_mut().insert(sql, statement.clone());
        Ok(statement)
    }

    /// Runs a statement that returns rows (prepared once per connection).
    pub(crate) fn query(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StorageError> {
        let statement = self.statement(sql)?;
        self.client
            .borrow_mut()
            .query(&statement, params)
            .map_err(engine_error)
    }

    /// Runs a statement and returns how many rows it changed.
    pub(crate) fn execute(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StorageError> {
        let statement = self.statement(sql)?;
        self.client
            .borrow_mut()
            .execute(&statement, params)
            .map_err(engine_error)
    }

    /// Runs statements without parameters or results (transaction control, the layout).
    pub(crate) fn batch(&self, sql: &str) -> Result<(), StorageError> {
        self.client
            .borrow_mut()
            .batch_execute(sql)
            .map_err(engine_error)
    }

    /// Runs statements without parameters and returns the rows of the last that has any,
    /// as text (one round trip for a `BEGIN` and a read under its lock).
    pub(crate) fn text_rows(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, StorageError> {
        let messages = self
            .client
            .borrow_mut()
            .simple_query(sql)
            .map_err(engine_error)?;
        Ok(messages
            .iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    }

    /// The client, for what only one kind of connection does (LISTEN and its notifications).
    pub(crate) fn client(&self) -> std::cell::RefMut<'_, Client> {
        self.client.borrow_mut()
    }

    pub(crate) fn read_ts(&self) -> Result<u64, StorageError> {
        let rows = self.query("SELECT value FROM _meta WHERE key = 'ts'", &[])?;
        let ts: i64 = rows
            .first()
            .map(|row| row.get(0))
            .ok_or_else(|| missing("the commit timestamp row of _meta"))?;
        Ok(ts as u64)
    }

    pub(crate) fn catalog(&self) -> Result<Catalog, StorageError> {
        let tables = self
            .query("SELECT number, name FROM _tables ORDER BY number", &[])?
            .iter()
            .map(|r| TableRow {
                number: r.get::<_, i64>(0) as u32,
                name: r.get(1),
            })
            .collect();
        let indexes = self
            .query(
                "SELECT id, table_number, name, fields FROM _indexes ORDER BY id",
                &[],
            )?
            .iter()
            .map(|r| IndexRow {
                id: r.get::<_, i64>(0) as u32,
                table_number: r.get::<_, i64>(1) as u32,
                name: r.get(2),
                fields: r.get(3),
            })
            .collect();
        Ok(Catalog { tables, indexes })
    }

    pub(crate) fn get_document(&self, id: &str) -> Result<Option<StoredDocument>, StorageError> {
        Ok(self
            .query(
                "SELECT table_number, value FROM documents WHERE id = $1",
                &[&id],
            )?
            .first()
            .map(|r| StoredDocument {
                table_number: r.get::<_, i64>(0) as u32,
                value: r.get(1),
            }))
    }

    pub(crate) fn scan(
        &self,
        index_id: u32,
        start: &[u8],
        end: Option<&[u8]>,
        order: Order,
        limit: usize,
    ) -> Result<Vec<ScanRow>, StorageError> {
        // As in SQLite: `\xFFFF` is above every encoded key (tags are < 0x10).
        let end = end.unwrap_or(&[0xFF; 2]);
        let sql = match order {
            Order::Asc => {
                "SELECT e.key, e.id, d.value FROM index_entries e JOIN documents d ON d.id = e.id \
                 WHERE e.index_id = $1 AND e.key >= $2 AND e.key < $3 ORDER BY e.key ASC LIMIT $4"
            }
            Order::Desc => {
                "SELECT e.key, e.id, d.value FROM index_entries e JOIN documents d ON d.id = e.id \
                 WHERE e.index_id = $1 AND e.key >= $2 AND e.key < $3 ORDER BY e.key DESC LIMIT $4"
            }
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(self
            .query(sql, &[&i64::from(index_id), &start, &end, &limit])?
            .iter()
            .map(|r| ScanRow {
                key: r.get(0),
                id: r.get(1),
                value: r.get(2),
            })
            .collect())
    }

    pub(crate) fn count(
        &self,
        index_id: u32,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<u64, StorageError> {
        let end = end.unwrap_or(&[0xFF; 2]);
        let rows = self.query(
            "SELECT COUNT(*) FROM index_entries WHERE index_id = $1 AND key >= $2 AND key < $3",
            &[&i64::from(index_id), &start, &end],
        )?;
        let n: i64 = rows.first().map_or(0, |r| r.get(0));
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(crate) fn get_config(&self, key: &str) -> Result<Option<String>, StorageError> {
        Ok(self
            .query("SELECT value FROM _config WHERE key = $1", &[&key])?
            .first()
            .map(|r| r.get(0)))
    }

    pub(crate) fn is_claimed(&self, key: &str) -> Result<bool, StorageError> {
        Ok(!self
            .query("SELECT 1 FROM _claims WHERE key = $1", &[&key])?
            .is_empty())
    }

    pub(crate) fn get_mutation_response(
        &self,
        session_id: &str,
        request_id: u64,
    ) -> Result<Option<StoredResponse>, StorageError> {
        Ok(self
            .query(
                "SELECT ts, response FROM _mutations WHERE session_id = $1 AND request_id = $2",
                &[&session_id, &(request_id as i64)],
            )?
            .first()
            .map(|r| StoredResponse {
                ts: r.get::<_, i64>(0) as u64,
                response: r.get(1),
            }))
    }
}

impl PgConn {
    /// The recorded responses of `keys` (session id, request id), in their order, in one
    /// round trip.
    pub(crate) fn get_mutation_responses(
        &self,
        keys: &[(&str, u64)],
    ) -> Result<Vec<Option<StoredResponse>>, StorageError> {
        let mut found = vec![None; keys.len()];
        if keys.is_empty() {
            return Ok(found);
        }
        let sessions: Vec<&str> = keys.iter().map(|(s, _)| *s).collect();
        let requests: Vec<i64> = keys.iter().map(|(_, r)| *r as i64).collect();
        // One round trip for the whole batch, one primary-key lookup per key. As a plain join
        // the planner is free to hash-join a full scan of `_mutations`, and it does while the
        // table has no statistics yet (until autovacuum first analyzes it): each group commit
        // then reads the whole table, and throughput halves at random from run to run. The
        // `LIMIT` keeps the lateral subquery from being flattened into such a join.
        let rows = self.query(
            "SELECT k.i, m.ts, m.response FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS k(s, r, i) \
             CROSS JOIN LATERAL (SELECT ts, response FROM _mutations \
             WHERE session_id = k.s AND request_id = k.r LIMIT 1) m",
            &[&sessions, &requests],
        );
        for row in rows? {
            let at = usize::try_from(row.get::<_, i64>(0) - 1).unwrap_or(usize::MAX);
            if let Some(slot) = found.get_mut(at) {
                *slot = Some(StoredResponse {
                    ts: row.get::<_, i64>(1) as u64,
                    response: row.get(2),
                });
            }
        }
        Ok(found)
    }

    /// The next `limit` de-duplication records in key order after `after` (from the start
    /// when `None`).
    pub(crate) fn mutation_slice(
        &self,
        after: Option<&(String, u64)>,
        limit: usize,
    ) -> Result<Vec<DedupRecord>, StorageError> {
        let (session, request) = after.map_or(("", -1), |(s, r)| (s.as_str(), *r as i64));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(self
            .query(
                "SELECT session_id, request_id, ts FROM _mutations WHERE (session_id, request_id) > ($1, $2) \
                 ORDER BY session_id, request_id LIMIT $3",
                &[&session, &request, &limit],
            )?
            .iter()
            .map(|r| ((r.get(0), r.get(1)), r.get(2)))
            .collect())
    }
}

/// Implements [`storage::ReadRows`] for a type with a `rows(&self) -> Result<&PgConn, _>`
/// method: the writer and the readers read through exactly the same statements.
macro_rules! pg_read_rows {
    ($type:ty) => {
        impl storage::ReadRows for $type {
            fn catalog(&self) -> Result<storage::Catalog, storage::StorageError> {
                self.rows()?.catalog()
            }

            fn get_document(
                &self,
                id: &str,
            ) -> Result<Option<storage::StoredDocument>, storage::StorageError> {
                self.rows()?.get_document(id)
            }

            fn scan(
                &self,
                index_id: u32,
                start: &[u8],
                end: Option<&[u8]>,
                order: storage::Order,
                limit: usize,
            ) -> Result<Vec<storage::ScanRow>, storage::StorageError> {
                self.rows()?.scan(index_id, start, end, order, limit)
            }

            fn count(
                &self,
                index_id: u32,
                start: &[u8],
                end: Option<&[u8]>,
            ) -> Result<u64, storage::StorageError> {
                self.rows()?.count(index_id, start, end)
            }

            fn get_config(&self, key: &str) -> Result<Option<String>, storage::StorageError> {
                self.rows()?.get_config(key)
            }

            fn is_claimed(&self, key: &str) -> Result<bool, storage::StorageError> {
                self.rows()?.is_claimed(key)
            }

            fn get_mutation_response(
                &self,
                session_id: &str,
                request_id: u64,
            ) -> Result<Option<storage::StoredResponse>, storage::StorageError> {
                self.rows()?.get_mutation_response(session_id, request_id)
            }
        }
    };
}

pub(crate) use pg_read_rows;

/// A driver error as a [`StorageError`], in the server's own words where it has them
/// (SQLSTATE, message, detail), classified as unavailability where it is one.
pub(crate) fn engine_error(error: postgres::Error) -> StorageError {
    let message = match error.as_db_error() {
        Some(db) => {
            let mut message = format!("{} ({})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                message.push_str(": ");
                message.push_str(detail);
            }
            message
        }
        None => {
            // The driver's own message names the kind ("error connecting to server"); its
            // source names the cause ("connection refused").
            let mut message = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                message.push_str(": ");
                message.push_str(&cause.to_string());
                source = cause.source();
            }
            message
        }
    };
    StorageError::Engine {
        engine: ENGINE,
        message,
        unavailable: classify(&error),
    }
}

/// Which errors mean "the database cannot take writes for now".
fn classify(error: &postgres::Error) -> Option<Unavailable> {
    if error.is_closed() {
        return Some(Unavailable::Unreachable);
    }
    let Some(code) = error.code() else {
        // No SQLSTATE: an I/O error means the driver could not talk to the server at all
        // (refused, reset); anything else (a type mismatch) is this server's fault.
        let io = std::error::Error::source(error).is_some_and(|s| s.is::<std::io::Error>());
        return io.then_some(Unavailable::Unreachable);
    };
    if *code == SqlState::DISK_FULL {
        Some(Unavailable::DiskFull)
    } else if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
        Some(Unavailable::ReadOnly)
    } else if *code == SqlState::LOCK_NOT_AVAILABLE {
        Some(Unavailable::Locked)
    } else if *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
        || *code == SqlState::TOO_MANY_CONNECTIONS
        || code.code().starts_with("08")
    {
        Some(Unavailable::Unreachable)
    } else {
        None
    }
}

/// A row the layout guarantees is missing (someone edited the tables by hand).
pub(crate) fn missing(what: &str) -> StorageError {
    StorageError::Engine {
        engine: ENGINE,
        message: format!("{what} is missing; was the database edited by hand?"),
        unavailable: None,
    }
}
