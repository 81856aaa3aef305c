//! `GET /_dashboard/api/logs`: the live stream of function executions, as newline-delimited
//! JSON: first `{"type":"history","records":[...]}` (the last few hundred executions), then one
//! `{"type":"record",...}` per execution as it finishes, `{"type":"dropped","count":n}` when
//! this viewer fell behind, and `{"type":"heartbeat"}` every few seconds of quiet (which is
//! also how a closed viewer is noticed and dropped).
//!
//! Optional query parameters filter on the server: `path` and `caller` (substrings), `kind`
//! and `outcome` (exact). The body is a stream polled only as fast as the viewer reads it; a
//! viewer that does not keep up loses records (the execution log's bounded broadcast) and
//! never slows the server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use application::{ExecutionRecord, ExecutionStream, StreamItem};
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde_json::json;

use super::guard::require_admin;
use crate::state::ServerState;

const HEARTBEAT: Duration = Duration::from_secs(5);

/// What a viewer asked to see.
#[derive(Default)]
struct Filter {
    path: Option<String>,
    caller: Option<String>,
    kind: Option<String>,
    outcome: Option<String>,
}

impl Filter {
    fn from_query(query: &HashMap<String, String>) -> Filter {
        let get = |name: &str| query.get(name).filter(|v| !v.is_empty()).cloned();
        Filter {
            path: get("path"),
            caller: get("caller"),
            kind: get("kind"),
            outcome: get("outcome"),
        }
    }

    fn accepts(&self, record: &ExecutionRecord) -> bool {
        self.path
            .as_ref()
            .is_none_or(|p| record.path.contains(p.as_str()))
            && self
                .caller
                .as_ref()
                .is_none_or(|c| record.caller.contains(c.as_str()))
            && self.kind.as_ref().is_none_or(|k| record.kind == k)
            && self.outcome.as_ref().is_none_or(|o| record.outcome == o)
    }
}

fn line(value: &serde_json::Value) -> Result<String, std::convert::Infallible> {
    Ok(format!("{value}\n"))
}

fn record_line(record: &ExecutionRecord) -> String {
    let mut value = serde_json::to_value(record).unwrap_or_default();
    value["type"] = json!("record");
    format!("{value}\n")
}

struct Viewer {
    stream: ExecutionStream,
    filter: Filter,
}

pub(crate) async fn stream(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(refused) = require_admin(&headers, &state).await {
        return refused;
    }
    let filter = Filter::from_query(&query);
    let (history, stream) = state.app.executions().subscribe();
    let history: Vec<&ExecutionRecord> = history
        .iter()
        .map(|r| r.as_ref())
        .filter(|r| filter.accepts(r))
        .collect();
    let first = line(&json!({ "type": "history", "records": history }));
    let viewer = Viewer { stream, filter };
    let live = futures::stream::unfold(viewer, |mut viewer| async move {
        loop {
            let next = tokio::time::timeout(HEARTBEAT, viewer.stream.next()).await;
            let text = match next {
                Err(_) => line(&json!({ "type": "heartbeat" })),
                Ok(None) => return None,
                Ok(Some(StreamItem::Dropped(count))) => {
                    line(&json!({ "type": "dropped", "count": count }))
                }
                Ok(Some(StreamItem::Record(record))) => {
                    if !viewer.filter.accepts(&record) {
                        continue;
                    }
                    Ok(record_line(&record))
                }
            };
            return Some((text, viewer));
        }
    });
    let body = futures::stream::once(async move { first }).chain(live);
    let mut response = Body::from_stream(body).into_response();
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson; charset=utf-8"),
    );
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
