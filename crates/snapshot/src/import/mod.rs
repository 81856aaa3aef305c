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

mod prepare;
mod source;

use std::collections::HashSet;
use std::path::Path;

use application::{FileStorage, STORAGE_TABLE};
use database::{
    Database, MutationOutcome, MutationTxn, Order, ScanCursor, Snapshot, Transaction,
};
use filestore::Sha256Digest;
use sha2::{Digest, Sha256};
use value::{KeyRange, Value};

use crate::SnapshotError;
use prepare::{IdMapper, Prepared};
pub use source::ImportFormat;
use source::{Source, with_zip_entry};

/// Most documents (written or deleted) in one commit.
pub const BATCH_DOCS: usize = 2_000;
/// Most bytes of documents in one commit.
pub const BATCH_BYTES: usize = 8 << 20;
/// Problems listed when validation refuses an import.
const MAX_ERRORS: usize = 20;
/// The engine setting that records an import in progress.
const MARKER: &str = "import.in_progress";

/// What to do with tables that already hold documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportMode {
    /// Refuse unless every table imported into is empty (the default, as in Convex).
    RequireEmpty,
    /// Add to what is there.
    Append,
    /// Empty the tables being imported first.
    Replace,
    /// Empty every table of the schema first, also those the import does not mention.
    ReplaceAll,
}

/// How to import a file.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// `None`: from the file name.
    pub format: Option<ImportFormat>,
    /// The table to import into (single-table files; for a ZIP, only that table).
    pub table: Option<String>,
    pub mode: ImportMode,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Documents per table, in import order.
    pub tables: Vec<(String, u64)>,
    pub documents: u64,
    /// Stored files brought in (`_storage` rows with their bytes).
    pub files: u64,
    /// Documents deleted first (`--replace`, `--replace-all`).
    pub deleted: u64,
    pub commits: u64,
    /// Documents an earlier, interrupted run of the same import had already written.
    pub resumed_after: u64,
}

/// Where an interrupted import stood.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Marker {
    fingerprint: String,
    file: String,
    /// Documents written so far; `None` while still deleting.
    done: Option<u64>,
}

impl Marker {
    fn to_json(&self) -> String {
        serde_json::json!({ "fingerprint": self.fingerprint, "file": self.file, "done": self.done })
            .to_string()
    }

