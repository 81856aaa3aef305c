//! Who is calling over HTTP, from the `Authorization` header:
//!
//! - none: anonymous;
//! - `Bearer <jwt>`: a user, verified by the `Authenticator` (401 with Convex's short error
//!   text when the token is refused; the precise reason goes to the log, never the token);
//! - `Convex <admin key>[:<base64 JSON identity>]`: the admin, who may call internal
//!   functions, optionally as the given identity (`pulsebase run --identity`).

use application::Identity;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use functions::Caller;
use subtle::ConstantTimeEq;

use crate::api_error::error_response;
use crate::state::ServerState;

/// The verified caller of an HTTP request.
pub(crate) struct HttpCaller {
    pub identity: Option<Identity>,
    pub caller: Caller,
}

pub(crate) async fn from_headers(
    headers: &HeaderMap,
    state: &ServerState,
) -> Result<HttpCaller, Response> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(HttpCaller {
            identity: None,
            caller: Caller::Client,
        });
    };
    let value = value.to_str().map_err(|_| {
        error_response(
            StatusCode::BAD_REQUEST,
            "InvalidAuthHeader",
            "the Authorization header is not valid text",
        )
    })?;
    if value.len() >= 7 && value[..7].eq_ignore_ascii_case("bearer ") {
        let token = value[7..].trim();
        return match state.auth.verify(token).await {
            Ok(verified) => Ok(HttpCaller {
                identity: Some(Identity::from_json(
                    verified.identity.as_map(),
                    Some(verified.expires_at),
                )),
                caller: Caller::Client,
            }),
            Err(rejection) => {
                tracing::debug!(
                    code = rejection.code(),
                    "the HTTP API refused an access token"
                );
                Err(error_response(
                    StatusCode::UNAUTHORIZED,
                    rejection.code(),
                    rejection.client_message(),
                ))
            }
        };
    }
    if let Some(rest) = value.strip_prefix("Convex ") {
        let (key, identity) = match rest.split_once(':') {
            Some((key, identity)) => (key, Some(identity)),
            None => (rest, None),
        };
        if !bool::from(key.trim().as_bytes().ct_eq(state.admin_key.as_bytes())) {
            return Err(error_response(
                StatusCode::UNAUTHORIZED,
                "BadAdminKey",
                "The provided admin key is invalid; read it from .pulsebase/admin_key",
            ));
        }
        let identity =
            match identity {
                None => None,
                Some(encoded) => Some(decode_identity(encoded).map_err(|why| {
                    error_response(StatusCode::BAD_REQUEST, "InvalidIdentity", &why)
                })?),
            };
        return Ok(HttpCaller {
            identity,
            caller: Caller::Trusted,
        });
    }
    Err(error_response(
        StatusCode::BAD_REQUEST,
        "InvalidAuthHeader",
        "the Authorization header must be `Bearer <token>` or `Convex <admin key>`",
    ))
}

fn decode_identity(encoded: &str) -> Result<Identity, String> {
    let bytes = STANDARD
        .decode(encoded.trim())
        .map_err(|e| format!("the identity after the admin key is not base64: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("the identity is not JSON: {e}"))?;
    let object = json
        .as_object()
        .ok_or("the identity must be a JSON object")?;
    let mut claims = object.clone();
    // Like a verified token: subject and issuer make the tokenIdentifier.
    let issuer = claims
        .get("issuer")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let subject = claims
        .get("subject")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    if !claims.contains_key("tokenIdentifier")
        && let (Some(iss), Some(sub)) = (issuer, subject)
    {
        claims.insert("tokenIdentifier".into(), format!("{iss}|{sub}").into());
    }
    Ok(Identity::from_json(&claims, None))
}
