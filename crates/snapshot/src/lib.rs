//! Moving an app's data in and out, as `pulsebase export`, `import`, `backup` and `restore`:
//!
//! - `export.rs`: a consistent snapshot as the ZIP `npx convex export` writes, from a
//!   [`database::Snapshot`] (one `ts`, writes going on meanwhile);
//! - `import/`: that ZIP (so a Convex deployment's export imports here), or one table as
//!   `.jsonl`, `.json` or `.csv`, validated in full against `schema.toml` before anything is
//!   written, then written through the Committer in batches (ordinary commits, so
//!   subscribers see them), resumable from a marker if interrupted;
//! - `backup.rs`: an online copy of the SQLite file (`VACUUM INTO`) and the stored files in
//!   one ZIP, and restoring it into an app directory;
//! - `export_json.rs`: Convex's export JSON encoding of values.

mod backup;
mod export;
mod export_json;
mod import;

use std::path::{Path, PathBuf};

pub use backup::{BackupReport, RestoreReport, backup, restore};
pub use export::{ExportReport, export_zip};
pub use export_json::{from_export_json, to_export_json};
pub use import::{ImportFormat, ImportMode, ImportOptions, ImportReport, import_file};

/// Why an export, import, backup or restore stopped. Nothing was written when an import
/// stops before its first batch; [`SnapshotError::Invalid`] lists what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not a valid ZIP file: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error(transparent)]
    Db(#[from] database::DbError),
    #[error(transparent)]
    Files(#[from] application::FileError),
    #[error(transparent)]
    Blob(#[from] filestore::BlobError),
    #[error("{0}")]
    Invalid(String),
}

impl SnapshotError {
    /// An I/O error at `path`, for callers outside this crate.
    pub fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
        Self::io(path)
    }

    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
        move |source| SnapshotError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
