//! The HTTP API the official `ConvexHttpClient` speaks: `POST /api/query`, `/api/mutation`,
//! `/api/action` and `/api/function` with a `{"path", "args"}` body (`protocol::UdfRequest`),
//! Convex's `POST /api/run/{module path}/{name}` with an `{"args"}` body, the function named
//! in the URL (`messages/list` is `messages:list`, `a/b/c` is `a/b:c`), and Convex's
//! `GET /api/query?path=...&args=<JSON>`.
//! Actions run on the app's action threads; too many in flight answers 503.
//! Function calls answer HTTP 200 with `{"status":"success","value","logLines"}` or
//! `{"status":"error","errorMessage","errorData"?,"logLines"}` (a thrown `ConvexError` carries
//! its data); problems with the request itself (bad JSON, refused token, overload) answer a
//! non-2xx status with `{"code","message"}` (`api_error.rs`), which the client surfaces as an
//! `Error` carrying that body. Values are written in the request's `format`, as Convex does:
//! `convex_encoded_json` (the official clients) or Convex's readable `json`, the default.

use std::sync::Arc;

use application::ActionError;
use auth::Authorization;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use database::DbError;
use functions::{Caller, FunctionError, FunctionKind, FunctionPath};
use protocol::{Ts, UdfRequest, UdfResponse, canonical_args};
use value::Value;

use crate::api_error::error_response;
use crate::authorization;
use crate::request_body;
use crate::state::ServerState;

/// How a response writes values: Convex's `format` of the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ValueFormat {
    /// `convex_encoded_json`: what the official clients send and read (`{"$integer": ...}`).
    Encoded,
    /// `json`, and the default when a request names none, as in Convex: readable and lossy
    /// (an int64 is its decimal text).
    Clean,
    /// `export_json`: readable and lossless, the encoding of `documents.jsonl` in an export
    /// (an int64 is a JSON integer, a float always has a fraction or exponent).
    Export,
}

impl ValueFormat {
    /// The format a request asks for, or why it is refused (400 `BadFormat`).
    fn parse(format: Option<&str>) -> Result<ValueFormat, String> {
        match format {
            None | Some("json" | "convex_clean_json") => Ok(ValueFormat::Clean),
            Some("convex_encoded_json" | "convex_json") => Ok(ValueFormat::Encoded),
            Some("export_json") => Ok(ValueFormat::Export),
            Some(other) => Err(format!(
                "format must be \"json\" (readable values), \"convex_encoded_json\" (what the official clients use) or \"export_json\" (readable and lossless); got {other:?}"
            )),
        }
    }

    fn write(self, value: &Value) -> serde_json::Value {
        match self {
            ValueFormat::Encoded => value.to_json(),
            ValueFormat::Clean => value.to_clean_json(),
            ValueFormat::Export => snapshot::to_export_json(value),
        }
    }
}

fn udf_response(
    result: Result<Value, FunctionError>,
    log_lines: Vec<String>,
    format: ValueFormat,
) -> Response {
    let body = match result {
        Ok(value) => UdfResponse::Success {
            value: format.write(&value),
            log_lines,
        },
        Err(error) => UdfResponse::Error {
            error_message: error.message,
            error_data: error.data.map(|d| format.write(&d)),
            log_lines,
        },
    };
    Json(body).into_response()
}

fn db_failure(error: DbError) -> Response {
    match &error {
        DbError::Limit(message) => {
            error_response(StatusCode::SERVICE_UNAVAILABLE, "Overloaded", message)
        }
        // A full disk, a read-only file system, a foreign lock: the Committer logged it.
        DbError::Unavailable { kind, .. } => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            kind.code(),
            &error.to_string(),
        ),
        DbError::CommitterStopped => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "ShuttingDown",
            &error.to_string(),
        ),
        other => {
            tracing::error!(error = %other, "a request failed inside the database");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "internal server error; see the server log",
            )
        }
    }
}

fn action_failure(error: ActionError) -> Response {
    match error {
        ActionError::TooManyActions { .. } => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "TooManyActions",
            &error.to_string(),
        ),
        ActionError::Internal => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            &error.to_string(),
        ),
    }
}

