//! [`Transaction`]: everything a function can do to the database, and [`TxnLimits`], how much of
//! it one execution may do. Implemented by [`QueryTxn`](crate::QueryTxn) (a read snapshot,
//! `query_txn.rs`) and [`MutationTxn`](crate::MutationTxn) (the writer inside the Committer,
//! `mutation_txn.rs`); the read bookkeeping both share is in `reads.rs`.
//!
//! Both record a [`ReadSet`] as they read: `get` records a point on `by_id` whether or not the
//! document exists, and a scan records exactly what it consumed (see [`ScanCursor`]). Only
//! `MutationTxn` writes, and only the `system_*` methods write system tables.

use std::any::Any;

use value::{DocumentId, KeyRange, Object};

use crate::catalog::{Catalog, IndexInfo};
use crate::document::Document;
use crate::error::DbError;
use crate::read_set::ReadSet;
use crate::scan_cursor::ScanCursor;

/// Per-execution limits; the README's "Limits" section lists them for users.
#[derive(Clone, Copy, Debug)]
pub struct TxnLimits {
    pub max_documents_scanned: usize,
    pub max_read_intervals: usize,
    pub max_documents_written: usize,
    pub max_bytes_written: usize,
    pub max_document_size: usize,
}

impl Default for TxnLimits {
    fn default() -> Self {
        TxnLimits {
            max_documents_scanned: 32_000,
            max_read_intervals: 4_096,
            max_documents_written: 16_000,
            max_bytes_written: 16 << 20,
            max_document_size: 1 << 20,
        }
    }
}

/// What functions can do with the database.
pub trait Transaction {
    fn catalog(&self) -> &Catalog;
    /// The snapshot (queries) or commit (mutations) timestamp.
    fn ts(&self) -> u64;
    fn get(&mut self, id: &str) -> Result<Option<Document>, DbError>;
    /// The next document of a scan, or `None` at its end.
    fn scan_next(&mut self, cursor: &mut ScanCursor) -> Result<Option<Document>, DbError>;
    /// Ends a scan and records the range it read.
    fn finish_scan(&mut self, cursor: ScanCursor) -> Result<(), DbError>;
    /// The number of documents in `range` of `index`, recorded as a read of that whole range.
    fn count(&mut self, index: &IndexInfo, range: KeyRange) -> Result<u64, DbError>;
    fn insert(&mut self, table: &str, fields: Object) -> Result<DocumentId, DbError>;
    fn patch(&mut self, id: &str, fields: Object) -> Result<(), DbError>;
    fn replace(&mut self, id: &str, fields: Object) -> Result<(), DbError>;
    fn delete(&mut self, id: &str) -> Result<(), DbError>;
    /// The engine's own writes to a system table (`_storage`, ...), refused to user code's
    /// `insert`/`patch`/`delete` above; validated against the table's engine-defined schema.
    fn system_insert(&mut self, table: &str, fields: Object) -> Result<DocumentId, DbError>;
    fn system_patch(&mut self, id: &str, fields: Object) -> Result<(), DbError>;
    fn system_delete(&mut self, id: &str) -> Result<(), DbError>;
    fn read_set(&self) -> &ReadSet;
    /// Hands the read set collected so far to the caller and starts a new one (several
    /// functions can run in one snapshot, each with its own read set).
    fn take_read_set(&mut self) -> ReadSet;
    /// Lets an owner that boxed the transaction get the concrete type back.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}
