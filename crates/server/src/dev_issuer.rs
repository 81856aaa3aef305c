//! The built-in OIDC issuer of `pulsebase dev` under `/dev-issuer`: discovery document, JWKS,
//! and `POST /dev-issuer/token` which signs a token for any user, so the example app and
//! tests sign in without an identity provider. Absent (404) in `serve`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::api_error::error_response;
use crate::request_body;
use crate::state::ServerState;

/// Default lifetime of tokens minted over HTTP; the client refreshes them before expiry.
const DEFAULT_TTL_SECS: u64 = 3600;
const MAX_TTL_SECS: u64 = 30 * 24 * 3600;

fn not_available() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the dev issuer runs only under `pulsebase dev`",
    )
}

pub(crate) async fn openid_configuration(State(state): State<Arc<ServerState>>) -> Response {
    match &state.dev_issuer {
        Some(dev) => Json(dev.issuer.openid_configuration(&dev.issuer_url)).into_response(),
        None => not_available(),
    }
}

pub(crate) async fn jwks(State(state): State<Arc<ServerState>>) -> Response {
    match &state.dev_issuer {
        Some(dev) => Json(dev.issuer.jwks_json()).into_response(),
        None => not_available(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    sub: String,
    name: Option<String>,
    email: Option<String>,
    #[serde(default)]
    claims: serde_json::Map<String, serde_json::Value>,
    ttl: Option<u64>,
}

/// `{"sub": "user_1", "name": "..", "email": "..", "claims": {..}, "ttl": 60}` → `{"token": ".."}`.
/// `claims` naming iss, sub, aud, exp, iat or nbf is refused with 400 naming the claim.
pub(crate) async fn token(State(state): State<Arc<ServerState>>, body: Body) -> Response {
    let Some(dev) = &state.dev_issuer else {
        return not_available();
    };
    let body = match request_body::read(body).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    let request: TokenRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BadJsonBody",
                &format!(
                    "expected {{\"sub\": \"user id\", \"name\"?, \"email\"?, \"claims\"?, \"ttl\"?}}: {e}"
                ),
            );
        }
    };
    if request.sub.is_empty() {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BadJsonBody",
            "sub must not be empty",
        );
    }
    let ttl = request
        .ttl
        .unwrap_or(DEFAULT_TTL_SECS)
        .clamp(1, MAX_TTL_SECS);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match dev.issuer.mint(
        &dev.issuer_url,
        &request.sub,
        request.name.as_deref(),
        request.email.as_deref(),
        request.claims,
        ttl,
        now,
    ) {
        Ok(token) => {
            Json(serde_json::json!({ "token": token, "expiresAt": now + ttl })).into_response()
        }
        Err(e @ auth::DevIssuerError::ReservedClaim(_)) => {
            error_response(StatusCode::BAD_REQUEST, "BadJsonBody", &e.to_string())
        }
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            &e.to_string(),
        ),
    }
}
