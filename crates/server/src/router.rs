//! Every route the server answers, in one place.
//!
//! | route | what |
//! |---|---|
//! | `POST /api/query`, `/api/mutation`, `/api/action`, `/api/function`, `/api/run/{*identifier}`; `GET /api/query` | HTTP API (`http_api.rs`) |
//! | `POST /api/query_ts`, `/api/query_at_ts` | `ConvexHttpClient.consistentQuery` |
//! | `GET /api/health` | liveness |
//! | `GET /api/{version}/sync`, `GET /api/sync` | the sync WebSocket (`ws.rs`); the npm client puts its version in the path, the Rust crate (and the Python client built on it) does not |
//! | `POST /api/storage/upload`, `GET /api/storage/{id}` | file uploads and downloads (`files.rs`) |
//! | `POST /api/admin/import`, `GET /api/admin/export` | data in and out for the CLI (`admin_data.rs`) |
//! | `GET /dev-issuer/.well-known/*`, `POST /dev-issuer/token` | built-in OIDC issuer (`dev_issuer.rs`) |
//! | routes of `functions/http.rhai` | HTTP actions (`http_actions.rs`), outside `/api` and `/dev-issuer` |
//! | `/_dashboard/`, `/_dashboard/api/*`, `GET /metrics` | the dashboard and Prometheus metrics (`dashboard/`) |
//! | anything else | static files from `--static-dir` (GET), else 404 with the reason |
//! | `GET /` in `dev` without `--static-dir` | a short page saying how to serve a front-end there |

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use tower_http::cors::CorsLayer;

use crate::api_error::error_response;
use crate::state::ServerState;
use crate::{admin_data, dashboard, dev_issuer, files, http_actions, http_api, ws};

pub(crate) fn routes(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/api/query", post(http_api::query).get(http_api::query_get))
        .route("/api/mutation", post(http_api::mutation))
        .route("/api/action", post(http_api::action))
        .route("/api/function", post(http_api::function))
        .route("/api/run/{*identifier}", post(http_api::run_by_path))
        .route("/api/query_ts", post(http_api::query_ts))
        .route("/api/query_at_ts", post(http_api::query))
        .route("/api/health", get(http_api::health))
        .route("/api/storage/upload", post(files::upload))
        .route("/api/storage/{id}", get(files::download))
        .route("/api/admin/import", post(admin_data::import))
        .route("/api/admin/export", get(admin_data::export))
        .route("/api/{version}/sync", get(ws::upgrade))
        .route("/api/sync", get(ws::upgrade))
        .route(
            "/dev-issuer/.well-known/openid-configuration",
            get(dev_issuer::openid_configuration),
        )
        .route("/dev-issuer/.well-known/jwks.json", get(dev_issuer::jwks))
        .route("/dev-issuer/token", post(dev_issuer::token))
        .route("/_dashboard", get(dashboard::assets::redirect_to_slash))
        .route("/_dashboard/", get(dashboard::assets::index))
        .route("/_dashboard/api/check", get(dashboard::api::check))
        .route("/_dashboard/api/functions", get(dashboard::api::functions))
        .route("/_dashboard/api/auth", get(dashboard::api::auth_status))
        .route(
            "/_dashboard/api/auth/check",
            post(dashboard::api::auth_check),
        )
        .route("/_dashboard/api/health", get(dashboard::api::health))
        .route("/_dashboard/api/logs", get(dashboard::logs::stream))
        .route("/_dashboard/api/files/urls", post(dashboard::files::urls))
        .route(
            "/_dashboard/api/files/upload-url",
            post(dashboard::files::upload_url),
        )
        .route(
            "/_dashboard/api/files/{id}",
            delete(dashboard::files::delete),
        )
        .route(
            "/_dashboard/api/{*rest}",
            get(dashboard::api::unknown).post(dashboard::api::unknown),
        )
        .route("/_dashboard/{*file}", get(dashboard::assets::file))
        .route("/metrics", get(dashboard::metrics::scrape))
        .fallback(fallback)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::limit_requests,
        ))
        .layer(CorsLayer::permissive())
        .with_state(state)
}

