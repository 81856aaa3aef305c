//! `refresh`: N = 10,000 sessions, each its own user subscribed to `todos:getMyTodos`,
//! re-send a fresh token (`Authenticate` with `baseVersion` = the identity version last
//! received, a distinct `jti` so it is a token-cache miss) every 10 s, spread evenly. Measured
//! against a baseline window without refreshes: the server's CPU (utime+stime from /proc),
//! the refresh round trip (Authenticate → the Transition bumping the identity), and the push
//! latency seen by a concurrent writer (a session adding todos at 10/s and watching its own
//! `bench:latestMine`).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Ctx, field, num};
use crate::proc::{CpuUse, Meter};
use crate::proto;
use crate::stats::dist_ms;
use crate::ws::{self, OpenSpec, Session};

#[derive(Default)]
struct RefreshOut {
    acks: Vec<i64>,
    errors: Vec<String>,
    sent: usize,
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Value> {
    let o = &ctx.opts;
    let (server, minter) = ctx.start_server("refresh").await?;
    let n = o.refresh_sessions;
    let rounds = (o.refresh_s / o.refresh_interval_s).ceil().max(1.0) as usize;
    let users: Vec<String> = (0..n).map(|i| format!("rf_user_{i}")).collect();
    let t_mint = std::time::Instant::now();
    let initial = minter.for_users(&users, 7200)?;
    let items: Vec<(String, Option<u64>)> = (0..rounds)
        .flat_map(|r| {
            users
                .iter()
                .enumerate()
                .map(move |(i, u)| (u.clone(), Some((r * n + i) as u64)))
        })
        .collect();
    let fresh = minter.mint_many(&items, 7200, 2)?;
    let mint_s = t_mint.elapsed().as_secs_f64();
    println!(
        "   minted {} tokens in {mint_s:.1} s (client side)",
        initial.len() + fresh.len()
    );

    let t_open = std::time::Instant::now();
    let ws::Opened { sessions, failures } =
        ws::open_many(server.addr, n, 256, Duration::from_secs(300), |i| {
            OpenSpec {
                token: Some(initial[i].as_str()),
                query: Some(("todos:getMyTodos", json!({}))),
            }
        })
        .await;
    let open_s = t_open.elapsed().as_secs_f64();
    let opened = sessions.len();
    let writer_token = minter.mint("rf_writer", 7200, None)?;
    let writer = ws::open(
        server.addr,
        &OpenSpec {
            token: Some(&writer_token),
            query: Some((super::fanout::QUERY, json!({}))),
        },
        Duration::from_secs(20),
    )
    .await?;

    // Phase B (refresh) starts after the baseline window; every session knows its slots.
    let settle = Duration::from_secs(1);
    let window = Duration::from_secs_f64(o.refresh_s);
    let b_start = Instant::now() + settle + window + Duration::from_millis(500);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut handles = Vec::with_capacity(opened);
    for (i, s) in sessions {
        let slots: Vec<(Instant, String)> = (0..rounds)
            .filter_map(|r| {
                let offset = o.refresh_interval_s * (r as f64 + i as f64 / n as f64);
                (offset < o.refresh_s).then(|| {
                    (
                        b_start + Duration::from_secs_f64(offset),
                        fresh[r * n + i].clone(),
                    )
                })
            })
            .collect();
        handles.push(tokio::spawn(refresh_task(s, slots, stop_rx.clone())));
    }

    tokio::time::sleep(settle).await;
    let meter_a = Meter::start(server.pid);
    let (writer, lat_a) = watch_writer(writer, o.refresh_writer_rate, o.refresh_s).await;
    let CpuUse {
        server_cores: cpu_a,
        client_cores: client_a,
        ..
    } = meter_a.stop();
    tokio::time::sleep_until(b_start).await;
    let meter_b = Meter::start(server.pid);
    let (writer, lat_b) = watch_writer(writer, o.refresh_writer_rate, o.refresh_s).await;
    // Let the last slots of the window fire before stopping.
    tokio::time::sleep_until(b_start + window + Duration::from_millis(500)).await;
    let CpuUse {
        server_cores: cpu_b,
        client_cores: client_b,
        wall_s: wall_b,
    } = meter_b.stop();
    writer.close().await;
    let _ = stop_tx.send(true);
    let mut all = RefreshOut::default();
    let limit = Instant::now() + Duration::from_secs(30);
    for h in handles {
        if let Ok(Ok(r)) = tokio::time::timeout_at(limit, h).await {
            all.acks.extend(r.acks);
            all.errors.extend(r.errors);
            all.sent += r.sent;
        }
    }
    let refreshes_per_s = all.acks.len() as f64 / wall_b;
    let cpu_per_refresh_us = if all.acks.is_empty() {
        None
    } else {
        Some((cpu_b - cpu_a) * wall_b / all.acks.len() as f64 * 1e6)
    };
    let ack = dist_ms(&all.acks);
    let (la, lb) = (dist_ms(&lat_a.latencies_ns), dist_ms(&lat_b.latencies_ns));
    println!(
        "   {opened} sessions (open {open_s:.1} s): {} refreshes sent, {} acknowledged ({refreshes_per_s:.0}/s), errors {}",
        all.sent,
        all.acks.len(),
        all.errors.len()
    );
    println!(
        "   server CPU: baseline {cpu_a:.2} cores, refreshing {cpu_b:.2} cores ({} µs per refresh); refresh ack p50 {:.2} p99 {:.2} ms",
        cpu_per_refresh_us.map_or("-".into(), |v| format!("{v:.0}")),
        field(&ack, "p50").unwrap_or(f64::NAN),
        field(&ack, "p99").unwrap_or(f64::NAN),
    );
    println!(
        "   writer push latency: baseline p50 {:.2} p99 {:.2} max {:.2} ms; refreshing p50 {:.2} p99 {:.2} max {:.2} ms",
        field(&la, "p50").unwrap_or(f64::NAN),
        field(&la, "p99").unwrap_or(f64::NAN),
        field(&la, "max").unwrap_or(f64::NAN),
        field(&lb, "p50").unwrap_or(f64::NAN),
        field(&lb, "p99").unwrap_or(f64::NAN),
        field(&lb, "max").unwrap_or(f64::NAN),
    );
    let mut metrics = Map::new();
    metrics.insert("sessions".into(), json!(opened));
    metrics.insert("refreshes".into(), json!(all.acks.len()));
    metrics.insert("refresh_errors".into(), json!(all.errors.len()));
    metrics.insert("refreshes_per_s".into(), num(Some(refreshes_per_s), 0));
    metrics.insert("server_cpu_baseline".into(), num(Some(cpu_a), 3));
    metrics.insert("server_cpu_refreshing".into(), num(Some(cpu_b), 3));
    metrics.insert("cpu_us_per_refresh".into(), num(cpu_per_refresh_us, 0));
    metrics.insert("ack_p50_ms".into(), num(field(&ack, "p50"), 3));
    metrics.insert("ack_p99_ms".into(), num(field(&ack, "p99"), 3));
    for (name, d) in [("baseline", &la), ("refreshing", &lb)] {
        for q in ["p50", "p99", "max"] {
            metrics.insert(format!("writer_{name}.push_{q}_ms"), num(field(d, q), 3));
        }
    }
    metrics.insert("writer_lost".into(), json!(lat_a.lost + lat_b.lost));
    let out = json!({
        "sessions": n,
        "opened": opened,
        "open_failures": failures.len(),
        "open_failure_examples": failures.iter().take(3).collect::<Vec<_>>(),
        "open_s": crate::stats::round(open_s, 1),
        "mint_s": crate::stats::round(mint_s, 1),
        "interval_s": o.refresh_interval_s,
        "window_s": o.refresh_s,
        "refreshes_sent": all.sent,
        "refresh_acks": all.acks.len(),
        "refresh_error_examples": all.errors.iter().take(3).collect::<Vec<_>>(),
        "refresh_ack_ms": ack,
        "server_cpu_cores": {"baseline": crate::stats::round(cpu_a, 3), "refreshing": crate::stats::round(cpu_b, 3)},
        "client_cpu_cores": {"baseline": crate::stats::round(client_a, 3), "refreshing": crate::stats::round(client_b, 3)},
        "writer_push_ms": {"baseline": la, "refreshing": lb},
        "metrics": metrics,
    });
    server.stop().await;
    Ok(out)
}

/// Reads the session's frames; at each slot sends `Authenticate` with the fresh token and
/// times the Transition that moves the identity version past it.
async fn refresh_task(
    mut s: Session,
    slots: Vec<(Instant, String)>,
    mut stop: watch::Receiver<bool>,
) -> RefreshOut {
    let mut out = RefreshOut::default();
    let mut slots = slots.into_iter().peekable();
    let mut waiting: Option<(u32, u64)> = None; // (identity before, send time)
    let far = Instant::now() + Duration::from_secs(3600);
    loop {
        let next_at = slots.peek().map_or(far, |(at, _)| *at);
        tokio::select! {
            () = tokio::time::sleep_until(next_at), if waiting.is_none() && slots.peek().is_some() => {
                if let Some((_, token)) = slots.next() {
                    let base = s.identity;
                    match s.authenticate(&token).await {
                        Ok(t) => {
                            out.sent += 1;
                            waiting = Some((base, t));
                        }
                        Err(e) => {
                            out.errors.push(format!("{e:#}"));
                            break;
                        }
                    }
                }
            }
            frame = s.next_frame() => {
                let frame = match frame {
                    Ok(Some(f)) => f,
                    Ok(None) => { out.errors.push("socket closed".into()); break; }
                    Err(e) => { out.errors.push(format!("{e:#}")); break; }
                };
                let Ok(msg) = proto::parse(&frame.text) else { continue };
                if let Err(e) = s.observe(&msg) {
                    out.errors.push(format!("{e:#}"));
                    break;
                }
                if let Some((base, t)) = waiting
                    && s.identity > base
                {
                    out.acks.push((frame.rx_ns.max(t) - t) as i64);
                    waiting = None;
                }
            }
            _ = stop.changed() => break,
        }
    }
    out
}

/// Adds todos at `rate` for `secs` on `s` (open loop) and times each one's arrival in the
/// session's own subscription. Returns the session, latencies (ns) and how many never came.
/// What [`watch_writer`] measured.
struct Watched {
    /// Push latency of each todo that arrived, in ns.
    latencies_ns: Vec<i64>,
    /// Todos written whose push never arrived.
    lost: usize,
}

async fn watch_writer(mut s: Session, rate: f64, secs: f64) -> (Session, Watched) {
    let tag = super::subscribers::new_tag();
    let n = (rate * secs).round() as usize;
    let t0 = Instant::now() + Duration::from_millis(20);
    let end = t0 + Duration::from_secs_f64(secs) + Duration::from_secs(5);
    let mut sent: HashMap<usize, u64> = HashMap::new();
    let mut lat = Vec::new();
    let mut seq = 0;
    loop {
        let next_at = t0 + Duration::from_secs_f64(seq as f64 / rate);
        tokio::select! {
            () = tokio::time::sleep_until(next_at), if seq < n => {
                let args = json!({"text": format!("{tag}:{seq}")});
                if let Ok(ws::SentMutation { sent_ns: t, .. }) =
                    s.mutation("todos:addTodo", &args).await
                {
                    sent.insert(seq, t);
                }
                seq += 1;
            }
            frame = s.next_frame() => {
                let Ok(Some(frame)) = frame else { break };
                let Ok(msg) = proto::parse(&frame.text) else { continue };
                let _ = s.observe(&msg);
                if let Some(raw) = msg.modifications.map(|r| r.get()) {
                    for k in proto::tagged_seqs(raw, &tag) {
                        if let Some(t) = sent.remove(&k) {
                            lat.push((frame.rx_ns.max(t) - t) as i64);
                        }
                    }
                }
            }
            () = tokio::time::sleep_until(end) => break,
        }
        if seq >= n && sent.is_empty() {
            break;
        }
    }
    let lost = sent.len();
    (
        s,
        Watched {
            latencies_ns: lat,
            lost,
        },
    )
}