    fn parse(text: &str) -> Option<Marker> {
        let json: serde_json::Value = serde_json::from_str(text).ok()?;
        Some(Marker {
            fingerprint: json["fingerprint"].as_str()?.to_string(),
            file: json["file"].as_str().unwrap_or_default().to_string(),
            done: json["done"].as_u64(),
        })
    }
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
    let plan = validate(&source, &mapper, &snapshot, files, options.mode, resume.is_some())?;
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
    if resume.is_none()
        && existing + total <= BATCH_DOCS as u64
        && plan.bytes <= BATCH_BYTES as u64
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

/// What validation learnt.
struct Plan {
    counts: Vec<(String, u64)>,
    bytes: u64,
}

fn validate(
    source: &Source,
    mapper: &IdMapper<'_>,
    snapshot: &Snapshot,
    files: Option<&FileStorage>,
    mode: ImportMode,
    resuming: bool,
) -> Result<Plan, SnapshotError> {
    let mut errors: Vec<String> = Vec::new();
    let mut problems = 0usize;
    let mut seen: HashSet<u128> = HashSet::new();
    let mut counts = Vec::new();
    let mut bytes = 0u64;
    let catalog = snapshot.catalog();
    let schema = &mapper_schema(snapshot);
    for table in &source.tables {
        if catalog.table(&table.name).is_err() {
            errors.push(format!(
                "table {:?} is not declared in schema.toml; declare it, or import into another table with --table",
                table.name
            ));
            problems += 1;
            continue;
        }
        if mode == ImportMode::RequireEmpty
            && !resuming
            && !snapshot.documents(&table.name, None, 1)?.is_empty()
        {
            errors.push(format!(
                "table {:?} already has documents; pass --append to add to them or --replace to replace them",
                table.name
            ));
            problems += 1;
        }
        let mut count = 0u64;
        source.rows(table, schema, |line, json| {
            count += 1;
            let mut problem = |why: String| {
                problems += 1;
                if errors.len() < MAX_ERRORS {
                    errors.push(format!("{} line {line}: {why}", table.name));
                }
            };
            match mapper.prepare(&table.name, line, json) {
                Ok(doc) => {
                    bytes += doc.size as u64;
                    let key = Sha256::digest(doc.id.as_str().as_bytes());
                    let mut short = [0u8; 16];
                    short.copy_from_slice(&key[..16]);
                    if !seen.insert(u128::from_le_bytes(short)) {
                        problem(format!("_id {} appears twice in the import", doc.id));
                    } else if mode == ImportMode::Append
                        && !resuming
                        && snapshot.get(doc.id.as_str())?.is_some()
                    {
                        problem(format!(
                            "a document with this _id ({}) already exists; use --replace to replace the table",
                            doc.id
                        ));
                    }
                    if table.name == STORAGE_TABLE
                        && let Err(why) = check_storage_file(source, files, &doc)
                    {
                        problem(why);
                    }
                }
                Err(why) => problem(why),
            }
            Ok(())
        })?;
        counts.push((table.name.clone(), count));
    }
    if problems > 0 {
        return Err(SnapshotError::Invalid(format!(
            "nothing was imported: {problems} problem{} found{}:\n  {}",
            if problems == 1 { "" } else { "s" },
            if problems > errors.len() {
                format!(" (the first {} listed)", errors.len())
            } else {
                String::new()
            },
            errors.join("\n  ")
        )));
    }
    Ok(Plan { counts, bytes })
}

fn mapper_schema(snapshot: &Snapshot) -> schema::Schema {
    (*snapshot.catalog().schema).clone()
}

fn storage_digest(doc: &Prepared) -> Option<Sha256Digest> {
    doc.fields
        .get("sha256")
        .and_then(Value::as_str)
        .and_then(Sha256Digest::from_base64)
}

/// A `_storage` row needs its bytes: in the ZIP under its id, or already stored.
fn check_storage_file(
    source: &Source,
    files: Option<&FileStorage>,
    doc: &Prepared,
) -> Result<(), String> {
    let digest = storage_digest(doc).ok_or("sha256 is not a base64 SHA-256")?;
    let in_zip = doc
        .source_id
        .as_ref()
        .is_some_and(|id| source.storage_files.contains_key(id));
    let stored = files.is_some_and(|f| f.blobs().contains(&digest));
    if in_zip || stored {
        Ok(())
    } else {
        Err(format!(
            "the file of _storage row {:?} is not in the ZIP (expected _storage/{0})",
            doc.source_id.clone().unwrap_or_default()
        ))
    }
}

fn count_documents(snapshot: &Snapshot, tables: &[String]) -> Result<u64, SnapshotError> {
    let mut total = 0u64;
    for table in tables {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let rows = snapshot.documents(table, after.as_deref(), 10_000)?;
            total += rows.len() as u64;
            match rows.last() {
                Some(last) if rows.len() == 10_000 => after = Some(last.key.clone()),
                _ => break,
            }
        }
    }
    Ok(total)
}

/// Writes validated documents through the Committer.
struct BatchWriter<'a> {
    db: &'a Database,
    files: Option<&'a FileStorage>,
    source: &'a Source,
    report: ImportReport,
    marker: Marker,
}

/// One commit's worth of work.
#[derive(Default)]
struct Job {
    clear: Vec<String>,
    clear_limit: usize,
    docs: Vec<(String, Prepared)>,
    bytes: usize,
    marker: Option<String>,
}

