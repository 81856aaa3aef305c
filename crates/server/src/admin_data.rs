//! The admin's data endpoints, which `pulsebase import` and `pulsebase export --url` use
//! while a server runs (a running server owns the database's writer, so an import must go
//! through its Committer for subscribers to see it):
//!
//! - `POST /api/admin/import?name=FILE&table=T&mode=append|replace|replace-all`: the body is
//!   the file; it is spooled to the file store's temporary folder, then imported
//!   (`snapshot::import_file`); answers the report, or 400 with what to fix;
//! - `GET /api/admin/export?includeFileStorage=true`: the export ZIP of the latest commit.
//!
//! Both require `Authorization: Convex <admin key>`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use snapshot::{ImportMode, ImportOptions, SnapshotError};
use tokio::io::AsyncWriteExt as _;

use crate::api_error::error_response;
use crate::authorization;
use crate::state::ServerState;

async fn require_admin(
    state: &ServerState,
    headers: axum::http::HeaderMap,
) -> Result<(), Response> {
    let authorization = authorization::for_api(&headers, state).await?;
    if authorization.is_admin() {
        Ok(())
    } else {
        Err(error_response(
            StatusCode::UNAUTHORIZED,
            "AdminKeyRequired",
            "this endpoint needs Authorization: Convex <admin key> (from .pulsebase/admin_key)",
        ))
    }
}

fn refused(error: SnapshotError) -> Response {
    match error {
        SnapshotError::Invalid(message) => {
            error_response(StatusCode::BAD_REQUEST, "ImportRefused", &message)
        }
        SnapshotError::Zip(e) => error_response(
            StatusCode::BAD_REQUEST,
            "InvalidZip",
            &format!("not a valid ZIP file: {e}"),
        ),
        other => {
            tracing::error!(error = %other, "an export or import failed");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                &other.to_string(),
            )
        }
    }
}

fn spool_name() -> String {
    format!(
        "admin-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )
}

/// `POST /api/admin/import`.
pub(crate) async fn import(
    State(state): State<Arc<ServerState>>,
    Query(params): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    if let Err(response) = require_admin(&state, request.headers().clone()).await {
        return response;
    }
    let Some(files) = state.app.files().cloned() else {
        return error_response(
            StatusCode::NOT_FOUND,
            "FileStorageDisabled",
            "imports are spooled to the file store, which is not enabled on this server",
        );
    };
    let mode = match params.get("mode").map(String::as_str) {
        None | Some("") => ImportMode::RequireEmpty,
        Some("append") => ImportMode::Append,
        Some("replace") => ImportMode::Replace,
        Some("replace-all") => ImportMode::ReplaceAll,
        Some(other) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BadMode",
                &format!("mode {other:?} is not one of append, replace, replace-all"),
            );
        }
    };
    let name = params
        .get("name")
        .and_then(|n| std::path::Path::new(n).file_name())
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "import.zip".to_string());
    let dir = files.blobs().root().join("tmp").join(spool_name());
    if let Err(e) = tokio::fs::create_dir_all(&dir).await {
        return refused(SnapshotError::Io {
            path: dir,
            source: e,
        });
    }
    let path = dir.join(&name);
    let spooled = spool(request.into_body(), &path).await;
    let result = match spooled {
        Err(e) => Err(SnapshotError::Io {
            path: path.clone(),
            source: e,
        }),
        Ok(()) => {
            let options = ImportOptions {
                format: None,
                table: params.get("table").filter(|t| !t.is_empty()).cloned(),
                mode,
            };
            let app = state.app.clone();
            let file = path.clone();
            tokio::task::spawn_blocking(move || {
                snapshot::import_file(app.db(), app.files().map(|f| &**f), &file, &options)
            })
            .await
            .unwrap_or_else(|e| {
                Err(SnapshotError::Invalid(format!(
                    "the import task failed: {e}"
                )))
            })
        }
    };
    let _ = tokio::fs::remove_dir_all(&dir).await;
    match result {
        Ok(report) => Json(serde_json::json!({
            "tables": report.tables.iter().map(|(t, n)| serde_json::json!({"table": t, "documents": n})).collect::<Vec<_>>(),
            "documents": report.documents,
            "files": report.files,
            "deleted": report.deleted,
            "commits": report.commits,
            "resumedAfter": report.resumed_after,
        }))
        .into_response(),
        Err(e) => refused(e),
    }
}

async fn spool(body: Body, path: &std::path::Path) -> std::io::Result<()> {
    let mut file = tokio::fs::File::create(path).await?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(std::io::Error::other)?;
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    Ok(())
}

/// `GET /api/admin/export`.
pub(crate) async fn export(
    State(state): State<Arc<ServerState>>,
    Query(params): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    if let Err(response) = require_admin(&state, request.headers().clone()).await {
        return response;
    }
    let include_files = params
        .get("includeFileStorage")
        .is_some_and(|v| v == "true" || v == "1");
    let app = state.app.clone();
    let made = tokio::task::spawn_blocking(move || -> Result<std::fs::File, SnapshotError> {
        let files = app.files();
        let dir = match files {
            Some(files) => files.blobs().root().join("tmp"),
            None => std::env::temp_dir(),
        };
        let path = dir.join(format!("{}.zip", spool_name()));
        let _guard = match (include_files, files) {
            (true, Some(files)) => Some(files.blobs().readers_guard()?),
            _ => None,
        };
        let snapshot = app.db().full_snapshot()?;
        let blobs = if include_files {
            files.map(|f| f.blobs())
        } else {
            None
        };
        snapshot::export_zip(&snapshot, blobs, &path)?;
        let file = std::fs::File::open(&path).map_err(SnapshotError::io_error(&path))?;
        // The open handle keeps the bytes until the response is sent.
        let _ = std::fs::remove_file(&path);
        Ok(file)
    })
    .await
    .unwrap_or_else(|e| {
        Err(SnapshotError::Invalid(format!(
            "the export task failed: {e}"
        )))
    });
    match made {
        Ok(file) => {
            let stream = tokio_util::io::ReaderStream::with_capacity(
                tokio::fs::File::from_std(file),
                1 << 20,
            );
            (
                [(header::CONTENT_TYPE, "application/zip")],
                Body::from_stream(stream),
            )
                .into_response()
        }
        Err(e) => refused(e),
    }
}
