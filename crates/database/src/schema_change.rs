//! Applying a [`Schema`] to storage: create declared tables and indexes, back-fill new
//! indexes, drop removed ones, and refuse a change that the stored documents violate.
//!
//! Runs on the Committer thread inside one write transaction, so a refused change leaves
//! storage untouched. Tables that disappear from the schema keep their data (they become
//! unusable until declared again); only indexes are ever dropped.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use schema::Schema;
use storage::{Order, ReadRows, Writer};
use value::{FieldPath, IndexKey, TableNumber};

use crate::catalog::{BY_CREATION_TIME, BY_ID, Catalog, IndexId, IndexInfo, TableInfo};
use crate::document::Document;
use crate::error::DbError;

pub(crate) const SCHEMA_CONFIG_KEY: &str = "schema.toml";
const BATCH: usize = 1_000;
const EXAMPLES: usize = 3;

/// What a schema change did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchemaChangeReport {
    pub tables_added: Vec<String>,
    pub indexes_added: Vec<String>,
    pub indexes_dropped: Vec<String>,
    pub documents_backfilled: usize,
    pub documents_checked: usize,
}

impl SchemaChangeReport {
    pub fn is_empty(&self) -> bool {
        self.tables_added.is_empty()
            && self.indexes_added.is_empty()
            && self.indexes_dropped.is_empty()
    }
}

impl fmt::Display for SchemaChangeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.tables_added.is_empty() {
            parts.push(format!("tables added: {}", self.tables_added.join(", ")));
        }
        if !self.indexes_added.is_empty() {
            parts.push(format!(
                "indexes added: {} ({} documents back-filled)",
                self.indexes_added.join(", "),
                self.documents_backfilled
            ));
        }
        if !self.indexes_dropped.is_empty() {
            parts.push(format!(
                "indexes dropped: {}",
                self.indexes_dropped.join(", ")
            ));
        }
        if parts.is_empty() {
            parts.push("no table or index changes".to_string());
        }
        f.write_str(&parts.join("; "))
    }
}

/// Loads the catalog as stored, interpreting it with `schema` (system tables included).
pub(crate) fn load_catalog(rows: &dyn ReadRows, schema: Arc<Schema>) -> Result<Catalog, DbError> {
    let stored = rows.catalog()?;
    let mut tables = Vec::new();
    for table in &stored.tables {
        let mut by_id = None;
        let mut by_creation_time = None;
        let mut indexes = BTreeMap::new();
        for row in stored
            .indexes
            .iter()
            .filter(|i| i.table_number == table.number)
        {
            let fields: Vec<String> = serde_json::from_str(&row.fields)
                .map_err(|e| DbError::Corrupt(format!("index {} fields: {e}", row.name)))?;
            let info = IndexInfo {
                id: IndexId(row.id),
                name: row.name.clone(),
                fields: fields.into_iter().map(FieldPath::new).collect(),
            };
            match row.name.as_str() {
                BY_ID => by_id = Some(info.id),
                BY_CREATION_TIME => by_creation_time = Some(info),
                _ => {
                    indexes.insert(row.name.clone(), info);
                }
            }
        }
        let (Some(by_id), Some(by_creation_time)) = (by_id, by_creation_time) else {
            return Err(DbError::Corrupt(format!(
                "table {} lacks its system indexes",
                table.name
            )));
        };
        tables.push(TableInfo {
            name: table.name.clone(),
            number: TableNumber(table.number),
            by_id,
            by_creation_time,
            indexes,
        });
    }
    Ok(Catalog::new(schema, tables))
}

/// The stored text of the last applied `schema.toml`, parsed (system tables added); `None`
/// before any schema was applied. What a process that does not own the writer reads.
pub(crate) fn stored_schema(rows: &dyn ReadRows) -> Result<Schema, DbError> {
    let text = rows.get_config(SCHEMA_CONFIG_KEY)?.unwrap_or_default();
    let schema = Schema::parse(&text, "stored schema.toml")
        .map_err(|e| DbError::Corrupt(format!("the stored schema does not parse: {e}")))?;
    Ok(schema.with_system_tables())
}

