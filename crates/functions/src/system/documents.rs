//! `_system/documents:page` and `_system/documents:get`: documents page by page along any
//! index and range, newest first by default, and one document by id.
//!
//! Pages continue from a cursor (the index key of the last document shown, bound to its
//! query like `paginate`'s cursors), never from an offset, so a page stays the same documents
//! while others are inserted before it. A page records exactly the range it consumed: a
//! subscribed page re-runs when a commit touches that range.

use database::{Order, ScanCursor, Transaction};
use rhai::Dynamic;
use value::{Object, Value};

use super::args;
use super::errors::{bad, db_error};
use super::tables::object;
use crate::convert::to_dynamic;
use crate::error::FunctionError;
use crate::index_range::IndexRangeBuilder;
use crate::pagination::{self, CursorPosition, encode_after, encode_end, parse_cursor};

/// The largest page the dashboard may ask for.
const MAX_PAGE: usize = 500;
const DEFAULT_PAGE: usize = 25;

/// `{ table, index?, order?, numItems?, cursor?, range? }` → `{ page, isDone, continueCursor }`.
///
/// `index` defaults to `by_creation_time`, `order` to `"desc"` (newest first); `range` is a
/// list of `{ op, field, value }` with `op` one of `eq`, `gt`, `gte`, `lt`, `lte`, applied in
/// order with `withIndex`'s rules (equalities on a prefix of the index fields, then bounds).
pub(super) fn page(
    txn: &mut dyn Transaction,
    args: &Object,
    _now_ms: f64,
) -> Result<Value, FunctionError> {
    let table = args::string(args, "table")?;
    let index = args::opt_string(args, "index")?.unwrap_or("by_creation_time");
    let order = match args::opt_string(args, "order")?.unwrap_or("desc") {
        "asc" => Order::Asc,
        "desc" => Order::Desc,
        other => {
            return Err(bad(format!(
                "args.order: expected \"asc\" or \"desc\", found {other:?}"
            )));
        }
    };
    let num_items = args::opt_count(args, "numItems", MAX_PAGE)?.unwrap_or(DEFAULT_PAGE);
    let mut builder = IndexRangeBuilder::for_index(txn, table, index).map_err(db_error)?;
    for (i, step) in args::opt_array(args, "range")?.iter().enumerate() {
        let Value::Object(step) = step else {
            return Err(bad(format!(
                "args.range[{i}]: expected {{op, field, value}}, found {}",
                step.type_name()
            )));
        };
        let op = args::string(step, "op")?;
        let field = args::string(step, "field")?;
        let value = to_dynamic(step.get("value").unwrap_or(&Value::Null));
        builder = match op {
            "eq" => builder.eq(field, &value),
            "gt" | "gte" | "lt" | "lte" => builder.bound(op, field, &value),
            other => {
                return Err(bad(format!(
                    "args.range[{i}].op: expected eq, gt, gte, lt or lte, found {other:?}"
                )));
            }
        }
        .map_err(bad)?;
    }
    let range = builder.range();
    let info = txn.catalog().index(table, index).map_err(db_error)?.clone();
    let tag = pagination::tag(table, index, &info.fields, &range, order);
    let mut cursor = ScanCursor::new(&info, range, order);
    if let Some(text) = args::opt_string(args, "cursor")? {
        match parse_cursor(&Dynamic::from(text.to_string()), &tag, "cursor") {
            Ok(Some(CursorPosition::After(key))) => cursor = cursor.resume_after(key),
            Ok(Some(CursorPosition::End)) => {
                return Ok(result(Vec::new(), true, encode_end(&tag)));
            }
            Ok(None) => {}
            Err(e) => return Err(bad(format!("args.cursor: {e}"))),
        }
    }
    let mut docs = Vec::with_capacity(num_items);
    let mut exhausted = false;
    while docs.len() < num_items {
        match txn.scan_next(&mut cursor).map_err(db_error)? {
            Some(doc) => docs.push(doc.to_value()),
            None => {
                exhausted = true;
                break;
            }
        }
    }
    let last_key = cursor.position().map(<[u8]>::to_vec);
    txn.finish_scan(cursor).map_err(db_error)?;
    let continue_cursor = match last_key {
        Some(key) if !exhausted => encode_after(&tag, &key),
        _ => encode_end(&tag),
    };
    Ok(result(docs, exhausted, continue_cursor))
}

fn result(page: Vec<Value>, is_done: bool, continue_cursor: String) -> Value {
    object([
        ("page", Value::Array(page)),
        ("isDone", Value::Boolean(is_done)),
        ("continueCursor", Value::String(continue_cursor)),
    ])
}

/// `{ id }` → the document, or null when it does not exist (an id of no table is an error).
pub(super) fn get(
    txn: &mut dyn Transaction,
    args: &Object,
    _now_ms: f64,
) -> Result<Value, FunctionError> {
    let id = args::string(args, "id")?;
    Ok(txn
        .get(id)
        .map_err(db_error)?
        .map_or(Value::Null, |doc| doc.to_value()))
}
