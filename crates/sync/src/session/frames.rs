//! What a session exchanges with its transport: [`Inbound`] frames from the client,
//! [`Outbound`] frames to it, and [`End`], why a session stops early. Also the payload
//! conversions both directions share: arguments in, JSON strings out.

use std::time::Duration;

use protocol::canonical_args;
use serde_json::value::RawValue;
use value::Value;

/// A frame from the client, as the transport delivers it.
pub enum Inbound {
    Text(String),
    Binary,
    /// The client sent a frame larger than the transport accepts; the session ends with a
    /// FatalError naming the limit.
    TooLarge {
        size: usize,
        max: usize,
    },
}

/// A frame to the client.
#[derive(Debug)]
pub enum Outbound {
    Text(String),
    Close { code: u16, reason: String },
}

/// How long a session waits, after an `AuthError`, for the client to close the socket.
pub(crate) const AUTH_ERROR_GRACE: Duration = Duration::from_secs(2);

/// Why a session ends early.
pub(crate) enum End {
    /// The client broke the protocol: FatalError, then close.
    Fatal(String),
    /// The client cannot keep up or the server is stopping: close with a reason.
    Close { code: u16, reason: String },
    /// An `Authenticate` was refused, or the identity stopped being valid (its token expired,
    /// its provider was removed): this `AuthError`, then close, as Convex does (once the
    /// client has closed, or after a short grace: `Session::await_client_close`). The client
    /// fetches a fresh token and reconnects; nothing more is run on this socket.
    AuthFailed(Outbound),
    /// The server is shutting down and the session has answered everything it took in:
    /// close with 1001 ("going away"), so the client reconnects at once.
    Shutdown,
}

impl End {
    /// The server failed the session (WebSocket close code 1011).
    pub(crate) fn internal(reason: String) -> End {
        End::Close { code: 1011, reason }
    }
}

/// Decodes a query's or mutation's arguments; the error is the message the client gets.
pub(crate) fn decode_args(args: serde_json::Value) -> Result<Value, String> {
    let args = canonical_args(args).map_err(|e| format!("ArgumentValidationError: {e}"))?;
    Value::from_json(&args).map_err(|e| {
        format!("ArgumentValidationError: the arguments are not valid convex JSON: {e}")
    })
}

/// The `success`, `result` and `errorData` fields of a finished function, as a
/// `MutationResponse` and an `ActionResponse` both carry them: the value, or the error's
/// message with its `ConvexError` data.
pub(crate) struct OutcomeFields {
    pub success: bool,
    pub result: Box<RawValue>,
    pub error_data: Option<Box<RawValue>>,
}

impl OutcomeFields {
    pub(crate) fn of(outcome: &Result<Value, functions::FunctionError>) -> OutcomeFields {
        match outcome {
            Ok(value) => OutcomeFields {
                success: true,
                result: RawValue::from_string(value.to_json_string()).unwrap_or_default(),
                error_data: None,
            },
            Err(error) => OutcomeFields {
                success: false,
                result: json_string(&error.message),
                error_data: error
                    .data
                    .as_ref()
                    .and_then(|d| RawValue::from_string(d.to_json_string()).ok()),
            },
        }
    }
}

/// `text` as a JSON string.
pub(crate) fn json_string(text: &str) -> Box<RawValue> {
    serde_json::value::to_raw_value(text).unwrap_or_default()
}
