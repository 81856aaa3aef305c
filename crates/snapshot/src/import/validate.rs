//! The validation pass: every row of the import read, mapped and checked before anything is
//! written, with the checks that need the database as it is (existing ids, non-empty tables).

use std::collections::HashSet;

use application::{FileStorage, STORAGE_TABLE};
use database::Snapshot;
use sha2::{Digest, Sha256};

use super::plan::{ImportMode, MAX_ERRORS, mapper_schema, storage_digest};
use super::prepare::{IdMapper, Prepared};
use super::source::Source;
use crate::SnapshotError;

/// What validation learnt.
pub(crate) struct Plan {
    pub counts: Vec<(String, u64)>,
    pub bytes: u64,
}

pub(crate) fn validate(
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

pub(crate) fn count_documents(
    snapshot: &Snapshot,
    tables: &[String],
) -> Result<u64, SnapshotError> {
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
