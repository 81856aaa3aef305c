//! `actions`: what 1,000 slow actions in flight cost everything else. W writers (each its own
//! user, closed loop, `todos:addTodo` over the WebSocket, latency to the `MutationResponse`
//! and to the covering Transition) are measured twice in one server run: quiet, then while N
//! actions (`bench:slowFetch`, sent as `Action` frames from a few sessions) each wait on a
//! local endpoint that accepts the request and never answers. Also the server's RSS and
//! thread count in both states. The endpoint lives in this process on 127.0.0.1 and is
//! closed at the end, which fails every waiting fetch so the actions finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::mutations::{WorkerOut, ws_worker};
use super::{Ctx, field, num};
use crate::proc;
use crate::proto;
use crate::stats::dist_ms;
use crate::ws::{self, OpenSpec, Session};

/// Sessions that send the actions (N / SENDERS actions each).
const SENDERS: usize = 10;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Value> {
    let o = &ctx.opts;
    let (server, minter) = ctx.start_server("actions").await?;
    let users: Vec<String> = (0..o.actions_writers)
        .map(|i| format!("act_user_{i}"))
        .collect();
    let tokens = minter.for_users(&users, 3600)?;
    let endpoint = SlowEndpoint::start().await?;

    let quiet = measure(server.addr, &tokens, o.warmup_s, o.actions_s).await?;
    let quiet_rss = proc::rss_kib(server.pid).unwrap_or(0);
    let quiet_threads = proc::status_field(server.pid, "Threads").unwrap_or(0);
    report("without actions", &quiet);

    let (stop_tx, stop_rx) = watch::channel(false);
    let answered = Arc::new(AtomicUsize::new(0));
    let n = o.actions_inflight;
    let url = format!("http://{}/slow", endpoint.addr);
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let count = n / SENDERS + usize::from(s < n % SENDERS);
        let session = ws::open(
            server.addr,
            &OpenSpec {
                token: None,
                query: None,
            },
            Duration::from_secs(20),
        )
        .await?;
        senders.push(tokio::spawn(send_actions(
            session,
            count,
            url.clone(),
            answered.clone(),
            stop_rx.clone(),
        )));
    }
    let started = Instant::now();
    let mut in_flight = 0;
    while started.elapsed() < Duration::from_secs(60) {
        in_flight = actions_in_flight(server.addr).await.unwrap_or(0);
        if in_flight >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "   {in_flight} actions in flight after {:.1} s, {} waiting at the endpoint",
        started.elapsed().as_secs_f64(),
        endpoint.held.load(Ordering::SeqCst)
    );
    let busy = measure(server.addr, &tokens, o.warmup_s, o.actions_s).await?;
    let busy_rss = proc::rss_kib(server.pid).unwrap_or(0);
    let busy_threads = proc::status_field(server.pid, "Threads").unwrap_or(0);
    let still = actions_in_flight(server.addr).await.unwrap_or(0);
    report(&format!("with {still} actions in flight"), &busy);
    let early_answers = answered.load(Ordering::SeqCst);

    // Closing the endpoint fails every waiting fetch; the actions then answer.
    endpoint.stop();
    let drained = Instant::now();
    while drained.elapsed() < Duration::from_secs(30)
        && actions_in_flight(server.addr).await.unwrap_or(0) > 0
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain_s = drained.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    for s in senders {
        let _ = tokio::time::timeout(Duration::from_secs(5), s).await;
    }
    server.stop().await;

    let mut metrics = Map::new();
    for (label, out) in [("quiet", &quiet), ("busy", &busy)] {
        let lat = dist_ms(&out.response);
        let resolved = dist_ms(&out.resolved);
        metrics.insert(format!("{label}.p50_ms"), num(field(&lat, "p50"), 3));
        metrics.insert(format!("{label}.p99_ms"), num(field(&lat, "p99"), 3));
        metrics.insert(
            format!("{label}.resolved_p50_ms"),
            num(field(&resolved, "p50"), 3),
        );
        metrics.insert(
            format!("{label}.resolved_p99_ms"),
            num(field(&resolved, "p99"), 3),
        );
        metrics.insert(format!("{label}.errors"), Value::from(out.errors.len()));
    }
    metrics.insert("in_flight".into(), Value::from(still));
    metrics.insert(
        "quiet.rss_mib".into(),
        num(Some(quiet_rss as f64 / 1024.0), 1),
    );
    metrics.insert(
        "busy.rss_mib".into(),
        num(Some(busy_rss as f64 / 1024.0), 1),
    );
    metrics.insert("quiet.threads".into(), Value::from(quiet_threads));
    metrics.insert("busy.threads".into(), Value::from(busy_threads));
    metrics.insert("answered_early".into(), Value::from(early_answers));
    metrics.insert("drain_s".into(), num(Some(drain_s), 2));
    Ok(json!({
        "actions": n,
        "writers": o.actions_writers,
        "quiet": {"latency_ms": dist_ms(&quiet.response), "resolved_ms": dist_ms(&quiet.resolved), "errors": quiet.errors.iter().take(3).collect::<Vec<_>>()},
        "busy": {"latency_ms": dist_ms(&busy.response), "resolved_ms": dist_ms(&busy.resolved), "errors": busy.errors.iter().take(3).collect::<Vec<_>>()},
        "metrics": metrics,
    }))
}

