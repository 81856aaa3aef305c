//! `mutations`: authenticated single-document mutations/s (`todos:addTodo`) from C = 1, 8,
//! 32 concurrent clients, each its own user, closed loop (the next mutation leaves when the
//! last is answered), over the WebSocket (`Mutation` → `MutationResponse` → covering
//! `Transition`) and over HTTP (`POST /api/mutation` with a bearer token, PocketBase's
//! "create" workload). Latency is send → response in the client, p50/p99.

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::{Ctx, field, num};
use crate::http::HttpConn;
use crate::proc::{CpuUse, Meter};
use crate::proto;
use crate::stats::{dist_ms, wall_ns};
use crate::ws::{self, OpenSpec, Session};

const PATH: &str = "todos:addTodo";
const REPLY_LIMIT: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(super) struct WorkerOut {
    /// send → MutationResponse (ws) or → full HTTP response, ns.
    pub response: Vec<i64>,
    /// send → the Transition covering the mutation's ts (ws only), ns.
    pub resolved: Vec<i64>,
    pub errors: Vec<String>,
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Value> {
    let o = &ctx.opts;
    let (server, minter) = ctx.start_server("mutations").await?;
    let max_c = o.mutation_clients.iter().copied().max().unwrap_or(1);
    let users: Vec<String> = (0..max_c).map(|i| format!("mut_user_{i}")).collect();
    let tokens = minter.for_users(&users, 3600)?;
    let mut rows = Vec::new();
    let mut metrics = Map::new();
    for transport in ["ws", "http"] {
        for &c in &o.mutation_clients {
            let row = cell(ctx, &server, &tokens, transport, c).await?;
            let lat = &row["latency_ms"];
            println!(
                "   {transport:<4} C={c:<3} {:>8.0} mutations/s  p50 {:>7.3} ms  p99 {:>7.3} ms  errors {}  server {:.2} cores  client {:.2} cores",
                row["per_s"].as_f64().unwrap_or(0.0),
                field(lat, "p50").unwrap_or(f64::NAN),
                field(lat, "p99").unwrap_or(f64::NAN),
                row["errors"],
                row["server_cpu_cores"].as_f64().unwrap_or(0.0),
                row["client_cpu_cores"].as_f64().unwrap_or(0.0),
            );
            let k = format!("{transport}.c{c}");
            metrics.insert(format!("{k}.per_s"), row["per_s"].clone());
            metrics.insert(format!("{k}.p50_ms"), num(field(lat, "p50"), 3));
            metrics.insert(format!("{k}.p99_ms"), num(field(lat, "p99"), 3));
            if transport == "ws" {
                let r = &row["resolved_ms"];
                metrics.insert(format!("{k}.resolved_p50_ms"), num(field(r, "p50"), 3));
                metrics.insert(format!("{k}.resolved_p99_ms"), num(field(r, "p99"), 3));
            }
            metrics.insert(format!("{k}.errors"), row["errors"].clone());
            metrics.insert(format!("{k}.server_cpu"), row["server_cpu_cores"].clone());
            metrics.insert(format!("{k}.client_cpu"), row["client_cpu_cores"].clone());
            rows.push(row);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    server.stop().await;
    Ok(json!({"rows": rows, "metrics": metrics}))
}

async fn cell(
    ctx: &Ctx,
    server: &crate::server::Server,
    tokens: &[String],
    transport: &str,
    c: usize,
) -> anyhow::Result<Value> {
    let o = &ctx.opts;
    let addr = server.addr;
    let t_start = Instant::now() + Duration::from_secs_f64(o.warmup_s);
    let t_end = t_start + Duration::from_secs_f64(o.mutation_s);
    let mut handles = Vec::new();
    if transport == "ws" {
        let ws::Opened { sessions, failures } =
            ws::open_many(addr, c, 64, Duration::from_secs(60), |i| OpenSpec {
                token: Some(tokens[i].as_str()),
                query: None,
            })
            .await;
        if let Some(f) = failures.first() {
            anyhow::bail!("{} of {c} sessions failed to open: {f}", failures.len());
        }
        let t_start = Instant::now() + Duration::from_secs_f64(o.warmup_s);
        let t_end = t_start + Duration::from_secs_f64(o.mutation_s);
        for (i, s) in sessions {
            handles.push(tokio::spawn(ws_worker(s, i, t_start, t_end)));
        }
        return finish(server.pid, handles, t_start, t_end, o.mutation_s, c).await;
    }
    for (i, token) in tokens.iter().take(c).enumerate() {
        let conn = HttpConn::connect(addr).await?;
        handles.push(tokio::spawn(http_worker(
            conn,
            token.clone(),
            i,
            t_start,
            t_end,
        )));
    }
    finish(server.pid, handles, t_start, t_end, o.mutation_s, c).await
}

async fn finish(
    pid: u32,
    handles: Vec<tokio::task::JoinHandle<WorkerOut>>,
    t_start: Instant,
    t_end: Instant,
    duration_s: f64,
    c: usize,
) -> anyhow::Result<Value> {
    tokio::time::sleep_until(t_start.into()).await;
    let meter = Meter::start(pid);
    tokio::time::sleep_until(t_end.into()).await;
    let CpuUse {
        server_cores: server_cpu,
        client_cores: client_cpu,
        ..
    } = meter.stop();
    let mut all = WorkerOut::default();
    let limit = tokio::time::Instant::now() + Duration::from_secs(30);
    for h in handles {
        if let Ok(Ok(w)) = tokio::time::timeout_at(limit, h).await {
            all.response.extend(w.response);
            all.resolved.extend(w.resolved);
            all.errors.extend(w.errors);
        } else {
            all.errors.push("a worker did not finish in time".into());
        }
    }
    let ok = all.response.len();
    Ok(json!({
        "clients": c,
        "duration_s": duration_s,
        "ok": ok,
        "per_s": crate::stats::round(ok as f64 / duration_s, 1),
        "latency_ms": dist_ms(&all.response),
        "resolved_ms": dist_ms(&all.resolved),
        "errors": all.errors.len(),
        "error_examples": all.errors.iter().take(3).collect::<Vec<_>>(),
        "server_cpu_cores": crate::stats::round(server_cpu, 2),
        "client_cpu_cores": crate::stats::round(client_cpu, 2),
    }))
}

/// Closed loop over one WebSocket session: Mutation, then wait for its MutationResponse and
/// the Transition that covers its ts (what `await client.mutation()` waits for).
pub(super) async fn ws_worker(
    mut s: Session,
    i: usize,
    t_start: Instant,
    t_end: Instant,
) -> WorkerOut {
    let mut out = WorkerOut::default();
    let mut n = 0u64;
    while Instant::now() < t_end {
        let measured = Instant::now() >= t_start;
        n += 1;
        let args = json!({"text": format!("m{i}-{n}")});
        match one_ws_mutation(&mut s, &args).await {
            Ok(Round { response, resolved }) => {
                if measured {
                    out.response.push(response);
                    out.resolved.push(resolved);
                }
            }
            Err(e) => {
                out.errors.push(format!("{e:#}"));
                break;
            }
        }
    }
    s.close().await;
    out
}

/// One mutation's latencies, in ns after its send: to its `MutationResponse`, and to the
/// Transition that covers its ts.
pub(super) struct Round {
    pub(super) response: i64,
    pub(super) resolved: i64,
}

pub(super) async fn one_ws_mutation(s: &mut Session, args: &Value) -> anyhow::Result<Round> {
    match tokio::time::timeout(REPLY_LIMIT, ws_mutation_round(s, args)).await {
        Ok(r) => r,
        Err(_) => anyhow::bail!("no covering Transition within {REPLY_LIMIT:?}"),
    }
}

async fn ws_mutation_round(s: &mut Session, args: &Value) -> anyhow::Result<Round> {
    let ws::SentMutation {
        request_id: rid,
        sent_ns: sent,
    } = s.mutation(PATH, args).await?;
    let mut committed: Option<(u64, u64)> = None; // (ts, response time)
    loop {
        let frame = s.next_frame_within(REPLY_LIMIT).await?;
        let msg = proto::parse(&frame.text)?;
        s.observe(&msg)?;
        match msg.kind.as_ref() {
            "MutationResponse" if msg.request_id == Some(rid) => {
                if msg.success != Some(true) {
                    anyhow::bail!("mutation failed: {}", msg.result.map_or("", |r| r.get()));
                }
                let ts = msg.ts.as_deref().and_then(proto::decode_ts).unwrap_or(0);
                committed = Some((ts, frame.app_ns));
            }
            "Transition" => {
                if let Some((ts, at)) = committed
                    && s.ts >= ts
                {
                    return Ok(Round {
                        response: (at - sent) as i64,
                        resolved: (frame.app_ns - sent) as i64,
                    });
                }
            }
            _ => {}
        }
    }
}

async fn http_worker(
    mut conn: HttpConn,
    token: String,
    i: usize,
    t_start: Instant,
    t_end: Instant,
) -> WorkerOut {
    let mut out = WorkerOut::default();
    let mut n = 0u64;
    while Instant::now() < t_end {
        let measured = Instant::now() >= t_start;
        n += 1;
        let body = json!({"path": PATH, "args": [{"text": format!("h{i}-{n}")}], "format": "convex_encoded_json"})
            .to_string();
        match conn
            .post("/api/mutation", Some(&token), body.as_bytes(), REPLY_LIMIT)
            .await
        {
            Ok(r) => {
                let done = wall_ns();
                let ok = r.status == 200
                    && memchr::memmem::find(&r.body, br#""status":"success""#).is_some();
                if !measured {
                    continue;
                }
                if ok {
                    out.response.push((done - r.sent_ns) as i64);
                } else {
                    out.errors.push(format!(
                        "HTTP {}: {}",
                        r.status,
                        String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
                    ));
                }
            }
            Err(e) => {
                out.errors.push(format!("{e:#}"));
                break;
            }
        }
    }
    out
}
