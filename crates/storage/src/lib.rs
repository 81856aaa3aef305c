//! The only crate that knows SQLite. Rows in, rows out: it stores documents as convex-JSON text,
//! index entries as (index id, encoded key, document id) and a catalog of tables and indexes,
//! and knows nothing of schemas, Rhai or subscriptions.
//!
//! One [`Writer`] (not `Clone`, created once by [`Storage::open`]) owns the read-write
//! connection; any number of [`Reader`]s read in WAL snapshots. The commit timestamp lives in
//! `_meta`: the database crate stores each commit's with [`Writer::set_ts`] before
//! [`Writer::commit`], and the first statement of a snapshot reads it, which both pins the
//! snapshot and tells the reader exactly which commit it sees.
//!
//! Index keys are BLOBs compared by SQLite with `memcmp`, so a range scan here is exactly the
//! byte range the subscription index reasons about.

mod checkpointer;
mod conn;
mod durability;
mod error;
mod reader;
mod unavailable;
mod writer;

pub use checkpointer::{Checkpointer, WalProgress};
pub use conn::{
    Catalog, IndexRow, Order, ReadRows, ScanRow, StoredDocument, StoredResponse, TableRow,
};
pub use durability::Durability;
pub use error::StorageError;
pub use reader::Reader;
pub use unavailable::Unavailable;
pub use writer::Writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// Opens the database file and hands out connections.
#[derive(Clone, Debug)]
pub struct Storage {
    path: PathBuf,
    /// The WAL's length in frames after the writer's last commit (SQLite's WAL hook).
    wal_frames: Arc<AtomicU64>,
}

impl Storage {
    /// Opens (creating if needed) the database at `path` and returns the one writer.
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
        let writer = Writer::open(path, wal_frames.clone(), durability)?;
        Ok((
            Storage {
                path: path.to_path_buf(),
                wal_frames,
            },
            writer,
        ))
    }

    /// The connection that folds the WAL back into the database file.
    pub fn checkpointer(&self) -> Result<Checkpointer, StorageError> {
        Checkpointer::open(&self.path, self.wal_frames.clone())
    }

    /// A new read-only connection.
    pub fn reader(&self) -> Result<Reader, StorageError> {
        Reader::open(&self.path)
    }

    /// A read-only connection to an existing database file without opening the writer: what
    /// a second process (`pulsebase export`, `backup`) uses while a server owns the writer.
    /// WAL mode lets both read consistent snapshots while the server commits.
    pub fn open_reader(path: &Path) -> Result<Reader, StorageError> {
        if !path.is_file() {
            return Err(StorageError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no database here"),
            });
        }
        Reader::open(path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
