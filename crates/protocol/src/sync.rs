//! Sync protocol messages: what the `convex` client sends over the WebSocket
//! and what the server answers. Every frame is one text frame holding one JSON object with a
//! `type` field.
//!
//! The client enforces two rules that servers most easily break: a Transition's
//! `startVersion` must equal the previous `endVersion` exactly, and every `QueryUpdated` /
//! `QueryFailed` must carry `logLines` (an array). The types here make both impossible to
//! forget: versions are values the session tracks, and `log_lines` is not optional.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::ProtocolError;
use crate::ts::Ts;

/// The client's view of the server: query-set version, identity version, snapshot `ts`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateVersion {
    pub query_set: u32,
    pub identity: u32,
    pub ts: Ts,
}

/// `Authenticate.tokenType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum AuthenticateTokenType {
    User,
    None,
    Admin,
}

/// A message from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum ClientMessage {
    Connect {
        session_id: String,
        #[serde(default)]
        connection_count: u32,
        #[serde(default)]
        last_close_reason: Option<String>,
        #[serde(default)]
        client_ts: Option<f64>,
        #[serde(default)]
        max_observed_timestamp: Option<Ts>,
    },
    ModifyQuerySet {
        base_version: u32,
        new_version: u32,
        modifications: Vec<QuerySetModification>,
    },
    Mutation {
        request_id: u64,
        udf_path: String,
        args: serde_json::Value,
        #[serde(default)]
        component_path: Option<String>,
    },
    Action {
        request_id: u64,
        udf_path: String,
        args: serde_json::Value,
        #[serde(default)]
        component_path: Option<String>,
    },
    Authenticate {
        base_version: u32,
        token_type: AuthenticateTokenType,
        #[serde(default)]
        value: Option<String>,
        #[serde(default)]
        impersonating: Option<serde_json::Value>,
    },
    /// Client telemetry; ignored.
    Event {},
}

/// One change in `ModifyQuerySet.modifications`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum QuerySetModification {
    Add {
        query_id: u32,
        udf_path: String,
        args: serde_json::Value,
        #[serde(default)]
        journal: Option<String>,
        #[serde(default)]
        component_path: Option<String>,
    },
    Remove {
        query_id: u32,
    },
}

impl ClientMessage {
    /// Parses one text frame.
    pub fn parse(text: &str) -> Result<ClientMessage, ProtocolError> {
        serde_json::from_str(text).map_err(|e| ProtocolError(e.to_string()))
    }
}

/// One entry of a Transition's `modifications`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum QueryModification<'a> {
    QueryUpdated {
        query_id: u32,
        value: &'a RawValue,
        log_lines: &'a [String],
        journal: Option<&'a str>,
    },
    QueryFailed {
        query_id: u32,
        error_message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        error_data: Option<&'a RawValue>,
        log_lines: &'a [String],
        journal: Option<&'a str>,
    },
    QueryRemoved {
        query_id: u32,
    },
}

/// A message to the client.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum ServerMessage<'a> {
    Transition {
        start_version: StateVersion,
        end_version: StateVersion,
        modifications: Vec<QueryModification<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_clock_skew: Option<i64>,
        server_ts: u64,
    },
    MutationResponse {
        request_id: u64,
        success: bool,
        /// The return value on success, the error message (a JSON string) on failure.
        result: &'a RawValue,
        ts: Option<Ts>,
        log_lines: &'a [String],
        #[serde(skip_serializing_if = "Option::is_none")]
        error_data: Option<&'a RawValue>,
    },
    ActionResponse {
        request_id: u64,
        success: bool,
        result: &'a RawValue,
        log_lines: &'a [String],
        #[serde(skip_serializing_if = "Option::is_none")]
        error_data: Option<&'a RawValue>,
    },
    AuthError {
        error: &'a str,
        base_version: u32,
        auth_update_attempted: bool,
    },
    FatalError {
        error: &'a str,
    },
    Ping,
}

impl ServerMessage<'_> {
    /// The text frame for this message.
    pub fn to_text(&self) -> String {
        // Serialising these types cannot fail: every field is a string, number or raw JSON.
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"type\":\"FatalError\",\"error\":\"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_recorded_client_frames() {
        for frame in [
            r#"{"connectionCount":0,"lastCloseReason":"InitialConnect","clientTs":1795483541245,"type":"Connect","sessionId":"b16485d6-c7a0-4915-9ed5-3e879374b1b3"}"#,
            r#"{"connectionCount":1,"lastCloseReason":null,"clientTs":1,"type":"Connect","sessionId":"x","maxObservedTimestamp":"ADtrM8nW6hg="}"#,
            r#"{"type":"ModifyQuerySet","baseVersion":1,"newVersion":2,"modifications":[{"type":"Add","queryId":0,"udfPath":"messages:list","args":[{"channel":"general"}]},{"type":"Remove","queryId":3}]}"#,
            r#"{"type":"Mutation","requestId":0,"udfPath":"messages:send","args":[{"body":"hi"}]}"#,
            r#"{"type":"Action","requestId":2,"udfPath":"actions:echo","args":[{"x":{"$integer":"AQAAAAAAAAA="},"y":"z"}]}"#,
            r#"{"type":"Authenticate","baseVersion":0,"tokenType":"User","value":"a.b.c"}"#,
            r#"{"type":"Authenticate","tokenType":"None","baseVersion":2}"#,
            r#"{"type":"Event","eventType":"NetworkRecoveryReconnect","event":{"timeSavedMs":1}}"#,
        ] {
            ClientMessage::parse(frame).unwrap_or_else(|e| panic!("{frame}: {e}"));
        }
        assert!(ClientMessage::parse(r#"{"type":"Nope"}"#).is_err());
    }

    #[test]
    fn transitions_serialise_like_the_backend() {
        let value = RawValue::from_string("[1]".to_string()).expect("raw");
        let message = ServerMessage::Transition {
            start_version: StateVersion::default(),
            end_version: StateVersion {
                query_set: 1,
                identity: 0,
                ts: Ts(1),
            },
            modifications: vec![QueryModification::QueryUpdated {
                query_id: 0,
                value: &value,
                log_lines: &[],
                journal: None,
            }],
            client_clock_skew: None,
            server_ts: 5,
        };
        assert_eq!(
            message.to_text(),
            r#"{"type":"Transition","startVersion":{"querySet":0,"identity":0,"ts":"AAAAAAAAAAA="},"endVersion":{"querySet":1,"identity":0,"ts":"AQAAAAAAAAA="},"modifications":[{"type":"QueryUpdated","queryId":0,"value":[1],"logLines":[],"journal":null}],"serverTs":5}"#
        );
        assert_eq!(ServerMessage::Ping.to_text(), r#"{"type":"Ping"}"#);
    }
}
