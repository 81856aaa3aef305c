//! The `ctx.db.query(table)` chain and the index range of `withIndex(name, |q| ...)`; the
//! behaviour lives in `query_builder.rs` and `index_range.rs`.

use rhai::{Dynamic, Engine, FnPtr, Map, NativeCallContext};

use crate::host_error::host_error;
use crate::index_range::IndexRangeBuilder;
use crate::query_builder::QueryBuilder;

/// Registers the query chain and the index range builder.
pub(super) fn register(engine: &mut Engine) {
    engine.register_type_with_name::<QueryBuilder>("Query");
    engine.register_type_with_name::<IndexRangeBuilder>("IndexRange");

    // ctx.db.query(table) chain
    engine.register_fn(
        "withIndex",
        |c: NativeCallContext, q: &mut QueryBuilder, index: &str, f: FnPtr| {
            q.with_index(&c, index, Some(f))
        },
    );
    engine.register_fn(
        "withIndex",
        |c: NativeCallContext, q: &mut QueryBuilder, index: &str| q.with_index(&c, index, None),
    );
    engine.register_fn("fullTableScan", |q: &mut QueryBuilder| q.clone());
    engine.register_fn("order", |q: &mut QueryBuilder, order: &str| q.order(order));
    engine.register_fn("filter", |q: &mut QueryBuilder, f: FnPtr| q.filter(f));
    engine.register_fn("collect", |c: NativeCallContext, q: &mut QueryBuilder| {
        q.collect(&c)
    });
    engine.register_fn(
        "take",
        |c: NativeCallContext, q: &mut QueryBuilder, n: Dynamic| q.take(&c, &n),
    );
    engine.register_fn("first", |c: NativeCallContext, q: &mut QueryBuilder| {
        q.first(&c)
    });
    engine.register_fn("unique", |c: NativeCallContext, q: &mut QueryBuilder| {
        q.unique(&c)
    });
    engine.register_fn(
        "paginate",
        |c: NativeCallContext, q: &mut QueryBuilder, opts: Map| q.paginate(&c, opts),
    );

    // withIndex(name, |q| q.eq(..).gt(..))
    engine.register_fn(
        "eq",
        |r: &mut IndexRangeBuilder, field: &str, v: Dynamic| r.eq(field, &v).map_err(host_error),
    );
    for op in ["gt", "gte", "lt", "lte"] {
        engine.register_fn(
            op,
            move |r: &mut IndexRangeBuilder, field: &str, v: Dynamic| {
                r.bound(op, field, &v).map_err(host_error)
            },
        );
    }
}
