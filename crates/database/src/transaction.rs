//! [`Transaction`]: everything a function can do to the database, implemented by
//! [`QueryTxn`] (a read snapshot) and [`MutationTxn`] (the writer, inside the Committer).
//!
//! Both record a [`ReadSet`] as they read: `get` records a point on `by_id` whether or not the
//! document exists, and a scan records exactly what it consumed (see [`ScanCursor`]). Only
//! `MutationTxn` writes; every write is validated against the schema, checked against the
//! limits, applied to SQLite at once (so the mutation reads its own writes) and added to the
//! commit's [`WriteSet`] with the old and new key of every index. A null written to a field
//! declared `optional<T>` whose `T` refuses null means "absent" (scripts have no `undefined`):
//! insert and replace leave the field out, patch removes it.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use schema::Type;
use storage::{Order, ReadRows, Reader, ScanRow};
use value::{DocumentId, IndexKey, KeyRange, LimitError, Limits, Object, Value};

use crate::catalog::{Catalog, IndexId, IndexInfo, TableInfo};
use crate::committer::WriterState;
use crate::database::ReaderPool;
use crate::document::Document;
use crate::error::DbError;
use crate::read_set::{IndexWrite, ReadSet};

/// Per-execution limits (DESIGN §3).
#[derive(Clone, Copy, Debug)]
pub struct TxnLimits {
    pub max_documents_scanned: usize,
    pub max_read_intervals: usize,
    pub max_documents_written: usize,
    pub max_bytes_written: usize,
    pub max_document_size: usize,
}

impl Default for TxnLimits {
    fn default() -> Self {
        TxnLimits {
            max_documents_scanned: 32_000,
            max_read_intervals: 4_096,
            max_documents_written: 16_000,
            max_bytes_written: 16 << 20,
            max_document_size: 1 << 20,
        }
    }
}

/// A scan in progress over one index range. Documents are handed out one at a time so that
/// the recorded read covers exactly what the function consumed.
pub struct ScanCursor {
    index: IndexId,
    range: KeyRange,
    order: Order,
    /// Key of the last document handed out.
    position: Option<Vec<u8>>,
    buffer: VecDeque<ScanRow>,
    /// Storage has nothing beyond what is in `buffer`.
    storage_exhausted: bool,
    page: usize,
}

impl ScanCursor {
    pub fn new(index: &IndexInfo, range: KeyRange, order: Order) -> ScanCursor {
        ScanCursor {
            index: index.id,
            range,
            order,
            position: None,
            buffer: VecDeque::new(),
            storage_exhausted: false,
            page: 8,
        }
    }

    /// Resumes a scan after `key` (exclusive), as pagination cursors do. The range itself
    /// shrinks, so the recorded read starts at the cursor, not at the original range start.
    pub fn resume_after(mut self, key: Vec<u8>) -> ScanCursor {
        match self.order {
            Order::Asc => {
                let start = value::key::successor(&key);
                if start > self.range.start {
                    self.range.start = start;
                }
            }
            Order::Desc => {
                if self.range.end.as_ref().is_none_or(|end| &key < end) {
                    self.range.end = Some(key);
                }
            }
        }
        self
    }

    /// Key of the last document handed out.
    pub fn position(&self) -> Option<&[u8]> {
        self.position.as_deref()
    }

    /// The range actually read: the whole range once everything was consumed, otherwise the
    /// part up to and including the last document handed out.
    fn read_extent(&self) -> Option<KeyRange> {
        if self.storage_exhausted && self.buffer.is_empty() {
            return Some(self.range.clone());
        }
        let position = self.position.as_ref()?;
        Some(match self.order {
            Order::Asc => KeyRange {
                start: self.range.start.clone(),
                end: Some(value::key::successor(position)),
            },
            Order::Desc => KeyRange {
                start: position.clone(),
                end: self.range.end.clone(),
            },
        })
    }

    /// Bounds of the next storage fetch, after `position`.
    fn next_bounds(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        match (&self.position, self.order) {
            (None, _) => (self.range.start.clone(), self.range.end.clone()),
            (Some(p), Order::Asc) => (
                value::key::successor(p).max(self.range.start.clone()),
                self.range.end.clone(),
            ),
            (Some(p), Order::Desc) => {
                let end = match &self.range.end {
                    Some(e) if e < p => e.clone(),
                    _ => p.clone(),
                };
                (self.range.start.clone(), Some(end))
            }
        }
    }
}

