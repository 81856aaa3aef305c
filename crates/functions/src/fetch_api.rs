//! `fetch(url, #{ method, headers, body, timeout })` as a script sees it: the options checked
//! and turned into a [`FetchRequest`] for the action's host, and the response handle
//! (`status`, `statusText`, `ok`, `url`, `headers`, `text()`, `json()`, `bytes()`).
//!
//! Only actions and HTTP actions may fetch. The rules of the request itself (schemes, the
//! address policy, timeouts, the body cap) are the host's: this crate opens no socket.
//! A `body` that is a string is sent as is, a blob as bytes, anything else as JSON with
//! `content-type: application/json` unless the script set a content type.

use std::sync::Arc;
use std::time::Duration;

use rhai::{Blob, Dynamic, Map};

use crate::action_ctx::current_host;
use crate::action_host::{FetchRequest, FetchResponse};
use crate::convert::{from_dynamic, json_to_dynamic};
use crate::host_error::{HostResult, host_error};
use crate::http_response::plain_json;
use crate::sandbox::with_current;

const OPTIONS: [&str; 4] = ["method", "headers", "body", "timeout"];

/// `fetch(url, options)`: blocks this action until the answer is read in full.
pub(crate) fn fetch(url: &str, options: Option<Map>) -> HostResult<FetchResponseHandle> {
    let host = current_host("fetch()")?;
    let mut request = request_from(url, options)?;
    request.time_left = with_current(|exec| exec.time_left()).flatten();
    let response = host.fetch(request).map_err(host_error)?;
    Ok(FetchResponseHandle(Arc::new(response)))
}

fn request_from(url: &str, options: Option<Map>) -> HostResult<FetchRequest> {
    let bad = |why: String| host_error(format!("fetch({url:?}): {why}"));
    let mut request = FetchRequest {
        url: url.to_string(),
        method: "GET".to_string(),
        ..FetchRequest::default()
    };
    let Some(options) = options else {
        return Ok(request);
    };
    if let Some(unknown) = options.keys().find(|k| !OPTIONS.contains(&k.as_str())) {
        return Err(bad(format!(
            "unknown option `{unknown}` (expected {})",
            OPTIONS.join(", ")
        )));
    }
    if let Some(method) = options.get("method") {
        let method = method.clone().into_string().map_err(|found| {
            bad(format!(
                "method must be a string like \"POST\", not {found}"
            ))
        })?;
        request.method = method.to_ascii_uppercase();
    }
    if let Some(headers) = options.get("headers") {
        let Some(headers) = headers.clone().try_cast::<Map>() else {
            return Err(bad(format!(
                "headers must be a map like #{{ \"content-type\": \"text/plain\" }}, not {}",
                headers.type_name()
            )));
        };
        for (name, value) in headers {
            let text = if value.is_string() || value.is_int() || value.is_float() || value.is_bool()
            {
                value.to_string()
            } else {
                return Err(bad(format!(
                    "the header {name} must be a string, not {}",
                    value.type_name()
                )));
            };
            request.headers.push((name.to_string(), text));
        }
    }
    if let Some(body) = options.get("body").filter(|b| !b.is_unit()) {
        if matches!(request.method.as_str(), "GET" | "HEAD") {
            return Err(bad(format!(
                "a {} request cannot have a body; pass method: \"POST\" (or PUT, PATCH, ...)",
                request.method
            )));
        }
        request.body = Some(body_bytes(body, &mut request.headers).map_err(bad)?);
    }
    if let Some(timeout) = options.get("timeout") {
        let ms = timeout
            .as_int()
            .ok()
            .map(|i| i as f64)
            .or_else(|| timeout.as_float().ok())
            .filter(|ms| ms.is_finite() && *ms > 0.0)
            .ok_or_else(|| {
                bad(format!(
                    "timeout must be a positive number of milliseconds, not {timeout}"
                ))
            })?;
        request.timeout = Some(Duration::from_secs_f64(ms / 1000.0));
    }
    Ok(request)
}

/// The bytes of a `body` option; a JSON body gets its content type unless one is set.
fn body_bytes(body: &Dynamic, headers: &mut Vec<(String, String)>) -> Result<Vec<u8>, String> {
    if let Ok(text) = body.clone().into_string() {
        return Ok(text.into_bytes());
    }
    if body.is_blob() {
        return Ok(body.clone().cast::<Blob>());
    }
    let value = from_dynamic(body, "body")?;
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("content-type".to_string(), "application/json".to_string()));
    }
    Ok(plain_json(&value).to_string().into_bytes())
}

/// The response of a `fetch`, as the script holds it.
#[derive(Clone)]
pub(crate) struct FetchResponseHandle(Arc<FetchResponse>);

impl FetchResponseHandle {
    pub(crate) fn status(&self) -> rhai::INT {
        rhai::INT::from(self.0.status)
    }

    pub(crate) fn status_text(&self) -> String {
        self.0.status_text.clone()
    }

    /// `ok`: a 2xx status.
    pub(crate) fn ok(&self) -> bool {
        (200..300).contains(&self.0.status)
    }

    pub(crate) fn url(&self) -> String {
        self.0.url.clone()
    }

    /// `headers`: a map of lowercase names.
    pub(crate) fn headers(&self) -> Map {
        self.0
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().into(), Dynamic::from(value.clone())))
            .collect()
    }

    /// `text()`: the body as text, invalid UTF-8 replaced.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.body).into_owned()
    }

    /// `json()`: the body parsed as JSON.
    pub(crate) fn json(&self) -> HostResult<Dynamic> {
        let json: serde_json::Value = serde_json::from_slice(&self.0.body).map_err(|e| {
            host_error(format!(
                "response.json(): the body from {} is not JSON ({e}); read it with response.text()",
                self.0.url
            ))
        })?;
        json_to_dynamic(&json).map_err(|e| host_error(format!("response.json(): {e}")))
    }

    /// `bytes()`, refused past `cap`, the sandbox's blob size.
    pub(crate) fn bytes(&self, cap: usize) -> HostResult<Blob> {
        if cap > 0 && self.0.body.len() > cap {
            return Err(host_error(format!(
                "response.bytes(): the body is {} bytes and the sandbox caps blobs at {cap}; use response.text() or response.json() for larger bodies",
                self.0.body.len()
            )));
        }
        Ok(self.0.body.clone())
    }
}
