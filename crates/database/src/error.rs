//! [`DbError`]: what a transaction can refuse. Most variants are user errors that reach the
//! client as the function's error message, so each says what happened and how to fix it.

use schema::ValidationError;
use storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("table {table:?} is not declared in schema.toml{}", known_list(.known))]
    UnknownTable { table: String, known: Vec<String> },
    #[error("table {table:?} has no index {index:?}{}", known_list(.known))]
    UnknownIndex {
        table: String,
        index: String,
        known: Vec<String>,
    },
    #[error("index {index:?} of table {table:?} covers fields {fields}; {reason}")]
    BadIndexRange {
        table: String,
        index: String,
        fields: String,
        reason: String,
    },
    #[error("document for table {table:?} does not match the schema: {error}")]
    Validation {
        table: String,
        error: ValidationError,
    },
    #[error("{0:?} is not a valid document id")]
    InvalidId(String),
    #[error("{op} on nonexistent document {id:?}")]
    NotFound { op: &'static str, id: String },
    #[error("{0}")]
    Limit(String),
    #[error(
        "{op}: field {field:?} starts with '_', which is reserved for system fields (_id, _creationTime are set by the database)"
    )]
    ReservedField { op: &'static str, field: String },
    /// A field name the value model refuses (empty, control characters, ...).
    #[error("{0}")]
    InvalidFieldName(String),
    /// A `ctx.db` handle kept past the end of its mutation.
    #[error("this mutation has already finished; ctx.db cannot be used after the handler returns")]
    MutationFinished,
    #[error(
        "ctx.db.{0} is not available in a query; queries are read-only, move the write into a mutation"
    )]
    ReadOnly(&'static str),
    #[error("the committer has stopped; the server is shutting down")]
    CommitterStopped,
    #[error("schema change refused: {0}")]
    SchemaRejected(String),
    #[error("the database is corrupt: {0}")]
    Corrupt(String),
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        String::new()
    } else {
        format!(" (known: {})", known.join(", "))
    }
}
