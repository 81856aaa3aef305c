//! [`QueryTxn`]: a read-only [`Transaction`] at one snapshot, for queries. It owns a pooled
//! reader for its lifetime; dropping it ends the snapshot and returns the reader to the pool.
//!
//! Several functions may run in one `QueryTxn` (a Transition re-runs its stale queries in one
//! snapshot); [`Transaction::take_read_set`] hands each its own read set and read budget.

use std::any::Any;
use std::sync::Arc;

use storage::Reader;
use value::{DocumentId, KeyRange, Object};

use crate::catalog::{Catalog, IndexInfo};
use crate::document::Document;
use crate::error::DbError;
use crate::read_set::ReadSet;
use crate::reader_pool::ReaderPool;
use crate::reads::Reads;
use crate::scan_cursor::ScanCursor;
use crate::transaction::{Transaction, TxnLimits};

/// A read-only transaction at one snapshot, for queries.
pub struct QueryTxn {
    /// `Some` until the transaction is dropped.
    reader: Option<Reader>,
    pool: Arc<ReaderPool>,
    catalog: Arc<Catalog>,
    ts: u64,
    reads: Reads,
}

impl QueryTxn {
    /// Takes a reader from `pool` and starts a snapshot at the latest commit.
    pub(crate) fn open(
        pool: Arc<ReaderPool>,
        catalog: Arc<Catalog>,
        limits: TxnLimits,
    ) -> Result<QueryTxn, DbError> {
        let mut reader = pool.take()?;
        let ts = match reader.begin() {
            Ok(ts) => ts,
            Err(e) => {
                pool.put(reader);
                return Err(e.into());
            }
        };
        Ok(QueryTxn {
            reader: Some(reader),
            pool,
            catalog,
            ts,
            reads: Reads::new(limits),
        })
    }
}

/// Only `Drop` takes the reader, so a usable `QueryTxn` never meets this.
fn snapshot_ended() -> DbError {
    DbError::internal("query snapshot already ended")
}

impl Drop for QueryTxn {
    fn drop(&mut self) {
        if let Some(mut reader) = self.reader.take() {
            reader.end();
            self.pool.put(reader);
        }
    }
}

impl Transaction for QueryTxn {
    fn catalog(&self) -> &Catalog {
        &self.catalog
    }
    fn ts(&self) -> u64 {
        self.ts
    }
    fn get(&mut self, id: &str) -> Result<Option<Document>, DbError> {
        let reader = self.reader.as_ref().ok_or_else(snapshot_ended)?;
        self.reads.get(reader, &self.catalog, id)
    }
    fn scan_next(&mut self, cursor: &mut ScanCursor) -> Result<Option<Document>, DbError> {
        let reader = self.reader.as_ref().ok_or_else(snapshot_ended)?;
        self.reads.scan_next(reader, cursor)
    }
    fn finish_scan(&mut self, cursor: ScanCursor) -> Result<(), DbError> {
        self.reads.finish_scan(cursor)
    }
    fn count(&mut self, index: &IndexInfo, range: KeyRange) -> Result<u64, DbError> {
        let reader = self.reader.as_ref().ok_or_else(snapshot_ended)?;
        self.reads.count(reader, index.id, range)
    }
    fn insert(&mut self, _: &str, _: Object) -> Result<DocumentId, DbError> {
        Err(DbError::ReadOnly("insert"))
    }
    fn patch(&mut self, _: &str, _: Object) -> Result<(), DbError> {
        Err(DbError::ReadOnly("patch"))
    }
    fn replace(&mut self, _: &str, _: Object) -> Result<(), DbError> {
        Err(DbError::ReadOnly("replace"))
    }
    fn delete(&mut self, _: &str) -> Result<(), DbError> {
        Err(DbError::ReadOnly("delete"))
    }
    fn system_insert(&mut self, _: &str, _: Object) -> Result<DocumentId, DbError> {
        Err(DbError::ReadOnly("insert"))
    }
    fn system_patch(&mut self, _: &str, _: Object) -> Result<(), DbError> {
        Err(DbError::ReadOnly("patch"))
    }
    fn system_delete(&mut self, _: &str) -> Result<(), DbError> {
        Err(DbError::ReadOnly("delete"))
    }
    fn read_set(&self) -> &ReadSet {
        self.reads.read_set()
    }
    fn take_read_set(&mut self) -> ReadSet {
        self.reads.start_next_function()
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}