/// Brings storage in line with `schema` inside the writer's open transaction.
pub(crate) fn apply_schema(
    writer: &mut Writer,
    schema: Arc<Schema>,
    schema_text: &str,
) -> Result<(Catalog, SchemaChangeReport), DbError> {
    let mut report = SchemaChangeReport::default();
    // System tables are created, indexed and validated like the user's.
    let schema = Arc::new(schema.with_system_tables());
    let previous = writer
        .get_config(SCHEMA_CONFIG_KEY)?
        .and_then(|text| Schema::parse(&text, "previous schema.toml").ok())
        .map(|previous| previous.with_system_tables());

    let existing: Vec<String> = writer
        .catalog()?
        .tables
        .into_iter()
        .map(|t| t.name)
        .collect();
    for name in schema.tables.keys() {
        if !existing.contains(name) {
            let number = writer.create_table(name)?;
            writer.create_index(number, BY_ID, "[\"_id\"]")?;
            writer.create_index(number, BY_CREATION_TIME, "[]")?;
            if !schema::is_system_table(name) {
                report.tables_added.push(name.clone());
            }
        }
    }
    let catalog = load_catalog(&*writer, schema.clone())?;

    // Check stored documents of every table whose document type changed.
    let mut violations = Vec::new();
    for (name, def) in &schema.tables {
        let unchanged = previous
            .as_ref()
            .and_then(|p| p.table(name))
            .is_some_and(|old| old.document == def.document);
        if unchanged
            || def.document.is_none()
            || report.tables_added.contains(name)
            || schema::is_system_table(name)
        {
            continue;
        }
        let table = catalog.table(name)?;
        let check = check_documents(writer, &catalog, table)?;
        report.documents_checked += check.checked;
        if let Some(violation) = check.violation {
            violations.push(violation);
        }
    }
    if !violations.is_empty() {
        return Err(DbError::SchemaRejected(format!(
            "{}. Migrate or delete those documents first, or loosen the type (e.g. optional<...>); the previous schema stays in force.",
            violations.join("; ")
        )));
    }

    // Indexes: drop what is gone or changed, create and back-fill what is new.
    for (name, def) in &schema.tables {
        let table = catalog.table(name)?;
        for (index_name, info) in &table.indexes {
            let wanted = def.indexes.get(index_name).map(|d| &d.fields);
            if wanted != Some(&info.fields) {
                writer.drop_index(info.id.0)?;
                report.indexes_dropped.push(format!("{name}.{index_name}"));
            }
        }
        for (index_name, index_def) in &def.indexes {
            if table.indexes.get(index_name).map(|i| &i.fields) == Some(&index_def.fields) {
                continue;
            }
            let fields: Vec<&str> = index_def.fields.iter().map(FieldPath::as_str).collect();
            let fields_json = serde_json::to_string(&fields).map_err(|e| {
                DbError::internal(format!("index {index_name} fields as JSON: {e}"))
            })?;
            let id = writer.create_index(table.number.0, index_name, &fields_json)?;
            report.documents_backfilled += backfill(writer, table, id, &index_def.fields)?;
            report.indexes_added.push(format!("{name}.{index_name}"));
        }
    }
    // Indexes that moved from "changed" to "re-created" appear in both lists; keep the add.
    report
        .indexes_dropped
        .retain(|d| !report.indexes_added.contains(d));

    writer.put_config(SCHEMA_CONFIG_KEY, schema_text)?;
    let catalog = load_catalog(&*writer, schema)?;
    Ok((catalog, report))
}

/// Walks a table in `_creationTime` order, `BATCH` rows at a time.
fn for_each_document(
    writer: &Writer,
    table: &TableInfo,
    mut f: impl FnMut(Document) -> Result<(), DbError>,
) -> Result<(), DbError> {
    let mut start = Vec::new();
    loop {
        let rows = writer.scan(table.by_creation_time.id.0, &start, None, Order::Asc, BATCH)?;
        let done = rows.len() < BATCH;
        if let Some(last) = rows.last() {
            start = value::key::successor(&last.key);
        }
        for row in rows {
            f(Document::from_storage(&row.value)?)?;
        }
        if done {
            return Ok(());
        }
    }
}

/// What checking one table's documents against a new schema found.
struct TableCheck {
    checked: usize,
    /// How many documents fail, with a few examples; `None` when all pass.
    violation: Option<String>,
}

fn check_documents(
    writer: &Writer,
    catalog: &Catalog,
    table: &TableInfo,
) -> Result<TableCheck, DbError> {
    let mut checked = 0;
    let mut bad = 0;
    let mut examples = Vec::new();
    for_each_document(writer, table, |doc| {
        checked += 1;
        if let Err(e) = catalog
            .schema
            .validate_document(&table.name, doc.fields, catalog)
        {
            bad += 1;
            if examples.len() < EXAMPLES {
                examples.push(format!("{} ({e})", doc.id));
            }
        }
        Ok(())
    })?;
    let violation = (bad > 0).then(|| {
        format!(
            "{bad} of {checked} documents in table {:?} do not match the new schema, e.g. {}",
            table.name,
            examples.join(", ")
        )
    });
    Ok(TableCheck { checked, violation })
}

fn backfill(
    writer: &mut Writer,
    table: &TableInfo,
    index: u32,
    fields: &[FieldPath],
) -> Result<usize, DbError> {
    let mut start = Vec::new();
    let mut count = 0;
    loop {
        let rows = writer.scan(table.by_creation_time.id.0, &start, None, Order::Asc, BATCH)?;
        let done = rows.len() < BATCH;
        if let Some(last) = rows.last() {
            start = value::key::successor(&last.key);
        }
        for row in rows {
            let doc = Document::from_storage(&row.value)?;
            let key =
                IndexKey::for_document(fields, &doc.fields, doc.creation_time, doc.id.as_str());
            writer.insert_index_entry(index, &key.0, doc.id.as_str())?;
            count += 1;
        }
        if done {
            return Ok(count);
        }
    }
}
