//! The dashboard: a web app served at `/_dashboard/` from files compiled into the binary
//! (`assets.rs`; the sources are `crates/server/dashboard/`), the admin-only routes it reads
//! (`api.rs`: functions, auth, health; `logs.rs`: the live execution log), and `/metrics`
//! in the Prometheus text format (`metrics.rs`).
//!
//! Every `/_dashboard/api/*` route and `/metrics` (unless `--metrics-public`) checks the admin
//! key server side (`guard.rs`), in constant time, and answers 401 without it. The pages
//! themselves are public files with no data in them; all data comes either from those routes
//! or over the sync WebSocket, where the dashboard authenticates as the admin and subscribes
//! to the built-in `_system/` queries like any reactive client.

mod api;
mod assets;
mod guard;
mod logs;
mod metrics;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::state::ServerState;

/// The dashboard's routes and `/metrics`, merged into the router in `router.rs`.
pub(crate) fn routes() -> Router<Arc<ServerState>> {
    Router::new()
        .route("/_dashboard", get(assets::redirect_to_slash))
        .route("/_dashboard/", get(assets::index))
        .route("/_dashboard/api/check", get(api::check))
        .route("/_dashboard/api/functions", get(api::functions))
        .route("/_dashboard/api/auth", get(api::auth_status))
        .route("/_dashboard/api/auth/check", post(api::auth_check))
        .route("/_dashboard/api/health", get(api::health))
        .route("/_dashboard/api/logs", get(logs::stream))
        .route(
            "/_dashboard/api/{*rest}",
            get(api::unknown).post(api::unknown),
        )
        .route("/_dashboard/{*file}", get(assets::file))
        .route("/metrics", get(metrics::scrape))
}