/// Rewrites runs of `/` in the path to one `/` (applied before routing).
pub(crate) fn collapse_slashes(mut request: Request<Body>) -> Request<Body> {
    let path = request.uri().path();
    if !path.contains("//") {
        return request;
    }
    let mut collapsed = String::with_capacity(path.len());
    for part in path.split('/').filter(|p| !p.is_empty()) {
        collapsed.push('/');
        collapsed.push_str(part);
    }
    if collapsed.is_empty() {
        collapsed.push('/');
    }
    if let Some(query) = request.uri().query() {
        collapsed.push('?');
        collapsed.push_str(query);
    }
    let mut parts = request.uri().clone().into_parts();
    if let Ok(path_and_query) = collapsed.parse() {
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

async fn fallback(State(state): State<Arc<ServerState>>, request: Request<Body>) -> Response {
    let path = request.uri().path().to_string();
    let http_actions::Unrouted {
        request,
        reason: no_route,
    } = match http_actions::dispatch(&state, request).await {
        Ok(response) => return response,
        Err(unrouted) => unrouted,
    };
    if let Some(dir) = &state.static_dir
        && (request.method() == Method::GET || request.method() == Method::HEAD)
    {
        return serve_static(dir, request).await;
    }
    // `pulsebase dev` is what a newcomer opens in a browser first; a bare 404 there reads as
    // "broken", so it says how to put a front-end at `/`. `serve` keeps the plain 404.
    if state.static_dir.is_none()
        && state.dev_issuer.is_some()
        && path == "/"
        && (request.method() == Method::GET || request.method() == Method::HEAD)
    {
        return no_front_end(&request);
    }
    error_response(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("no route for {} {path}: {no_route}", request.method()),
    )
}

/// Serves a built front-end; unknown paths get `index.html` so client-side routing works.
async fn serve_static(dir: &std::path::Path, request: Request<Body>) -> Response {
    use tower::ServiceExt as _;
    let service = tower_http::services::ServeDir::new(dir)
        .fallback(tower_http::services::ServeFile::new(dir.join("index.html")));
    match service.oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            &e.to_string(),
        ),
    }
}

const NO_FRONT_END: &str = "This is the Pulsebase dev server: the convex client connects here, but no front-end is served at / because the server was started without --static-dir.";
const SERVE_EXAMPLE: &str = "bash scripts/example.sh";
const SERVE_OWN: &str = "pulsebase dev --static-dir DIR";

/// The answer to `GET /` on a dev server without `--static-dir`: HTML for a browser, JSON for
/// anything else (curl, scripts).
fn no_front_end(request: &Request<Body>) -> Response {
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if !wants_html {
        return axum::Json(serde_json::json!({
            "message": NO_FRONT_END,
            "example": format!("to see the React example of the Pulsebase repo, stop this server and run `{SERVE_EXAMPLE}` at the repo root (it builds examples/react-todo and serves it here)"),
            "ownFrontEnd": format!("`{SERVE_OWN}` serves a built front-end (index.html and its assets) at /"),
            "health": "/api/health",
        }))
        .into_response();
    }
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Pulsebase dev</title>\n\
         <style>body{{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem}}code,pre{{background:#f3f3f3;padding:.1rem .3rem}}</style></head>\n\
         <body><h1>Pulsebase dev is running</h1>\n\
         <p>{NO_FRONT_END}</p>\n\
         <p>To see the React example of the Pulsebase repo, stop this server and run at the repo root:</p>\n\
         <pre>{SERVE_EXAMPLE}</pre>\n\
         <p>It installs and builds <code>examples/react-todo</code>, then serves it here together with the backend.</p>\n\
         <p>To serve a front-end of your own, build it and start <code>{SERVE_OWN}</code>. \
         <a href=\"/api/health\">/api/health</a> shows that the backend is up.</p>\n\
         </body></html>\n"
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}
