//! Everything a script can call. `register` here and the `register` of each submodule are the
//! only code that puts anything callable on the Rhai engine (the sandbox only sets limits and
//! hooks), so this folder is the complete list of what user code can do:
//!
//! - Rhai's own packages (this file): the core language, logic, maths, arrays, blobs, maps,
//!   strings and bit fields; nothing that reaches the outside world;
//! - at module level (this file): `query`, `mutation`, `action`, `internalQuery`,
//!   `internalMutation`, `internalAction`, `httpAction`;
//! - `ctx` (`ctx.rs`): `ctx.db` (`get`, `query`, `normalizeId`, and in mutations `insert`,
//!   `patch`, `replace`, `delete`), `ctx.auth.getUserIdentity()`, `ctx.runQuery(path, args)`,
//!   `ctx.runMutation(path, args)`, `ctx.now()`;
//! - the query chain (`query.rs`): `withIndex`, `fullTableScan`, `order`, `filter`, `collect`,
//!   `take`, `first`, `unique`, `paginate`, and the index range's `eq`, `gt`, `gte`, `lt`,
//!   `lte`;
//! - actions and HTTP actions (`action.rs`): their `ctx` (`runQuery`, `runMutation`,
//!   `runAction`, `auth`, `now`), `env`, and `fetch(url, options)` with its response;
//! - files (`storage.rs`): `ctx.storage` (`getUrl`, `generateUploadUrl`, `delete`, and in
//!   actions `store` and `get`) and `ctx.db.system` (`get`, `query`) over system tables;
//! - HTTP (`http.rs`): `httpRouter().route(...)`, and in HTTP actions the `request`,
//!   `Webhook(secret).verify(request)` and `verifyWebhook`;
//! - `print` / `debug`: Rhai's own; the sandbox's hooks keep them as the log lines returned
//!   with the result.
//!
//! Also registered here, to refuse with a reason instead of Rhai's "Function not found":
//! `timestamp()`, `rand()`, `random()` (functions are deterministic; `ctx.now()` is the
//! clock) and `sleep(..)` (Rhai's core package has it; it would block the thread).
//!
//! The behaviour behind each registration lives with its type (`query_builder.rs`,
//! `http_action.rs`, ...); the registrations are thin.

mod action;
pub(crate) mod ctx;
mod http;
mod query;
mod storage;
pub(crate) mod testing;

use rhai::packages::{
    BasicArrayPackage, BasicBlobPackage, BasicMapPackage, BasicMathPackage, BitFieldPackage,
    CorePackage, LogicPackage, MoreStringPackage, Package,
};
use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, Map, NativeCallContext};
use schema::{ObjectType, Type};

use crate::definition::{FunctionKind, Registration, Visibility};
use crate::hints::{NO_CLOCK, NO_RANDOM, NO_SLEEP, refusal};
use crate::host_error::{HostError, HostResult, host_error, string_arg};

/// Registers the whole host API on `engine`.
pub(crate) fn register(engine: &mut Engine) {
    for package in [
        CorePackage::new().as_shared_module(),
        LogicPackage::new().as_shared_module(),
        BasicMathPackage::new().as_shared_module(),
        BasicArrayPackage::new().as_shared_module(),
        BasicBlobPackage::new().as_shared_module(),
        BasicMapPackage::new().as_shared_module(),
        MoreStringPackage::new().as_shared_module(),
        BitFieldPackage::new().as_shared_module(),
    ] {
        engine.register_global_module(package);
    }
    http::register(engine);
    action::register(engine);
    engine.register_type_with_name::<Registration>("FunctionDefinition");
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
        "action",
        registration(FunctionKind::Action, Visibility::Public, "action"),
    );
    engine.register_fn(
        "internalAction",
        registration(FunctionKind::Action, Visibility::Internal, "internalAction"),
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

    ctx::register(engine);
    query::register(engine);
    storage::register(engine);
}

fn refused(what: &str, why: &str) -> Box<EvalAltResult> {
    host_error(refusal(what, why))
}

/// `query(...)` and its siblings: a handler closure, or `#{ args, returns, handler }`.
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
            parse_definition(&definition.cast::<Map>(), call)?
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

fn parse_definition(
    map: &Map,
    call: &str,
) -> HostResult<(Option<ObjectType>, Option<Type>, FnPtr)> {
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
