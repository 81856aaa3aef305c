//! `_system/tables:list`: every table schema.toml declares, with its document count, its
//! fields as declared and its indexes. The count reads the whole `by_creation_time` range,
//! so an insert or delete anywhere in a table re-runs a subscribed listing.

use database::Transaction;
use value::{KeyRange, Object, Value};

use super::errors::db_error;
use crate::error::FunctionError;

/// `{}` → `[{ name, count, fields: [{name, type}] | null, indexes: [{name, fields}] }]`.
pub(super) fn list(
    txn: &mut dyn Transaction,
    _args: &Object,
    _now_ms: f64,
) -> Result<Value, FunctionError> {
    let catalog = txn.catalog().clone();
    let mut tables = Vec::new();
    for info in catalog.tables() {
        let Some(def) = catalog.schema.table(&info.name) else {
            continue; // kept only for its old data: not readable
        };
        let count = txn
            .count(&info.by_creation_time, KeyRange::all())
            .map_err(db_error)?;
        let fields = match &def.document {
            None => Value::Null,
            Some(document) => Value::Array(
                document
                    .fields
                    .iter()
                    .map(|(name, ty)| {
                        object([
                            ("name", Value::String(name.clone())),
                            ("type", Value::String(ty.to_string())),
                        ])
                    })
                    .collect(),
            ),
        };
        let indexes = info
            .stored_indexes()
            .map(|index| {
                let mut fields: Vec<Value> = index
                    .fields
                    .iter()
                    .map(|f| Value::String(f.as_str().to_string()))
                    .collect();
                fields.push(Value::String("_creationTime".into()));
                object([
                    ("name", Value::String(index.name.clone())),
                    ("fields", Value::Array(fields)),
                ])
            })
            .collect();
        tables.push(object([
            ("name", Value::String(info.name.clone())),
            ("count", Value::Float64(count as f64)),
            ("fields", fields),
            ("indexes", Value::Array(indexes)),
        ]));
    }
    Ok(Value::Array(tables))
}

/// An object from `(field, value)` pairs.
pub(super) fn object<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}
