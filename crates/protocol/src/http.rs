//! HTTP API bodies (the `ConvexHttpClient`'s) for `POST /api/query`, `/api/mutation`,
//! `/api/action` and `/api/function`.

use serde::{Deserialize, Serialize};

/// A function call over HTTP. `args` is `[{...}]` on the query/mutation/action routes and a
/// bare object on `/api/function`; [`canonical_args`] accepts both.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UdfRequest {
    pub path: String,
    #[serde(default)]
    pub args: serde_json::Value,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub component_path: Option<String>,
}

/// The reply to a function call: always HTTP 200 with `status` success or error.
#[derive(Debug, Serialize)]
#[serde(
    tag = "status",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum UdfResponse {
    Success {
        value: serde_json::Value,
        log_lines: Vec<String>,
    },
    Error {
        error_message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        error_data: Option<serde_json::Value>,
        log_lines: Vec<String>,
    },
}

/// Unwraps the one-element args array the client sends (`[{}]`), or takes a bare object;
/// `null`/absent means no arguments.
pub fn canonical_args(args: serde_json::Value) -> Result<serde_json::Value, String> {
    match args {
        serde_json::Value::Null => Ok(serde_json::Value::Object(serde_json::Map::new())),
        serde_json::Value::Array(mut items) if items.len() == 1 => Ok(items.remove(0)),
        serde_json::Value::Array(items) => Err(format!(
            "args must be an array holding exactly one object, found {} elements",
            items.len()
        )),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn responses_have_the_client_shape() {
        let ok = UdfResponse::Success {
            value: json!(1),
            log_lines: vec![],
        };
        assert_eq!(
            serde_json::to_value(ok).expect("json"),
            json!({"status":"success","value":1,"logLines":[]})
        );
        let err = UdfResponse::Error {
            error_message: "x".into(),
            error_data: None,
            log_lines: vec![],
        };
        assert_eq!(
            serde_json::to_value(err).expect("json"),
            json!({"status":"error","errorMessage":"x","logLines":[]})
        );
    }

    #[test]
    fn args_forms() {
        assert_eq!(canonical_args(json!([{"a":1}])), Ok(json!({"a":1})));
        assert_eq!(canonical_args(json!({"a":1})), Ok(json!({"a":1})));
        assert_eq!(canonical_args(json!(null)), Ok(json!({})));
        assert!(canonical_args(json!([1, 2])).is_err());
    }
}
