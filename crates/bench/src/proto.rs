//! The Convex sync protocol as this load generator needs it (the server's side of it is
//! `protocol::sync`): client messages as JSON text, and a borrowed, partial parse of server
//! messages that leaves query results as raw JSON so scanning 10,000 pushes stays cheap.

use std::borrow::Cow;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

/// `StateVersion` of a Transition.
#[derive(Deserialize, Debug, Clone, Default)]
pub struct Version {
    #[serde(rename = "querySet")]
    pub query_set: u32,
    pub identity: u32,
    pub ts: String,
}

impl Version {
    pub fn ts_u64(&self) -> u64 {
        decode_ts(&self.ts).unwrap_or(0)
    }
}

/// The fields of any server message this client looks at.
#[derive(Deserialize, Debug)]
pub struct ServerMsg<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(rename = "endVersion")]
    pub end_version: Option<Version>,
    #[serde(rename = "requestId")]
    pub request_id: Option<u64>,
    pub success: Option<bool>,
    #[serde(borrow)]
    pub ts: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub modifications: Option<&'a RawValue>,
    #[serde(borrow)]
    pub result: Option<&'a RawValue>,
    #[serde(borrow)]
    pub error: Option<Cow<'a, str>>,
}

pub fn parse(text: &str) -> anyhow::Result<ServerMsg<'_>> {
    Ok(serde_json::from_str(text)?)
}

/// A timestamp as the protocol encodes it (`u64b64`): base64 of its 8 little-endian bytes.
pub fn decode_ts(text: &str) -> Option<u64> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    let arr: [u8; 8] = bytes.try_into().ok()?;
    Some(u64::from_le_bytes(arr))
}

pub fn connect(session_id: &str) -> String {
    json!({
        "type": "Connect",
        "sessionId": session_id,
        "connectionCount": 0,
        "lastCloseReason": "InitialConnect",
        "clientTs": crate::stats::wall_ns() / 1_000_000,
    })
    .to_string()
}

pub fn authenticate(base_version: u32, token: &str) -> String {
    json!({"type": "Authenticate", "baseVersion": base_version, "tokenType": "User", "value": token})
        .to_string()
}

/// `ModifyQuerySet base → base+1` adding one query (or none).
pub fn modify_query_set(base: u32, add: Option<(u32, &str, &serde_json::Value)>) -> String {
    let modifications = match add {
        Some((query_id, path, args)) => {
            json!([{"type": "Add", "queryId": query_id, "udfPath": path, "args": [args]}])
        }
        None => json!([]),
    };
    json!({"type": "ModifyQuerySet", "baseVersion": base, "newVersion": base + 1, "modifications": modifications})
        .to_string()
}

pub fn mutation(request_id: u64, path: &str, args: &serde_json::Value) -> String {
    json!({"type": "Mutation", "requestId": request_id, "udfPath": path, "args": [args]})
        .to_string()
}

pub fn action(request_id: u64, path: &str, args: &serde_json::Value) -> String {
    json!({"type": "Action", "requestId": request_id, "udfPath": path, "args": [args]}).to_string()
}

/// Every `"<field>":"<value>"` string value in raw JSON text (no unescaping; the bench only
/// looks for values it wrote itself, which need none).
pub fn string_fields<'a>(raw: &'a str, field: &str) -> impl Iterator<Item = &'a str> + 'a {
    let needle = format!("\"{field}\":\"");
    let finder = memchr::memmem::Finder::new(needle.as_bytes()).into_owned();
    let bytes = raw.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        let i = finder.find(&bytes[at..])? + at + finder.needle().len();
        let end = memchr::memchr(b'"', &bytes[i..])? + i;
        at = end;
        Some(&raw[i..end])
    })
}

/// The sequence numbers of every `text` value of the form `<tag>:<seq>`.
pub fn tagged_seqs<'a>(raw: &'a str, tag: &'a str) -> impl Iterator<Item = usize> + 'a {
    string_fields(raw, "text").filter_map(move |text| {
        let rest = text.strip_prefix(tag)?.strip_prefix(':')?;
        rest.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_round_trip() {
        assert_eq!(decode_ts("AAAqNv6clxc="), Some(1_700_000_000_000_000_000));
        assert_eq!(decode_ts("AQAAAAAAAAA="), Some(1));
        assert_eq!(decode_ts("nope"), None);
    }

    #[test]
    fn scans_fields() {
        let raw = r#"[{"type":"QueryUpdated","queryId":0,"value":[{"text":"ab:3","userId":"u1"},{"text":"ab:12","userId":"u2"},{"text":"x:1","userId":"u1"}]}]"#;
        let seqs: Vec<usize> = tagged_seqs(raw, "ab").collect();
        assert_eq!(seqs, vec![3, 12]);
        let users: Vec<&str> = string_fields(raw, "userId").collect();
        assert_eq!(users, vec!["u1", "u2", "u1"]);
    }

    #[test]
    fn parses_transition() {
        let text = r#"{"type":"Transition","startVersion":{"querySet":0,"identity":0,"ts":"AAAAAAAAAAA="},"endVersion":{"querySet":1,"identity":1,"ts":"AQAAAAAAAAA="},"modifications":[],"serverTs":1}"#;
        let msg = parse(text).expect("parses");
        assert_eq!(msg.kind, "Transition");
        let end = msg.end_version.expect("end");
        assert_eq!((end.query_set, end.identity, end.ts_u64()), (1, 1, 1));
    }
}
