//! The only crate that knows axum. [`serve`] takes an already-bound listener and a shutdown
//! future (so tests and the binary embed it the same way) and serves every route listed in
//! `router.rs`: the HTTP API, the sync WebSocket, the dev issuer and HTTP actions.
//!
//! [`ServerState`] (`state.rs`) is what the routes share; `pulsebase dev`/`serve` and the tests
//! in `tests/` assemble it the same way, with `ServerState::new` and its `with_*` methods.
//!
//! Credentials enter here (`authorization.rs`: the `Authorization` header, for the HTTP API
//! and HTTP actions) and in the sync session's `Authenticate`; all become `auth::Credentials`
//! checked by the one `authenticator::authorize`.

mod accept;
mod admin_data;
mod api_error;
mod authorization;
mod conn_info;
mod dashboard;
mod dev_issuer;
mod files;
mod http_actions;
mod http_api;
mod lifecycle;
mod limits;
mod linger;
mod refuse;
mod request_body;
mod router;
mod state;
mod ws;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use state::ServerState;

/// Serves until `shutdown` resolves, then shuts down gracefully: stops accepting, lets
/// requests and WebSocket sessions in flight finish within the guard's shutdown timeout
/// (WebSockets get a close frame), and returns (`accept.rs`).
pub async fn serve(
    listener: TcpListener,
    state: Arc<ServerState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let guard = state.guard.clone();
    let lifecycle = state.lifecycle.clone();
    let router = router::routes(state);
    // Paths are normalised before routing: the client keeps a trailing slash of the
    // deployment URL, so `http://h/` produces `//api/query` and `//api/1.48.0/sync`.
    let service = tower::ServiceBuilder::new()
        .map_request(router::collapse_slashes)
        .service(router);
    accept::run(listener, guard, lifecycle, service, shutdown).await
}
