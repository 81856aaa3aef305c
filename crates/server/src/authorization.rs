//! Who is calling over HTTP: the request's `Authorization` header, read by
//! `auth::Credentials::from_header` and checked by `authenticator::authorize` (the same
//! check a WebSocket `Authenticate` frame gets), for the HTTP API and for HTTP actions.
//!
//! The HTTP API refuses what fails the check: a refused token is 401 with Convex's short text
//! (the precise reason goes to the log, never the token), a wrong admin key 401, an acting-as
//! identity that is not one or a header in another scheme 400. An HTTP action honours a
//! bearer token only and never fails the request over it: see [`for_action`]. The dashboard's
//! API and `/metrics` take the admin key only: see [`for_admin`].

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

/// Whether the request carries the admin key, for the dashboard's API and `/metrics`:
/// `Convex <admin key>` (what the dashboard sends) or `Bearer <admin key>` (what a Prometheus
/// scrape config sends). A bearer value is taken as the admin key here, never as a user's
/// token: these routes serve no user. The key is compared by the same `authorize` as
/// everywhere else.
pub(crate) async fn for_admin(headers: &HeaderMap, state: &ServerState) -> AdminCheck {
    let credentials = match Credentials::from_header(header_bytes(headers)) {
        Credentials::UserToken(key) => Credentials::AdminKey {
            key,
            acting_as: None,
        },
        other => other,
    };
    match check(state, credentials).await {
        Authorization::Admin { .. } => AdminCheck::Admin,
        Authorization::Rejected(Rejection::AdminKey) => AdminCheck::WrongKey,
        _ => AdminCheck::NoKey,
    }
}

/// The outcome of [`for_admin`].
pub(crate) enum AdminCheck {
    Admin,
    /// A key was presented and it is not this deployment's.
    WrongKey,
    /// No admin key: no header, another scheme, or an unreadable one.
    NoKey,
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
