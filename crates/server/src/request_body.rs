//! Reading a whole request body under a size limit, for the routes that need it at once (the
//! HTTP API's function calls, HTTP actions, the dev issuer's token route and the dashboard's
//! JSON routes). Over the limit answers 413 `PayloadTooLarge` naming the limit (from
//! `Content-Length` before a byte is read, else as the bytes arrive); a body that breaks off
//! answers 400 `BodyInterrupted`. The unread rest of a refused body is
//! the lingering close's business (`linger.rs`).

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::Response;
use futures::StreamExt as _;
use hyper::body::Body as _;

use crate::api_error::error_response;

/// Largest body of a function call or an HTTP action: Convex's HTTP action limit, and the
/// WebSocket frame limit, so a call fits the same whichever way it comes.
pub(crate) const MAX_BODY_BYTES: usize = 20 << 20;

fn too_large() -> Response {
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PayloadTooLarge",
        &format!(
            "the request body is larger than the limit of {} MiB",
            MAX_BODY_BYTES >> 20
        ),
    )
}

/// The whole of `body`, or the refusal to answer.
pub(crate) async fn read(body: Body) -> Result<Bytes, Response> {
    if body.size_hint().lower() > MAX_BODY_BYTES as u64 {
        return Err(too_large());
    }
    let mut stream = body.into_data_stream();
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            error_response(
                StatusCode::BAD_REQUEST,
                "BodyInterrupted",
                &format!("the request body broke off before its end: {e}"),
            )
        })?;
        len += chunk.len();
        if len > MAX_BODY_BYTES {
            return Err(too_large());
        }
        chunks.push(chunk);
    }
    // Most bodies arrive in one chunk: kept as it is, not copied.
    Ok(if chunks.len() == 1 {
        chunks.swap_remove(0)
    } else {
        Bytes::from(chunks.concat())
    })
}
