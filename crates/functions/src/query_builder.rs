//! `ctx.db.query(table)` and its chain: `withIndex`, `order`, `filter`, then one of
//! `collect`, `take`, `first`, `unique`, `paginate`. The builder is lazy; the terminal call
//! scans through a [`ScanCursor`], so the recorded read covers exactly what was consumed.
//!
//! Index ranges follow Convex: `eq` on a prefix of the index fields in order, then at most one
//! lower (`gt`/`gte`) and one upper (`lt`/`lte`) bound on the next field. Every index ends
//! with `_creationTime`, which can be bounded too.
//!
//! Pagination cursors are opaque strings: the key of the last document of a page, behind a
//! hash of the query's table, index, range and order. A cursor given to a query it did not
//! come from fails with `InvalidCursor` (which the Convex client's `usePaginatedQuery` answers
//! by starting over) instead of silently reading from an unrelated position.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use database::{Order, ScanCursor};
use rhai::{Array, Dynamic, FnPtr, Map, NativeCallContext};
use schema::Type;
use sha2::{Digest, Sha256};
use value::key::{encode_component, prefix_end};
use value::{FieldPath, KeyRange, Value};

use crate::convert::{from_dynamic, to_dynamic};
use crate::host_api::{HostResult, host_error, with_txn};
use crate::sandbox::Exec;

/// A range under construction inside a `withIndex` callback (`q` in `|q| q.eq(..)`).
#[derive(Clone)]
pub(crate) struct IndexRangeBuilder {
    index: String,
    /// The index fields followed by `_creationTime`.
    fields: Vec<FieldPath>,
    types: Vec<Option<Type>>,
    eqs: Vec<Value>,
    lower: Option<(Value, bool)>,
    upper: Option<(Value, bool)>,
}

