//! Turning an imported row into the document to write: its `_id` mapped to a Pulsebase id,
//! its `_creationTime` kept, its values decoded from Convex's export JSON, the ids it refers
//! to mapped the same way, and the whole checked against `schema.toml`.
//!
//! Ids. A Convex id is not a Pulsebase id (Convex's have a 16-byte body, ours 14), and even a
//! Pulsebase id names its table by number, which may differ in the app imported into. So an
//! `_id` is kept when it is already a Pulsebase id of the target table, and otherwise replaced
//! by an id derived from it (`DocumentId::from_seed` over its SHA-256): the same old id always
//! gives the same new one, so references can be rewritten without a table of what became of
//! each document, also across separate imports, and a resumed import makes the same ids.
//! A string is rewritten as a reference when it is an id (Convex's or ours) whose table the
//! export's `_tables/documents.jsonl` names, or when the schema declares the field `id<T>`.
//! A row without `_id` gets an id derived from its table and line.

use std::collections::HashMap;

use database::Catalog;
use schema::{ObjectType, Type};
use sha2::{Digest, Sha256};
use value::{DocumentId, Limits, Object, TableNumber, Value, convex_id_table};

use crate::export_json::from_export_json;

/// The documents of `_storage` keep these fields (an export may carry more, e.g. Convex's
/// `internalId`).
const STORAGE_FIELDS: [&str; 3] = ["sha256", "size", "contentType"];

/// A row ready to write.
pub(crate) struct Prepared {
    pub id: DocumentId,
    pub creation_time: Option<f64>,
    pub fields: Object,
    /// The row's `_id` as the file had it (a `_storage` row finds its file by it).
    pub source_id: Option<String>,
    /// Approximate size, for batching.
    pub size: usize,
}

/// Maps ids from the exporting app to this one.
pub(crate) struct IdMapper<'a> {
    catalog: &'a Catalog,
    source_tables: &'a HashMap<u32, String>,
    /// Makes rows without `_id` get ids of their own per import file.
    seed: String,
}

fn derived(table: TableNumber, old: &str) -> DocumentId {
    let digest = Sha256::digest(format!("pulsebase-import:{old}").as_bytes());
    DocumentId::from_seed(table, &digest)
}

/// The id table of a declared type (`id<T>`, also inside `optional` or a union).
fn declared_id_table(ty: Option<&Type>) -> Option<&str> {
    match ty? {
        Type::Id(table) => Some(table),
        Type::Optional(inner) => declared_id_table(Some(inner)),
        Type::Union(options) => options.iter().find_map(|t| declared_id_table(Some(t))),
        _ => None,
    }
}

