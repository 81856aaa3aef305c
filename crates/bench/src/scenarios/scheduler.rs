//! `scheduler`: scheduled functions. First C clients (closed loop, HTTP `POST /api/mutation`)
//! call `bench:scheduleNow`, which schedules `bench:scheduledNoop` with `runAfter(0)`, for S
//! seconds; throughput is the jobs executed per second, from the first call until no job is
//! pending. Then, with the server quiet, one client schedules N jobs one every 10 ms. For both
//! phases the delay from each job's `scheduledTime` to the start of its execution (its
//! `completedTime`, which a scheduled mutation's job gets when it starts) is read back from
//! `_scheduled_functions` through `bench:jobDelays`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::{Ctx, field, num};
use crate::http::HttpConn;
use crate::stats::{dist_of_ms, wall_ns};

const LIMIT: Duration = Duration::from_secs(30);

async fn call(conn: &mut HttpConn, kind: &str, path: &str, args: Value) -> anyhow::Result<Value> {
    let body = json!({"path": path, "args": [args], "format": "convex_encoded_json"}).to_string();
    let r = conn
        .post(&format!("/api/{kind}"), None, body.as_bytes(), LIMIT)
        .await?;
    let v: Value = serde_json::from_slice(&r.body)?;
    if v["status"] != "success" {
        anyhow::bail!("{path}: HTTP {} {v}", r.status);
    }
    Ok(v["value"].clone())
}

async fn worker(addr: SocketAddr, end: Instant) -> anyhow::Result<u64> {
    let mut conn = HttpConn::connect(addr).await?;
    let mut n = 0;
    while Instant::now() < end {
        call(&mut conn, "mutation", "bench:scheduleNow", json!({})).await?;
        n += 1;
    }
    Ok(n)
}

/// Waits until no job is pending (bounded); gives when that was seen.
async fn drained(conn: &mut HttpConn) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let none = call(conn, "query", "bench:nothingPending", json!({})).await?;
        if none == Value::Bool(true) {
            return Ok(Instant::now());
        }
        anyhow::ensure!(Instant::now() < deadline, "jobs still pending after 120 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn delays(conn: &mut HttpConn, since_ms: f64, limit: usize) -> anyhow::Result<Vec<f64>> {
    let v = call(
        conn,
        "query",
        "bench:jobDelays",
        json!({"since": since_ms, "limit": limit as f64}),
    )
    .await?;
    Ok(v.as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default())
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Value> {
    let o = &ctx.opts;
    let (server, _minter) = ctx.start_server("scheduler").await?;
    let mut conn = HttpConn::connect(server.addr).await?;

    // Saturated: C closed-loop clients.
    let since = wall_ns() as f64 / 1e6;
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(o.scheduler_s);
    let workers: Vec<_> = (0..o.scheduler_clients)
        .map(|_| tokio::spawn(worker(server.addr, end)))
        .collect();
    let mut scheduled = 0;
    for w in workers {
        scheduled += w.await??;
    }
    let done = drained(&mut conn).await?;
    let throughput = scheduled as f64 / (done - started).as_secs_f64();
    // The first 8,000 jobs (a function result holds at most 8,192 array elements).
    let mut busy = delays(&mut conn, since, 8_000).await?;
    let busy_dist = dist_of_ms(&mut busy);
    println!(
        "   {} clients: {scheduled} jobs in {:.2} s, {throughput:.0} jobs/s; delay p50 {:.2} ms p99 {:.2} ms",
        o.scheduler_clients,
        (done - started).as_secs_f64(),
        field(&busy_dist, "p50").unwrap_or(f64::NAN),
        field(&busy_dist, "p99").unwrap_or(f64::NAN)
    );

    // Quiet: one job every 10 ms.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let since = wall_ns() as f64 / 1e6;
    for _ in 0..o.scheduler_quiet_jobs {
        call(&mut conn, "mutation", "bench:scheduleNow", json!({})).await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drained(&mut conn).await?;
    let mut quiet = delays(&mut conn, since, o.scheduler_quiet_jobs * 2).await?;
    let quiet_dist = dist_of_ms(&mut quiet);
    println!(
        "   quiet: {} jobs, delay p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
        quiet.len(),
        field(&quiet_dist, "p50").unwrap_or(f64::NAN),
        field(&quiet_dist, "p99").unwrap_or(f64::NAN),
        field(&quiet_dist, "max").unwrap_or(f64::NAN)
    );
    server.stop().await;

    let mut metrics = Map::new();
    metrics.insert("jobs_per_s".into(), num(Some(throughput), 0));
    metrics.insert("busy.delay_p50_ms".into(), num(field(&busy_dist, "p50"), 2));
    metrics.insert("busy.delay_p99_ms".into(), num(field(&busy_dist, "p99"), 2));
    metrics.insert(
        "quiet.delay_p50_ms".into(),
        num(field(&quiet_dist, "p50"), 2),
    );
    metrics.insert(
        "quiet.delay_p99_ms".into(),
        num(field(&quiet_dist, "p99"), 2),
    );
    metrics.insert(
        "quiet.delay_max_ms".into(),
        num(field(&quiet_dist, "max"), 2),
    );
    Ok(json!({
        "clients": o.scheduler_clients,
        "scheduled": scheduled,
        "busy": busy_dist,
        "quiet": quiet_dist,
        "metrics": metrics,
    }))
}