fn report(label: &str, out: &WorkerOut) {
    let lat = dist_ms(&out.response);
    let resolved = dist_ms(&out.resolved);
    println!(
        "   {label:<28} {:>6} mutations  p50 {:>7.3} ms  p99 {:>7.3} ms  (resolved p50 {:.3} / p99 {:.3} ms)  errors {}",
        out.response.len(),
        field(&lat, "p50").unwrap_or(f64::NAN),
        field(&lat, "p99").unwrap_or(f64::NAN),
        field(&resolved, "p50").unwrap_or(f64::NAN),
        field(&resolved, "p99").unwrap_or(f64::NAN),
        out.errors.len()
    );
}

/// W closed-loop writers for `seconds` after `warmup` seconds; their latencies together.
async fn measure(
    addr: SocketAddr,
    tokens: &[String],
    warmup: f64,
    seconds: f64,
) -> anyhow::Result<WorkerOut> {
    let ws::Opened { sessions, failures } =
        ws::open_many(addr, tokens.len(), 16, Duration::from_secs(60), |i| {
            OpenSpec {
                token: Some(tokens[i].as_str()),
                query: None,
            }
        })
        .await;
    if let Some(f) = failures.first() {
        anyhow::bail!("{} writer sessions failed to open: {f}", failures.len());
    }
    let t_start = Instant::now() + Duration::from_secs_f64(warmup);
    let t_end = t_start + Duration::from_secs_f64(seconds);
    let handles: Vec<_> = sessions
        .into_iter()
        .map(|(i, s)| tokio::spawn(ws_worker(s, i, t_start, t_end)))
        .collect();
    let mut all = WorkerOut::default();
    for h in handles {
        match tokio::time::timeout(Duration::from_secs_f64(warmup + seconds + 30.0), h).await {
            Ok(Ok(w)) => {
                all.response.extend(w.response);
                all.resolved.extend(w.resolved);
                all.errors.extend(w.errors);
            }
            _ => all.errors.push("a writer did not finish in time".into()),
        }
    }
    Ok(all)
}

/// Sends `count` slow actions on `session`, then reads (and counts) their answers until told
/// to stop.
async fn send_actions(
    mut session: Session,
    count: usize,
    url: String,
    answered: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) {
    for i in 0..count {
        let frame = proto::action(i as u64, "bench:slowFetch", &json!({ "url": url }));
        if session.send(frame).await.is_err() {
            return;
        }
    }
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            frame = session.next_frame() => match frame {
                Ok(Some(frame)) if frame.text.contains("\"ActionResponse\"") => {
                    answered.fetch_add(1, Ordering::SeqCst);
                }
                Ok(Some(_)) => {}
                _ => break,
            },
        }
    }
    session.close().await;
}

/// `actionsInFlight` from the server's `/api/health`.
async fn actions_in_flight(addr: SocketAddr) -> anyhow::Result<usize> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /api/health HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n")
        .await?;
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut text)).await??;
    let body = text.split("\r\n\r\n").nth(1).context("no body")?;
    let json: Value = serde_json::from_str(body)?;
    Ok(json["actionsInFlight"].as_u64().unwrap_or(0) as usize)
}

/// A local endpoint that accepts connections, reads what arrives, and never answers.
struct SlowEndpoint {
    addr: SocketAddr,
    held: Arc<AtomicUsize>,
    stop: watch::Sender<bool>,
}

impl SlowEndpoint {
    async fn start() -> anyhow::Result<SlowEndpoint> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let held = Arc::new(AtomicUsize::new(0));
        let (stop, stop_rx) = watch::channel(false);
        let count = held.clone();
        tokio::spawn(async move {
            let mut stop_accept = stop_rx.clone();
            loop {
                tokio::select! {
                    _ = stop_accept.changed() => break,
                    accepted = listener.accept() => {
                        let Ok((mut socket, _)) = accepted else { continue };
                        count.fetch_add(1, Ordering::SeqCst);
                        let mut stop_conn = stop_rx.clone();
                        tokio::spawn(async move {
                            let mut buf = [0u8; 4096];
                            loop {
                                tokio::select! {
                                    _ = stop_conn.changed() => break,
                                    read = socket.read(&mut buf) => match read {
                                        Ok(0) | Err(_) => break,
                                        Ok(_) => {}
                                    },
                                }
                            }
                        });
                    }
                }
            }
        });
        Ok(SlowEndpoint { addr, held, stop })
    }

    /// Closes the listener and every held connection.
    fn stop(&self) {
        let _ = self.stop.send(true);
    }
}
