//! [`DbError`]: what a transaction can refuse. Most variants are user errors that reach the
//! client as the function's error message, so each says what happened and how to fix it.
//!
//! Two variants are not the caller's doing: [`DbError::Corrupt`] is for data on disk that
//! cannot be what this server wrote, [`DbError::Internal`] for everything else that failed
//! inside the server. An `Internal` error's message is only "internal server error", since
//! some transports show an error's message to the client as is; what happened goes to the log
//! when the error is made ([`DbError::internal`]).

use schema::ValidationError;
use storage::{StorageError, Unavailable};

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
    /// A user write (`ctx.db.insert/patch/replace/delete`) to an engine-defined table.
    #[error(
        "ctx.db.{op} cannot write the system table {table:?}: system tables are changed only by the engine (for _storage: uploads, ctx.storage.store and ctx.storage.delete)"
    )]
    SystemTableWrite { op: &'static str, table: String },
    /// An import or engine insert whose `_id` is already taken.
    #[error("a document with _id {id:?} already exists in table {table:?}")]
    DuplicateId { table: String, id: String },
    #[error("the committer has stopped; the server is shutting down")]
    CommitterStopped,
    #[error("schema change refused: {0}")]
    SchemaRejected(String),
    /// Stored data that cannot be what this server wrote (a document that is not convex
    /// JSON, a table without its system indexes).
    #[error("the database is corrupt: {0}")]
    Corrupt(String),
    /// A failure inside the server that is none of the caller's doing: a task that panicked
    /// or was cancelled, a thread that could not start, a commit SQLite refused. The string
    /// says what happened, for the log; clients see only the short message. Make it with
    /// [`DbError::internal`], which logs it; code that logs the failure itself (once for many
    /// callers) may build the variant directly.
    #[error("internal server error")]
    Internal(String),
    /// The database cannot be written for a reason outside the server (full disk, read-only
    /// file system, a lock held by another process, an unreachable database server, a
    /// schema another node deployed): the write was not applied, nothing of
    /// it was kept, and it can be retried once the cause is gone. The message is the one
    /// clients get; `detail` (SQLite's own words) goes to the log.
    #[error("{}", unavailable_message(*.kind))]
    Unavailable { kind: Unavailable, detail: String },
}

/// What a client is told when a write hits [`DbError::Unavailable`] (README.md lists these).
fn unavailable_message(kind: Unavailable) -> String {
    let cause = match kind {
        Unavailable::DiskFull => "the server's disk is full",
        Unavailable::ReadOnly => "the server's database is on a read-only file system",
        Unavailable::Locked => "another process holds the lock on the server's database file",
        Unavailable::Unreachable => "the server cannot reach its database",
        Unavailable::SchemaOutdated => {
            "this server node runs an older or different schema.toml than the one deployed on the other nodes"
        }
    };
    format!(
        "{}: {cause}, so this write was not applied (nothing of it was kept); retry later",
        kind.code()
    )
}

impl DbError {
    /// A [`DbError::Internal`], logged here so the log says what happened wherever the error
    /// ends up.
    pub fn internal(what: impl Into<String>) -> DbError {
        let what = what.into();
        tracing::error!(what = %what, "internal error in the database");
        DbError::Internal(what)
    }
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        String::new()
    } else {
        format!(" (known: {})", known.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailability_names_its_code_and_that_nothing_was_kept() {
        let error = DbError::Unavailable {
            kind: Unavailable::DiskFull,
            detail: "commit: SQLite error: database or disk is full".into(),
        };
        let text = error.to_string();
        assert!(
            text.starts_with("DiskFull: the server's disk is full"),
            "{text}"
        );
        assert!(text.contains("not applied"), "{text}");
    }

    #[test]
    fn an_internal_error_shows_clients_no_detail() {
        let error = DbError::internal("query task failed: task 7 panicked");
        assert_eq!(error.to_string(), "internal server error");
        assert!(matches!(error, DbError::Internal(what) if what.contains("task 7 panicked")));
    }
}
