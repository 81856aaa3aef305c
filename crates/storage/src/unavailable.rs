//! [`Unavailable`]: the storage cannot take writes for a reason outside the server — the
//! disk is full, the file system is read-only, another process holds the database's lock,
//! the database server cannot be reached, or (on a database several nodes share) another
//! node deployed a different `schema.toml` — told apart from every other failure, because
//! clients and operators must hear what it is (README.md, "Hostile clients and bad days")
//! rather than "internal error".
//!
//! [`StorageError::unavailable`](crate::StorageError::unavailable) tells which a failure is.

use std::fmt;

/// Why the database cannot be written for now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// No space left on the file system holding the database or its WAL.
    DiskFull,
    /// The database, its folder or its file system is read-only.
    ReadOnly,
    /// Another process holds the database's write lock (past the busy timeout).
    Locked,
    /// The database server (PostgreSQL) cannot be reached or is shutting down.
    Unreachable,
    /// On a database several nodes share: the `schema.toml` in force is not the one this
    /// node applied (another node deployed a different one), so this node must not write.
    SchemaOutdated,
}

impl Unavailable {
    /// The error code clients get (README.md lists them).
    pub fn code(self) -> &'static str {
        match self {
            Unavailable::DiskFull => "DiskFull",
            Unavailable::ReadOnly => "ReadOnlyStorage",
            Unavailable::Locked => "DatabaseLocked",
            Unavailable::Unreachable => "DatabaseUnreachable",
            Unavailable::SchemaOutdated => "SchemaOutdated",
        }
    }

    /// What the operator should do, for the log and startup errors.
    pub fn remedy(self) -> &'static str {
        match self {
            Unavailable::DiskFull => {
                "free space on the volume holding the database; writes resume by themselves"
            }
            Unavailable::ReadOnly => {
                "make the database file, its folder and its file system writable; writes resume by themselves"
            }
            Unavailable::Locked => {
                "another process (a second server, or a tool such as sqlite3) holds the database's lock; stop it"
            }
            Unavailable::Unreachable => {
                "start the database server or restore the network to it; writes resume by themselves"
            }
            Unavailable::SchemaOutdated => {
                "restart this node with the app folder (schema.toml and functions) the other nodes run; until then it serves queries only"
            }
        }
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unavailable::DiskFull => "the disk holding the database is full",
            Unavailable::ReadOnly => "the database is on a read-only file system",
            Unavailable::Locked => "another process holds the database's lock",
            Unavailable::Unreachable => "the database server cannot be reached",
            Unavailable::SchemaOutdated => {
                "another node deployed a different schema.toml than this node's"
            }
        })
    }
}
