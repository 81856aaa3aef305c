//! `ctx`, the handle every query and mutation handler gets: `ctx.db`, `ctx.auth`,
//! `ctx.now()`, and `ctx.runQuery` / `ctx.runMutation`, which run another function inline, in
//! the caller's transaction and with the caller's identity. Writes are refused in queries,
//! also in a query that a mutation called; `ctx.runAction` is refused (actions only).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use database::DbError;
use rhai::{Dynamic, Engine, Map, NativeCallContext};
use value::Value;

use crate::convert::{from_dynamic, object_from_dynamic, to_dynamic};
use crate::definition::{Caller, FunctionKind};
use crate::error_report::nested_call_error;
use crate::host_error::{HostResult, db_error, host_error, string_arg};
use crate::path::FunctionPath;
use crate::query_builder::QueryBuilder;
use crate::sandbox::{Enter, Exec};
use crate::validation::{check_args, check_result};

/// `ctx`: the handle passed to every handler.
#[derive(Clone)]
pub(crate) struct Ctx(pub Arc<Exec>);

impl Ctx {
    pub(crate) fn into_dynamic(self) -> Dynamic {
        Dynamic::from(self)
    }
}

/// `ctx.db`.
#[derive(Clone)]
pub(super) struct Db(pub(super) Arc<Exec>);

/// `ctx.auth`.
#[derive(Clone)]
struct Auth(Arc<Exec>);

fn writable(exec: &Exec, op: &'static str) -> HostResult<()> {
    if exec.read_only {
        return Err(db_error(DbError::ReadOnly(op)));
    }
    Ok(())
}

/// Registers `ctx`, `ctx.auth` and `ctx.db`.
///
/// The handles' methods (here and in `storage.rs`, `scheduler.rs`, `action.rs`) take the handle
/// by value, not `&mut`: Rhai treats a `&mut` receiver reached through a property
/// (`ctx.db.insert(...)`) as possibly changed and tries to store it back into `ctx` after the
/// call, a setter lookup and an indexer lookup that both fail with a formatted error, on every
/// call. A handle is an `Arc`, so the clone a by-value call takes costs less.
pub(super) fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Ctx>("Ctx");
    engine.register_type_with_name::<Db>("Db");
    engine.register_type_with_name::<Auth>("Auth");

    // ctx
    engine.register_get("db", |ctx: &mut Ctx| Db(ctx.0.clone()));
    engine.register_get("auth", |ctx: &mut Ctx| Auth(ctx.0.clone()));
    engine.register_fn("now", |ctx: &mut Ctx| ctx.0.now_ms);
    for (name, kind) in [
        ("runQuery", FunctionKind::Query),
        ("runMutation", FunctionKind::Mutation),
    ] {
        engine.register_fn(
            name,
            move |c: NativeCallContext, ctx: &mut Ctx, path: &str, args: Dynamic| {
                run_nested(&c, &ctx.0, path, args, kind)
            },
        );
        engine.register_fn(
            name,
            move |c: NativeCallContext, ctx: &mut Ctx, path: &str| {
                run_nested(&c, &ctx.0, path, Dynamic::from_map(Map::new()), kind)
            },
        );
    }

    // Actions only: refused here with the reason instead of Rhai's "Function not found".
    fn refuse_run_action() -> HostResult<Dynamic> {
        Err(host_error(
            "ctx.runAction is only available in actions; queries and mutations are transactions and cannot wait on an action".to_string(),
        ))
    }
    engine.register_fn("runAction", |_: &mut Ctx, _: &str| refuse_run_action());
    engine.register_fn("runAction", |_: &mut Ctx, _: &str, _: Dynamic| {
        refuse_run_action()
    });

    // ctx.auth
    engine.register_fn("getUserIdentity", |auth: Auth| {
        auth.0.identity_read.store(true, Ordering::Relaxed);
        auth.0
            .identity
            .as_ref()
            .map_or(Dynamic::UNIT, |identity| to_dynamic(identity.value()))
    });

    // ctx.db
    engine.register_fn("get", |db: Db, id: Dynamic| -> HostResult<Dynamic> {
        let id = string_arg(&id, "ctx.db.get(id): id")?;
        let table = db.0.with_txn(|txn| {
            Ok(txn
                .catalog()
                .resolve_id(&id)
                .ok()
                .map(|(_, t)| t.name.clone()))
        })?;
        if let Some(table) = table.filter(|t| schema::is_system_table(t)) {
            return Err(host_error(format!(
                "ctx.db.get: {id:?} is an id of the system table {table}; read it with ctx.db.system.get(id)"
            )));
        }
        let doc = db.0.with_txn(|txn| txn.get(&id))?;
        Ok(doc.map_or(Dynamic::UNIT, |d| to_dynamic(&d.to_value())))
    });
    engine.register_fn(
        "normalizeId",
        |db: Db, table: &str, id: Dynamic| -> HostResult<Dynamic> {
            let Ok(id) = id.into_string() else {
                return Ok(Dynamic::UNIT);
            };
            let table = table.to_string();
            let matches = db.0.with_txn(|txn| {
                Ok(txn
                    .catalog()
                    .resolve_id(&id)
                    .is_ok_and(|(_, t)| t.name == table))
            })?;
            Ok(if matches {
                Dynamic::from(id)
            } else {
                Dynamic::UNIT
            })
        },
    );
    engine.register_fn("query", |db: Db, table: &str| {
        QueryBuilder::new(db.0.clone(), table)
    });
    engine.register_fn(
        "insert",
        |db: Db, table: &str, doc: Dynamic| -> HostResult<String> {
            writable(&db.0, "insert")?;
            let doc = object_from_dynamic(&doc, "the inserted document").map_err(host_error)?;
            db.0.with_txn(|txn| txn.insert(table, doc))
                .map(|id| id.to_string())
        },
    );
    engine.register_fn(
        "patch",
        |db: Db, id: Dynamic, fields: Dynamic| -> HostResult<()> {
            writable(&db.0, "patch")?;
            let id = string_arg(&id, "ctx.db.patch(id, fields): id")?;
            let fields = object_from_dynamic(&fields, "the patch").map_err(host_error)?;
            db.0.with_txn(|txn| txn.patch(&id, fields))
        },
    );
    engine.register_fn(
        "replace",
        |db: Db, id: Dynamic, doc: Dynamic| -> HostResult<()> {
            writable(&db.0, "replace")?;
            let id = string_arg(&id, "ctx.db.replace(id, doc): id")?;
            let doc = object_from_dynamic(&doc, "the replacement document").map_err(host_error)?;
            db.0.with_txn(|txn| txn.replace(&id, doc))
        },
    );
    engine.register_fn("delete", |db: Db, id: Dynamic| -> HostResult<()> {
        writable(&db.0, "delete")?;
        let id = string_arg(&id, "ctx.db.delete(id): id")?;
        db.0.with_txn(|txn| txn.delete(&id))
    });
}

