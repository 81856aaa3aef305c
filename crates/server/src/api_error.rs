//! The body of every answer the server itself refuses or fails: a non-2xx status with
//! `{"code","message"}` (the `ConvexHttpClient` surfaces it as an `Error` carrying that body).
//! A leaf module, so the HTTP API, the caller check, the dev issuer, HTTP actions and the
//! router's fallback all answer in one shape without importing each other.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// `status` with `{"code": code, "message": message}`.
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "code": code, "message": message })),
    )
        .into_response()
}