/// Where a request carries its call.
enum Source {
    /// A body of `{"path", "args", "format"?}`.
    Body(Body),
    /// `/api/run/...`: the path (`module:name`) from the URL, and a body of `{"args"}`.
    RunBody(String, Body),
    /// `GET /api/query?path=...&args=...`: all of it in the URL.
    Url(UdfRequest),
}

/// The body of `POST /api/run/...`: `args` is required, as in Convex.
#[derive(serde::Deserialize)]
struct RunBody {
    args: serde_json::Value,
    #[serde(default)]
    format: Option<String>,
}

/// A function call the request asked for, with its checked caller.
struct FunctionCall {
    path: FunctionPath,
    args: Value,
    authorization: Authorization,
    format: ValueFormat,
}

/// Parses the body and the caller; the error side is the finished response.
async fn prepare(
    state: &ServerState,
    headers: &HeaderMap,
    source: Source,
) -> Result<FunctionCall, Response> {
    let bad_body = |e: serde_json::Error| {
        error_response(
            StatusCode::BAD_REQUEST,
            "BadJsonBody",
            &format!("the request body is not a function call: {e}"),
        )
    };
    let request: UdfRequest = match source {
        Source::Body(body) => {
            serde_json::from_slice(&request_body::read(body).await?).map_err(bad_body)?
        }
        Source::RunBody(path, body) => {
            let RunBody { args, format } =
                serde_json::from_slice(&request_body::read(body).await?).map_err(bad_body)?;
            UdfRequest {
                path,
                args,
                format,
                component_path: None,
            }
        }
        Source::Url(request) => request,
    };
    let format = ValueFormat::parse(request.format.as_deref())
        .map_err(|e| error_response(StatusCode::BAD_REQUEST, "BadFormat", &e))?;
    let args = canonical_args(request.args)
        .map_err(|e| error_response(StatusCode::BAD_REQUEST, "BadArgs", &e))?;
    let args = Value::from_json(&args).map_err(|e| {
        error_response(
            StatusCode::BAD_REQUEST,
            "BadArgs",
            &format!("the arguments are not valid convex JSON: {e}"),
        )
    })?;
    let authorization = authorization::for_api(headers, state).await?;
    crate::limits::check_user(
        state,
        authorization.identity(),
        Caller::from(&authorization),
    )?;
    Ok(FunctionCall {
        path: FunctionPath::parse(&request.path),
        args,
        authorization,
        format,
    })
}

async fn run(state: Arc<ServerState>, kind: FunctionKind, call: FunctionCall) -> Response {
    let FunctionCall {
        path,
        args,
        authorization,
        format,
    } = call;
    let caller = Caller::from(&authorization);
    let identity = authorization.identity().cloned();
    match kind {
        FunctionKind::Query => match state.app.run_query(path, args, identity, caller).await {
            Ok(done) => udf_response(done.execution.result, done.execution.log_lines, format),
            Err(e) => db_failure(e),
        },
        FunctionKind::Mutation => match state
            .app
            .run_mutation(path, args, identity, caller, None)
            .await
        {
            Ok(done) => udf_response(done.result, done.log_lines, format),
            Err(e) => db_failure(e),
        },
        FunctionKind::Action => match state.app.run_action(path, args, identity, caller).await {
            Ok(done) => udf_response(done.result, done.log_lines, format),
            Err(e) => action_failure(e),
        },
        FunctionKind::HttpAction => udf_response(
            Err(FunctionError::new(
                functions::ErrorKind::NotFound,
                format!(
                    "'{path}' is an HTTP action; call it through its route in functions/http.rhai"
                ),
            )),
            Vec::new(),
            format,
        ),
    }
}

pub(crate) async fn query(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match prepare(&state, &headers, Source::Body(body)).await {
        Ok(call) => run(state, FunctionKind::Query, call).await,
        Err(response) => response,
    }
}

