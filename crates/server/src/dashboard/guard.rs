//! The admin check of every dashboard API route: `Authorization: Convex <admin key>` (what
//! the dashboard sends), or `Bearer <admin key>` (what a Prometheus scrape config sends),
//! compared in constant time. Anything else is 401 with a message saying where the key is.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use subtle::ConstantTimeEq;

use crate::api_error::error_response;
use crate::state::ServerState;

/// `Ok` when the request carries the admin key, else the 401 to answer.
pub(crate) fn require_admin(headers: &HeaderMap, state: &ServerState) -> Result<(), Response> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            (scheme.eq_ignore_ascii_case("convex") || scheme.eq_ignore_ascii_case("bearer"))
                .then(|| rest.trim())
        });
    match presented {
        Some(key) if bool::from(key.as_bytes().ct_eq(state.admin_key.as_bytes())) => Ok(()),
        Some(_) => Err(error_response(
            StatusCode::UNAUTHORIZED,
            "BadAdminKey",
            "The provided admin key is invalid; read it from .pulsebase/admin_key in the app folder",
        )),
        None => Err(error_response(
            StatusCode::UNAUTHORIZED,
            "MissingAdminKey",
            "This route needs the admin key: send `Authorization: Convex <key>` with the key from .pulsebase/admin_key",
        )),
    }
}
