//! The Files page's admin-only routes: signed download URLs for a page of `_storage` ids
//! (`POST /_dashboard/api/files/urls`), an upload URL (`POST /_dashboard/api/files/upload-url`)
//! and deleting a file (`DELETE /_dashboard/api/files/{id}`: the row in a commit of its own,
//! the bytes by the collector once nothing refers to them, as `ctx.storage.delete` in an
//! action). The list itself is a subscribed `_system/documents:page` over `_storage`.

use std::sync::Arc;

use application::FileStorage;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::guard::require_admin;
use crate::api_error::error_response;
use crate::files::refusal;
use crate::request_body;
use crate::state::ServerState;

/// Ids signed in one request: a page of the Files page, with room to spare.
const MAX_URLS: usize = 500;

/// The admin check and the file store, or the answer that refuses.
async fn admin_files(
    headers: &HeaderMap,
    state: &ServerState,
) -> Result<Arc<FileStorage>, Response> {
    require_admin(headers, state).await?;
    state.app.files().cloned().ok_or_else(|| {
        error_response(
            StatusCode::NOT_FOUND,
            "FileStorageDisabled",
            "file storage is not enabled on this server",
        )
    })
}

#[derive(Deserialize)]
pub(crate) struct UrlsRequest {
    ids: Vec<String>,
}

/// `{ids}` → `{urls: {id: url}}`.
pub(crate) async fn urls(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let files = match admin_files(&headers, &state).await {
        Ok(files) => files,
        Err(refused) => return refused,
    };
    let body = match request_body::read(body).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    let request: UrlsRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BadJsonBody",
                &format!("expected {{\"ids\": [storage ids]}}: {e}"),
            );
        }
    };
    if request.ids.len() > MAX_URLS {
        return error_response(
            StatusCode::BAD_REQUEST,
            "TooManyIds",
            &format!("ask for at most {MAX_URLS} file URLs at once"),
        );
    }
    let urls: serde_json::Map<String, serde_json::Value> = request
        .ids
        .iter()
        .map(|id| (id.clone(), json!(files.file_url(id))))
        .collect();
    Json(json!({ "urls": urls })).into_response()
}

/// A fresh upload URL, as `ctx.storage.generateUploadUrl()` gives.
pub(crate) async fn upload_url(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
) -> Response {
    let files = match admin_files(&headers, &state).await {
        Ok(files) => files,
        Err(refused) => return refused,
    };
    Json(json!({ "url": files.upload_url_from_now() })).into_response()
}

/// Deletes file `id`: 204, or 404 when there is no such file.
pub(crate) async fn delete(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let files = match admin_files(&headers, &state).await {
        Ok(files) => files,
        Err(refused) => return refused,
    };
    let app = state.app.clone();
    match tokio::task::spawn_blocking(move || files.delete(app.db(), &id)).await {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => refusal(&e),
        Err(e) => {
            tracing::error!(error = %e, "deleting a file from the dashboard failed");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "deleting the file failed; see the server log",
            )
        }
    }
}
