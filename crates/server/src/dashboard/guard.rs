//! The admin check of every dashboard API route and `/metrics`: the admin key, as
//! `Authorization: Convex <key>` (what the dashboard sends) or `Bearer <key>` (what a
//! Prometheus scrape config sends), checked by `authorization::for_admin`. Anything else is
//! 401 with a message saying where the key is.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::api_error::error_response;
use crate::authorization::{AdminCheck, for_admin};
use crate::state::ServerState;

/// `Ok` when the request carries the admin key, else the 401 to answer.
pub(crate) async fn require_admin(
    headers: &HeaderMap,
    state: &ServerState,
) -> Result<(), Response> {
    match for_admin(headers, state).await {
        AdminCheck::Admin => Ok(()),
        AdminCheck::WrongKey => Err(error_response(
            StatusCode::UNAUTHORIZED,
            "BadAdminKey",
            "The provided admin key is invalid; read it from .pulsebase/admin_key in the app folder",
        )),
        AdminCheck::NoKey => Err(error_response(
            StatusCode::UNAUTHORIZED,
            "MissingAdminKey",
            "This route needs the admin key: send `Authorization: Convex <key>` with the key from .pulsebase/admin_key",
        )),
    }
}
