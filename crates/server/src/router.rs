//! Every route the server answers, in one place.
//!
//! | route | what |
//! |---|---|
//! | `POST /api/query`, `/api/mutation`, `/api/action`, `/api/function` | HTTP API (`http_api.rs`) |
//! | `POST /api/query_ts`, `/api/query_at_ts` | `ConvexHttpClient.consistentQuery` |
//! | `GET /api/health` | liveness |
//! | `GET /api/{version}/sync` | the sync WebSocket (`ws.rs`) |
//! | `GET /dev-issuer/.well-known/*`, `POST /dev-issuer/token` | built-in OIDC issuer (`dev_issuer.rs`) |
//! | anything else | static files from `--static-dir` (GET), else 404 with the reason |

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::cors::CorsLayer;

use crate::ServerState;
use crate::{dev_issuer, http_api, ws};

pub(crate) fn routes(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/api/query", post(http_api::query))
        .route("/api/mutation", post(http_api::mutation))
        .route("/api/action", post(http_api::action))
        .route("/api/function", post(http_api::function))
        .route("/api/query_ts", post(http_api::query_ts))
        .route("/api/query_at_ts", post(http_api::query))
        .route("/api/health", get(http_api::health))
        .route("/api/{version}/sync", get(ws::upgrade))
        .route(
            "/dev-issuer/.well-known/openid-configuration",
            get(dev_issuer::openid_configuration),
        )
        .route("/dev-issuer/.well-known/jwks.json", get(dev_issuer::jwks))
        .route("/dev-issuer/token", post(dev_issuer::token))
        .fallback(fallback)
        .layer(CorsLayer::permissive())
        .with_state(state)
}

/// The client keeps a trailing slash of the deployment URL (`http://h/` → `//api/…/sync`),
/// so paths with doubled slashes are normalised here before giving up.
async fn fallback(State(state): State<Arc<ServerState>>, request: Request<Body>) -> Response {
    let path = request.uri().path().to_string();
    let mut normalised = String::with_capacity(path.len());
    for part in path.split('/').filter(|p| !p.is_empty()) {
        normalised.push('/');
        normalised.push_str(part);
    }
    let parts: Vec<&str> = normalised.split('/').collect();
    if request.method() == Method::GET
        && parts.len() == 4
        && parts[1] == "api"
        && parts[3] == "sync"
    {
        let (mut head, _) = request.into_parts();
        return match axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut head, &state)
            .await
        {
            Ok(upgrade) => ws::upgrade(upgrade, State(state)).await,
            Err(rejection) => rejection.into_response(),
        };
    }
    if let Some(dir) = &state.static_dir
        && (request.method() == Method::GET || request.method() == Method::HEAD)
    {
        return serve_static(dir, request).await;
    }
    http_api::error_response(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("no route for {} {path}", request.method()),
    )
}

/// Serves a built front-end; unknown paths get `index.html` so client-side routing works.
async fn serve_static(dir: &std::path::Path, request: Request<Body>) -> Response {
    use tower::ServiceExt as _;
    let service = tower_http::services::ServeDir::new(dir)
        .fallback(tower_http::services::ServeFile::new(dir.join("index.html")));
    match service.oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(e) => http_api::error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            &e.to_string(),
        ),
    }
}