/// `ctx.runQuery` / `ctx.runMutation`: runs another function inline, in the caller's
/// transaction and with the caller's identity.
fn run_nested(
    call: &NativeCallContext,
    exec: &Arc<Exec>,
    path: &str,
    args: Dynamic,
    kind: FunctionKind,
) -> HostResult<Dynamic> {
    if kind == FunctionKind::Mutation && exec.kind == FunctionKind::Query {
        return Err(host_error(
            "ctx.runMutation is not available in a query; queries are read-only".to_string(),
        ));
    }
    let args = from_dynamic(&args, "the arguments").map_err(host_error)?;
    let path = FunctionPath::parse(path);
    run_inline(call, exec, &path, kind, args).map(|v| to_dynamic(&v))
}

/// Runs `path` inline in the caller's transaction: the transaction moves to the callee for the
/// call and back after it, with the callee's log lines and whether it read the identity.
fn run_inline(
    call: &NativeCallContext,
    parent: &Arc<Exec>,
    path: &FunctionPath,
    kind: FunctionKind,
    args: Value,
) -> HostResult<Value> {
    let modules = parent.modules.clone();
    let (module, def) = modules
        .resolve(path, kind, Caller::Trusted)
        .map_err(|e| host_error(e.message))?;
    let args = parent
        .with_txn(|txn| Ok(check_args(def, &path.to_string(), args, txn.catalog())))?
        .map_err(|e| host_error(e.message))?;
    let txn = parent
        .txn
        .lock()
        .take()
        .ok_or_else(|| host_error("ctx was used after the function returned".to_string()))?;
    let child = Arc::new(Exec::nested(parent, txn, kind, path.to_string()));
    let outcome = {
        let _current = Enter::new(child.clone());
        modules.call(
            module,
            def,
            call.call_level(),
            [Ctx(child.clone()).into_dynamic(), to_dynamic(&args)],
        )
    };
    *parent.txn.lock() = child.txn.lock().take();
    parent
        .logs
        .lock()
        .extend(std::mem::take(&mut *child.logs.lock()));
    if child.identity_read.load(Ordering::Relaxed) {
        parent.identity_read.store(true, Ordering::Relaxed);
    }
    let value = outcome
        .map_err(|e| nested_call_error(e, &path.to_string(), &module.file, call.call_position()))?;
    parent
        .with_txn(|txn| Ok(check_result(def, &path.to_string(), &value, txn.catalog())))?
        .map_err(|e| host_error(format!("{path}: {}", e.message)))
}
