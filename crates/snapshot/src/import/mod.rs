//! `pulsebase import`: validate everything, then write through the Committer.
//!
//! 1. Read the whole input once (`source.rs`), map ids and check every document against
//!    `schema.toml` (`prepare.rs`), refuse duplicate `_id`s, ids that already exist
//!    (`--append`), non-empty tables (no mode given), unknown tables and `_storage` rows
//!    without their file. Any problem stops the import before anything is written, with
//!    up to [`MAX_ERRORS`] of them listed by table and line.
//! 2. Write. An import of at most [`BATCH_DOCS`] documents (counting those `--replace`
//!    deletes) and [`BATCH_BYTES`] is one transaction. A larger one is written in batches of
//!    that size, each an ordinary commit (subscribers see each), so the Committer keeps
//!    serving mutations in between; each batch also commits a marker saying how far the
//!    import got. If the import stops part-way (crash, a failing batch), the marker stays: the
//!    same command resumes after the last committed batch (ids are derived from the input, so
//!    the resumed part makes the same ids), and any other import is refused until then.

mod plan;
mod prepare;
mod source;
mod validate;
mod write;

use std::path::Path;

use application::{FileStorage, STORAGE_TABLE};
use database::Database;
use sha2::{Digest, Sha256};

use crate::SnapshotError;
pub use plan::{BATCH_BYTES, BATCH_DOCS, ImportMode, ImportReport};
use plan::{MARKER, Marker};
use prepare::IdMapper;
pub use source::ImportFormat;
use source::Source;
use validate::{count_documents, validate};
use write::BatchWriter;

/// How to import a file.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// `None`: from the file name.
    pub format: Option<ImportFormat>,
    /// The table to import into (single-table files; for a ZIP, only that table).
    pub table: Option<String>,
    pub mode: ImportMode,
}

/// Identifies one import (the file as it is now, and the options), for resuming.
fn fingerprint(path: &Path, options: &ImportOptions) -> Result<String, SnapshotError> {
    let meta = std::fs::metadata(path).map_err(SnapshotError::io(path))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let text = format!(
        "{}|{}|{modified}|{:?}|{:?}|{:?}",
        canonical.display(),
        meta.len(),
        options.format,
        options.table,
        options.mode
    );
    let digest = Sha256::digest(text.as_bytes());
    Ok(digest.iter().take(16).map(|b| format!("{b:02x}")).collect())
}

/// Imports `path` into the database (stored files into `files`). Blocking.
pub fn import_file(
    db: &Database,
    files: Option<&FileStorage>,
    path: &Path,
    options: &ImportOptions,
) -> Result<ImportReport, SnapshotError> {
    let format = options
        .format
        .or_else(|| ImportFormat::from_path(path))
        .ok_or_else(|| {
            SnapshotError::Invalid(format!(
                "cannot tell the format of {} from its name: use a .zip, .jsonl, .json or .csv file",
                path.display()
            ))
        })?;
    let source = Source::open(path, format, options.table.as_deref())?;
    if !source.legacy_schema.is_empty() {
        return Err(SnapshotError::Invalid(format!(
            "tables {} were exported in Convex's older format (typed by generated_schema.jsonl); export again with a current `npx convex export`",
            source.legacy_schema.join(", ")
        )));
    }
    if source.tables.iter().any(|t| t.name == STORAGE_TABLE) && files.is_none() {
        return Err(SnapshotError::Invalid(
            "the import has stored files (_storage) but file storage is not enabled".to_string(),
        ));
    }
    let fingerprint = fingerprint(path, options)?;
    let catalog = db.catalog();
    let mapper = IdMapper::new(&catalog, &source.source_tables, fingerprint.clone());
    let snapshot = db.full_snapshot()?;
    let resume = match snapshot.config(MARKER)?.as_deref().and_then(Marker::parse) {
        None => None,
        Some(marker) if marker.fingerprint == fingerprint => Some(marker),
        Some(marker) => {
            return Err(SnapshotError::Invalid(format!(
                "an earlier import of {} stopped part-way; run that same import again to finish it before importing anything else",
                marker.file
            )));
        }
    };
    let plan = validate(
        &source,
        &mapper,
        &snapshot,
        files,
        options.mode,
        resume.is_some(),
    )?;
    let clear: Vec<String> = match options.mode {
        ImportMode::Replace => source.tables.iter().map(|t| t.name.clone()).collect(),
        ImportMode::ReplaceAll => {
            let mut all: Vec<String> = catalog
                .schema
                .user_tables()
                .map(|t| t.name.clone())
                .collect();
            all.extend(source.tables.iter().map(|t| t.name.clone()));
            all.dedup();
            all
        }
        _ => Vec::new(),
    };
    let existing = count_documents(&snapshot, &clear)?;
    drop(snapshot);

    let mut writer = BatchWriter {
        db,
        files,
        source: &source,
        report: ImportReport {
            tables: plan.counts.clone(),
            ..ImportReport::default()
        },
        marker: Marker {
            fingerprint,
            file: path.display().to_string(),
            done: None,
        },
    };
    let total = plan.counts.iter().map(|(_, n)| *n).sum::<u64>();
    if resume.is_none() && existing + total <= BATCH_DOCS as u64 && plan.bytes <= BATCH_BYTES as u64
    {
        writer.single_transaction(&source, &mapper, &clear)?;
    } else {
        writer.batches(&source, &mapper, &clear, resume)?;
    }
    if clear.iter().any(|t| t == STORAGE_TABLE)
        && let Some(files) = files
    {
        files.sweep(db);
    }
    Ok(writer.report)
}
