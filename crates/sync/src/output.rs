//! What one run of a query produces: [`QueryOutput`] (serialised once and shared by every
//! session that sends it), [`CodeStamp`] (which code produced it) and [`Run`] (an output with
//! its snapshot and read set, ready to be published into an instance).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use database::ReadSet;
use functions::Execution;
use serde_json::value::RawValue;

/// A computed result, serialised once and shared by every session that sends it.
#[derive(Debug)]
pub(crate) struct QueryOutput {
    pub value: Result<Box<RawValue>, QueryError>,
    pub log_lines: Vec<String>,
    /// Hash of the value or error, to send nothing when a re-run changes nothing.
    pub hash: u64,
}

#[derive(Debug)]
pub(crate) struct QueryError {
    pub message: String,
    pub data: Option<Box<RawValue>>,
}

impl QueryOutput {
    pub(crate) fn from_execution(execution: &Execution) -> QueryOutput {
        let mut hasher = DefaultHasher::new();
        let value = match &execution.result {
            Ok(value) => {
                let text = value.to_json_string();
                text.hash(&mut hasher);
                raw(text)
            }
            Err(error) => {
                let data = error.data.as_ref().map(|d| d.to_json_string());
                ("error", &error.message, &data).hash(&mut hasher);
                Err(QueryError {
                    message: error.message.clone(),
                    data: data.and_then(|d| raw(d).ok()),
                })
            }
        };
        QueryOutput {
            value,
            log_lines: execution.log_lines.clone(),
            hash: hasher.finish(),
        }
    }

    pub(crate) fn failure(message: String) -> QueryOutput {
        QueryOutput::failure_with_data(message, None)
    }

    /// A failure carrying error data (e.g. a rate limit's `{kind, name, retryAfter}`).
    pub(crate) fn failure_with_data(message: String, data: Option<String>) -> QueryOutput {
        let mut hasher = DefaultHasher::new();
        ("error", &message, &data).hash(&mut hasher);
        QueryOutput {
            value: Err(QueryError {
                message,
                data: data.and_then(|d| raw(d).ok()),
            }),
            log_lines: Vec::new(),
            hash: hasher.finish(),
        }
    }
}

fn raw(text: String) -> Result<Box<RawValue>, QueryError> {
    RawValue::from_string(text).map_err(|e| QueryError {
        message: format!("internal error: the result could not be encoded: {e}"),
        data: None,
    })
}

/// Which code produced an output: the whole deployed function set (a query reaches other
/// modules through `ctx.runQuery`) and the schema epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CodeStamp {
    pub code_hash: u64,
    pub epoch: u64,
}

/// One run of an instance's function, ready to be published.
pub(crate) struct Run {
    pub output: Arc<QueryOutput>,
    /// The snapshot it ran at.
    pub ts: u64,
    pub read_set: ReadSet,
    pub stamp: CodeStamp,
    /// The function read the identity it ran with.
    pub read_identity: bool,
}