impl IndexRangeBuilder {
    fn describe_fields(&self) -> String {
        self.fields
            .iter()
            .map(FieldPath::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn next_field(&self, op: &str, field: &str) -> Result<usize, String> {
        let position = self.eqs.len();
        let expected = self.fields.get(position).map(FieldPath::as_str);
        if expected != Some(field) {
            let hint = match expected {
                Some(e) => format!("the next field of the index is {e:?}"),
                None => "every field of the index already has an eq".to_string(),
            };
            return Err(format!(
                "withIndex({:?}): {op}({field:?}, ...) is out of order: {hint}; the index orders by [{}], and eq must come first, in that order, before one range",
                self.index,
                self.describe_fields()
            ));
        }
        Ok(position)
    }

    /// Converts the value the way the field's declared type would store it.
    fn coerce(&self, position: usize, value: &Dynamic) -> Result<Value, String> {
        let value = from_dynamic(value, "index bound")?;
        match &self.types[position] {
            Some(ty) => Ok(ty.validate(value.clone(), "", &NoIds).unwrap_or(value)),
            None => Ok(value),
        }
    }

    pub(crate) fn eq(&mut self, field: &str, value: &Dynamic) -> Result<Self, String> {
        if self.lower.is_some() || self.upper.is_some() {
            return Err(format!(
                "withIndex({:?}): eq({field:?}) cannot follow a range bound; put eq first",
                self.index
            ));
        }
        let position = self.next_field("eq", field)?;
        let value = self.coerce(position, value)?;
        self.eqs.push(value);
        Ok(self.clone())
    }

    pub(crate) fn bound(&mut self, op: &str, field: &str, value: &Dynamic) -> Result<Self, String> {
        let position = self.next_field(op, field)?;
        let value = self.coerce(position, value)?;
        let (slot, inclusive) = match op {
            "gt" => (&mut self.lower, false),
            "gte" => (&mut self.lower, true),
            "lt" => (&mut self.upper, false),
            _ => (&mut self.upper, true),
        };
        if slot.is_some() {
            return Err(format!(
                "withIndex({:?}): {op}({field:?}) repeats a bound that is already set",
                self.index
            ));
        }
        *slot = Some((value, inclusive));
        Ok(self.clone())
    }

    fn range(&self) -> KeyRange {
        let mut prefix = Vec::new();
        for value in &self.eqs {
            encode_component(&mut prefix, Some(value));
        }
        let with = |value: &Value| {
            let mut key = prefix.clone();
            encode_component(&mut key, Some(value));
            key
        };
        let start = match &self.lower {
            None => Some(prefix.clone()),
            Some((v, true)) => Some(with(v)),
            Some((v, false)) => prefix_end(&with(v)),
        };
        let end = match &self.upper {
            None => prefix_end(&prefix),
            Some((v, false)) => Some(with(v)),
            Some((v, true)) => prefix_end(&with(v)),
        };
        match start {
            Some(start) => KeyRange { start, end },
            // `gt` of the largest possible key: nothing qualifies.
            None => KeyRange {
                start: vec![0xFF],
                end: Some(vec![0xFF]),
            },
        }
    }
}

struct NoIds;
impl schema::IdTables for NoIds {
    fn table_of(&self, id: &str) -> Option<String> {
        value::DocumentId::parse(id).ok().map(|_| String::new())
    }
}

/// `ctx.db.query(table)...`
#[derive(Clone)]
pub(crate) struct QueryBuilder {
    exec: Arc<Exec>,
    table: String,
    index: String,
    range: KeyRange,
    has_index: bool,
    order: Option<Order>,
    filters: Vec<FnPtr>,
}

/// What a terminal operation scanned.
struct Scanned {
    docs: Array,
    last_key: Option<Vec<u8>>,
    exhausted: bool,
}

impl QueryBuilder {
    pub(crate) fn new(exec: Arc<Exec>, table: &str) -> HostResult<QueryBuilder> {
        with_txn(&exec, |txn| txn.catalog().table(table).map(|_| ()))?;
        Ok(QueryBuilder {
            exec,
            table: table.to_string(),
            index: "by_creation_time".to_string(),
            range: KeyRange::all(),
            has_index: false,
            order: None,
            filters: Vec::new(),
        })
    }

    pub(crate) fn with_index(
        &mut self,
        ctx: &NativeCallContext,
        index: &str,
        build: Option<FnPtr>,
    ) -> HostResult<QueryBuilder> {
        if self.has_index {
            return Err(host_error(format!(
                "query({:?}) already has an index; call withIndex once",
                self.table
            )));
        }
        let table = self.table.clone();
        let (fields, types) = with_txn(&self.exec, |txn| {
            let info = txn.catalog().index(&table, index)?;
            let mut fields = info.fields.clone();
            fields.push(FieldPath::new("_creationTime"));
            let def = txn.catalog().schema.table(&table).cloned();
            let types = fields
                .iter()
                .map(|f| {
                    if f.as_str() == "_creationTime" {
                        return Some(Type::Number);
                    }
                    field_type(def.as_ref()?.document.as_ref()?, f)
                })
                .collect();
            Ok((fields, types))
        })?;
        let builder = IndexRangeBuilder {
            index: index.to_string(),
            fields,
            types,
            eqs: Vec::new(),
            lower: None,
            upper: None,
        };
        let builder = match build {
            None => builder,
            Some(f) => {
                let result: Dynamic = f.call_within_context(ctx, (builder,))?;
                result.try_cast::<IndexRangeBuilder>().ok_or_else(|| {
                    host_error(format!(
                        "the withIndex({index:?}, ...) callback must return the range it builds, e.g. |q| q.eq(\"field\", value)"
                    ))
                })?
            }
        };
        let mut next = self.clone();
        next.index = index.to_string();
        next.range = builder.range();
        next.has_index = true;
        Ok(next)
    }

    pub(crate) fn order(&mut self, order: &str) -> HostResult<QueryBuilder> {
        if self.order.is_some() {
            return Err(host_error(
                "Queries may only specify order at most once".to_string(),
            ));
        }
        let order = match order {
            "asc" => Order::Asc,
            "desc" => Order::Desc,
            other => {
                return Err(host_error(format!(
                    "order({other:?}) is not valid; use \"asc\" or \"desc\""
                )));
            }
        };
        let mut next = self.clone();
        next.order = Some(order);
        Ok(next)
    }

    pub(crate) fn filter(&mut self, predicate: FnPtr) -> QueryBuilder {
        let mut next = self.clone();
        next.filters.push(predicate);
        next
    }

    fn cursor(&self) -> HostResult<ScanCursor> {
        Ok(self.cursor_and_tag()?.0)
    }

    /// A scan of this query, and the tag its pagination cursors carry: a hash of the table,
    /// the index (name and fields), the range and the order, so a cursor is only accepted by
    /// the query it came from.
    fn cursor_and_tag(&self) -> HostResult<(ScanCursor, CursorTag)> {
        let (table, index, range, order) = (
            self.table.clone(),
            self.index.clone(),
            self.range.clone(),
            self.order.unwrap_or(Order::Asc),
        );
        with_txn(&self.exec, |txn| {
            let info = txn.catalog().index(&table, &index)?;
            let mut hash = Sha256::new();
            let mut part = |bytes: &[u8]| {
                hash.update((bytes.len() as u64).to_be_bytes());
                hash.update(bytes);
            };
            part(b"pulsebase paginate v1");
            part(table.as_bytes());
            part(index.as_bytes());
            for field in &info.fields {
                part(field.as_str().as_bytes());
            }
            part(&range.start);
            match &range.end {
                Some(end) => part(end),
                None => part(b"unbounded"),
            }
            part(match order {
                Order::Asc => b"asc",
                Order::Desc => b"desc",
            });
            let mut tag = [0u8; TAG_LEN];
            tag.copy_from_slice(&hash.finalize()[..TAG_LEN]);
            Ok((ScanCursor::new(info, range, order), tag))
        })
    }

    fn accepts(&self, ctx: &NativeCallContext, doc: &Dynamic) -> HostResult<bool> {
        for predicate in &self.filters {
            let verdict: Dynamic = predicate.call_within_context(ctx, (doc.clone(),))?;
            match verdict.as_bool() {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(found) => {
                    return Err(host_error(format!(
                        "a filter must return true or false, not {found}"
                    )));
                }
            }
        }
        Ok(true)
    }

    /// Scans until `limit` documents pass the filters (or the range ends).
    fn scan(
        &self,
        ctx: &NativeCallContext,
        mut cursor: ScanCursor,
        limit: Option<usize>,
        stop_at: Option<&[u8]>,
    ) -> HostResult<Scanned> {
        let mut docs = Array::new();
        let mut exhausted = false;
        while limit.is_none_or(|n| docs.len() < n) {
            if let (Some(stop), Some(at)) = (stop_at, cursor.position())
                && at == stop
            {
                break;
            }
            let Some(doc) = with_txn(&self.exec, |txn| txn.scan_next(&mut cursor))? else {
                exhausted = true;
                break;
            };
            let doc = to_dynamic(&doc.to_value());
            if self.accepts(ctx, &doc)? {
                docs.push(doc);
            }
        }
        let last_key = cursor.position().map(<[u8]>::to_vec);
        with_txn(&self.exec, |txn| txn.finish_scan(cursor))?;
        Ok(Scanned {
            docs,
            last_key,
            exhausted,
        })
    }

    pub(crate) fn collect(&mut self, ctx: &NativeCallContext) -> HostResult<Array> {
        Ok(self.scan(ctx, self.cursor()?, None, None)?.docs)
    }

    pub(crate) fn take(&mut self, ctx: &NativeCallContext, n: &Dynamic) -> HostResult<Array> {
        let n = count(n, "take")?;
        Ok(self.scan(ctx, self.cursor()?, Some(n), None)?.docs)
    }

    pub(crate) fn first(&mut self, ctx: &NativeCallContext) -> HostResult<Dynamic> {
        Ok(self
            .scan(ctx, self.cursor()?, Some(1), None)?
            .docs
            .into_iter()
            .next()
            .unwrap_or(Dynamic::UNIT))
    }

    pub(crate) fn unique(&mut self, ctx: &NativeCallContext) -> HostResult<Dynamic> {
        let docs = self.scan(ctx, self.cursor()?, Some(2), None)?.docs;
        if docs.len() > 1 {
            let ids: Vec<String> = docs
                .iter()
                .filter_map(|d| {
                    d.read_lock::<Map>()
                        .and_then(|m| m.get("_id").map(|id| id.to_string()))
                })
                .collect();
            return Err(host_error(format!(
                "unique() query returned more than one result from table {}:\n [{}]",
                self.table,
                ids.join(", ")
            )));
        }
        Ok(docs.into_iter().next().unwrap_or(Dynamic::UNIT))
    }

    /// `paginate(#{ numItems, cursor })` → `#{ page, isDone, continueCursor }`.
    pub(crate) fn paginate(&mut self, ctx: &NativeCallContext, opts: Map) -> HostResult<Map> {
        let num_items = match opts.get("numItems") {
            Some(n) => count(n, "paginate numItems")?,
            None => {
                return Err(host_error(
                    "paginate needs numItems, e.g. paginate(#{ numItems: 10, cursor: () })"
                        .to_string(),
                ));
            }
        };
        if num_items == 0 {
            return Err(host_error("paginate numItems must be positive".to_string()));
        }
        let (mut cursor, tag) = self.cursor_and_tag()?;
        let parse = |name: &str| match opts.get(name) {
            Some(value) => parse_cursor(value, &tag, name),
            None => Ok(None),
        };
        let start = parse("cursor")?;
        let end = parse("endCursor")?;
        match start {
            Some(CursorPosition::End) => {
                return Ok(page_result(Array::new(), true, encode_end(&tag)));
            }
            Some(CursorPosition::After(key)) => cursor = cursor.resume_after(key),
            None => {}
        }
        let (limit, stop_at) = match &end {
            Some(CursorPosition::After(key)) => (None, Some(key.as_slice())),
            Some(CursorPosition::End) => (None, None),
            None => (Some(num_items), None),
        };
        let scanned = self.scan(ctx, cursor, limit, stop_at)?;
        let is_done = scanned.exhausted;
        let continue_cursor = match (&end, scanned.last_key) {
            (Some(CursorPosition::After(key)), _) => encode_after(&tag, key),
            (_, _) if is_done => encode_end(&tag),
            (_, Some(key)) => encode_after(&tag, &key),
            (_, None) => encode_end(&tag),
        };
        Ok(page_result(scanned.docs, is_done, continue_cursor))
    }
}

/// The declared type of a (possibly nested) field, if the schema declares it.
fn field_type(document: &schema::ObjectType, field: &FieldPath) -> Option<Type> {
    let mut object = document;
    let mut parts = field.parts().peekable();
    while let Some(part) = parts.next() {
        let mut ty = object.fields.get(part)?;
        if let Type::Optional(inner) = ty {
            ty = inner;
        }
        if parts.peek().is_none() {
            return Some(ty.clone());
        }
        match ty {
            Type::Object(inner) => object = inner,
            _ => return None,
        }
    }
    None
}

fn count(n: &Dynamic, what: &str) -> HostResult<usize> {
    let n = if let Ok(i) = n.as_int() {
        i as f64
    } else if let Ok(f) = n.as_float() {
        f
    } else {
        return Err(host_error(format!(
            "{what} needs a number, not {}",
            n.type_name()
        )));
    };
    if !(n >= 0.0 && n.fract() == 0.0) {
        return Err(host_error(format!(
            "{what} needs a whole number of at least 0, not {n}"
        )));
    }
    Ok(n as usize)
}

/// Bytes of the query's hash at the front of each cursor.
const TAG_LEN: usize = 8;
type CursorTag = [u8; TAG_LEN];

enum CursorPosition {
    After(Vec<u8>),
    End,
}

/// `k` + base64url(tag ++ key of the last document of the page).
fn encode_after(tag: &CursorTag, key: &[u8]) -> String {
    let mut bytes = tag.to_vec();
    bytes.extend_from_slice(key);
    format!("k{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// `e` + base64url(tag): the query has nothing after this page.
fn encode_end(tag: &CursorTag) -> String {
    format!("e{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Decodes `paginationOpts[name]`, which must be `()` or a cursor of the query tagged `tag`.
fn parse_cursor(
    cursor: &Dynamic,
    tag: &CursorTag,
    name: &str,
) -> HostResult<Option<CursorPosition>> {
    if cursor.is_unit() {
        return Ok(None);
    }
    let text = cursor.clone().into_string().map_err(|found| {
        host_error(format!(
            "paginate: {name} must be a string returned as continueCursor, or () for the first page, not {found}"
        ))
    })?;
    let decode = |body: &str| {
        URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .filter(|bytes| bytes.len() >= TAG_LEN)
    };
    let (position, found_tag) = match text.split_at_checked(1) {
        Some(("k", body)) => match decode(body) {
            Some(mut bytes) => {
                let key = bytes.split_off(TAG_LEN);
                (CursorPosition::After(key), bytes)
            }
            None => return Err(not_a_cursor(&text)),
        },
        Some(("e", body)) => match decode(body) {
            Some(bytes) if bytes.len() == TAG_LEN => (CursorPosition::End, bytes),
            _ => return Err(not_a_cursor(&text)),
        },
        _ => return Err(not_a_cursor(&text)),
    };
    if found_tag.as_slice() != tag.as_slice() {
        return Err(host_error(format!(
            "InvalidCursor: Tried to run a query starting from a cursor, but it looks like this cursor is from a different query (another table, index, range or order). Pass back the continueCursor this same query returned, or () to start from the first page ({name}: {text:?})"
        )));
    }
    Ok(Some(position))
}

fn not_a_cursor(text: &str) -> Box<rhai::EvalAltResult> {
    host_error(format!(
        "InvalidCursor: {text:?} is not a cursor returned by paginate; pass back continueCursor, or () to start from the first page"
    ))
}

fn page_result(page: Array, is_done: bool, continue_cursor: String) -> Map {
    let mut result = Map::new();
    result.insert("page".into(), Dynamic::from_array(page));
    result.insert("isDone".into(), Dynamic::from_bool(is_done));
    result.insert("continueCursor".into(), Dynamic::from(continue_cursor));
    result
}
