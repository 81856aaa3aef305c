//! [`Snapshot`]: the whole database read at one commit, for export and backup. Unlike a
//! [`QueryTxn`](crate::QueryTxn) it records no read set and has no read limits: it walks
//! whole tables, page by page, all at the one `ts` it opened at, while commits go on (a WAL
//! read transaction does not block the writer; it only keeps the WAL from being recycled
//! until it ends, so keep it as short as the export allows).
//!
//! [`Snapshot::open_file`] reads a database file that another process (a running server) owns:
//! the catalog and schema come from the file itself, and no writer is opened.

use std::path::Path;
use std::sync::Arc;

use storage::{Order, ReadRows, Reader, Storage};
use value::{IndexKey, Value};

use crate::catalog::Catalog;
use crate::document::Document;
use crate::error::DbError;
use crate::schema_change::{load_catalog, stored_schema};

/// A read of the whole database at one commit.
pub struct Snapshot {
    reader: Reader,
    ts: u64,
    catalog: Arc<Catalog>,
}

/// One document of a table walk, with the key to continue after.
pub struct SnapshotRow {
    pub key: Vec<u8>,
    pub document: Document,
}

impl Snapshot {
    /// A snapshot of the database file at `path`, which a server may be writing meanwhile.
    pub fn open_file(path: &Path) -> Result<Snapshot, DbError> {
        let mut reader = Storage::open_reader(path)?;
        let ts = reader.begin()?;
        let schema = stored_schema(&reader)?;
        let catalog = Arc::new(load_catalog(&reader, Arc::new(schema))?);
        Ok(Snapshot {
            reader,
            ts,
            catalog,
        })
    }

    pub(crate) fn open(storage: &Storage, catalog: Arc<Catalog>) -> Result<Snapshot, DbError> {
        let mut reader = storage.reader()?;
        let ts = reader.begin()?;
        Ok(Snapshot {
            reader,
            ts,
            catalog,
        })
    }

    /// The commit this snapshot reads.
    pub fn ts(&self) -> u64 {
        self.ts
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Up to `limit` documents of `table` in `_creationTime` order, after the row whose key
    /// is `after` (from the start when `None`).
    pub fn documents(
        &self,
        table: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<SnapshotRow>, DbError> {
        let info = self.catalog.table(table)?;
        let start = after.map(value::key::successor).unwrap_or_default();
        let rows = self
            .reader
            .scan(info.by_creation_time.id.0, &start, None, Order::Asc, limit)?;
        rows.into_iter()
            .map(|row| {
                Ok(SnapshotRow {
                    document: Document::from_storage(&row.value)?,
                    key: row.key,
                })
            })
            .collect()
    }

    /// The document with this id, if it exists at this snapshot.
    pub fn get(&self, id: &str) -> Result<Option<Document>, DbError> {
        let (parsed, _) = self.catalog.resolve_id(id)?;
        match self.reader.get_document(parsed.as_str())? {
            Some(row) => Document::from_storage(&row.value).map(Some),
            None => Ok(None),
        }
    }

    /// Whether some document of `table` has exactly `values` in the leading fields of
    /// `index` (e.g. a `_storage` row with a given `sha256`).
    pub fn index_has(&self, table: &str, index: &str, values: &[Value]) -> Result<bool, DbError> {
        let info = self.catalog.index(table, index)?;
        let prefix = IndexKey::prefix(&values.iter().map(Some).collect::<Vec<_>>());
        let end = value::key::prefix_end(&prefix);
        let rows = self
            .reader
            .scan(info.id.0, &prefix, end.as_deref(), Order::Asc, 1)?;
        Ok(!rows.is_empty())
    }

    /// An engine setting at this snapshot (an import's resume marker).
    pub fn config(&self, key: &str) -> Result<Option<String>, DbError> {
        Ok(self.reader.get_config(key)?)
    }

    /// Whether a one-time key was claimed at this snapshot.
    pub fn is_claimed(&self, key: &str) -> Result<bool, DbError> {
        Ok(self.reader.is_claimed(key)?)
    }
}

/// Writes a consistent copy of the database file at `source` to the new file `dest` while
/// a server may be committing to it (SQLite's `VACUUM INTO`, in a read transaction of its
/// own).
pub fn copy_database(source: &Path, dest: &Path) -> Result<(), DbError> {
    let mut reader = Storage::open_reader(source)?;
    reader.vacuum_into(dest)?;
    Ok(())
}
