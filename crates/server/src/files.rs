//! File storage over HTTP: `POST /api/storage/upload?token=...` takes the body of an upload
//! URL (`ctx.storage.generateUploadUrl()`) and answers `{"storageId"}`; `GET
//! /api/storage/{id}?sig=...` serves a file at the URL `ctx.storage.getUrl(id)` returned, with
//! its content type, an `ETag`, and `Range` requests (single ranges, 206) through tower-http's
//! `ServeFile`.
//!
//! An upload is streamed: the body goes chunk by chunk to a blocking thread that hashes it
//! and hands it to `filestore`'s file thread, so memory stays flat whatever the size. Its URL is checked
//! before the body is read, the size limit as it arrives (and from `Content-Length` up
//! front), and the file is recorded only after the last byte; any refusal answers 4xx with
//! `{"code","message"}` and leaves nothing behind.
//!
//! A refusal that comes before the whole body was read (a bad URL, too large, a disk error)
//! drops the body, and the connection's lingering close (`linger.rs`) lets the answer reach
//! a client that is still sending.

use std::collections::HashMap;
use std::sync::Arc;

use application::{FileError, FileStorage};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use filestore::{BlobError, TokenError};
use futures::StreamExt as _;
use tower::ServiceExt as _;

use crate::api_error::error_response;
use crate::state::ServerState;

/// Chunks of an upload in flight between the connection and the writing thread.
const UPLOAD_CHANNEL: usize = 16;
/// Bytes read from a stored file per chunk of a download. tower-http's default (64 KiB)
/// holds a 100 MiB download near 1 GB/s here; 256 KiB reaches about 1.5 GB/s, and a
/// connection holds one chunk at a time, so 1,000 concurrent downloads hold ~256 MiB at most.
const DOWNLOAD_CHUNK: usize = 256 << 10;

pub(crate) fn refusal(error: &FileError) -> Response {
    let (status, code) = match error {
        FileError::Token(TokenError::Malformed) => (StatusCode::BAD_REQUEST, "InvalidUploadUrl"),
        FileError::Token(TokenError::BadSignature) => (StatusCode::FORBIDDEN, "InvalidUploadUrl"),
        FileError::Token(TokenError::Expired { .. }) => (StatusCode::GONE, "UploadUrlExpired"),
        FileError::UsedToken => (StatusCode::CONFLICT, "UploadUrlUsed"),
        FileError::Blob(BlobError::TooLarge { .. }) => {
            (StatusCode::PAYLOAD_TOO_LARGE, "FileTooLarge")
        }
        FileError::NotFound(_) | FileError::NotAStorageId(_) => {
            (StatusCode::NOT_FOUND, "FileNotFound")
        }
        FileError::Blob(BlobError::Io { .. }) | FileError::Db(_) => {
            tracing::error!(error = %error, "file storage failed");
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "file storage failed on the server; see the server log",
            );
        }
    };
    error_response(status, code, &error.to_string())
}

fn not_enabled() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "FileStorageDisabled",
        "file storage is not enabled on this server",
    )
}

async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, FileError> + Send + 'static,
) -> Result<R, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(refusal(&e)),
        Err(e) => {
            tracing::error!(error = %e, "a file storage task failed");
            Err(error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "internal server error; see the server log",
            ))
        }
    }
}

