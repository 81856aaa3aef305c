//! HTTP actions over the wire: a request no built-in route took is matched against the
//! routes of `functions/http.rhai`, turned into a [`functions::HttpRequest`], run by the app on
//! its action threads, and its [`functions::HttpResponse`] sent back.
//!
//! Statuses the server decides itself: 404 when no route matches (the router's fallback
//! then tries static files first), 413 for a body over 20 MiB (`request_body.rs`), 503 when
//! too many actions are in flight, and 500 with a short `{"code","message"}` body when the
//! handler throws or returns something that is not a response (the full error, with its
//! file:line, goes to the log). An invalid bearer token does not fail the request: the handler
//! runs and only `ctx.auth.getUserIdentity()` throws.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use functions::{ErrorKind, HttpRequest};

use crate::api_error::error_response;
use crate::authorization;
use crate::request_body;
use crate::state::ServerState;

/// A request no route of `functions/http.rhai` takes, given back to the router.
pub(crate) struct Unrouted {
    pub request: Request<Body>,
    /// Why no route matched, for the 404 message.
    pub reason: String,
}

/// Runs the HTTP action routed for `request`, or gives the request back when no route of
/// `functions/http.rhai` matches.
pub(crate) async fn dispatch(
    state: &Arc<ServerState>,
    request: Request<Body>,
) -> Result<Response, Unrouted> {
    let modules = state.app.modules();
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let route = match modules.http_router().map(|r| r.lookup(&method, &path)) {
        Some(Ok(route)) => route.clone(),
        Some(Err(reason)) => return Err(Unrouted { request, reason }),
        None => {
            return Err(Unrouted {
                request,
                reason: "functions/http.rhai declares no HTTP routes".to_string(),
            });
        }
    };
    let (parts, body) = request.into_parts();
    let body = match request_body::read(body).await {
        Ok(body) => body,
        Err(refusal) => return Ok(refusal),
    };
    let authorization = authorization::for_action(&parts.headers, state).await;
    let mut headers: Vec<(String, String)> = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.iter_mut().find(|(n, _)| n == name.as_str()) {
            Some((_, existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            None => headers.push((name.as_str().to_string(), value)),
        }
    }
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let scheme = parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or(path.as_str(), |pq| pq.as_str());
    let request = HttpRequest {
        url: format!("{scheme}://{host}{path_and_query}"),
        method,
        path,
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers,
        body: body.to_vec(),
    };
    let described = route.describe();
    let started = std::time::Instant::now();
    let execution = match state
        .app
        .run_http_action(modules, route, request, authorization)
        .await
    {
        Ok(execution) => execution,
        Err(e @ application::ActionError::TooManyActions { .. }) => {
            tracing::warn!(route = %described, "{e}");
            return Ok(error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "TooManyActions",
                &e.to_string(),
            ));
        }
        Err(e) => {
            tracing::error!(route = %described, error = %e, "an HTTP action could not run");
            return Ok(error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "internal server error; see the server log",
            ));
        }
    };
    for line in &execution.log_lines {
        tracing::info!(route = %described, "{line}");
    }
    let response = match execution.result {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(route = %described, "HTTP action failed: {}", error.message);
            let code = match error.kind {
                ErrorKind::Limit => "LimitExceeded",
                ErrorKind::Server => "InternalServerError",
                _ => "UncaughtError",
            };
            // The first line: the message without its "at file:line" trail.
            let message = error.message.lines().next().unwrap_or_default();
            return Ok(error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                code,
                message,
            ));
        }
    };
    tracing::debug!(
        route = %described,
        status = response.status,
        ms = started.elapsed().as_millis() as u64,
        "HTTP action"
    );
    Ok(into_response(response, &described))
}

fn into_response(response: functions::HttpResponse, route: &str) -> Response {
    let status = match StatusCode::from_u16(response.status) {
        Ok(status) => status,
        Err(_) => return bad_response(route, format!("status {} is invalid", response.status)),
    };
    let mut out = Response::new(Body::from(response.body));
    *out.status_mut() = status;
    for (name, value) in response.headers {
        let parsed = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        );
        match parsed {
            (Ok(name), Ok(value)) => {
                out.headers_mut().append(name, value);
            }
            _ => {
                return bad_response(
                    route,
                    format!("the response header {name:?}: {value:?} is not valid HTTP"),
                );
            }
        }
    }
    out.into_response()
}

fn bad_response(route: &str, why: String) -> Response {
    tracing::error!(route = %route, "HTTP action returned a bad response: {why}");
    error_response(StatusCode::INTERNAL_SERVER_ERROR, "BadResponse", &why)
}
