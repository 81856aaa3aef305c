//! `per-user`: U = 1,000 sessions, each authenticated as its own user and subscribed to
//! `todos:getMyTodos`; a writer adds todos round-robin across the users at R/s (5, 10, 500),
//! each by its owner (`POST /api/mutation` with the owner's token over a pool of 64
//! keep-alive connections, open loop — PocketBase's workload). Push latency, loss, and
//! leaks (a session seeing a todo whose `userId` is not its own user).

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use super::fanout::push_metrics;
use super::subscribers::{self, WatchSpec};
use super::{Ctx, field, rate_name};
use crate::proc::{CpuUse, Meter};
use crate::server::Server;
use crate::ws::{self, OpenSpec};

pub async fn run(ctx: &Ctx) -> anyhow::Result<Value> {
    let o = &ctx.opts;
    let (server, minter) = ctx.start_server("per-user").await?;
    let users: Vec<String> = (0..o.peruser_users)
        .map(|i| format!("pu_user_{i}"))
        .collect();
    let tokens = Arc::new(minter.for_users(&users, 7200)?);
    let mut rows = Vec::new();
    let mut metrics = Map::new();
    for &rate in &o.peruser_rates {
        let row = rate_row(ctx, &server, &users, &tokens, rate).await?;
        let p = &row["push_ms"];
        println!(
            "   U={} rate={rate}/s achieved {}  push p50 {:.1} p99 {:.1} max {:.1} ms  delivered {}/{}  leaks {}  call p50 {:.2} p99 {:.2} ms  server {:.2} client {:.2} cores",
            o.peruser_users,
            row["achieved_rate_per_s"],
            field(p, "p50").unwrap_or(f64::NAN),
            field(p, "p99").unwrap_or(f64::NAN),
            field(p, "max").unwrap_or(f64::NAN),
            row["delivered"],
            row["expected"],
            row["leaks"],
            field(&row["call_latency_ms"], "p50").unwrap_or(f64::NAN),
            field(&row["call_latency_ms"], "p99").unwrap_or(f64::NAN),
            row["server_cpu_cores"].as_f64().unwrap_or(0.0),
            row["client_cpu_cores"].as_f64().unwrap_or(0.0),
        );
        let k = format!("s{}.r{}", o.peruser_users, rate_name(rate));
        push_metrics(&k, &row, &mut metrics);
        rows.push(row);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    server.stop().await;
    Ok(json!({"rows": rows, "metrics": metrics}))
}

async fn rate_row(
    ctx: &Ctx,
    server: &Server,
    users: &[String],
    tokens: &Arc<Vec<String>>,
    rate: f64,
) -> anyhow::Result<Value> {
    let o = &ctx.opts;
    let u = users.len();
    let tag = subscribers::new_tag();
    let progress = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let t_open = std::time::Instant::now();
    let ws::Opened { sessions, failures } =
        ws::open_many(server.addr, u, 128, Duration::from_secs(120), |i| {
            OpenSpec {
                token: Some(tokens[i].as_str()),
                query: Some(("todos:getMyTodos", json!({}))),
            }
        })
        .await;
    let open_s = t_open.elapsed().as_secs_f64();
    let subscribed = sessions.len();
    let handles: Vec<_> = sessions
        .into_iter()
        .map(|(i, sess)| {
            let spec = WatchSpec {
                tag: tag.clone(),
                own_user: Some(users[i].as_str().into()),
            };
            subscribers::spawn_subscriber(i, sess, spec, stop_rx.clone(), progress.clone())
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let n = (rate * o.peruser_s).round() as usize;
    let meter = Meter::start(server.pid);
    let w = subscribers::http_writer(
        server.addr,
        o.writer_conns,
        n,
        rate,
        tag.clone(),
        tokens.clone(),
        o.peruser_s + 10.0,
    )
    .await?;
    subscribers::drain(&progress, w.sent.len(), Duration::from_secs_f64(o.drain_s)).await;
    let CpuUse {
        server_cores: server_cpu,
        client_cores: client_cpu,
        wall_s: wall,
    } = meter.stop();
    let outs = subscribers::collect(&stop_tx, handles).await;
    let leaks: usize = outs.iter().map(|o| o.leaks).sum();
    let disconnected = outs.iter().filter(|o| o.closed).count();
    let errors: Vec<&String> = outs.iter().flat_map(|o| o.errors.iter()).take(3).collect();
    let (pushes, bytes) = outs
        .iter()
        .fold((0, 0), |(p, b), o| (p + o.pushes, b + o.push_bytes));
    let receipts: Vec<_> = outs
        .iter()
        .flat_map(|o| o.receipts.iter().copied())
        .collect();
    // Receipts of a todo by a session that does not own it are leaks too (the owner of
    // seq is users[seq % U]).
    let wrong_owner = receipts
        .iter()
        .filter(|r| r.seq as usize % u != r.sub as usize)
        .count();
    let mut row = subscribers::summarize(&receipts, &w, 1);
    let extra = json!({
        "subscribers": u,
        "subscribed": subscribed,
        "subscribe_failures": failures.len(),
        "subscribe_failure_examples": failures.iter().take(3).collect::<Vec<_>>(),
        "disconnected_during_run": disconnected,
        "session_errors": errors,
        "leaks": leaks + wrong_owner,
        "open_s": crate::stats::round(open_s, 1),
        "rate_per_s": rate,
        "duration_s": o.peruser_s,
        "writer_conns": o.writer_conns,
        "scheduled": n,
        "push_bytes_mean": if pushes > 0 { crate::stats::round(bytes as f64 / pushes as f64, 0) } else { 0.0 },
        "server_cpu_cores": crate::stats::round(server_cpu, 2),
        "client_cpu_cores": crate::stats::round(client_cpu, 2),
        "metered_s": crate::stats::round(wall, 1),
    });
    if let (Some(r), Some(e)) = (row.as_object_mut(), extra.as_object()) {
        r.extend(e.clone());
    }
    Ok(row)
}
