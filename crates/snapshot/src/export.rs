//! `pulsebase export`: the database at one commit, as the ZIP `npx convex export` writes:
//!
//! ```text
//! README.md
//! _tables/documents.jsonl            {"name": "todos", "id": 2} per user table
//! todos/documents.jsonl              one document per line, in Convex's export JSON
//! todos/generated_schema.jsonl       "uniform" (the documents need no type hints)
//! _storage/documents.jsonl           with --include-file-storage: one line per file
//! _storage/<storage id>              ... and its bytes
//! ```
//!
//! Every table is read from one [`Snapshot`], so the export is consistent at its `ts` while
//! the server keeps committing. The ZIP is written to `PATH.partial` and renamed when
//! complete, so a failed export leaves no file that looks finished. File bytes are copied
//! while the store's readers lock is held, so the collector cannot remove a blob the
//! snapshot still lists.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use database::Snapshot;
use filestore::{BlobStore, Sha256Digest};
use value::Value;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::SnapshotError;
use crate::export_json::to_export_json;

/// Documents read from storage per page.
const PAGE: usize = 1_000;
const README: &str = "# Pulsebase snapshot export\n\nThis ZIP holds a snapshot of the tables of a Pulsebase app, in the layout of a Convex\nsnapshot export: one <table>/documents.jsonl per table, one document per line.\nImport it with `pulsebase import FILE.zip` (or `npx convex import` into Convex).\n";

/// What an export wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportReport {
    pub ts: u64,
    pub tables: usize,
    pub documents: u64,
    pub files: u64,
    pub path: PathBuf,
}

/// Writes the export of `snapshot` to `path` (and the stored files, when `blobs` is given).
pub fn export_zip(
    snapshot: &Snapshot,
    blobs: Option<&BlobStore>,
    path: &Path,
) -> Result<ExportReport, SnapshotError> {
    let partial = path.with_extension("zip.partial");
    let file = File::create(&partial).map_err(SnapshotError::io(&partial))?;
    let result = write_zip(
        snapshot,
        blobs,
        BufWriter::with_capacity(1 << 20, file),
        path,
    );
    match result {
        Ok(report) => {
            std::fs::rename(&partial, path).map_err(SnapshotError::io(path))?;
            Ok(report)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn deflated() -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .unix_permissions(0o644)
        .large_file(true)
}

fn write_zip(
    snapshot: &Snapshot,
    blobs: Option<&BlobStore>,
    out: BufWriter<File>,
    path: &Path,
) -> Result<ExportReport, SnapshotError> {
    let mut zip = ZipWriter::new(out);
    let mut report = ExportReport {
        ts: snapshot.ts(),
        path: path.to_path_buf(),
        ..ExportReport::default()
    };
    zip.start_file("README.md", deflated())?;
    zip.write_all(README.as_bytes())
        .map_err(SnapshotError::io(path))?;

    let catalog = snapshot.catalog();
    let tables: Vec<String> = catalog
        .schema
        .user_tables()
        .map(|t| t.name.clone())
        .collect();
    zip.start_file("_tables/documents.jsonl", deflated())?;
    for name in &tables {
        let number = catalog.table(name)?.number.0;
        let line = serde_json::json!({ "name": name, "id": number });
        writeln!(zip, "{line}").map_err(SnapshotError::io(path))?;
    }
    for name in &tables {
        zip.start_file(format!("{name}/documents.jsonl"), deflated())?;
        report.documents += write_table(snapshot, name, &mut zip, path, |doc| {
            to_export_json(&doc.to_value())
        })?;
        zip.start_file(format!("{name}/generated_schema.jsonl"), deflated())?;
        writeln!(zip, "\"uniform\"").map_err(SnapshotError::io(path))?;
        report.tables += 1;
    }
    if let Some(blobs) = blobs {
        report.files = write_files(snapshot, blobs, &mut zip, path)?;
    }
    let mut out = zip.finish()?;
    out.flush().map_err(SnapshotError::io(path))?;
    out.get_ref().sync_all().map_err(SnapshotError::io(path))?;
    Ok(report)
}

/// Writes one JSON line per document of `table`; returns how many.
fn write_table<W: Write + std::io::Seek>(
    snapshot: &Snapshot,
    table: &str,
    zip: &mut ZipWriter<W>,
    path: &Path,
    line: impl Fn(&database::Document) -> serde_json::Value,
) -> Result<u64, SnapshotError> {
    let mut after: Option<Vec<u8>> = None;
    let mut count = 0;
    loop {
        let rows = snapshot.documents(table, after.as_deref(), PAGE)?;
        for row in &rows {
            serde_json::to_writer(&mut *zip, &line(&row.document))
                .map_err(|e| SnapshotError::io(path)(e.into()))?;
            zip.write_all(b"\n").map_err(SnapshotError::io(path))?;
            count += 1;
        }
        match rows.last() {
            Some(last) if rows.len() == PAGE => after = Some(last.key.clone()),
            _ => return Ok(count),
        }
    }
}

/// `_storage/documents.jsonl` in Convex's shape, then each file's bytes under its id.
fn write_files<W: Write + std::io::Seek>(
    snapshot: &Snapshot,
    blobs: &BlobStore,
    zip: &mut ZipWriter<W>,
    path: &Path,
) -> Result<u64, SnapshotError> {
    const STORAGE: &str = "_storage";
    zip.start_file(format!("{STORAGE}/documents.jsonl"), deflated())?;
    write_table(snapshot, STORAGE, zip, path, |doc| {
        let mut line = serde_json::Map::new();
        line.insert("_id".into(), doc.id.to_string().into());
        line.insert("_creationTime".into(), serde_json::json!(doc.creation_time));
        for (field, value) in &doc.fields {
            let json = match (field.as_str(), value) {
                // Convex writes the size as an integer.
                ("size", Value::Float64(n)) => serde_json::json!(*n as i64),
                _ => to_export_json(value),
            };
            line.insert(field.clone(), json);
        }
        serde_json::Value::Object(line)
    })?;
    let stored = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .unix_permissions(0o644)
        .large_file(true);
    let mut after: Option<Vec<u8>> = None;
    let mut count = 0;
    loop {
        let rows = snapshot.documents(STORAGE, after.as_deref(), PAGE)?;
        for row in &rows {
            let digest = row
                .document
                .fields
                .get("sha256")
                .and_then(Value::as_str)
                .and_then(Sha256Digest::from_base64)
                .ok_or_else(|| {
                    SnapshotError::Invalid(format!(
                        "_storage row {} has no sha256",
                        row.document.id
                    ))
                })?;
            let source = blobs.path(&digest);
            let mut file = File::open(&source).map_err(SnapshotError::io(&source))?;
            zip.start_file(format!("{STORAGE}/{}", row.document.id), stored)?;
            std::io::copy(&mut file, zip).map_err(SnapshotError::io(&source))?;
            count += 1;
        }
        match rows.last() {
            Some(last) if rows.len() == PAGE => after = Some(last.key.clone()),
            _ => return Ok(count),
        }
    }
}
