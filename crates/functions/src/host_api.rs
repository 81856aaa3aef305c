//! Everything a script can call. This is the only place functions are registered on the Rhai
//! engine, so it is the complete list of what user code can do:
//!
//! - at module level: `query`, `mutation`, `internalQuery`, `internalMutation`, `httpAction`;
//! - `ctx.db`: `get`, `query`, `normalizeId`, and in mutations `insert`, `patch`, `replace`,
//!   `delete`; the query chain lives in `query_builder.rs`;
//! - `ctx.auth.getUserIdentity()`;
//! - `ctx.runQuery(path, args)`, `ctx.runMutation(path, args)`, `ctx.now()`;
//! - `print` / `debug` (log lines returned with the result).
//! - `httpRouter().route(...)` (`http_router.rs`), and in HTTP actions the request, `env`,
//!   `Webhook`/`verifyWebhook` and the action's `ctx` (`http_action.rs`, registered from here).
//!
//! Also registered here, to refuse with a reason instead of Rhai's "Function not found":
//! `timestamp()`, `rand()`, `random()` (functions are deterministic; `ctx.now()` is the
//! clock) and `sleep(..)` (Rhai's core package has it; it would block the thread).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use database::{DbError, Transaction};
use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, Map, NativeCallContext, Position};
use schema::{ObjectType, Type};

use crate::convert::{from_dynamic, object_from_dynamic, to_dynamic};
use crate::definition::{FunctionKind, Registration, Visibility};
use crate::path::FunctionPath;
use crate::query_builder::{IndexRangeBuilder, QueryBuilder};
use crate::runner;
use crate::sandbox::Exec;

pub(crate) type HostResult<T> = Result<T, Box<EvalAltResult>>;

/// An error raised by the host (a refused database call, a misused API). Thrown into the
/// script as a runtime error so `try`/`catch` works, and recognised by the runner.
#[derive(Clone, Debug)]
pub(crate) struct HostError {
    pub message: String,
    pub is_limit: bool,
}

pub(crate) fn host_error(message: String) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(HostError {
            message,
            is_limit: false,
        }),
        Position::NONE,
    ))
}

fn db_error(e: DbError) -> Box<EvalAltResult> {
    let is_limit = matches!(e, DbError::Limit(_));
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(HostError {
            message: e.to_string(),
            is_limit,
        }),
        Position::NONE,
    ))
}

/// Runs `f` on the execution's transaction, counting the time as database time.
pub(crate) fn with_txn<R>(
    exec: &Exec,
    f: impl FnOnce(&mut dyn Transaction) -> Result<R, DbError>,
) -> HostResult<R> {
    let started = Instant::now();
    let mut guard = exec.txn.lock();
    let txn = guard.as_mut().ok_or_else(|| {
        host_error("ctx.db was used after the function returned; database handles are only valid during the call".to_string())
    })?;
    let result = f(txn.as_mut()).map_err(db_error);
    drop(guard);
    exec.add_db_time(started.elapsed());
    result
}

fn writable(exec: &Exec, op: &'static str) -> HostResult<()> {
    if exec.read_only {
        return Err(db_error(DbError::ReadOnly(op)));
    }
    Ok(())
}

/// `ctx`: the handle passed to every handler.
#[derive(Clone)]
pub(crate) struct Ctx(pub Arc<Exec>);

/// `ctx.db`.
#[derive(Clone)]
pub(crate) struct Db(Arc<Exec>);

/// `ctx.auth`.
#[derive(Clone)]
pub(crate) struct Auth(Arc<Exec>);

fn string_arg(value: &Dynamic, what: &str) -> HostResult<String> {
    value
        .clone()
        .into_string()
        .map_err(|found| host_error(format!("{what} must be a string, not {found}")))
}

