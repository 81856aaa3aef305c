//! `schema.toml` and the type language.
//!
//! [`Type`] is one small language used twice: for table fields in `schema.toml`
//! (`"string"`, `"optional<id<users>>"`, `"object{a: number}"`, `"\"admin\" | \"user\""`) and
//! for function argument validators in Rhai (`args: #{ text: "string" }`). [`Schema`] holds
//! the tables and their indexes; [`Schema::validate_document`] is the single check every write
//! goes through. Errors carry the file, line and column (for files) or the field path (for
//! values), the expected type and what was found. System tables (`_storage`), defined by the
//! engine, are in `system_tables.rs`.

mod error;
mod schema;
mod system_list;
mod system_tables;
mod types;

pub use error::{SchemaError, ValidationError};
pub use schema::{IndexDef, SYSTEM_INDEXES, Schema, TableDef};
pub use system_list::{SYSTEM_TABLES, SystemTable, is_known_system_table, is_system_table};
pub use types::{IdTables, ObjectType, Type};