impl BatchWriter<'_> {
    fn single_transaction(
        &mut self,
        source: &Source,
        mapper: &IdMapper<'_>,
        clear: &[String],
    ) -> Result<(), SnapshotError> {
        let mut job = Job {
            clear: clear.to_vec(),
            clear_limit: BATCH_DOCS,
            ..Job::default()
        };
        let schema = mapper_schema(&self.db.full_snapshot()?);
        for table in &source.tables {
            source.rows(table, &schema, |line, json| {
                let doc = mapper
                    .prepare(&table.name, line, json)
                    .map_err(|why| SnapshotError::Invalid(format!("{} line {line}: {why}", table.name)))?;
                job.docs.push((table.name.clone(), doc));
                Ok(())
            })?;
        }
        self.commit(job)?;
        Ok(())
    }

    fn batches(
        &mut self,
        source: &Source,
        mapper: &IdMapper<'_>,
        clear: &[String],
        resume: Option<Marker>,
    ) -> Result<(), SnapshotError> {
        let done = resume.as_ref().and_then(|m| m.done);
        self.report.resumed_after = done.unwrap_or(0);
        if done.is_none() && !clear.is_empty() {
            loop {
                let job = Job {
                    clear: clear.to_vec(),
                    clear_limit: BATCH_DOCS,
                    marker: Some(self.marker.to_json()),
                    ..Job::default()
                };
                if self.commit(job)? == 0 {
                    break;
                }
            }
        }
        let skip = done.unwrap_or(0);
        let mut index = 0u64;
        let mut job = Job::default();
        let schema = mapper_schema(&self.db.full_snapshot()?);
        for table in &source.tables {
            source.rows(table, &schema, |line, json| {
                index += 1;
                if index <= skip {
                    return Ok(());
                }
                let doc = mapper
                    .prepare(&table.name, line, json)
                    .map_err(|why| SnapshotError::Invalid(format!("{} line {line}: {why}", table.name)))?;
                job.bytes += doc.size;
                job.docs.push((table.name.clone(), doc));
                if job.docs.len() >= BATCH_DOCS || job.bytes >= BATCH_BYTES {
                    self.marker.done = Some(index);
                    let mut full = std::mem::take(&mut job);
                    full.marker = Some(self.marker.to_json());
                    self.commit(full)?;
                }
                Ok(())
            })?;
        }
        // The last batch also removes the marker: the import is complete.
        job.marker = None;
        self.commit(job)?;
        Ok(())
    }

    /// Brings the bytes of a job's `_storage` rows into the file store.
    fn stage_files(&mut self, job: &Job) -> Result<(), SnapshotError> {
        let Some(files) = self.files else {
            return Ok(());
        };
        for (table, doc) in &job.docs {
            if table != STORAGE_TABLE {
                continue;
            }
            let digest = storage_digest(doc).ok_or_else(|| {
                SnapshotError::Invalid(format!("_storage row {} has no sha256", doc.id))
            })?;
            if files.blobs().contains(&digest) {
                self.report.files += 1;
                continue;
            }
            let index = doc
                .source_id
                .as_ref()
                .and_then(|id| self.source.storage_files.get(id))
                .copied()
                .ok_or_else(|| {
                    SnapshotError::Invalid(format!("the file of _storage row {} is missing", doc.id))
                })?;
            let staged = with_zip_entry(&self.source.path, index, |entry| {
                let mut writer = files.blobs().writer(u64::MAX)?;
                let mut buffer = vec![0u8; 1 << 20];
                loop {
                    let n = entry
                        .read(&mut buffer)
                        .map_err(SnapshotError::io(&self.source.path))?;
                    if n == 0 {
                        break;
                    }
                    writer.write(&buffer[..n])?;
                }
                Ok(writer.finish()?)
            })?;
            if staged.digest != digest {
                return Err(SnapshotError::Invalid(format!(
                    "the bytes of _storage row {} do not match its sha256",
                    doc.source_id.clone().unwrap_or_default()
                )));
            }
            files.blobs().promote(staged)?;
            self.report.files += 1;
        }
        Ok(())
    }

    /// Commits one job; returns how many documents it deleted.
    fn commit(&mut self, job: Job) -> Result<u64, SnapshotError> {
        let files = self.files;
        let _commit = files.map(FileStorage::commit_lock);
        self.stage_files(&job)?;
        let inserted = job.docs.len() as u64;
        let Job {
            clear,
            clear_limit,
            docs,
            marker,
            ..
        } = job;
        let run: database::MutationFn = Box::new(move |mut txn: MutationTxn| {
            let mut deleted = 0usize;
            for table in &clear {
                if deleted >= clear_limit {
                    break;
                }
                for id in first_ids(&mut txn, table, clear_limit - deleted)? {
                    txn.delete_any(&id).map_err(|e| e.to_string())?;
                    deleted += 1;
                }
            }
            for (table, doc) in docs {
                let id = doc.id.to_string();
                txn.insert_with_id(&table, doc.id, doc.creation_time, doc.fields)
                    .map_err(|e| format!("{table} {id}: {e}"))?;
            }
            txn.set_config(MARKER, marker.as_deref())
                .map_err(|e| e.to_string())?;
            Ok(deleted.to_string())
        });
        match self.db.mutate_blocking(None, run)? {
            MutationOutcome::Committed { response, .. } => {
                let deleted: u64 = response.parse().unwrap_or(0);
                self.report.commits += 1;
                self.report.documents += inserted;
                self.report.deleted += deleted;
                Ok(deleted)
            }
            MutationOutcome::Replayed { .. } => Ok(0),
            MutationOutcome::Failed { response } => Err(SnapshotError::Invalid(format!(
                "a batch was refused, so the import stopped ({} documents written so far; run the same import again to resume): {response}",
                self.report.documents + self.report.resumed_after
            ))),
        }
    }
}

/// Up to `n` ids of `table`, in creation order.
fn first_ids(txn: &mut MutationTxn, table: &str, n: usize) -> Result<Vec<String>, String> {
    let index = txn
        .catalog()
        .table(table)
        .map_err(|e| e.to_string())?
        .by_creation_time
        .clone();
    let mut cursor = ScanCursor::new(&index, KeyRange::all(), Order::Asc);
    let mut ids = Vec::new();
    while ids.len() < n {
        match txn.scan_next(&mut cursor).map_err(|e| e.to_string())? {
            Some(doc) => ids.push(doc.id.to_string()),
            None => break,
        }
    }
    txn.finish_scan(cursor).map_err(|e| e.to_string())?;
    Ok(ids)
}

