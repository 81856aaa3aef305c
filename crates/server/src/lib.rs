//! The only crate that knows axum. [`serve`] takes an already-bound listener and a shutdown
//! future (so tests and the binary embed it the same way) and serves every route listed in
//! `router.rs`: the HTTP API, the sync WebSocket, the dev issuer and HTTP actions.
//!
//! Access tokens enter here (`caller.rs`) and in the sync session's `Authenticate`; both go
//! through the one `Authenticator::verify`.

mod caller;
mod dev_issuer;
mod http_actions;
mod http_api;
mod router;
mod ws;

use std::future::Future;
use std::sync::Arc;

use application::App;
use authenticator::{Authenticator, DevIssuer};
use sync::SyncHub;
use tokio::net::TcpListener;

/// Everything the routes need.
pub struct ServerState {
    pub app: Arc<App>,
    pub auth: Arc<Authenticator>,
    pub hub: Arc<SyncHub>,
    /// Authorises `Authorization: Convex <key>` (the admin endpoint, `pulsebase run`).
    pub admin_key: String,
    /// The built-in OIDC issuer, served under `/dev-issuer` by `pulsebase dev`.
    pub dev_issuer: Option<DevIssuerState>,
    /// Static files served for paths no other route takes (a built front-end).
    pub static_dir: Option<std::path::PathBuf>,
}

/// The dev issuer and the URL it is served at.
pub struct DevIssuerState {
    pub issuer: Arc<DevIssuer>,
    pub issuer_url: String,
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ServerState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router::routes(state);
    // Paths are normalised before routing: the client keeps a trailing slash of the
    // deployment URL, so `http://h/` produces `//api/query` and `//api/1.48.0/sync`.
    let service = tower::ServiceBuilder::new()
        .map_request(router::collapse_slashes)
        .service(router);
    // Small frames go out at once: a MutationResponse followed by its Transition would
    // otherwise wait ~40 ms for a delayed ACK (Nagle's algorithm).
    let listener =
        axum::serve::ListenerExt::tap_io(listener, |stream: &mut tokio::net::TcpStream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
            }
        });
    axum::serve(
        listener,
        axum::ServiceExt::<axum::extract::Request>::into_make_service(service),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
