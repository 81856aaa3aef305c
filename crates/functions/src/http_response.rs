//! What an HTTP action's handler returns, `#{ status, headers, body }`, turned into the
//! [`HttpResponse`] the server sends; a return value of the wrong shape fails the action with a
//! message that names the field and shows the expected shape.

use rhai::{Blob, Dynamic, ImmutableString, Map};
use value::Value;

use crate::convert::from_dynamic;

/// What the handler returned: `#{ status: 200, headers: #{ ... }, body: ... }`. A string
/// body is sent as `text/plain`, a blob as `application/octet-stream`, anything else (map,
/// array, number, boolean) as JSON, unless the handler set `content-type` itself.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A value as plain JSON for a response body (and a `fetch` body): int64 as a number, bytes
/// as base64.
pub(crate) fn plain_json(value: &Value) -> serde_json::Value {
    use base64::Engine as _;
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Boolean(b) => serde_json::Value::Bool(*b),
        Value::Int64(i) => serde_json::Value::from(*i),
        Value::Float64(f) => serde_json::Number::from_f64(*f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Bytes(b) => {
            serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Value::Array(items) => serde_json::Value::Array(items.iter().map(plain_json).collect()),
        Value::Object(fields) => serde_json::Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), plain_json(v)))
                .collect(),
        ),
    }
}

const RESPONSE_SHAPE: &str =
    "#{ status: 200, headers: #{ \"content-type\": \"...\" }, body: \"text\" | blob | map }";

/// The handler's return value as a response.
pub(crate) fn response_from_dynamic(value: &Dynamic) -> Result<HttpResponse, String> {
    let value = value.flatten_clone();
    if !value.is_map() {
        return Err(format!(
            "an HTTP action must return a response like {RESPONSE_SHAPE}, not {}",
            value.type_name()
        ));
    }
    let map = value.cast::<Map>();
    if let Some(unknown) = map
        .keys()
        .find(|k| !["status", "headers", "body"].contains(&k.as_str()))
    {
        return Err(format!(
            "the response has an unknown field `{unknown}` (expected status, headers, body)"
        ));
    }
    let status = match map.get("status") {
        None => 200,
        Some(s) => {
            let code = s.as_int().ok().or_else(|| {
                s.as_float()
                    .ok()
                    .filter(|f| f.fract() == 0.0)
                    .map(|f| f as i64)
            });
            match code {
                Some(code @ 100..=599) => code as u16,
                _ => return Err(format!("the response status must be 100..599, not {s}")),
            }
        }
    };
    let mut headers = Vec::new();
    match map.get("headers") {
        None => {}
        Some(h) if h.is_unit() => {}
        Some(h) if h.is_map() => {
            for (name, value) in h.clone().cast::<Map>() {
                if value.is_unit() {
                    continue;
                }
                if value.is_map() || value.is_array() || value.is_blob() {
                    return Err(format!(
                        "the response header `{name}` must be a string, not {}",
                        value.type_name()
                    ));
                }
                headers.push((name.to_string(), value.to_string()));
            }
        }
        Some(h) => {
            return Err(format!(
                "the response headers must be a map like #{{ \"content-type\": \"text/plain\" }}, not {}",
                h.type_name()
            ));
        }
    }
    let (body, content_type) = match map.get("body") {
        None => (Vec::new(), None),
        Some(b) if b.is_unit() => (Vec::new(), None),
        Some(b) if b.is_string() => (
            b.clone().cast::<ImmutableString>().as_bytes().to_vec(),
            Some("text/plain; charset=utf-8"),
        ),
        Some(b) if b.is_blob() => (b.clone().cast::<Blob>(), Some("application/octet-stream")),
        Some(b) => {
            let value = from_dynamic(b, "the response body")?;
            (
                plain_json(&value).to_string().into_bytes(),
                Some("application/json"),
            )
        }
    };
    if let Some(content_type) = content_type
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("content-type".to_string(), content_type.to_string()));
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_from_maps() {
        let mut map = Map::new();
        map.insert("status".into(), Dynamic::from_int(201));
        map.insert("body".into(), Dynamic::from("hi"));
        let response = response_from_dynamic(&Dynamic::from_map(map)).expect("response");
        assert_eq!(response.status, 201);
        assert_eq!(response.body, b"hi");
        assert_eq!(
            response.headers,
            vec![(
                "content-type".to_string(),
                "text/plain; charset=utf-8".to_string()
            )]
        );

        let mut body = Map::new();
        body.insert("n".into(), Dynamic::from_int(3));
        let mut map = Map::new();
        map.insert("body".into(), Dynamic::from_map(body));
        let response = response_from_dynamic(&Dynamic::from_map(map)).expect("response");
        assert_eq!(response.status, 200);
        assert_eq!(response.body, br#"{"n":3}"#);

        assert!(response_from_dynamic(&Dynamic::from("text")).is_err());
        let mut bad = Map::new();
        bad.insert("status".into(), Dynamic::from_int(42));
        assert!(response_from_dynamic(&Dynamic::from_map(bad)).is_err());
    }
}
