//! The storage layer: rows in, rows out. It stores documents as convex-JSON text, index
//! entries as (index id, encoded key, document id) and a catalog of tables and indexes, and
//! knows nothing of schemas, Rhai or subscriptions.
//!
//! [`rows`](crate::ReadRows) holds the traits an engine implements, so the database crate
//! does not know which engine is underneath. This crate is the only one that knows SQLite,
//! the default engine; `crates/pgstore` implements the same traits on PostgreSQL.
//!
//! One [`Writer`] (not `Clone`, created once when the database is opened) owns the
//! read-write connection; any number of [`Reader`]s read in snapshots. The commit timestamp
//! lives in `_meta`: the database crate stores each commit's with [`WriteRows::set_ts`]
//! before [`WriteRows::commit`], and the first statement of a snapshot reads it, which both
//! pins the snapshot and tells the reader exactly which commit it sees.
//!
//! Index keys are byte strings compared as bytes (`memcmp`), so a range scan here is exactly
//! the byte range the subscription index reasons about.

mod checkpointer;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod conn;
mod durability;
mod error;
mod reader;
mod rows;
mod unavailable;
// The project's only unsafe code: SQLite's VFS interface (see the module and tidy).
#[allow(unsafe_code)]
mod wal_vfs;
mod writer;

pub use checkpointer::{Checkpointer, WalProgress};
pub use durability::Durability;
pub use error::StorageError;
pub use rows::{
    Catalog, CommitFeed, Engine, IndexRow, Lease, LoggedCommit, Order, ReadRows, Reader, ScanRow,
    SnapshotRows, StoredDocument, StoredResponse, TableRow, WriteRows, Writer, next_prune_slice,
};
pub use unavailable::Unavailable;

use reader::SqliteReader;
use writer::SqliteWriter;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// One database, whatever its engine: hands out read connections. Cheap to clone.
#[derive(Clone)]
pub struct Storage {
    engine: Arc<dyn Engine>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("engine", &self.engine.describe())
            .finish()
    }
}

impl Storage {
    /// Opens (creating if needed) the SQLite database at `path` and returns the one writer.
    pub fn open(path: &Path) -> Result<(Storage, Writer), StorageError> {
        Storage::open_with(path, Durability::Normal)
    }

    /// [`Storage::open`] with the given durability of commits.
    pub fn open_with(
        path: &Path,
        durability: Durability,
    ) -> Result<(Storage, Writer), StorageError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StorageError::Io {
                path: dir.to_path_buf(),
                source: e,
            })?;
        }
        let wal_frames = Arc::new(AtomicU64::new(0));
        let writer = SqliteWriter::open(path, wal_frames.clone(), durability)?;
        let engine = SqliteEngine {
            path: path.to_path_buf(),
            wal_frames,
        };
        Ok((Storage::of(Arc::new(engine)), Box::new(writer)))
    }

    /// The storage of another engine (`crates/pgstore`).
    pub fn of(engine: Arc<dyn Engine>) -> Storage {
        Storage { engine }
    }

    /// The connection that folds SQLite's WAL back into the database file; `None` for an
    /// engine without a local log.
    pub fn checkpointer(&self) -> Result<Option<Checkpointer>, StorageError> {
        self.engine.checkpointer()
    }

    /// A new read-only connection.
    pub fn reader(&self) -> Result<Reader, StorageError> {
        self.engine.reader()
    }

    /// A read-only connection to an existing SQLite database file without opening the
    /// writer: what a second process (`pulsebase export`, `backup`) uses while a server owns
    /// the writer. WAL mode lets both read consistent snapshots while the server commits.
    pub fn open_reader(path: &Path) -> Result<Reader, StorageError> {
        if !path.is_file() {
            return Err(StorageError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no database here"),
            });
        }
        Ok(Box::new(SqliteReader::open(path)?))
    }

    /// Takes the lease named `name` if no other process holds it (see [`Lease`]).
    pub fn try_lease(&self, name: &str) -> Result<Option<Box<dyn Lease>>, StorageError> {
        self.engine.try_lease(name)
    }

    /// The feed of commits of a database other processes commit to as well (`None` for one
    /// this process alone writes).
    pub fn commit_feed(&self) -> Result<Option<Box<dyn CommitFeed>>, StorageError> {
        self.engine.commit_feed()
    }

    /// How many read connections may be open at once (`None`: no limit).
    pub fn max_readers(&self) -> Option<usize> {
        self.engine.max_readers()
    }

    /// The database file, for an engine that keeps the database in one (SQLite).
    pub fn path(&self) -> Option<&Path> {
        self.engine.path()
    }

    /// Where the database is, for logs and errors.
    pub fn describe(&self) -> String {
        self.engine.describe()
    }
}

/// The SQLite engine: a database file in WAL mode.
struct SqliteEngine {
    path: PathBuf,
    /// The WAL's length in frames after the writer's last commit (SQLite's WAL hook).
    wal_frames: Arc<AtomicU64>,
}

impl Engine for SqliteEngine {
    fn reader(&self) -> Result<Reader, StorageError> {
        Ok(Box::new(SqliteReader::open(&self.path)?))
    }

    fn checkpointer(&self) -> Result<Option<Checkpointer>, StorageError> {
        Checkpointer::open(&self.path, self.wal_frames.clone()).map(Some)
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}
