//! An HTTP action's request: [`HttpRequest`] as the server hands it over, and the script's
//! `request` handle: `method`, `url`, `path`, `query` (a map, the first value of a repeated
//! name, like `URLSearchParams.get`), `headers` (a map, lowercase names), `text()`, `json()` (up to the 16 MiB string cap) and `bytes()` (up to the
//! sandbox's blob cap, 100,000 bytes).

use std::sync::Arc;

use rhai::{Blob, Dynamic, Map};

use crate::convert::json_to_dynamic;
use crate::host_error::{HostResult, host_error};

/// An incoming request, as the handler sees it.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    pub method: String,
    /// The full URL, `http://host/path?query`.
    pub url: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// Lowercase names; repeated headers joined with `, `.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// `request`, the handle an action's handler gets.
#[derive(Clone)]
pub(crate) struct RequestHandle(Arc<HttpRequest>);

impl RequestHandle {
    pub(crate) fn new(request: HttpRequest) -> RequestHandle {
        RequestHandle(Arc::new(request))
    }

    pub(crate) fn method(&self) -> String {
        self.0.method.clone()
    }

    pub(crate) fn url(&self) -> String {
        self.0.url.clone()
    }

    pub(crate) fn path(&self) -> String {
        self.0.path.clone()
    }

    /// The raw body, as received.
    pub(crate) fn body(&self) -> &[u8] {
        &self.0.body
    }

    /// A header's value by lowercase name.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.0
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `request.headers`.
    pub(crate) fn headers(&self) -> Map {
        let mut map = Map::new();
        for (name, value) in &self.0.headers {
            map.insert(name.as_str().into(), Dynamic::from(value.clone()));
        }
        map
    }

    /// `request.query`: the query string's names and values, decoded.
    pub(crate) fn query(&self) -> Map {
        let mut map = Map::new();
        for pair in self.0.query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(name);
            // The first value wins, like URLSearchParams.get.
            map.entry(name.into())
                .or_insert_with(|| Dynamic::from(percent_decode(value)));
        }
        map
    }

    /// `request.text()`: the body as text, invalid UTF-8 replaced.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.body).into_owned()
    }

    /// `request.bytes()`, refused past `cap`, the sandbox's blob size.
    pub(crate) fn bytes(&self, cap: usize) -> HostResult<Blob> {
        // Rhai counts blob bytes against the sandbox's array-size cap; say so plainly
        // instead of a generic size error.
        if cap > 0 && self.0.body.len() > cap {
            return Err(host_error(format!(
                "request.bytes(): the body is {} bytes and the sandbox caps blobs at {cap}; use request.text() or request.json() for larger bodies",
                self.0.body.len()
            )));
        }
        Ok(self.0.body.clone())
    }

    /// `request.json()`.
    pub(crate) fn json(&self) -> HostResult<Dynamic> {
        let json: serde_json::Value = serde_json::from_slice(&self.0.body)
            .map_err(|e| host_error(format!("request.json(): the body is not JSON: {e}")))?;
        json_to_dynamic(&json).map_err(|e| host_error(format!("request.json(): {e}")))
    }
}

/// `+` and `%XX` decoding of one query-string name or value; invalid escapes stay as they are.
/// `+` becomes a space first, so `%2B` still decodes to a literal `+`; `percent-encoding`
/// decodes an escape only when both bytes after `%` are hex digits, so `%+41` is `%`, a space
/// and `41`.
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%41"), "A");
    }

    #[test]
    fn escapes_at_the_very_end_and_signs_in_escapes() {
        // An escape that ends the text is decoded (the last two bytes are its digits).
        assert_eq!(percent_decode("a%41"), "aA");
        assert_eq!(percent_decode("path%2F"), "path/");
        assert_eq!(percent_decode("caf%C3%A9"), "café");
        // One digit short of an escape stays as it is.
        assert_eq!(percent_decode("a%4"), "a%4");
        assert_eq!(percent_decode("%"), "%");
        // An escape needs two hex digits, so "%+41" is a literal '%', a space and "41" (not
        // byte 0x04 followed by "1", which a sign-accepting hex parse would give).
        assert_eq!(percent_decode("%+41"), "% 41");
        // A `+` written as an escape stays a `+`.
        assert_eq!(percent_decode("a%2Bb"), "a+b");
    }
}
