//! [`StorageError`]: everything that can go wrong talking to the database engine or the
//! file system.

use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;

use crate::unavailable::Unavailable;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("SQLite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot use {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An error of another engine (PostgreSQL), in its own words, and whether it means the
    /// database cannot be written for now (classified by the engine's crate).
    #[error("{engine} error: {message}")]
    Engine {
        engine: &'static str,
        message: String,
        unavailable: Option<Unavailable>,
    },
    /// SQLite's file layer for the writer could not be set up (see `wal_vfs`).
    #[error("cannot set up SQLite's file layer: {0}")]
    Vfs(String),
    /// The engine cannot do what was asked (what follows "cannot do").
    #[error("this storage engine cannot do this: {0}")]
    Unsupported(&'static str),
}

impl StorageError {
    /// Whether this failure of an operation on the database at `path` means the database
    /// cannot be written for now, and why. SQLite names most causes itself (`SQLITE_FULL`,
    /// `SQLITE_READONLY`, `SQLITE_BUSY`); a plain I/O error is looked into: when the file
    /// system holding the database is mounted read-only, or has no free block left, that is
    /// what the error is. Other engines classify their errors when they make them.
    pub fn unavailable(&self, path: &Path) -> Option<Unavailable> {
        let code = match self {
            StorageError::Sqlite(e) => e.sqlite_error_code(),
            StorageError::Engine { unavailable, .. } => return *unavailable,
            StorageError::Unsupported(_) | StorageError::Vfs(_) => return None,
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
        assert_eq!(sqlite(13).unavailable(here), Some(Unavailable::DiskFull));
        assert_eq!(sqlite(8).unavailable(here), Some(Unavailable::ReadOnly));
        assert_eq!(sqlite(5).unavailable(here), Some(Unavailable::Locked));
        assert_eq!(sqlite(1).unavailable(here), None);
        let io = StorageError::Io {
            path: here.into(),
            source: std::io::Error::from_raw_os_error(nix::libc::ENOSPC),
        };
        assert_eq!(io.unavailable(here), Some(Unavailable::DiskFull));
    }

    #[test]
    fn a_plain_io_error_on_a_healthy_file_system_is_not_unavailability() {
        let dir = tempfile::tempdir().expect("tempdir");
        // SQLITE_IOERR (10): the temp folder is writable and has space.
        assert_eq!(sqlite(10).unavailable(&dir.path().join("db")), None);
    }
}