fn parse_args(map: &Map, call: &str) -> HostResult<(Option<ObjectType>, Option<Type>, FnPtr)> {
    let handler = map
        .get("handler")
        .and_then(|h| h.clone().try_cast::<FnPtr>())
        .ok_or_else(|| {
            host_error(format!(
                "{call} needs a handler: {call}(#{{ args: #{{}}, handler: |ctx, args| {{ ... }} }})"
            ))
        })?;
    let args = match map.get("args") {
        None => None,
        Some(args) if args.is_map() => {
            let mut object = ObjectType::default();
            let args = args.clone().cast::<Map>();
            for (name, ty) in args {
                let text = string_arg(&ty, &format!("the validator of argument `{name}`"))?;
                let ty = Type::parse(&text).map_err(|e| {
                    host_error(format!(
                        "argument `{name}`: invalid type {text:?}: {}",
                        e.message
                    ))
                })?;
                object.fields.insert(name.to_string(), ty);
            }
            Some(object)
        }
        Some(other) => {
            return Err(host_error(format!(
                "{call}: args must be a map of argument types like #{{ text: \"string\" }}, not {}",
                other.type_name()
            )));
        }
    };
    let returns = match map.get("returns") {
        None => None,
        Some(ty) => {
            let text = string_arg(ty, "returns")?;
            Some(Type::parse(&text).map_err(|e| {
                host_error(format!("returns: invalid type {text:?}: {}", e.message))
            })?)
        }
    };
    if let Some(unknown) = map
        .keys()
        .find(|k| !["args", "returns", "handler"].contains(&k.as_str()))
    {
        return Err(host_error(format!(
            "{call}: unknown option `{unknown}` (expected args, returns, handler)"
        )));
    }
    Ok((args, returns, handler))
}

fn registration(
    kind: FunctionKind,
    visibility: Visibility,
    call: &'static str,
) -> impl Fn(NativeCallContext, Dynamic) -> HostResult<Registration> {
    move |context: NativeCallContext, definition: Dynamic| {
        let (args, returns, handler) = if let Some(handler) = definition.clone().try_cast::<FnPtr>()
        {
            (None, None, handler)
        } else if definition.is_map() {
            parse_args(&definition.cast::<Map>(), call)?
        } else {
            return Err(host_error(format!(
                "{call} takes #{{ args: ..., handler: |ctx, args| ... }} or a handler closure, not {}",
                definition.type_name()
            )));
        };
        Ok(Registration {
            kind,
            visibility,
            args,
            returns,
            handler,
            declared_at: context.call_position(),
        })
    }
}

