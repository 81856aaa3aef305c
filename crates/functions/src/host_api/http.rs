//! HTTP: `httpRouter().route(...)` at module level, and what only an HTTP action can call: its
//! `ctx` (`runQuery`, `runMutation`, `auth.getUserIdentity()`, `now()`; `ctx.db` is refused),
//! the `request`, `env(name)` / `env(name, default)`, `Webhook(secret).verify(request)` and
//! `verifyWebhook(secret, request)`. The behaviour lives in `http_router.rs`,
//! `http_action.rs`, `http_request.rs` and `webhook.rs`.

use rhai::{Blob, Dynamic, Engine, Map, NativeCallContext};

use crate::definition::FunctionKind;
use crate::host_error::{HostResult, host_error};
use crate::http_action::{ActionAuth, ActionCtx, action_only, env_var};
use crate::http_request::RequestHandle;
use crate::http_router::HttpRouter;
use crate::webhook::WebhookHandle;

/// Registers routes and the action-only API.
pub(super) fn register(engine: &mut Engine) {
    register_router(engine);
    register_action_ctx(engine);
    register_request(engine);
    register_env_and_webhooks(engine);
}

fn register_router(engine: &mut Engine) {
    engine.register_type_with_name::<HttpRouter>("HttpRouter");
    engine.register_fn("httpRouter", |call: NativeCallContext| {
        HttpRouter::new(call.call_position().line().unwrap_or(0))
    });
    engine.register_fn(
        "route",
        |call: NativeCallContext, router: &mut HttpRouter, spec: Map| router.add(&call, spec),
    );
}

fn register_action_ctx(engine: &mut Engine) {
    engine.register_type_with_name::<ActionCtx>("ActionCtx");
    engine.register_type_with_name::<ActionAuth>("ActionAuth");
    engine.register_get("db", |_: &mut ActionCtx| -> HostResult<Dynamic> {
        Err(host_error(
            "ctx.db is not available in an HTTP action; read with ctx.runQuery(\"module:query\", args) and write with ctx.runMutation(\"module:mutation\", args)".to_string(),
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
    engine.register_fn("getUserIdentity", |auth: &mut ActionAuth| {
        auth.user_identity()
    });
}

fn register_request(engine: &mut Engine) {
    engine.register_type_with_name::<RequestHandle>("Request");
    engine.register_get("method", |r: &mut RequestHandle| r.method());
    engine.register_get("url", |r: &mut RequestHandle| r.url());
    engine.register_get("path", |r: &mut RequestHandle| r.path());
    engine.register_get("headers", |r: &mut RequestHandle| r.headers());
    engine.register_get("query", |r: &mut RequestHandle| r.query());
    engine.register_fn("text", |r: &mut RequestHandle| r.text());
    engine.register_fn(
        "bytes",
        |call: NativeCallContext, r: &mut RequestHandle| -> HostResult<Blob> {
            r.bytes(call.engine().max_array_size())
        },
    );
    engine.register_fn("json", |r: &mut RequestHandle| r.json());
}

fn register_env_and_webhooks(engine: &mut Engine) {
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

    engine.register_type_with_name::<WebhookHandle>("Webhook");
    engine.register_fn("Webhook", |secret: Dynamic| {
        action_only("Webhook()")?;
        WebhookHandle::new(&secret)
    });
    engine.register_fn(
        "verify",
        |webhook: &mut WebhookHandle, request: RequestHandle| webhook.verify(&request),
    );
    engine.register_fn(
        "verifyWebhook",
        |secret: Dynamic, request: RequestHandle| -> HostResult<Dynamic> {
            action_only("verifyWebhook()")?;
            WebhookHandle::new(&secret)?.verify(&request)
        },
    );
}
