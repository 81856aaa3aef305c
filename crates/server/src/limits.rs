//! Rate limits on HTTP requests, as a layer in front of every route: function calls of the
//! HTTP API and requests routed to HTTP actions take a token from the client address's
//! `calls-per-ip` bucket, and a request whose `Authorization` is refused (401) counts as a
//! failed authentication of its address; while that address is over `failed-auth-per-ip`,
//! its calls that carry credentials are refused before the credentials are looked at.
//! The per-user bucket needs the verified caller, so the HTTP API checks it itself
//! ([`check_user`]). The admin key is never rate-limited.
//!
//! A refused request gets 429 with `Retry-After` (seconds) and
//! `{"code":"RateLimited","message","kind":"RateLimited","name","retryAfter"}`
//! (`retryAfter` in milliseconds, as in Convex's rate limiter component).

use std::sync::Arc;

use auth::Identity;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use functions::Caller;
use guard::RateLimited;

use crate::authorization;
use crate::conn_info::{ConnInfo, client_ip};
use crate::state::ServerState;

/// Paths of the HTTP API that run a function.
const CALL_PATHS: [&str; 5] = [
    "/api/query",
    "/api/mutation",
    "/api/action",
    "/api/function",
    "/api/query_at_ts",
];

/// The prefix of Convex's `/api/run/{module}/{name}`, a function call too.
const RUN_PREFIX: &str = "/api/run/";

/// The layer: see the module docs.
pub(crate) async fn limit_requests(
    State(state): State<Arc<ServerState>>,
    request: Request,
    next: Next,
) -> Response {
    if !is_function_call(&state, &request) {
        return next.run(request).await;
    }
    let rates = &state.guard.rates;
    let info = request.extensions().get::<Arc<ConnInfo>>().cloned();
    let ip = client_ip(
        info.as_deref(),
        request.headers(),
        &state.guard.config().trusted_proxies,
    );
    let sent = authorization::sent(request.headers());
    if !authorization::has_admin_key(request.headers(), &state) {
        if sent && let Err(limited) = rates.check_auth_attempt(ip) {
            return too_many(&limited);
        }
        if let Err(limited) = rates.check_call_addr(ip) {
            return too_many(&limited);
        }
    }
    let response = next.run(request).await;
    if sent && response.status() == StatusCode::UNAUTHORIZED {
        rates.auth_failed(ip);
    }
    response
}

/// The per-user bucket for an HTTP API call by `identity` (admins are not limited).
#[allow(clippy::result_large_err)] // the error is the finished refusal, built once per refused call
pub(crate) fn check_user(
    state: &ServerState,
    identity: Option<&Identity>,
    caller: Caller,
) -> Result<(), Response> {
    if caller == Caller::Trusted {
        return Ok(());
    }
    let user = identity.map(Identity::token_identifier);
    state
        .guard
        .rates
        .check_call_user(user)
        .map_err(|limited| too_many(&limited))
}

fn is_function_call(state: &ServerState, request: &Request) -> bool {
    let path = request.uri().path();
    let post_call = request.method() == Method::POST
        && (CALL_PATHS.contains(&path) || path.starts_with(RUN_PREFIX));
    if post_call || (request.method() == Method::GET && path == "/api/query") {
        return true;
    }
    if path.starts_with("/api/") || path.starts_with("/dev-issuer/") {
        return false;
    }
    state
        .app
        .modules()
        .http_router()
        .is_some_and(|routes| routes.lookup(request.method().as_str(), path).is_ok())
}

/// 429 with `Retry-After` and the limit in the body.
pub(crate) fn too_many(limited: &RateLimited) -> Response {
    let mut body = serde_json::json!({ "code": "RateLimited", "message": limited.to_string() });
    if let (Some(object), serde_json::Value::Object(data)) =
        (body.as_object_mut(), limited.error_data())
    {
        object.extend(data);
    }
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(limited.retry_after_secs()),
    );
    response
}
