//! Transactions over [`storage`]: the engine between user functions and SQLite.
//!
//! - [`Database`] is the handle: snapshot reads on a reader pool, mutations queued to the one
//!   Committer thread (`committer.rs`, the only commit site), online schema changes.
//! - [`Transaction`] is what a function may do; [`QueryTxn`] reads a snapshot, [`MutationTxn`]
//!   writes inside the Committer. Both record a [`ReadSet`]; mutations produce a [`WriteSet`].
//! - [`Subscriptions`] matches each commit's write set against registered read sets through
//!   per-index interval trees and fires one-shot invalidations.
//!
//! Invariants: commit timestamps strictly increase, across restarts too; every commit is
//! matched against subscriptions before its callers are answered; registration of a read
//! set is atomic with respect to commits.

mod catalog;
mod committer;
mod database;
mod document;
mod error;
mod interval_tree;
mod read_set;
mod schema_change;
mod subscriptions;
mod transaction;

pub use catalog::{Catalog, IndexId, IndexInfo, TableInfo};
pub use committer::{DedupKey, MutationFn, MutationOutcome};
pub use database::Database;
pub use document::Document;
pub use error::DbError;
pub use read_set::{IndexWrite, ReadSet, WriteSet};
pub use schema_change::SchemaChangeReport;
pub use storage::Order;
pub use subscriptions::{OnInvalidate, Registration, SubscriptionId, Subscriptions};
pub use transaction::{MutationTxn, QueryTxn, ScanCursor, Transaction, TxnLimits};
