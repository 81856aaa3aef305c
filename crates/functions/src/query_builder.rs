//! `ctx.db.query(table)` and its chain: `withIndex`, `order`, `filter`, then one of
//! `collect`, `take`, `first`, `unique`, `paginate`. The builder is lazy; the terminal call
//! scans through a [`ScanCursor`], so the recorded read covers exactly what was consumed. A
//! filter runs on every scanned document, so `take(n)` and pages count the documents that pass
//! it. Index ranges are built in `index_range.rs`, pagination cursors in `pagination.rs`.
//! System tables are queried only through `ctx.db.system.query` ([`QueryBuilder::new_system`]).

use std::sync::Arc;

use database::{Order, ScanCursor};
use rhai::{Array, Dynamic, FnPtr, Map, NativeCallContext};
use value::KeyRange;

use crate::convert::to_dynamic;
use crate::host_error::{HostResult, host_error};
use crate::index_range::IndexRangeBuilder;
use crate::pagination::{
    self, CursorPosition, CursorTag, encode_after, encode_end, page_result, parse_cursor,
};
use crate::sandbox::Exec;

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
    /// `ctx.db.query(table)`: a user table.
    pub(crate) fn new(exec: Arc<Exec>, table: &str) -> HostResult<QueryBuilder> {
        if schema::is_system_table(table) {
            return Err(host_error(format!(
                "ctx.db.query({table:?}): {table} is a system table; read it with ctx.db.system.query({table:?})"
            )));
        }
        Self::over(exec, table)
    }

    /// `ctx.db.system.query(table)`: a system table.
    pub(crate) fn new_system(exec: Arc<Exec>, table: &str) -> HostResult<QueryBuilder> {
        if !schema::is_system_table(table) {
            return Err(host_error(format!(
                "ctx.db.system.query({table:?}) reads system tables such as \"_storage\"; read {table} with ctx.db.query({table:?})"
            )));
        }
        Self::over(exec, table)
    }

    fn over(exec: Arc<Exec>, table: &str) -> HostResult<QueryBuilder> {
        exec.with_txn(|txn| txn.catalog().table(table).map(|_| ()))?;
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
        let builder = self
            .exec
            .with_txn(|txn| IndexRangeBuilder::for_index(txn, &table, index))?;
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
        self.exec.with_txn(|txn| {
            let info = txn.catalog().index(&table, &index)?;
            let tag = pagination::tag(&table, &index, &info.fields, &range, order);
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
            let Some(doc) = self.exec.with_txn(|txn| txn.scan_next(&mut cursor))? else {
                exhausted = true;
                break;
            };
            let doc = to_dynamic(&doc.to_value());
            if self.accepts(ctx, &doc)? {
                docs.push(doc);
            }
        }
        let last_key = cursor.position().map(<[u8]>::to_vec);
        self.exec.with_txn(|txn| txn.finish_scan(cursor))?;
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
