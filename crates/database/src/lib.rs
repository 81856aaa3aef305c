//! Transactions over [`storage`]: the engine between user functions and SQLite.
//!
//! - [`Database`] (`database.rs`) is the handle: snapshot reads on a reader pool
//!   (`reader_pool.rs`), mutations and schema changes queued to the one Committer thread
//!   (`committer.rs`), the background WAL copy (`checkpoints.rs`).
//! - [`Transaction`] (`transaction.rs`) is what a function may do; [`QueryTxn`]
//!   (`query_txn.rs`) reads a snapshot, [`MutationTxn`] (`mutation_txn.rs`) writes inside the
//!   Committer through its `WriterState` (`writer_state.rs`). Both record a [`ReadSet`]
//!   (`reads.rs`, scans through a [`ScanCursor`], `scan_cursor.rs`); mutations produce a
//!   [`WriteSet`] (`read_set.rs`).
//! - [`Subscriptions`] (`subscriptions.rs`) matches each commit's write set against registered
//!   read sets through per-index interval trees (`interval_tree.rs`) and fires one-shot
//!   invalidations.
//! - [`Catalog`] (`catalog.rs`) is the live tables and indexes, the engine's system tables
//!   (`_storage`, defined in the `schema` crate) included; `schema_change.rs` brings storage in
//!   line with a new schema.
//! - [`Snapshot`] (`snapshot.rs`) reads whole tables at one commit for export and backup,
//!   also from a second process while a server owns the writer.
//!
//! Every write transaction commits in `committer.rs`: mutations in `Committer::commit_batch`,
//! schema changes in `Committer::apply_schema`. Invariants: commit timestamps strictly
//! increase, across restarts too; every commit is matched against subscriptions before its
//! callers are answered; registration of a read set is atomic with respect to commits.

mod catalog;
mod checkpoints;
mod commit_log;
mod committer;
mod database;
mod document;
mod error;
mod failure_log;
mod interval_tree;
mod job;
mod mutation_txn;
mod prune;
mod query_txn;
mod read_set;
mod reader_pool;
mod reads;
mod scan_cursor;
mod schema_change;
mod snapshot;
mod subscriptions;
mod transaction;
mod writer_state;

pub use catalog::{Catalog, IndexId, IndexInfo, TableInfo};
pub use database::{Database, FileSizes};
pub use document::Document;
pub use error::DbError;
pub use job::{DedupKey, MutationFn, MutationOutcome};
pub use mutation_txn::MutationTxn;
pub use query_txn::QueryTxn;
pub use read_set::{IndexWrite, ReadInterval, ReadSet, WriteSet};
pub use scan_cursor::ScanCursor;
pub use schema_change::SchemaChangeReport;
pub use snapshot::{Snapshot, SnapshotRow, copy_database};
pub use storage::{Durability, Lease, Order, Unavailable};
pub use subscriptions::{OnInvalidate, Registration, SubscriptionId, Subscriptions};
pub use transaction::{Transaction, TxnLimits};
