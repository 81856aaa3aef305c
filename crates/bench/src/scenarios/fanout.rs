//! `fanout`: S sessions (100, 1,000, 10,000, 19,000), all authenticated as one user and subscribed to
//! `bench:latestMine` (that user's 10 newest todos); one writer session, the same user,
//! adds todos open-loop at R/s (2/s, and 0.5/s at 10,000 and 19,000, as the PocketBase peer does at 10,000).
//! Push latency = the writer's `send()` of the Mutation → each subscriber's kernel receive
//! timestamp of the first Transition containing the new todo; p50/p99/max; delivered vs
//! expected.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use super::subscribers::{self, WatchSpec};
use super::{Ctx, field, num, rate_name};
use crate::opts::FanoutRow;
use crate::proc::{CpuUse, Meter};
use crate::server::Server;
use crate::ws::{self, OpenSpec};

pub const QUERY: &str = "bench:latestMine";

pub async fn run(ctx: &Ctx) -> anyhow::Result<Value> {
    let (server, minter) = ctx.start_server("fanout").await?;
    let token = minter.mint("fan_user", 7200, None)?;
    let mut rows = Vec::new();
    let mut metrics = Map::new();
    for FanoutRow {
        subscribers: s,
        rate,
    } in ctx.opts.fanout_rows()?
    {
        let row = fanout_row(ctx, &server, &token, s, rate).await?;
        let p = &row["push_ms"];
        println!(
            "   S={s:<6} rate={rate}/s  push p50 {:.1} p99 {:.1} max {:.1} ms (app p99 {:.1})  delivered {}/{}  call p50 {:.2} ms  server {:.2} client {:.2} cores  open {:.1} s",
            field(p, "p50").unwrap_or(f64::NAN),
            field(p, "p99").unwrap_or(f64::NAN),
            field(p, "max").unwrap_or(f64::NAN),
            field(&row["push_app_ms"], "p99").unwrap_or(f64::NAN),
            row["delivered"],
            row["expected"],
            field(&row["call_latency_ms"], "p50").unwrap_or(f64::NAN),
            row["server_cpu_cores"].as_f64().unwrap_or(0.0),
            row["client_cpu_cores"].as_f64().unwrap_or(0.0),
            row["open_s"].as_f64().unwrap_or(0.0),
        );
        let k = format!("s{s}.r{}", rate_name(rate));
        push_metrics(&k, &row, &mut metrics);
        rows.push(row);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    server.stop().await;
    Ok(json!({"rows": rows, "metrics": metrics}))
}

/// The metric names the PocketBase peer's `flat_metrics` uses, plus a few of ours.
pub fn push_metrics(k: &str, row: &Value, metrics: &mut Map<String, Value>) {
    for q in ["p50", "p99", "max"] {
        metrics.insert(
            format!("{k}.push_{q}_ms"),
            num(field(&row["push_ms"], q), 3),
        );
    }
    metrics.insert(
        format!("{k}.push_app_p99_ms"),
        num(field(&row["push_app_ms"], "p99"), 3),
    );
    for key in ["delivered", "expected", "lost", "duplicates"] {
        metrics.insert(format!("{k}.{key}"), row[key].clone());
    }
    metrics.insert(
        format!("{k}.create_p50_ms"),
        num(field(&row["call_latency_ms"], "p50"), 3),
    );
    metrics.insert(
        format!("{k}.create_p99_ms"),
        num(field(&row["call_latency_ms"], "p99"), 3),
    );
    metrics.insert(
        format!("{k}.achieved_rate"),
        row["achieved_rate_per_s"].clone(),
    );
    metrics.insert(format!("{k}.server_cpu"), row["server_cpu_cores"].clone());
    if let Some(us) = row.get("server_cpu_us_per_push") {
        metrics.insert(format!("{k}.server_cpu_us_per_push"), us.clone());
    }
    metrics.insert(format!("{k}.client_cpu"), row["client_cpu_cores"].clone());
    metrics.insert(format!("{k}.push_bytes"), row["push_bytes_mean"].clone());
    if row.get("leaks").is_some() {
        metrics.insert(format!("{k}.leaks"), row["leaks"].clone());
        metrics.insert(
            format!("{k}.push_from_schedule_p99_ms"),
            num(field(&row["push_from_schedule_ms"], "p99"), 3),
        );
        metrics.insert(format!("{k}.written"), json!(row["events_sent_ok"]));
        metrics.insert(format!("{k}.scheduled"), row["scheduled"].clone());
    }
}

async fn fanout_row(
    ctx: &Ctx,
    server: &Server,
    token: &str,
    s: usize,
    rate: f64,
) -> anyhow::Result<Value> {
    let o = &ctx.opts;
    let tag = subscribers::new_tag();
    let progress = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let t_open = std::time::Instant::now();
    let ws::Opened { sessions, failures } =
        ws::open_many(server.addr, s, 256, Duration::from_secs(120), |_| {
            OpenSpec {
                token: Some(token),
                query: Some((QUERY, json!({}))),
            }
        })
        .await;
    let open_s = t_open.elapsed().as_secs_f64();
    let subscribed = sessions.len();
    let spec = WatchSpec {
        tag: tag.clone(),
        own_user: None,
    };
    let handles: Vec<_> = sessions
        .into_iter()
        .map(|(i, sess)| {
            subscribers::spawn_subscriber(i, sess, spec.clone(), stop_rx.clone(), progress.clone())
        })
        .collect();
    let writer = ws::open(
        server.addr,
        &OpenSpec {
            token: Some(token),
            query: None,
        },
        Duration::from_secs(20),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let n = (rate * o.fanout_s).round() as usize;
    let meter = Meter::start(server.pid);
    let (w, writer) = subscribers::ws_writer(writer, n, rate, tag.clone(), o.fanout_s + 10.0).await;
    subscribers::drain(
        &progress,
        subscribed * w.sent.len(),
        Duration::from_secs_f64(o.drain_s),
    )
    .await;
    let CpuUse {
        server_cores: server_cpu,
        client_cores: client_cpu,
        wall_s: wall,
    } = meter.stop();
    let outs = subscribers::collect(&stop_tx, handles).await;
    writer.close().await;
    let disconnected = outs.iter().filter(|o| o.closed).count();
    let errors: Vec<&String> = outs.iter().flat_map(|o| o.errors.iter()).take(3).collect();
    let (pushes, bytes) = outs
        .iter()
        .fold((0, 0), |(p, b), o| (p + o.pushes, b + o.push_bytes));
    let receipts: Vec<_> = outs
        .iter()
        .flat_map(|o| o.receipts.iter().copied())
        .collect();
    let mut row = subscribers::summarize(&receipts, &w, subscribed);
    let extra = json!({
        "subscribers": s,
        "subscribed": subscribed,
        "subscribe_failures": failures.len(),
        "subscribe_failure_examples": failures.iter().take(3).collect::<Vec<_>>(),
        "disconnected_during_run": disconnected,
        "session_errors": errors,
        "open_s": crate::stats::round(open_s, 1),
        "rate_per_s": rate,
        "duration_s": o.fanout_s,
        "scheduled": n,
        "push_bytes_mean": if pushes > 0 { crate::stats::round(bytes as f64 / pushes as f64, 0) } else { 0.0 },
        "server_cpu_cores": crate::stats::round(server_cpu, 2),
        // The server's CPU per delivered push (the writes' own work included), a figure
        // less noisy than the latency for telling two builds apart.
        "server_cpu_us_per_push": if pushes > 0 { crate::stats::round(server_cpu * wall * 1e6 / pushes as f64, 2) } else { 0.0 },
        "client_cpu_cores": crate::stats::round(client_cpu, 2),
        "metered_s": crate::stats::round(wall, 1),
    });
    if let (Some(r), Some(e)) = (row.as_object_mut(), extra.as_object()) {
        r.extend(e.clone());
    }
    // Dropping the sessions closes their sockets.
    drop(outs);
    Ok(row)
}