impl<'a> IdMapper<'a> {
    pub(crate) fn new(
        catalog: &'a Catalog,
        source_tables: &'a HashMap<u32, String>,
        seed: String,
    ) -> IdMapper<'a> {
        IdMapper {
            catalog,
            source_tables,
            seed,
        }
    }

    /// The id a row of `table` gets for its `_id` (or, without one, for its line).
    fn document_id(
        &self,
        table: TableNumber,
        table_name: &str,
        id: Option<&str>,
        line: u64,
    ) -> Result<DocumentId, String> {
        let Some(id) = id else {
            return Ok(derived(
                table,
                &format!("{}:{table_name}:{line}", self.seed),
            ));
        };
        match DocumentId::parse(id) {
            Ok(parsed) if parsed.table() == table => Ok(parsed),
            Ok(_) => Ok(derived(table, id)),
            Err(_) if convex_id_table(id).is_some() => Ok(derived(table, id)),
            Err(_) => Err(format!(
                "_id {:?} is not a document id (leave _id out and one is assigned)",
                id.chars().take(64).collect::<String>()
            )),
        }
    }

    /// What a string becomes: a reference to a document of the import maps like that
    /// document's `_id`; anything else stays.
    fn reference(&self, text: &str, declared: Option<&Type>) -> Option<String> {
        let ours = DocumentId::parse(text).ok();
        let number = match &ours {
            Some(id) => id.table().0,
            None => convex_id_table(text)?,
        };
        let target = self
            .source_tables
            .get(&number)
            .map(String::as_str)
            .or_else(|| declared_id_table(declared))?;
        let table = self.catalog.table(target).ok()?;
        if ours.is_some_and(|id| id.table() == table.number) {
            return None;
        }
        Some(derived(table.number, text).to_string())
    }

    fn map_value(&self, value: &mut Value, declared: Option<&Type>) {
        let declared = match declared {
            Some(Type::Optional(inner)) => Some(&**inner),
            other => other,
        };
        match value {
            Value::String(text) => {
                if let Some(mapped) = self.reference(text, declared) {
                    *text = mapped;
                }
            }
            Value::Array(items) => {
                let element = match declared {
                    Some(Type::Array(t)) => Some(&**t),
                    _ => None,
                };
                for item in items {
                    self.map_value(item, element);
                }
            }
            Value::Object(fields) => self.map_fields(fields, declared),
            _ => {}
        }
    }

    fn map_fields(&self, fields: &mut Object, declared: Option<&Type>) {
        for (name, value) in fields.iter_mut() {
            let field_type = match declared {
                Some(Type::Object(object)) => object.fields.get(name),
                Some(Type::Record(t)) => Some(&**t),
                _ => None,
            };
            self.map_value(value, field_type);
        }
    }

    fn map_document(&self, fields: &mut Object, declared: Option<&ObjectType>) {
        for (name, value) in fields.iter_mut() {
            self.map_value(value, declared.and_then(|d| d.fields.get(name)));
        }
    }

    /// The document a row of `table` becomes, checked against the schema; `Err` says why not.
    pub(crate) fn prepare(
        &self,
        table: &str,
        line: u64,
        json: serde_json::Value,
    ) -> Result<Prepared, String> {
        let info = self.catalog.table(table).map_err(|e| e.to_string())?;
        let serde_json::Value::Object(mut row) = json else {
            return Err("a document must be a JSON object".to_string());
        };
        let source_id = match row.remove("_id") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(id)) => Some(id),
            Some(other) => return Err(format!("_id must be a string, not {other}")),
        };
        let creation_time = match row.remove("_creationTime") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Number(n)) => match n.as_f64() {
                Some(t) if t.is_finite() && t > 0.0 => Some(t),
                _ => return Err(format!("_creationTime {n} is not a time in ms since 1970")),
            },
            Some(other) => return Err(format!("_creationTime must be a number, not {other}")),
        };
        if table == application::STORAGE_TABLE {
            row.retain(|k, _| STORAGE_FIELDS.contains(&k.as_str()));
            if let Some(size) = row.get("size").and_then(serde_json::Value::as_f64) {
                row.insert("size".into(), serde_json::json!(size));
            }
        }
        if let Some(system) = row.keys().find(|k| k.starts_with('_')) {
            return Err(format!(
                "field {system:?} starts with '_', which is reserved for system fields"
            ));
        }
        let id = self.document_id(info.number, table, source_id.as_deref(), line)?;
        let Value::Object(mut fields) = from_export_json(&serde_json::Value::Object(row))? else {
            return Err("a document must be a JSON object".to_string());
        };
        let declared = self
            .catalog
            .schema
            .table(table)
            .and_then(|t| t.document.as_ref());
        self.map_document(&mut fields, declared);
        let fields = self
            .catalog
            .schema
            .validate_document(table, fields, self.catalog)
            .map_err(|e| format!("does not match schema.toml: {e}"))?;
        let value = Value::Object(fields);
        Limits::default()
            .check_shape(&value, "document")
            .map_err(|e| e.to_string())?;
        let size = value.size();
        if size > 1 << 20 {
            return Err(format!(
                "the document is {size} bytes, over the 1 MiB limit"
            ));
        }
        let Value::Object(fields) = value else {
            return Err("a document must be a JSON object".to_string());
        };
        Ok(Prepared {
            id,
            creation_time,
            fields,
            source_id,
            size,
        })
    }
}
