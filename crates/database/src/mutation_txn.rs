//! [`MutationTxn`]: a mutation's [`Transaction`], inside the Committer's write transaction.
//!
//! Every write is validated against the schema, checked against the limits, applied to SQLite
//! at once (so the mutation reads its own writes) and added to the commit's
//! [`WriteSet`](crate::WriteSet) with the old and new key of every index. A null written to a
//! field declared `optional<T>` whose `T` refuses null means "absent" (scripts have no
//! `undefined`): insert and replace leave the field out, patch removes it. User writes to a
//! system table (a name starting with `_`) are refused; the engine writes them through the
//! `system_*` methods, and an import through [`MutationTxn::insert_with_id`].

use std::any::Any;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use schema::Type;
use storage::{ReadRows, StorageError};
use value::{DocumentId, IndexKey, KeyRange, LimitError, Limits, Object, Value};

use crate::catalog::{Catalog, IndexInfo, TableInfo};
use crate::document::Document;
use crate::error::DbError;
use crate::read_set::{IndexWrite, ReadSet};
use crate::reads::Reads;
use crate::scan_cursor::ScanCursor;
use crate::transaction::{Transaction, TxnLimits};
use crate::writer_state::WriterState;

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
    fn lock(&self) -> Result<MutexGuard<'_, WriterState>, DbError> {
        let state = self.state.lock();
        if !state.is_current(self.generation) {
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
            return Err(DbError::internal(
                "a validated document stopped being an object",
            ));
        };
        Ok(fields)
    }

    fn count_write(&mut self, doc: &Document) -> Result<(), DbError> {
        let size = doc.size();
        if size > self.reads.limits().max_document_size {
            return Err(DbError::Limit(format!(
                "document is {size} bytes, over the limit of {} bytes",
                self.reads.limits().max_document_size
            )));
        }
        self.n_written += 1;
        self.bytes_written += size;
        if self.n_written > self.reads.limits().max_documents_written {
            return Err(DbError::Limit(format!(
                "Too many writes in a single function execution (limit: {})",
                self.reads.limits().max_documents_written
            )));
        }
        if self.bytes_written > self.reads.limits().max_bytes_written {
            return Err(DbError::Limit(format!(
                "Too many bytes written in a single function execution (limit: {} bytes)",
                self.reads.limits().max_bytes_written
            )));
        }
        Ok(())
    }

    /// Writes `new` in place of `old` (either may be absent) in storage and the write set.
    /// A storage failure here poisons the batch: the script sees the error, and even if it
    /// catches it, nothing of the batch is committed.
    fn apply(
        &self,
        table: &TableInfo,
        old: Option<&Document>,
        new: Option<&Document>,
    ) -> Result<(), DbError> {
        let mut state = self.lock()?;
        let state = &mut *state;
        match Self::write(state, table, old, new) {
            Ok(()) => Ok(()),
            Err(e) => Err(state.poison("writing a document", &e)),
        }
    }

    fn write(
        state: &mut WriterState,
        table: &TableInfo,
        old: Option<&Document>,
        new: Option<&Document>,
    ) -> Result<(), StorageError> {
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
            state.record_write(IndexWrite {
                index: index.id,
                old_key,
                new_key,
            });
        }
        let id_key = IndexKey::for_id(&id).0;
        state.record_write(IndexWrite {
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

/// Who is writing: user code may not touch system tables; the engine may.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writes {
    User,
    Engine,
}

impl MutationTxn {
    fn check_writable(who: Writes, table: &TableInfo, op: &'static str) -> Result<(), DbError> {
        if who == Writes::User && schema::is_system_table(&table.name) {
            return Err(DbError::SystemTableWrite {
                op,
                table: table.name.clone(),
            });
        }
        Ok(())
    }

    fn insert_as(
        &mut self,
        who: Writes,
        table: &str,
        fields: Object,
    ) -> Result<DocumentId, DbError> {
        Self::check_user_fields(&fields, "insert")?;
        let catalog = self.catalog.clone();
        let table = catalog.table(table)?;
        Self::check_writable(who, table, "insert")?;
        let id = DocumentId::generate(table.number);
        self.insert_document(table, id, None, fields)
    }

    /// Inserts a document with a given `_id` (and `_creationTime`, else the next one): the
    /// write an import makes, system tables included. Refused when the id is taken.
    pub fn insert_with_id(
        &mut self,
        table: &str,
        id: DocumentId,
        creation_time: Option<f64>,
        fields: Object,
    ) -> Result<DocumentId, DbError> {
        Self::check_user_fields(&fields, "insert")?;
        let catalog = self.catalog.clone();
        let table = catalog.table(table)?;
        if id.table() != table.number {
            return Err(DbError::InvalidId(id.to_string()));
        }
        if self.lock()?.writer.get_document(id.as_str())?.is_some() {
            return Err(DbError::DuplicateId {
                table: table.name.clone(),
                id: id.to_string(),
            });
        }
        self.insert_document(table, id, creation_time, fields)
    }

    /// Deletes any document, system tables included (an import replacing a table).
    pub fn delete_any(&mut self, id: &str) -> Result<(), DbError> {
        self.delete_as(Writes::Engine, id)
    }

    /// Claims a one-time key (an upload URL's nonce) in this transaction; `false` when it was
    /// claimed before. `expires_ms` lets old claims be pruned once the key itself expired.
    pub fn claim(&mut self, key: &str, expires_ms: u64, now_ms: u64) -> Result<bool, DbError> {
        let mut state = self.lock()?;
        state.writer.prune_claims(now_ms)?;
        Ok(state.writer.claim(key, expires_ms)?)
    }

    /// Sets (or with `None` removes) an engine setting in this transaction: an import's
    /// resume marker commits together with the batch it describes.
    pub fn set_config(&mut self, key: &str, value: Option<&str>) -> Result<(), DbError> {
        let mut state = self.lock()?;
        match value {
            Some(value) => state.writer.put_config(key, value)?,
            None => state.writer.delete_config(key)?,
        }
        Ok(())
    }

    fn insert_document(
        &mut self,
        table: &TableInfo,
        id: DocumentId,
        creation_time: Option<f64>,
        fields: Object,
    ) -> Result<DocumentId, DbError> {
        let mut fields = fields;
        for name in self.absent_fields(table, &fields) {
            fields.remove(&name);
        }
        let fields = self.prepare(table, fields)?;
        let creation_time = match creation_time {
            Some(t) => t,
            None => self.lock()?.next_creation_time(self.now_ms),
        };
        let doc = Document {
            id,
            creation_time,
            fields,
        };
        self.count_write(&doc)?;
        self.apply(table, None, Some(&doc))?;
        Ok(doc.id)
    }

    fn patch_as(&mut self, who: Writes, id: &str, fields: Object) -> Result<(), DbError> {
        Self::check_user_fields(&fields, "patch")?;
        let (old, catalog) = self.load(id, "patch")?;
        let (_, table) = catalog.resolve_id(id)?;
        Self::check_writable(who, table, "patch")?;
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

    fn replace_as(&mut self, who: Writes, id: &str, fields: Object) -> Result<(), DbError> {
        Self::check_user_fields(&fields, "replace")?;
        let (old, catalog) = self.load(id, "replace")?;
        let (_, table) = catalog.resolve_id(id)?;
        Self::check_writable(who, table, "replace")?;
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

    fn delete_as(&mut self, who: Writes, id: &str) -> Result<(), DbError> {
        let (old, catalog) = self.load(id, "delete")?;
        let (_, table) = catalog.resolve_id(id)?;
        Self::check_writable(who, table, "delete")?;
        self.count_write(&old)?;
        self.apply(table, Some(&old), None)
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
        if !state.is_current(self.generation) {
            return Err(DbError::MutationFinished);
        }
        self.reads.get(&state.writer, &self.catalog, id)
    }
    fn scan_next(&mut self, cursor: &mut ScanCursor) -> Result<Option<Document>, DbError> {
        let state = self.state.clone();
        let state = state.lock();
        if !state.is_current(self.generation) {
            return Err(DbError::MutationFinished);
        }
        self.reads.scan_next(&state.writer, cursor)
    }
    fn finish_scan(&mut self, cursor: ScanCursor) -> Result<(), DbError> {
        self.reads.finish_scan(cursor)
    }
    fn count(&mut self, index: &IndexInfo, range: KeyRange) -> Result<u64, DbError> {
        let state = self.state.clone();
        let state = state.lock();
        if !state.is_current(self.generation) {
            return Err(DbError::MutationFinished);
        }
        self.reads.count(&state.writer, index.id, range)
    }

    fn insert(&mut self, table: &str, fields: Object) -> Result<DocumentId, DbError> {
        self.insert_as(Writes::User, table, fields)
    }
    fn patch(&mut self, id: &str, fields: Object) -> Result<(), DbError> {
        self.patch_as(Writes::User, id, fields)
    }
    fn replace(&mut self, id: &str, fields: Object) -> Result<(), DbError> {
        self.replace_as(Writes::User, id, fields)
    }
    fn delete(&mut self, id: &str) -> Result<(), DbError> {
        self.delete_as(Writes::User, id)
    }
    fn system_insert(&mut self, table: &str, fields: Object) -> Result<DocumentId, DbError> {
        self.insert_as(Writes::Engine, table, fields)
    }
    fn system_patch(&mut self, id: &str, fields: Object) -> Result<(), DbError> {
        self.patch_as(Writes::Engine, id, fields)
    }
    fn system_delete(&mut self, id: &str) -> Result<(), DbError> {
        self.delete_as(Writes::Engine, id)
    }

    fn read_set(&self) -> &ReadSet {
        self.reads.read_set()
    }
    fn take_read_set(&mut self) -> ReadSet {
        self.reads.take_read_set()
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}