/// What functions can do with the database.
pub trait Transaction {
    fn catalog(&self) -> &Catalog;
    /// The snapshot (queries) or commit (mutations) timestamp.
    fn ts(&self) -> u64;
    fn get(&mut self, id: &str) -> Result<Option<Document>, DbError>;
    /// The next document of a scan, or `None` at its end.
    fn scan_next(&mut self, cursor: &mut ScanCursor) -> Result<Option<Document>, DbError>;
    /// Ends a scan and records the range it read.
    fn finish_scan(&mut self, cursor: ScanCursor) -> Result<(), DbError>;
    fn insert(&mut self, table: &str, fields: Object) -> Result<DocumentId, DbError>;
    fn patch(&mut self, id: &str, fields: Object) -> Result<(), DbError>;
    fn replace(&mut self, id: &str, fields: Object) -> Result<(), DbError>;
    fn delete(&mut self, id: &str) -> Result<(), DbError>;
    fn read_set(&self) -> &ReadSet;
    /// Hands the read set collected so far to the caller and starts a new one (several
    /// functions can run in one snapshot, each with its own read set).
    fn take_read_set(&mut self) -> ReadSet;
    /// Lets an owner that boxed the transaction get the concrete type back.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

/// Read bookkeeping shared by both transaction kinds.
struct Reads {
    read_set: ReadSet,
    scanned: usize,
    limits: TxnLimits,
}

impl Reads {
    fn new(limits: TxnLimits) -> Reads {
        Reads {
            read_set: ReadSet::new(),
            scanned: 0,
            limits,
        }
    }

    fn record(&mut self, index: IndexId, range: KeyRange) -> Result<(), DbError> {
        if self.read_set.len() >= self.limits.max_read_intervals {
            return Err(DbError::Limit(format!(
                "Too many reads in a single function execution (limit: {} index ranges); read fewer ranges or split the work",
                self.limits.max_read_intervals
            )));
        }
        self.read_set.record(index, range);
        Ok(())
    }

    fn get(
        &mut self,
        source: &dyn ReadRows,
        catalog: &Catalog,
        id: &str,
    ) -> Result<Option<Document>, DbError> {
        let (parsed, table) = catalog.resolve_id(id)?;
        self.record(
            table.by_id,
            KeyRange::point(IndexKey::for_id(parsed.as_str()).as_bytes()),
        )?;
        match source.get_document(parsed.as_str())? {
            Some(row) => {
                self.count_scanned(1)?;
                Document::from_storage(&row.value).map(Some)
            }
            None => Ok(None),
        }
    }

    fn count_scanned(&mut self, n: usize) -> Result<(), DbError> {
        self.scanned += n;
        if self.scanned > self.limits.max_documents_scanned {
            return Err(DbError::Limit(format!(
                "Too many documents read in a single function execution (limit: {}); use an index to narrow the range or paginate",
                self.limits.max_documents_scanned
            )));
        }
        Ok(())
    }

    fn scan_next(
        &mut self,
        source: &dyn ReadRows,
        cursor: &mut ScanCursor,
    ) -> Result<Option<Document>, DbError> {
        if cursor.buffer.is_empty() && !cursor.storage_exhausted {
            let (start, end) = cursor.next_bounds();
            let rows = if end.as_deref().is_some_and(|e| e <= start.as_slice()) {
                Vec::new()
            } else {
                source.scan(
                    cursor.index.0,
                    &start,
                    end.as_deref(),
                    cursor.order,
                    cursor.page,
                )?
            };
            cursor.storage_exhausted = rows.len() < cursor.page;
            cursor.page = (cursor.page * 2).min(512);
            cursor.buffer.extend(rows);
        }
        let Some(row) = cursor.buffer.pop_front() else {
            return Ok(None);
        };
        self.count_scanned(1)?;
        cursor.position = Some(row.key);
        Document::from_storage(&row.value).map(Some)
    }

