//! Who is calling over HTTP: the request's `Authorization` header, read by
//! `auth::Credentials::from_header` and checked by `authenticator::authorize` (the same
//! check a WebSocket `Authenticate` frame gets), for the HTTP API and for HTTP actions.
//!
//! The HTTP API refuses what fails the check: a refused token is 401 with Convex's short text
//! (the precise reason goes to the log, never the token), a wrong admin key 401, an acting-as
//! identity that is not one or a header in another scheme 400. An HTTP action honours a
//! bearer token only and never fails the request over it: see [`for_action`].

use auth::{Authorization, Credentials, Rejection};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use crate::api_error::error_response;
use crate::state::ServerState;

/// The caller of an HTTP API request, or the finished refusal.
pub(crate) async fn for_api(
    headers: &HeaderMap,
    state: &ServerState,
) -> Result<Authorization, Response> {
    match check(state, Credentials::from_header(header_bytes(headers))).await {
        Authorization::Rejected(rejection) => Err(refusal(&rejection)),
        authorization => Ok(authorization),
    }
}

/// The caller of an HTTP action: a bearer token's user, else anonymous (a webhook sender may
/// use any other scheme). A refused token still runs the action, whose
/// `ctx.auth.getUserIdentity()` then throws (Convex's behaviour).
pub(crate) async fn for_action(headers: &HeaderMap, state: &ServerState) -> Authorization {
    let credentials = Credentials::from_header(header_bytes(headers)).bearer_only();
    check(state, credentials).await
}

/// Whether the request carries this deployment's admin key (nothing else is checked): the
/// rate limits spare the admin.
pub(crate) fn has_admin_key(headers: &HeaderMap, state: &ServerState) -> bool {
    authenticator::is_admin(
        Some(&state.admin_key),
        &Credentials::from_header(header_bytes(headers)),
    )
}

/// Whether the request carries an `Authorization` header at all.
pub(crate) fn sent(headers: &HeaderMap) -> bool {
    header_bytes(headers).is_some()
}

fn header_bytes(headers: &HeaderMap) -> Option<&[u8]> {
    headers
        .get(header::AUTHORIZATION)
        .map(|value| value.as_bytes())
}

async fn check(state: &ServerState, credentials: Credentials) -> Authorization {
    authenticator::authorize(&state.auth, Some(&state.admin_key), credentials).await
}

fn refusal(rejection: &Rejection) -> Response {
    let status = match rejection {
        Rejection::Token(_) | Rejection::AdminKey => StatusCode::UNAUTHORIZED,
        Rejection::ActingAs(_) | Rejection::Header(_) => StatusCode::BAD_REQUEST,
    };
    tracing::debug!(
        code = rejection.code(),
        "the HTTP API refused a request's credentials"
    );
    error_response(status, rejection.code(), &rejection.client_message())
}
