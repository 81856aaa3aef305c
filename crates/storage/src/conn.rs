//! The SQLite SQL shared by the writer and the readers: connection settings, the table
//! layout, and the read statements (catalog, point reads, index range scans).

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::StorageError;
use crate::rows::{Catalog, IndexRow, Order, ScanRow, StoredDocument, StoredResponse, TableRow};

/// Table layout. `documents` and `index_entries` are WITHOUT ROWID so that the primary key
/// is the storage order and a range scan is one b-tree walk.
pub(crate) const SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS _meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _tables (number INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS _indexes (
    id INTEGER PRIMARY KEY,
    table_number INTEGER NOT NULL,
    name TEXT NOT NULL,
    fields TEXT NOT NULL,
    UNIQUE (table_number, name)
);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    table_number INTEGER NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS index_entries (
    index_id INTEGER NOT NULL,
    key BLOB NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (index_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _mutations (
    session_id TEXT NOT NULL,
    request_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    response TEXT NOT NULL,
    PRIMARY KEY (session_id, request_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _config (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _claims (key TEXT PRIMARY KEY, expires INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO _meta (key, value) VALUES ('ts', 0);
";

/// Settings every connection gets. `synchronous=NORMAL` in WAL mode survives a process crash
/// (a power loss can drop the last commits); documented in the README.
pub(crate) fn configure(conn: &Connection) -> Result<(), StorageError> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -32_000)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

pub(crate) fn read_ts(conn: &Connection) -> Result<u64, StorageError> {
    let ts: i64 = conn
        .prepare_cached("SELECT value FROM _meta WHERE key = 'ts'")?
        .query_row([], |r| r.get(0))?;
    Ok(ts as u64)
}

pub(crate) fn read_catalog(conn: &Connection) -> Result<Catalog, StorageError> {
    let tables = conn
        .prepare_cached("SELECT number, name FROM _tables ORDER BY number")?
        .query_map([], |r| {
            Ok(TableRow {
                number: r.get(0)?,
                name: r.get(1)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let indexes = conn
        .prepare_cached("SELECT id, table_number, name, fields FROM _indexes ORDER BY id")?
        .query_map([], |r| {
            Ok(IndexRow {
                id: r.get(0)?,
                table_number: r.get(1)?,
                name: r.get(2)?,
                fields: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Catalog { tables, indexes })
}

pub(crate) fn get_document(
    conn: &Connection,
    id: &str,
) -> Result<Option<StoredDocument>, StorageError> {
    Ok(conn
        .prepare_cached("SELECT table_number, value FROM documents WHERE id = ?1")?
        .query_row([id], |r| {
            Ok(StoredDocument {
                table_number: r.get(0)?,
                value: r.get(1)?,
            })
        })
        .optional()?)
}

/// Up to `limit` rows of index `index_id` with keys in `[start, end)`, in `order`.
pub(crate) fn scan(
    conn: &Connection,
    index_id: u32,
    start: &[u8],
    end: Option<&[u8]>,
    order: Order,
    limit: usize,
) -> Result<Vec<ScanRow>, StorageError> {
    // `x'FF…'` is above every encoded key (tags are < 0x10), so an unbounded end can share
    // the bounded statement.
    let end = end.unwrap_or(&[0xFF; 2]);
    let sql = match order {
        Order::Asc => {
            "SELECT e.key, e.id, d.value FROM index_entries e JOIN documents d ON d.id = e.id \
             WHERE e.index_id = ?1 AND e.key >= ?2 AND e.key < ?3 ORDER BY e.key ASC LIMIT ?4"
        }
        Order::Desc => {
            "SELECT e.key, e.id, d.value FROM index_entries e JOIN documents d ON d.id = e.id \
             WHERE e.index_id = ?1 AND e.key >= ?2 AND e.key < ?3 ORDER BY e.key DESC LIMIT ?4"
        }
    };
    let rows = conn
        .prepare_cached(sql)?
        .query_map(params![index_id, start, end, limit as i64], |r| {
            Ok(ScanRow {
                key: r.get(0)?,
                id: r.get(1)?,
                value: r.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(crate) fn get_mutation_response(
    conn: &Connection,
    session_id: &str,
    request_id: u64,
) -> Result<Option<StoredResponse>, StorageError> {
    Ok(conn
        .prepare_cached(
            "SELECT ts, response FROM _mutations WHERE session_id = ?1 AND request_id = ?2",
        )?
        .query_row(params![session_id, request_id as i64], |r| {
            Ok(StoredResponse {
                ts: r.get::<_, i64>(0)? as u64,
                response: r.get(1)?,
            })
        })
        .optional()?)
}

pub(crate) fn get_config(conn: &Connection, key: &str) -> Result<Option<String>, StorageError> {
    Ok(conn
        .prepare_cached("SELECT value FROM _config WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

pub(crate) fn is_claimed(conn: &Connection, key: &str) -> Result<bool, StorageError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM _claims WHERE key = ?1")?
        .query_row([key], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Implements [`crate::ReadRows`] for a SQLite connection type with a `conn` field: the
/// writer (which sees its own uncommitted writes) and the readers (which see their snapshot)
/// read through exactly the same statements.
macro_rules! sqlite_read_rows {
    ($type:ty) => {
        impl $crate::rows::ReadRows for $type {
            fn catalog(&self) -> Result<$crate::rows::Catalog, $crate::error::StorageError> {
                $crate::conn::read_catalog(&self.conn)
            }

            fn get_document(
                &self,
                id: &str,
            ) -> Result<Option<$crate::rows::StoredDocument>, $crate::error::StorageError> {
                $crate::conn::get_document(&self.conn, id)
            }

            fn scan(
                &self,
                index_id: u32,
                start: &[u8],
                end: Option<&[u8]>,
                order: $crate::rows::Order,
                limit: usize,
            ) -> Result<Vec<$crate::rows::ScanRow>, $crate::error::StorageError> {
                $crate::conn::scan(&self.conn, index_id, start, end, order, limit)
            }

            fn count(
                &self,
                index_id: u32,
                start: &[u8],
                end: Option<&[u8]>,
            ) -> Result<u64, $crate::error::StorageError> {
                $crate::conn::count(&self.conn, index_id, start, end)
            }

            fn get_config(&self, key: &str) -> Result<Option<String>, $crate::error::StorageError> {
                $crate::conn::get_config(&self.conn, key)
            }

            fn is_claimed(&self, key: &str) -> Result<bool, $crate::error::StorageError> {
                $crate::conn::is_claimed(&self.conn, key)
            }

            fn get_mutation_response(
                &self,
                session_id: &str,
                request_id: u64,
            ) -> Result<Option<$crate::rows::StoredResponse>, $crate::error::StorageError> {
                $crate::conn::get_mutation_response(&self.conn, session_id, request_id)
            }
        }
    };
}

pub(crate) use sqlite_read_rows;

pub(crate) fn count(
    conn: &Connection,
    index_id: u32,
    start: &[u8],
    end: Option<&[u8]>,
) -> Result<u64, StorageError> {
    let end = end.unwrap_or(&[0xFF; 2]);
    let n: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM index_entries WHERE index_id = ?1 AND key >= ?2 AND key < ?3",
        )?
        .query_row(params![index_id, start, end], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}
