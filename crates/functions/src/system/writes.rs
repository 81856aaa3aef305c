//! `_system/documents:insert`, `:replace` and `:delete`: the dashboard's writes. Each is one
//! mutation through the Committer, so it is validated against schema.toml exactly like a
//! script's write (a violation fails with the field path in its error data and writes
//! nothing) and invalidates subscribed queries like any commit.

use database::Transaction;
use value::{Object, Value};

use super::args;
use super::errors::{bad, db_error};
use crate::error::FunctionError;

/// The fields of a document as the editor sends it, without the system fields (which the
/// database sets and refuses in a write).
fn user_fields(document: &Object) -> Object {
    document
        .iter()
        .filter(|(name, _)| name.as_str() != "_id" && name.as_str() != "_creationTime")
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// `{ table, document }` → the new document's id.
pub(super) fn insert(
    txn: &mut dyn Transaction,
    args: &Object,
    _now_ms: f64,
) -> Result<Value, FunctionError> {
    let table = args::string(args, "table")?;
    let document = user_fields(args::object(args, "document")?);
    let id = txn.insert(table, document).map_err(db_error)?;
    Ok(Value::String(id.to_string()))
}

/// `{ id, document }`: replaces every user field of the document (`_id` and `_creationTime`
/// in `document` are ignored: they cannot change).
pub(super) fn replace(
    txn: &mut dyn Transaction,
    args: &Object,
    _now_ms: f64,
) -> Result<Value, FunctionError> {
    let id = args::string(args, "id")?;
    let document = user_fields(args::object(args, "document")?);
    txn.replace(id, document).map_err(db_error)?;
    Ok(Value::Null)
}

/// `{ ids: [id, ...] }` → how many were deleted (all of them, or none if one is missing).
pub(super) fn delete(
    txn: &mut dyn Transaction,
    args: &Object,
    _now_ms: f64,
) -> Result<Value, FunctionError> {
    let ids = args::opt_array(args, "ids")?;
    if ids.is_empty() {
        return Err(bad(
            "args.ids: expected a non-empty array of document ids".into()
        ));
    }
    for (i, id) in ids.iter().enumerate() {
        let Value::String(id) = id else {
            return Err(bad(format!(
                "args.ids[{i}]: expected a document id string, found {}",
                id.type_name()
            )));
        };
        txn.delete(id).map_err(db_error)?;
    }
    Ok(Value::Float64(ids.len() as f64))
}
