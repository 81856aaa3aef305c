//! [`Unavailable`]: the storage cannot take writes for a reason outside the server — the
//! disk is full, the file system is read-only, or another process holds the database's
//! lock — told apart from every other failure, because clients and operators must hear
//! what it is (README.md, "Hostile clients and bad days") rather than "internal error".
//!
//! SQLite names most of these itself (`SQLITE_FULL`, `SQLITE_READONLY`, `SQLITE_BUSY`). A
//! plain I/O error is looked into: when the file system holding the database is mounted
//! read-only, or has no free block left, that is what the error is.

use std::fmt;
use std::path::Path;

use rusqlite::ErrorCode;

use crate::error::StorageError;

/// Why the database cannot be written for now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// No space left on the file system holding the database or its WAL.
    DiskFull,
    /// The database, its folder or its file system is read-only.
    ReadOnly,
    /// Another process holds the database's write lock (past the busy timeout).
    Locked,
}

impl Unavailable {
    /// The error code clients get (README.md lists them).
    pub fn code(self) -> &'static str {
        match self {
            Unavailable::DiskFull => "DiskFull",
            Unavailable::ReadOnly => "ReadOnlyStorage",
            Unavailable::Locked => "DatabaseLocked",
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
        }
    }

    /// Classifies `error` from an operation on the database at `path`.
    pub fn of(error: &StorageError, path: &Path) -> Option<Unavailable> {
        let code = match error {
            StorageError::Sqlite(e) => e.sqlite_error_code(),
            StorageError::Io { source, .. } => {
                return match source.raw_os_error() {
                    Some(code) if code == nix::libc::ENOSPC => Some(Unavailable::DiskFull),
                    Some(code) if code == nix::libc::EROFS => Some(Unavailable::ReadOnly),
                    _ => probe(path),
                };
            }
        }?;
        match code {
            ErrorCode::DiskFull => Some(Unavailable::DiskFull),
            ErrorCode::ReadOnly => Some(Unavailable::ReadOnly),
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Some(Unavailable::Locked),
            ErrorCode::SystemIoFailure | ErrorCode::CannotOpen => probe(path),
            _ => None,
        }
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unavailable::DiskFull => "the disk holding the database is full",
            Unavailable::ReadOnly => "the database is on a read-only file system",
            Unavailable::Locked => "another process holds the database's lock",
        })
    }
}

/// Looks at the file system holding `path` (or its folder): read-only, or no space left.
fn probe(path: &Path) -> Option<Unavailable> {
    let dir = if path.is_dir() {
        path
    } else {
        path.parent().filter(|p| !p.as_os_str().is_empty())?
    };
    let stat = nix::sys::statvfs::statvfs(dir).ok()?;
    if stat.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
        return Some(Unavailable::ReadOnly);
    }
    if stat.blocks_available() == 0 {
        return Some(Unavailable::DiskFull);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: i32) -> StorageError {
        StorageError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    }

    #[test]
    fn sqlite_codes_name_the_cause() {
        let here = Path::new("/tmp/x.sqlite3");
        assert_eq!(
            Unavailable::of(&sqlite(13), here),
            Some(Unavailable::DiskFull)
        );
        assert_eq!(
            Unavailable::of(&sqlite(8), here),
            Some(Unavailable::ReadOnly)
        );
        assert_eq!(Unavailable::of(&sqlite(5), here), Some(Unavailable::Locked));
        assert_eq!(Unavailable::of(&sqlite(1), here), None);
        let io = StorageError::Io {
            path: here.into(),
            source: std::io::Error::from_raw_os_error(nix::libc::ENOSPC),
        };
        assert_eq!(Unavailable::of(&io, here), Some(Unavailable::DiskFull));
    }

    #[test]
    fn a_plain_io_error_on_a_healthy_file_system_is_not_unavailability() {
        let dir = tempfile::tempdir().expect("tempdir");
        // SQLITE_IOERR (10): the temp folder is writable and has space.
        assert_eq!(Unavailable::of(&sqlite(10), &dir.path().join("db")), None);
    }
}
