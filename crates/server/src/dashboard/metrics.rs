//! `GET /metrics`: the server's measurements in the Prometheus text format (0.0.4), encoded
//! by `prometheus-client` from values read at scrape time: the hot paths only ever touch
//! atomics (`telemetry`), and a scrape reads them and the few gauges (sessions, subscriptions,
//! query instances, file sizes).
//!
//! It needs the admin key (`Authorization: Bearer <key>` from a scrape config, or
//! `Convex <key>`), unless the server was started with `--metrics-public`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use telemetry::HistogramSnapshot;

use super::guard::require_admin;
use crate::api_error::error_response;
use crate::state::ServerState;

/// Reads the server's measurements when a scrape encodes the registry.
struct ServerCollector(Arc<ServerState>);

impl std::fmt::Debug for ServerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerCollector")
    }
}

fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Option<(&str, &str)>, HistogramSnapshot)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (label, snapshot) in series {
        match label {
            Some(label) => metric
                .encode_family(&[*label])?
                .encode_histogram::<NoLabelSet>(
                    snapshot.sum_seconds,
                    snapshot.count,
                    &snapshot.buckets,
                    None,
                )?,
            None => metric.encode_histogram::<NoLabelSet>(
                snapshot.sum_seconds,
                snapshot.count,
                &snapshot.buckets,
                None,
            )?,
        }
    }
    Ok(())
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

fn counters(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, count) in values {
        ConstCounter::new(*count).encode(metric.encode_family(&[(label, *value)])?)?;
    }
    Ok(())
}

impl Collector for ServerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = &self.0;
        let executions = state.app.executions();
        let by_kind: Vec<(Option<(&str, &str)>, HistogramSnapshot)> = executions
            .latency()
            .map(|(kind, h)| (Some(("kind", kind)), h.snapshot()))
            .collect();
        histogram(
            &mut encoder,
            "pulsebase_function_duration_seconds",
            "Time to run a function, by kind (a mutation's includes its wait for the commit)",
            &by_kind,
        )?;
        counters(
            &mut encoder,
            "pulsebase_function_errors",
            "Function executions that ended in an error, by kind",
            "kind",
            &executions.errors(),
        )?;
        let db = state.app.db();
        histogram(
            &mut encoder,
            "pulsebase_commit_duration_seconds",
            "Time of one group commit, from BEGIN to a finished COMMIT",
            &[(None, db.commit_latency().snapshot())],
        )?;
        counters(
            &mut encoder,
            "pulsebase_token_rejections",
            "Access tokens refused, by reason",
            "reason",
            &state.auth.rejections(),
        )?;
        let stats = state.hub.stats();
        let as_gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        gauge(
            &mut encoder,
            "pulsebase_sessions",
            "Open sync WebSocket sessions",
            as_gauge(stats.sessions),
        )?;
        gauge(
            &mut encoder,
            "pulsebase_subscriptions",
            "Read sets registered for invalidation",
            as_gauge(db.subscriptions().len()),
        )?;
        gauge(
            &mut encoder,
            "pulsebase_query_instances",
            "Shared query executions kept live for subscribed sessions",
            as_gauge(stats.instances),
        )?;
        let sizes = db.file_sizes();
        gauge(
            &mut encoder,
            "pulsebase_database_bytes",
            "Size of the SQLite database file",
            i64::try_from(sizes.database_bytes).unwrap_or(i64::MAX),
        )?;
        gauge(
            &mut encoder,
            "pulsebase_wal_bytes",
            "Size of the SQLite write-ahead log",
            i64::try_from(sizes.wal_bytes).unwrap_or(i64::MAX),
        )?;
        Ok(())
    }
}

pub(crate) async fn scrape(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    if !state.metrics_public
        && let Err(refused) = require_admin(&headers, &state).await
    {
        return refused;
    }
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ServerCollector(state)));
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry) {
        tracing::error!(error = %e, "encoding /metrics failed");
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "encoding the metrics failed; see the server log",
        );
    }
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE),
    );
    response
}