    fn finish_scan(&mut self, cursor: ScanCursor) -> Result<(), DbError> {
        match cursor.read_extent() {
            Some(range) => self.record(cursor.index, range),
            None => Ok(()),
        }
    }
}

/// A read-only transaction at one snapshot, for queries. Owns a pooled reader; dropping it
/// ends the snapshot and returns the reader.
pub struct QueryTxn {
    reader: Option<Reader>,
    pool: Arc<ReaderPool>,
    catalog: Arc<Catalog>,
    ts: u64,
    reads: Reads,
}

impl QueryTxn {
    pub(crate) fn new(
        mut reader: Reader,
        pool: Arc<ReaderPool>,
        catalog: Arc<Catalog>,
        limits: TxnLimits,
    ) -> Result<QueryTxn, DbError> {
        let ts = match reader.begin() {
            Ok(ts) => ts,
            Err(e) => {
                pool.put(reader);
                return Err(e.into());
            }
        };
        Ok(QueryTxn {
            reader: Some(reader),
            pool,
            catalog,
            ts,
            reads: Reads::new(limits),
        })
    }
}

impl Drop for QueryTxn {
    fn drop(&mut self) {
        if let Some(mut reader) = self.reader.take() {
            reader.end();
            self.pool.put(reader);
        }
    }
}

impl Transaction for QueryTxn {
    fn catalog(&self) -> &Catalog {
        &self.catalog
    }
    fn ts(&self) -> u64 {
        self.ts
    }
    fn get(&mut self, id: &str) -> Result<Option<Document>, DbError> {
        let reader = self
            .reader
            .as_ref()
            .ok_or_else(|| DbError::Corrupt("query snapshot already ended".into()))?;
        self.reads.get(reader, &self.catalog, id)
    }
    fn scan_next(&mut self, cursor: &mut ScanCursor) -> Result<Option<Document>, DbError> {
        let reader = self
            .reader
            .as_ref()
            .ok_or_else(|| DbError::Corrupt("query snapshot already ended".into()))?;
        self.reads.scan_next(reader, cursor)
    }
    fn finish_scan(&mut self, cursor: ScanCursor) -> Result<(), DbError> {
        self.reads.finish_scan(cursor)
    }
    fn insert(&mut self, _: &str, _: Object) -> Result<DocumentId, DbError> {
        Err(DbError::ReadOnly("insert"))
    }
    fn patch(&mut self, _: &str, _: Object) -> Result<(), DbError> {
        Err(DbError::ReadOnly("patch"))
    }
    fn replace(&mut self, _: &str, _: Object) -> Result<(), DbError> {
        Err(DbError::ReadOnly("replace"))
    }
    fn delete(&mut self, _: &str) -> Result<(), DbError> {
        Err(DbError::ReadOnly("delete"))
    }
    fn read_set(&self) -> &ReadSet {
        &self.reads.read_set
    }
    fn take_read_set(&mut self) -> ReadSet {
        self.reads.scanned = 0;
        std::mem::take(&mut self.reads.read_set)
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

/// A mutation's view of the writer, inside the Committer's transaction.
///
/// It reaches the writer through the lock the Committer shares with it, and only while its
/// generation is current: a handle that outlives its mutation (a script stashing `ctx.db`)
/// gets an error instead of writing into someone else's transaction.
pub struct MutationTxn {
    state: Arc<Mutex<WriterState>>,
    generation: u64,
    catalog: Arc<Catalog>,
    ts: u64,
    reads: Reads,
    n_written: usize,
    bytes_written: usize,
    now_ms: f64,
}

impl MutationTxn {
    pub(crate) fn new(
        state: Arc<Mutex<WriterState>>,
        generation: u64,
        catalog: Arc<Catalog>,
        ts: u64,
        now_ms: f64,
        limits: TxnLimits,
    ) -> MutationTxn {
        MutationTxn {
            state,
            generation,
            catalog,
            ts,
            reads: Reads::new(limits),
            n_written: 0,
            bytes_written: 0,
            now_ms,
        }
    }

    /// Locks the writer for one operation, refusing stale handles.
    fn lock(&self) -> Result<parking_lot::MutexGuard<'_, WriterState>, DbError> {
        let state = self.state.lock();
        if state.generation != self.generation {
            return Err(DbError::MutationFinished);
        }
        Ok(state)
    }

    fn check_user_fields(fields: &Object, op: &'static str) -> Result<(), DbError> {
        if let Some(system) = fields.keys().find(|k| k.starts_with('_')) {
            return Err(DbError::ReservedField {
                op,
                field: system.clone(),
            });
        }
        Ok(())
    }

    /// Fields set to null that the schema declares `optional<T>` with a `T` that refuses
    /// null. Scripts have no `undefined` (Rhai's `()` is null), so null there can only mean
    /// "absent": insert and replace leave such a field out, and patch removes it.
    fn absent_fields(&self, table: &TableInfo, fields: &Object) -> Vec<String> {
        let Some(declared) = self
            .catalog
            .schema
            .table(&table.name)
            .and_then(|t| t.document.as_ref())
        else {
            return Vec::new();
        };
        fields
            .iter()
            .filter(|(name, value)| {
                matches!(value, Value::Null)
                    && matches!(
                        declared.fields.get(name.as_str()),
                        Some(Type::Optional(inner))
                            if inner.validate(Value::Null, name, &*self.catalog).is_err()
                    )
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Validates a new version of a document's fields for its table.
    fn prepare(&self, table: &TableInfo, fields: Object) -> Result<Object, DbError> {
        let fields = self
            .catalog
            .schema
            .validate_document(&table.name, fields, &*self.catalog)
            .map_err(|error| DbError::Validation {
                table: table.name.clone(),
                error,
            })?;
        let value = value::Value::Object(fields);
        Limits::default()
            .check_shape(&value, "document")
            .map_err(|e| match e {
                LimitError::BadFieldName { .. } => DbError::InvalidFieldName(e.to_string()),
                e => DbError::Limit(e.to_string()),
            })?;
        let value::Value::Object(fields) = value else {
            return Err(DbError::Corrupt("document stopped being an object".into()));
        };
        Ok(fields)
    }

    fn count_write(&mut self, doc: &Document) -> Result<(), DbError> {
        let size = doc.size();
        if size > self.reads.limits.max_document_size {
            return Err(DbError::Limit(format!(
                "document is {size} bytes, over the limit of {} bytes",
                self.reads.limits.max_document_size
            )));
        }
        self.n_written += 1;
        self.bytes_written += size;
        if self.n_written > self.reads.limits.max_documents_written {
            return Err(DbError::Limit(format!(
                "Too many writes in a single function execution (limit: {})",
                self.reads.limits.max_documents_written
            )));
        }
        if self.bytes_written > self.reads.limits.max_bytes_written {
            return Err(DbError::Limit(format!(
                "Too many bytes written in a single function execution (limit: {} bytes)",
                self.reads.limits.max_bytes_written
            )));
        }
        Ok(())
    }

    /// Writes `new` in place of `old` (either may be absent) in storage and the write set.
    fn apply(
        &self,
        table: &TableInfo,
        old: Option<&Document>,
        new: Option<&Document>,
    ) -> Result<(), DbError> {
        let mut state = self.lock()?;
        let state = &mut *state;
        let id = old.or(new).map(|d| d.id.to_string()).unwrap_or_default();
        for index in table.stored_indexes() {
            let key_of = |d: &Document| {
                IndexKey::for_document(&index.fields, &d.fields, d.creation_time, d.id.as_str()).0
            };
            let old_key = old.map(key_of);
            let new_key = new.map(key_of);
            if old_key != new_key {
                if let Some(k) = &old_key {
                    state.writer.delete_index_entry(index.id.0, k)?;
                }
                if let Some(k) = &new_key {
                    state.writer.insert_index_entry(index.id.0, k, &id)?;
                }
            }
            // Recorded even when the key is unchanged: the document behind it changed.
            state.pending_writes.writes.push(IndexWrite {
                index: index.id,
                old_key,
                new_key,
            });
        }
        let id_key = IndexKey::for_id(&id).0;
        state.pending_writes.writes.push(IndexWrite {
            index: table.by_id,
            old_key: old.map(|_| id_key.clone()),
            new_key: new.map(|_| id_key.clone()),
        });
        match new {
            Some(doc) => state
                .writer
                .put_document(&id, table.number.0, &doc.to_storage())?,
            None => state.writer.delete_document(&id)?,
        }
        Ok(())
    }

    /// Loads a document and the catalog that resolved its table (an `Arc` clone, so callers
    /// can hold the table while mutating `self`).
    fn load(&self, id: &str, op: &'static str) -> Result<(Document, Arc<Catalog>), DbError> {
        let catalog = self.catalog.clone();
        let (parsed, _) = catalog.resolve_id(id)?;
        match self.lock()?.writer.get_document(parsed.as_str())? {
            Some(row) => Ok((Document::from_storage(&row.value)?, catalog)),
            None => Err(DbError::NotFound {
                op,
                id: id.to_string(),
            }),
        }
    }
}

impl Transaction for MutationTxn {
    fn catalog(&self) -> &Catalog {
        &self.catalog
    }
    fn ts(&self) -> u64 {
        self.ts
    }
    fn get(&mut self, id: &str) -> Result<Option<Document>, DbError> {
        let state = self.state.clone();
        let state = state.lock();
        if state.generation != self.generation {
            return Err(DbError::MutationFinished);
        }
        self.reads.get(&state.writer, &self.catalog, id)
    }
    fn scan_next(&mut self, cursor: &mut ScanCursor) -> Result<Option<Document>, DbError> {
        let state = self.state.clone();
        let state = state.lock();
        if state.generation != self.generation {
            return Err(DbError::MutationFinished);
        }
        self.reads.scan_next(&state.writer, cursor)
    }
    fn finish_scan(&mut self, cursor: ScanCursor) -> Result<(), DbError> {
        self.reads.finish_scan(cursor)
    }

    fn insert(&mut self, table: &str, fields: Object) -> Result<DocumentId, DbError> {
        Self::check_user_fields(&fields, "insert")?;
        let catalog = self.catalog.clone();
        let table = catalog.table(table)?;
        let mut fields = fields;
        for name in self.absent_fields(table, &fields) {
            fields.remove(&name);
        }
        let fields = self.prepare(table, fields)?;
        let creation_time = {
            let mut state = self.lock()?;
            let t = if self.now_ms > state.last_creation_time {
                self.now_ms
            } else {
                state.last_creation_time.next_up()
            };
            state.last_creation_time = t;
            t
        };
        let doc = Document {
            id: DocumentId::generate(table.number),
            creation_time,
            fields,
        };
        self.count_write(&doc)?;
        self.apply(table, None, Some(&doc))?;
        Ok(doc.id)
    }

    fn patch(&mut self, id: &str, fields: Object) -> Result<(), DbError> {
        Self::check_user_fields(&fields, "patch")?;
        let (old, catalog) = self.load(id, "patch")?;
        let (_, table) = catalog.resolve_id(id)?;
        let removed = self.absent_fields(table, &fields);
        let mut merged = old.fields.clone();
        merged.extend(fields);
        for name in removed {
            merged.remove(&name);
        }
        let merged = self.prepare(table, merged)?;
        let new = Document {
            fields: merged,
            ..old.clone()
        };
        self.count_write(&new)?;
        self.apply(table, Some(&old), Some(&new))
    }

    fn replace(&mut self, id: &str, fields: Object) -> Result<(), DbError> {
        Self::check_user_fields(&fields, "replace")?;
        let (old, catalog) = self.load(id, "replace")?;
        let (_, table) = catalog.resolve_id(id)?;
        let mut fields = fields;
        for name in self.absent_fields(table, &fields) {
            fields.remove(&name);
        }
        let fields = self.prepare(table, fields)?;
        let new = Document {
            fields,
            ..old.clone()
        };
        self.count_write(&new)?;
        self.apply(table, Some(&old), Some(&new))
    }

    fn delete(&mut self, id: &str) -> Result<(), DbError> {
        let (old, catalog) = self.load(id, "delete")?;
        let (_, table) = catalog.resolve_id(id)?;
        self.count_write(&old)?;
        self.apply(table, Some(&old), None)
    }

    fn read_set(&self) -> &ReadSet {
        &self.reads.read_set
    }
    fn take_read_set(&mut self) -> ReadSet {
        std::mem::take(&mut self.reads.read_set)
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}
