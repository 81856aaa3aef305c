//! HTTP: `httpRouter().route(...)` at module level, and what only an HTTP action gets: the
//! `request`, `Webhook(secret).verify(request)` and `verifyWebhook(secret, request)` (its
//! `ctx`, `env` and `fetch` are every action's, in `action.rs`). The behaviour lives in
//! `http_router.rs`, `http_request.rs` and `webhook.rs`.

use rhai::{Blob, Dynamic, Engine, Map, NativeCallContext};

use crate::action_ctx::action_only;
use crate::host_error::HostResult;
use crate::http_request::RequestHandle;
use crate::http_router::HttpRouter;
use crate::webhook::WebhookHandle;

/// Registers routes and the action-only API.
pub(super) fn register(engine: &mut Engine) {
    register_router(engine);
    register_request(engine);
    register_webhooks(engine);
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

fn register_webhooks(engine: &mut Engine) {
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
