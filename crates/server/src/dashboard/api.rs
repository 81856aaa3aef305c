//! The dashboard's admin-only JSON routes: the key check (`check`), every function with its
//! kind, file:line and validators, the HTTP routes and the cron jobs (`functions`), the auth
//! providers with their key caches and live sessions (`auth_status`), `pulsebase auth
//! check`'s diagnosis of a pasted token (`auth_check`), and the figures of the health page
//! (`health`).
//!
//! Data in tables is not here: the dashboard reads and writes it over the sync WebSocket
//! through the `_system/` functions, so it updates live like any subscribed query. Running a
//! function goes through `/api/function`, the admin endpoint `pulsebase run` uses.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as JsonValue, json};
use telemetry::HistogramSnapshot;

use super::guard::require_admin;
use crate::api_error::error_response;
use crate::request_body;
use crate::state::ServerState;

/// 200 with the server's mode when the key is right: the sign-in page's check.
pub(crate) async fn check(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    if let Err(refused) = require_admin(&headers, &state).await {
        return refused;
    }
    Json(json!({
        "ok": true,
        "version": env!("CARGO_PKG_VERSION"),
        "mode": if state.dev_issuer.is_some() { "dev" } else { "serve" },
        "devIssuer": state.dev_issuer.as_ref().map(|d| d.issuer_url.clone()),
    }))
    .into_response()
}

/// Every function: path, kind, visibility, file, line, argument and result validators; and
/// the routes of `functions/http.rhai`.
pub(crate) async fn functions(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = require_admin(&headers, &state).await {
        return refused;
    }
    let modules = state.app.modules();
    let mut functions = Vec::new();
    for module in modules.modules() {
        for (name, def) in &module.functions {
            let args = def.args.as_ref().map(|object| {
                object
                    .fields
                    .iter()
                    .map(|(field, ty)| json!({ "name": field, "type": ty.to_string() }))
                    .collect::<Vec<_>>()
            });
            functions.push(json!({
                "path": format!("{}:{name}", module.path),
                "module": module.path,
                "name": name,
                "kind": def.kind.as_str(),
                "visibility": match def.visibility {
                    functions::Visibility::Public => "public",
                    functions::Visibility::Internal => "internal",
                },
                "file": module.file,
                "line": def.line(),
                "args": args,
                "returns": def.returns.as_ref().map(ToString::to_string),
            }));
        }
    }
    let routes: Vec<JsonValue> = modules
        .http_router()
        .map(|router| {
            router
                .routes()
                .map(|r| json!({ "route": r.describe(), "declaredAt": r.declared_at }))
                .collect()
        })
        .unwrap_or_default();
    let runs = state.app.cron_runs();
    let crons: Vec<JsonValue> = modules
        .crons()
        .iter()
        .map(|job| {
            let run = runs.iter().find(|r| r.name == job.name);
            json!({
                "name": job.name,
                "schedule": job.schedule.describe(),
                "function": job.path.to_string(),
                "args": job.args.to_json(),
                "declaredAt": job.declared_at,
                "nextRun": run.and_then(|r| r.next),
                "lastRun": run.and_then(|r| r.last_run.clone()),
            })
        })
        .collect();
    Json(json!({ "functions": functions, "httpRoutes": routes, "crons": crons })).into_response()
}

/// The providers in force, each with its key cache and its live WebSocket sessions.
pub(crate) async fn auth_status(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = require_admin(&headers, &state).await {
        return refused;
    }
    let by_issuer = state.hub.sessions_by_issuer();
    let providers = state.auth.providers();
    let statuses = state.auth.provider_status();
    let listed: Vec<JsonValue> = statuses
        .iter()
        .zip(&providers)
        .map(|(status, provider)| {
            let sessions: usize = by_issuer
                .iter()
                .filter(|(iss, _)| provider.accepts_issuer(iss))
                .map(|(_, n)| n)
                .sum();
            let mut value = serde_json::to_value(status).unwrap_or(JsonValue::Null);
            value["liveSessions"] = json!(sessions);
            value
        })
        .collect();
    Json(json!({
        "providers": listed,
        "now": state.auth.now(),
        "cachedTokens": state.auth.cached_tokens(),
        "rejections": state.auth.rejections().into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(reason, n)| json!({ "reason": reason, "count": n }))
            .collect::<Vec<_>>(),
    }))
    .into_response()
}

/// `{ "token": "<jwt>" }` → what `pulsebase auth check` prints, and the same as data.
pub(crate) async fn auth_check(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(refused) = require_admin(&headers, &state).await {
        return refused;
    }
    let body = match request_body::read(body).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    let token = match serde_json::from_slice::<JsonValue>(&body) {
        Ok(json) => match json.get("token").and_then(JsonValue::as_str) {
            Some(token) if !token.trim().is_empty() => token.trim().to_string(),
            _ => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "send {\"token\": \"<the JWT>\"}; the token is empty",
                );
            }
        },
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BadJsonBody",
                &format!("the body is not JSON: {e}"),
            );
        }
    };
    let diagnosis = state.auth.diagnose(&token).await;
    let verdicts: Vec<JsonValue> = diagnosis
        .verdicts
        .iter()
        .map(|v| match &v.outcome {
            Ok(_) => json!({ "provider": v.provider, "accepted": true }),
            Err(reason) => {
                json!({ "provider": v.provider, "accepted": false, "reason": reason.to_string() })
            }
        })
        .collect();
    Json(json!({
        "accepted": diagnosis.accepted_by().is_some(),
        "report": diagnosis.to_string(),
        "header": diagnosis.header,
        "claims": diagnosis.claims,
        "decodeError": diagnosis.decode_error.as_ref().map(ToString::to_string),
        "verdicts": verdicts,
    }))
    .into_response()
}

fn histogram_json(snapshot: &HistogramSnapshot) -> JsonValue {
    json!({
        "count": snapshot.count,
        "sumSeconds": snapshot.sum_seconds,
        "buckets": snapshot.buckets.iter().map(|(le, n)| json!([le, n])).collect::<Vec<_>>(),
    })
}

/// The health page's figures, as counters and histograms: the page polls and takes
/// differences (commits/s, latency percentiles over the last interval).
pub(crate) async fn health(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    if let Err(refused) = require_admin(&headers, &state).await {
        return refused;
    }
    let stats = state.hub.stats();
    let db = state.app.db();
    let sizes = db.file_sizes();
    let functions: serde_json::Map<String, JsonValue> = state
        .app
        .executions()
        .latency()
        .map(|(kind, h)| (kind.to_string(), histogram_json(&h.snapshot())))
        .collect();
    Json(json!({
        "sessions": stats.sessions,
        "queryInstances": stats.instances,
        "subscriptions": db.subscriptions().len(),
        "commits": histogram_json(&db.commit_latency().snapshot()),
        "functions": functions,
        "functionErrors": state.app.executions().errors().into_iter()
            .map(|(kind, n)| json!({ "kind": kind, "count": n })).collect::<Vec<_>>(),
        "databaseBytes": sizes.database_bytes,
        "walBytes": sizes.wal_bytes,
        "ts": db.subscriptions().processed_ts().to_string(),
        "serverTimeMs": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    }))
    .into_response()
}

/// A dashboard API path that does not exist (after the admin check, so it reveals nothing).
pub(crate) async fn unknown(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    if let Err(refused) = require_admin(&headers, &state).await {
        return refused;
    }
    error_response(
        StatusCode::NOT_FOUND,
        "NotFound",
        "no such dashboard API route; see crates/server/src/router.rs",
    )
}
