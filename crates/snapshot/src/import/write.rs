//! The write pass: validated documents go to the Committer, in one transaction or in batches
//! that each commit the resume marker, with the bytes of `_storage` rows promoted into the
//! file store under its commit lock first.

use application::{FileStorage, STORAGE_TABLE};
use database::{Database, MutationOutcome, MutationTxn, Order, ScanCursor, Transaction};
use value::KeyRange;

use super::plan::{
    BATCH_BYTES, BATCH_DOCS, ImportReport, MARKER, Marker, mapper_schema, storage_digest,
};
use super::prepare::{IdMapper, Prepared};
use super::source::{Source, with_zip_entry};
use crate::SnapshotError;

/// Writes validated documents through the Committer.
pub(crate) struct BatchWriter<'a> {
    pub db: &'a Database,
    pub files: Option<&'a FileStorage>,
    pub source: &'a Source,
    pub report: ImportReport,
    pub marker: Marker,
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
    pub(crate) fn single_transaction(
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
                let doc = mapper.prepare(&table.name, line, json).map_err(|why| {
                    SnapshotError::Invalid(format!("{} line {line}: {why}", table.name))
                })?;
                job.docs.push((table.name.clone(), doc));
                Ok(())
            })?;
        }
        self.commit(job)?;
        Ok(())
    }

    pub(crate) fn batches(
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
                let doc = mapper.prepare(&table.name, line, json).map_err(|why| {
                    SnapshotError::Invalid(format!("{} line {line}: {why}", table.name))
                })?;
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
                    SnapshotError::Invalid(format!(
                        "the file of _storage row {} is missing",
                        doc.id
                    ))
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