/// Registers the whole host API on `engine`.
pub(crate) fn register(engine: &mut Engine) {
    // HTTP routes and the action-only API (request, env, webhooks) live beside their runner.
    crate::http_router::register(engine);
    crate::http_action::register(engine);
    engine.register_type_with_name::<Registration>("FunctionDefinition");
    engine.register_type_with_name::<Ctx>("Ctx");
    engine.register_type_with_name::<Db>("Db");
    engine.register_type_with_name::<Auth>("Auth");
    engine.register_type_with_name::<QueryBuilder>("Query");
    engine.register_type_with_name::<IndexRangeBuilder>("IndexRange");
    engine.register_type_with_name::<HostError>("Error");
    engine.register_fn("to_string", |e: &mut HostError| e.message.clone());
    engine.register_get("message", |e: &mut HostError| e.message.clone());

    engine.register_fn(
        "query",
        registration(FunctionKind::Query, Visibility::Public, "query"),
    );
    engine.register_fn(
        "mutation",
        registration(FunctionKind::Mutation, Visibility::Public, "mutation"),
    );
    engine.register_fn(
        "internalQuery",
        registration(FunctionKind::Query, Visibility::Internal, "internalQuery"),
    );
    engine.register_fn(
        "internalMutation",
        registration(
            FunctionKind::Mutation,
            Visibility::Internal,
            "internalMutation",
        ),
    );
    engine.register_fn(
        "httpAction",
        registration(FunctionKind::HttpAction, Visibility::Internal, "httpAction"),
    );

    // Refused: registered so the script gets the reason (and `sleep` from Rhai's core
    // package is shadowed: it would hold the Committer without counting as user time).
    engine.register_fn("timestamp", || -> HostResult<()> {
        Err(refused("timestamp()", NO_CLOCK))
    });
    for name in ["rand", "random"] {
        engine.register_fn(name, move || -> HostResult<()> {
            Err(refused(&format!("{name}()"), NO_RANDOM))
        });
    }
    engine.register_fn("sleep", |_: rhai::INT| -> HostResult<()> {
        Err(refused("sleep()", NO_SLEEP))
    });
    engine.register_fn("sleep", |_: rhai::FLOAT| -> HostResult<()> {
        Err(refused("sleep()", NO_SLEEP))
    });

    // ctx
    engine.register_get("db", |ctx: &mut Ctx| Db(ctx.0.clone()));
    engine.register_get("auth", |ctx: &mut Ctx| Auth(ctx.0.clone()));
    engine.register_fn("now", |ctx: &mut Ctx| ctx.0.now_ms);
    engine.register_fn(
        "runQuery",
        |c: NativeCallContext, ctx: &mut Ctx, path: &str, args: Dynamic| {
            run_nested(&c, &ctx.0, path, args, FunctionKind::Query)
        },
    );
    engine.register_fn(
        "runQuery",
        |c: NativeCallContext, ctx: &mut Ctx, path: &str| {
            run_nested(
                &c,
                &ctx.0,
                path,
                Dynamic::from_map(Map::new()),
                FunctionKind::Query,
            )
        },
    );
    engine.register_fn(
        "runMutation",
        |c: NativeCallContext, ctx: &mut Ctx, path: &str, args: Dynamic| {
            run_nested(&c, &ctx.0, path, args, FunctionKind::Mutation)
        },
    );
    engine.register_fn(
        "runMutation",
        |c: NativeCallContext, ctx: &mut Ctx, path: &str| {
            run_nested(
                &c,
                &ctx.0,
                path,
                Dynamic::from_map(Map::new()),
                FunctionKind::Mutation,
            )
        },
    );

    // ctx.auth
    engine.register_fn("getUserIdentity", |auth: &mut Auth| {
        auth.0.identity_read.store(true, Ordering::Relaxed);
        auth.0.identity.as_ref().map_or(Dynamic::UNIT, to_dynamic)
    });

    // ctx.db
    engine.register_fn("get", |db: &mut Db, id: Dynamic| -> HostResult<Dynamic> {
        let id = string_arg(&id, "ctx.db.get(id): id")?;
        let doc = with_txn(&db.0, |txn| txn.get(&id))?;
        Ok(doc.map_or(Dynamic::UNIT, |d| to_dynamic(&d.to_value())))
    });
    engine.register_fn(
        "normalizeId",
        |db: &mut Db, table: &str, id: Dynamic| -> HostResult<Dynamic> {
            let Ok(id) = id.into_string() else {
                return Ok(Dynamic::UNIT);
            };
            let table = table.to_string();
            let matches = with_txn(&db.0, |txn| {
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
    engine.register_fn("query", |db: &mut Db, table: &str| {
        QueryBuilder::new(db.0.clone(), table)
    });
    engine.register_fn(
        "insert",
        |db: &mut Db, table: &str, doc: Dynamic| -> HostResult<String> {
            writable(&db.0, "insert")?;
            let doc = object_from_dynamic(&doc, "the inserted document").map_err(host_error)?;
            with_txn(&db.0, |txn| txn.insert(table, doc)).map(|id| id.to_string())
        },
    );
    engine.register_fn(
        "patch",
        |db: &mut Db, id: Dynamic, fields: Dynamic| -> HostResult<()> {
            writable(&db.0, "patch")?;
            let id = string_arg(&id, "ctx.db.patch(id, fields): id")?;
            let fields = object_from_dynamic(&fields, "the patch").map_err(host_error)?;
            with_txn(&db.0, |txn| txn.patch(&id, fields))
        },
    );
    engine.register_fn(
        "replace",
        |db: &mut Db, id: Dynamic, doc: Dynamic| -> HostResult<()> {
            writable(&db.0, "replace")?;
            let id = string_arg(&id, "ctx.db.replace(id, doc): id")?;
            let doc = object_from_dynamic(&doc, "the replacement document").map_err(host_error)?;
            with_txn(&db.0, |txn| txn.replace(&id, doc))
        },
    );
    engine.register_fn("delete", |db: &mut Db, id: Dynamic| -> HostResult<()> {
        writable(&db.0, "delete")?;
        let id = string_arg(&id, "ctx.db.delete(id): id")?;
        with_txn(&db.0, |txn| txn.delete(&id))
    });

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

pub(crate) const NO_CLOCK: &str = "functions must be deterministic (query results are cached and shared between clients); use ctx.now(), the time the call started";
pub(crate) const NO_RANDOM: &str = "functions must be deterministic (query results are cached and shared between clients); derive values from the arguments, and let ctx.db.insert make ids";
const NO_SLEEP: &str =
    "it would block the server's thread; a function should finish as fast as it can";

/// What a sandboxed-away feature says: what was called and why it is not there.
pub(crate) fn refusal(what: &str, why: &str) -> String {
    format!("{what} is not available in Pulsebase functions: {why}")
}

fn refused(what: &str, why: &str) -> Box<EvalAltResult> {
    host_error(refusal(what, why))
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
    runner::run_inline(call, exec, &path, kind, args).map(|v| to_dynamic(&v))
}

impl Ctx {
    pub(crate) fn into_dynamic(self) -> Dynamic {
        Dynamic::from(self)
    }
}