/// The query string of `GET /api/query`: `args` is the arguments' JSON text.
#[derive(serde::Deserialize)]
pub(crate) struct QueryInUrl {
    path: String,
    args: String,
    format: Option<String>,
}

/// `GET /api/query?path=...&args=...&format=...`, as Convex serves it.
pub(crate) async fn query_get(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    params: Result<Query<QueryInUrl>, QueryRejection>,
) -> Response {
    let Query(params) = match params {
        Ok(params) => params,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BadQueryString",
                &format!("GET /api/query takes ?path=module:name&args=<JSON>[&format=json]: {e}"),
            );
        }
    };
    let args = match serde_json::from_str(&params.args) {
        Ok(args) => args,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BadArgs",
                &format!("the args parameter is not JSON: {e}"),
            );
        }
    };
    let request = UdfRequest {
        path: params.path,
        args,
        format: params.format,
        component_path: None,
    };
    match prepare(&state, &headers, Source::Url(request)).await {
        Ok(call) => run(state, FunctionKind::Query, call).await,
        Err(response) => response,
    }
}

pub(crate) async fn mutation(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match prepare(&state, &headers, Source::Body(body)).await {
        Ok(call) => run(state, FunctionKind::Mutation, call).await,
        Err(response) => response,
    }
}

pub(crate) async fn action(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match prepare(&state, &headers, Source::Body(body)).await {
        Ok(call) => run(state, FunctionKind::Action, call).await,
        Err(response) => response,
    }
}

/// `/api/function`: any kind, looked up by path (what `pulsebase run` uses).
pub(crate) async fn function(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let call = match prepare(&state, &headers, Source::Body(body)).await {
        Ok(call) => call,
        Err(response) => return response,
    };
    let kind = state.app.modules().kind_of(&call.path);
    let kind = kind.unwrap_or(FunctionKind::Query);
    run(state, kind, call).await
}

/// `POST /api/run/{module path}/{name}`: any kind, the function named in the URL.
pub(crate) async fn run_by_path(
    State(state): State<Arc<ServerState>>,
    Path(identifier): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(path) = path_of_identifier(&identifier) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "MissingIdentifier",
            "the URL names no function: POST to /api/run/<module path>/<function name>, e.g. /api/run/messages/list for messages:list",
        );
    };
    let call = match prepare(&state, &headers, Source::RunBody(path, body)).await {
        Ok(call) => call,
        Err(response) => return response,
    };
    let kind = state.app.modules().kind_of(&call.path);
    run(state, kind.unwrap_or(FunctionKind::Query), call).await
}

/// `messages/list` → `messages:list`, `a/b/c` → `a/b:c`; `None` without both a module and a
/// name.
fn path_of_identifier(identifier: &str) -> Option<String> {
    let (module, name) = identifier.trim_matches('/').rsplit_once('/')?;
    (!module.is_empty() && !name.is_empty()).then(|| format!("{module}:{name}"))
}

pub(crate) async fn query_ts(State(state): State<Arc<ServerState>>) -> Response {
    let ts = state.app.db().subscriptions().processed_ts();
    Json(serde_json::json!({ "ts": Ts(ts).encode() })).into_response()
}

pub(crate) async fn health(State(state): State<Arc<ServerState>>) -> Response {
    let stats = state.hub.stats();
    Json(serde_json::json!({
        "status": "ok",
        "sessions": stats.sessions,
        "queryInstances": stats.instances,
        "actionsInFlight": state.app.actions_in_flight(),
        "ts": state.app.db().subscriptions().processed_ts().to_string(),
        "guard": state.guard.stats_json(),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::path_of_identifier;

    #[test]
    fn a_run_url_names_module_and_function() {
        assert_eq!(
            path_of_identifier("messages/list").as_deref(),
            Some("messages:list")
        );
        assert_eq!(path_of_identifier("a/b/c").as_deref(), Some("a/b:c"));
        assert_eq!(path_of_identifier("/a/b/").as_deref(), Some("a:b"));
        assert_eq!(path_of_identifier("list"), None);
        assert_eq!(path_of_identifier("a/"), None);
        assert_eq!(path_of_identifier(""), None);
    }
}
