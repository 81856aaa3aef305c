//! The document model every other crate speaks: [`Value`] (Convex's eight types), its
//! "convex JSON" wire encoding, the total order across types, the order-preserving byte
//! encoding of index keys ([`IndexKey`], [`KeyRange`]) and document ids ([`DocumentId`]).
//!
//! The one thing to know: storage range scans and the subscription index compare the same
//! bytes that [`key`] produces, so "does this write touch that read" is a byte-range test.
//! Changing the encoding or the order is a data migration.

mod convex_id;
mod id;
mod json;
pub mod key;
mod limits;
mod value;

pub use convex_id::convex_id_table;
pub use id::{DocumentId, IdError, TableNumber};
pub use json::JsonError;
pub use key::{IndexKey, KeyRange};
pub use limits::{LimitError, Limits};
pub use value::{FieldPath, Object, Value};