/// `POST /api/storage/upload?token=...`: the body is the file.
pub(crate) async fn upload(
    State(state): State<Arc<ServerState>>,
    Query(params): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let Some(files) = state.app.files().cloned() else {
        return not_enabled();
    };
    let Some(token) = params.get("token").cloned() else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "InvalidUploadUrl",
            "the upload URL has no token; POST to the URL ctx.storage.generateUploadUrl() returned, unchanged",
        );
    };
    let (parts, body) = request.into_parts();
    let app = state.app.clone();
    let check = files.clone();
    let token = match blocking(move || check.check_upload(app.db(), &token)).await {
        Ok(token) => token,
        Err(response) => return response,
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
        .map(str::to_string);
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared
        && length > files.max_upload_bytes()
    {
        return refusal(&FileError::Blob(BlobError::TooLarge {
            limit: files.max_upload_bytes(),
        }));
    }
    let staged = match receive(&files, body).await {
        Ok(staged) => staged,
        Err(response) => return response,
    };
    let app = state.app.clone();
    let record = files.clone();
    match blocking(move || record.commit_upload(app.db(), Some(&token), staged, content_type)).await
    {
        Ok(storage_id) => Json(serde_json::json!({ "storageId": storage_id })).into_response(),
        Err(response) => response,
    }
}

/// Streams `body` into a new blob on a blocking thread.
async fn receive(files: &Arc<FileStorage>, body: Body) -> Result<filestore::StagedBlob, Response> {
    // `Err(())` tells the writer the body broke off, so a partial file is never recorded.
    let (chunks, mut incoming) = tokio::sync::mpsc::channel::<Result<Bytes, ()>>(UPLOAD_CHANNEL);
    let writer_files = files.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let mut writer = writer_files.writer()?;
        while let Some(chunk) = incoming.blocking_recv() {
            match chunk {
                Ok(bytes) => writer.write(&bytes)?,
                Err(()) => return Ok(None),
            }
        }
        Ok(Some(writer.finish()?))
    });
    let mut stream = body.into_data_stream();
    let mut broke_off = false;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            tracing::debug!(error = %e, "an upload's body broke off");
        });
        broke_off = chunk.is_err();
        // A closed channel means the writer refused (too large, disk error): stop reading.
        if chunks.send(chunk).await.is_err() || broke_off {
            break;
        }
    }
    drop(chunks);
    let result: Result<Option<filestore::StagedBlob>, FileError> = match writer.await {
        Ok(result) => result,
        Err(e) => {
            tracing::error!(error = %e, "an upload's writer task failed");
            return Err(error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "internal server error; see the server log",
            ));
        }
    };
    match result {
        Ok(Some(staged)) if !broke_off => Ok(staged),
        Ok(_) => Err(error_response(
            StatusCode::BAD_REQUEST,
            "UploadInterrupted",
            "the upload's body ended before it was complete; nothing was stored",
        )),
        Err(e) => Err(refusal(&e)),
    }
}

/// `GET /api/storage/{id}?sig=...`: the file, with Range support.
pub(crate) async fn download(
    State(state): State<Arc<ServerState>>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let Some(files) = state.app.files().cloned() else {
        return not_enabled();
    };
    let signed = params
        .get("sig")
        .is_some_and(|sig| files.check_file_signature(&id, sig));
    if !signed {
        return error_response(
            StatusCode::FORBIDDEN,
            "InvalidFileUrl",
            "this file URL is not signed by this server; get one from ctx.storage.getUrl(storageId)",
        );
    }
    let app = state.app.clone();
    let lookup = files.clone();
    let looked_up = id.clone();
    let file = match blocking(move || lookup.lookup(app.db(), &looked_up)).await {
        Ok(Some(file)) => file,
        Ok(None) => return refusal(&FileError::NotFound(id)),
        Err(response) => return response,
    };
    let mime = file
        .content_type
        .as_deref()
        .filter(|ct| HeaderValue::from_str(ct).is_ok())
        .and_then(|ct| ct.parse::<mime::Mime>().ok())
        .unwrap_or(mime::APPLICATION_OCTET_STREAM);
    let service = tower_http::services::ServeFile::new_with_mime(&file.path, &mime)
        .with_buf_chunk_size(DOWNLOAD_CHUNK);
    match service.oneshot(request).await {
        Ok(response) => {
            let mut response = response.into_response();
            if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", file.sha256.hex())) {
                response.headers_mut().insert(header::ETAG, etag);
            }
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "serving a stored file failed");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "serving the file failed; see the server log",
            )
        }
    }
}
