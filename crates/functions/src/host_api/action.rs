//! What only actions and HTTP actions can call: their `ctx` (`runQuery`, `runMutation`,
//! `runAction`, `auth.getUserIdentity()`, `now()`; `ctx.db` is refused with the reason;
//! `ctx.scheduler` is `scheduler.rs`), `env(name)` / `env(name, default)`, and `fetch(url, options)` with its
//! response. The behaviour lives in `action_ctx.rs` and `fetch_api.rs`.

use rhai::{Blob, Dynamic, Engine, Map, NativeCallContext};

use crate::action_ctx::{ActionAuth, ActionCtx, env_var};
use crate::definition::FunctionKind;
use crate::fetch_api::{FetchResponseHandle, fetch};
use crate::host_error::{HostResult, host_error};

/// Registers the action-only API.
pub(super) fn register(engine: &mut Engine) {
    register_ctx(engine);
    register_env(engine);
    register_fetch(engine);
}

fn register_ctx(engine: &mut Engine) {
    engine.register_type_with_name::<ActionCtx>("ActionCtx");
    engine.register_type_with_name::<ActionAuth>("ActionAuth");
    engine.register_get("db", |_: &mut ActionCtx| -> HostResult<Dynamic> {
        Err(host_error(
            "ctx.db is not available in an action; read with ctx.runQuery(\"module:query\", args) and write with ctx.runMutation(\"module:mutation\", args)".to_string(),
        ))
    });
    engine.register_get("auth", |ctx: &mut ActionCtx| ctx.auth());
    engine.register_fn("now", |ctx: &mut ActionCtx| ctx.now());
    for (name, kind) in [
        ("runQuery", FunctionKind::Query),
        ("runMutation", FunctionKind::Mutation),
    ] {
        engine.register_fn(
            name,
            move |ctx: &mut ActionCtx, path: &str, args: Dynamic| ctx.run(path, args, kind),
        );
        engine.register_fn(name, move |ctx: &mut ActionCtx, path: &str| {
            ctx.run(path, Dynamic::from_map(Map::new()), kind)
        });
    }
    engine.register_fn(
        "runAction",
        |call: NativeCallContext, ctx: &mut ActionCtx, path: &str, args: Dynamic| {
            ctx.run_action(&call, path, args)
        },
    );
    engine.register_fn(
        "runAction",
        |call: NativeCallContext, ctx: &mut ActionCtx, path: &str| {
            ctx.run_action(&call, path, Dynamic::from_map(Map::new()))
        },
    );
    engine.register_fn("getUserIdentity", |auth: ActionAuth| auth.user_identity());
}

fn register_env(engine: &mut Engine) {
    engine.register_fn("env", |name: &str| -> HostResult<String> {
        env_var(name)?.ok_or_else(|| {
            host_error(format!(
                "the environment variable {name} is not set; add {name}=... to .env.local in the app folder (or the server's environment)"
            ))
        })
    });
    engine.register_fn(
        "env",
        |name: &str, default: Dynamic| -> HostResult<Dynamic> {
            Ok(env_var(name)?.map_or(default, Dynamic::from))
        },
    );
}

fn register_fetch(engine: &mut Engine) {
    engine.register_fn("fetch", |url: &str| fetch(url, None));
    engine.register_fn("fetch", |url: &str, options: Dynamic| {
        match options.clone().try_cast::<Map>() {
            Some(options) => fetch(url, Some(options)),
            // `()` is Rhai's undefined: no options, as `fetch(url, undefined)` in JavaScript.
            None if options.is_unit() => fetch(url, None),
            None => Err(host_error(format!(
                "fetch({url:?}, options): options must be a map like #{{ method: \"POST\", headers: #{{}}, body: \"...\" }}, not {}",
                options.type_name()
            ))),
        }
    });
    engine.register_type_with_name::<FetchResponseHandle>("Response");
    engine.register_get("status", |r: &mut FetchResponseHandle| r.status());
    engine.register_get("statusText", |r: &mut FetchResponseHandle| r.status_text());
    engine.register_get("ok", |r: &mut FetchResponseHandle| r.ok());
    engine.register_get("url", |r: &mut FetchResponseHandle| r.url());
    engine.register_get("headers", |r: &mut FetchResponseHandle| r.headers());
    engine.register_fn("text", |r: &mut FetchResponseHandle| r.text());
    engine.register_fn("json", |r: &mut FetchResponseHandle| r.json());
    engine.register_fn(
        "bytes",
        |call: NativeCallContext, r: &mut FetchResponseHandle| -> HostResult<Blob> {
            r.bytes(call.engine().max_array_size())
        },
    );
}
