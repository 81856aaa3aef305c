//! `soak`: a storm of generated frames against a running server while a real client keeps
//! working. Bounded by `--soak-frames` (1,000,000) and `--soak-s` seconds, whichever comes
//! first. The storm, from one address (the bench's rate limits are out of reach):
//!
//! - WebSocket connections sending, after `Connect`, runs of well-formed messages with junk
//!   values (mutations of junk paths with junk arguments, events), each run ended by one
//!   corrupted (bytes flipped), truncated or random-bytes frame, which ends the session as a
//!   protocol violation; the connection then starts over;
//! - keep-alive HTTP connections posting junk, corrupted and truncated function calls;
//! - raw TCP connections sending random bytes.
//!
//! Meanwhile one authenticated, subscribed WebSocket client runs closed-loop mutations and
//! records each one's latency to its `MutationResponse`; the same client's latency over a
//! quiet spell before the storm is the baseline. Reported: frames sent, server crashes (it
//! must still be running, with no panic in its log: 0), its RSS before and after (after a
//! settle), and the client's latency before and during the storm.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use super::mutations::{Round, one_ws_mutation};
use super::{Ctx, field, num};
use crate::http::HttpConn;
use crate::proc;
use crate::stats::dist_ms;
use crate::ws::{self, OpenSpec};

/// Well-formed frames a WebSocket run sends before its bad one.
const RUN: usize = 200;
/// Seconds of quiet client latency measured before the storm.
const BASELINE: Duration = Duration::from_secs(3);
/// Pause after the storm before the second RSS sample.
const SETTLE: Duration = Duration::from_secs(5);

pub async fn run(ctx: &Ctx) -> anyhow::Result<Value> {
    let o = &ctx.opts;
    let (server, minter) = ctx.start_server("soak").await?;
    let token = minter.mint("soak_user", 7200, None)?;
    let spec = OpenSpec {
        token: Some(&token),
        query: Some(("todos:getMyTodos", json!({}))),
    };
    let mut client = ws::open(server.addr, &spec, Duration::from_secs(20)).await?;
    let quiet = client_loop(&mut client, "quiet", None, Instant::now() + BASELINE).await;
    let rss_before = proc::rss_kib(server.pid);

    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut storm = Vec::new();
    for i in 0..o.soak_conns.max(3) {
        let (sent, stop, addr) = (sent.clone(), stop.clone(), server.addr);
        let seed = 0x5eed_0000 + i as u64;
        storm.push(match i % 6 {
            0 => tokio::spawn(http_storm(addr, sent, stop, seed)),
            5 => tokio::spawn(tcp_storm(addr, sent, stop, seed)),
            _ => tokio::spawn(ws_storm(addr, sent, stop, seed)),
        });
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(o.soak_s);
    let watcher = {
        let (sent, stop, target) = (sent.clone(), stop.clone(), o.soak_frames);
        tokio::spawn(async move {
            while Instant::now() < deadline && sent.load(Ordering::Relaxed) < target {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            stop.store(true, Ordering::Relaxed);
        })
    };
    let during = client_loop(
        &mut client,
        "storm",
        Some(&stop),
        deadline + Duration::from_secs(1),
    )
    .await;
    let _ = watcher.await;
    for s in storm {
        let _ = tokio::time::timeout(Duration::from_secs(10), s).await;
    }
    let storm_s = started.elapsed().as_secs_f64();
    let frames = sent.load(Ordering::Relaxed);
    tokio::time::sleep(SETTLE).await;
    let rss_after = proc::rss_kib(server.pid);
    let after = client_loop(
        &mut client,
        "after",
        None,
        Instant::now() + Duration::from_secs(1),
    )
    .await;
    let panics = server.lines_matching(&["panicked"]).len();
    let alive = rss_after.is_some() && after.ok > 0;
    let crashes = usize::from(!alive) + panics;
    client.close().await;
    server.stop().await;

    let mib = |k: Option<u64>| k.map(|k| k as f64 / 1024.0);
    let q = dist_ms(&quiet.latencies);
    let d = dist_ms(&during.latencies);
    println!(
        "   {frames} frames in {storm_s:.1} s ({:.0}/s); crashes {crashes}; RSS {:.1} → {:.1} MiB; client p50/p99 quiet {:.2}/{:.2} ms, during the storm {:.2}/{:.2} ms ({} ok, {} errors)",
        frames as f64 / storm_s,
        mib(rss_before).unwrap_or(f64::NAN),
        mib(rss_after).unwrap_or(f64::NAN),
        field(&q, "p50").unwrap_or(f64::NAN),
        field(&q, "p99").unwrap_or(f64::NAN),
        field(&d, "p50").unwrap_or(f64::NAN),
        field(&d, "p99").unwrap_or(f64::NAN),
        during.ok,
        during.errors.len(),
    );
    let mut metrics = Map::new();
    metrics.insert("frames".into(), json!(frames));
    metrics.insert("frames_per_s".into(), num(Some(frames as f64 / storm_s), 0));
    metrics.insert("crashes".into(), json!(crashes));
    metrics.insert("rss_before_mib".into(), num(mib(rss_before), 1));
    metrics.insert("rss_after_mib".into(), num(mib(rss_after), 1));
    metrics.insert("client_quiet_p50_ms".into(), num(field(&q, "p50"), 3));
    metrics.insert("client_quiet_p99_ms".into(), num(field(&q, "p99"), 3));
    metrics.insert("client_storm_p50_ms".into(), num(field(&d, "p50"), 3));
    metrics.insert("client_storm_p99_ms".into(), num(field(&d, "p99"), 3));
    metrics.insert("client_storm_errors".into(), json!(during.errors.len()));
    Ok(json!({
        "frames": frames,
        "storm_s": storm_s,
        "crashes": crashes,
        "panics": panics,
        "client_quiet_ms": q,
        "client_storm_ms": d,
        "client_storm_ok": during.ok,
        "client_errors": during.errors.iter().take(5).collect::<Vec<_>>(),
        "metrics": metrics,
    }))
}

struct ClientRun {
    latencies: Vec<i64>,
    ok: usize,
    errors: Vec<String>,
}

/// Closed-loop mutations on the real client until `until`, or until `stop` is set.
async fn client_loop(
    client: &mut ws::Session,
    tag: &str,
    stop: Option<&AtomicBool>,
    until: Instant,
) -> ClientRun {
    let mut out = ClientRun {
        latencies: Vec::new(),
        ok: 0,
        errors: Vec::new(),
    };
    let mut n = 0;
    while Instant::now() < until && !stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
        n += 1;
        match one_ws_mutation(client, &json!({"text": format!("{tag} {n}")})).await {
            Ok(Round { response, .. }) => {
                out.latencies.push(response);
                out.ok += 1;
            }
            Err(e) => {
                out.errors.push(format!("{e:#}"));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    out
}

/// A small JSON value of any shape: the junk in a field.
fn junk(rng: &mut SmallRng, depth: u32) -> Value {
    match rng.gen_range(0..if depth > 2 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.r#gen::<bool>()),
        2 => json!(rng.r#gen::<i64>()),
        3 => json!(rng.r#gen::<f64>() * 1e6),
        4 => json!({"$integer": "AAAAAAAAAAA="}),
        5 => Value::String(
            (0..rng.gen_range(0..12))
                .map(|_| rng.r#gen::<char>())
                .collect(),
        ),
        6 => Value::Array(
            (0..rng.gen_range(0..4))
                .map(|_| junk(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let mut m = Map::new();
            for _ in 0..rng.gen_range(0..4) {
                let key: String = (0..rng.gen_range(0..6))
                    .map(|_| rng.gen_range('a'..='z'))
                    .collect();
                m.insert(key, junk(rng, depth + 1));
            }
            Value::Object(m)
        }
    }
}

/// A well-formed client message with junk values.
fn good_frame(rng: &mut SmallRng, request_id: u64) -> String {
    if rng.gen_ratio(1, 10) {
        return json!({"type": "Event", "eventType": "junk", "event": junk(rng, 0)}).to_string();
    }
    let path: String = (0..rng.gen_range(1..10))
        .map(|_| rng.gen_range('a'..='z'))
        .collect();
    json!({"type": "Mutation", "requestId": request_id, "udfPath": format!("{path}:{path}"), "args": [junk(rng, 0)]}).to_string()
}

/// A frame that breaks the protocol: corrupted, truncated or random bytes.
fn bad_frame(rng: &mut SmallRng, request_id: u64) -> Message {
    let mut bytes = good_frame(rng, request_id).into_bytes();
    match rng.gen_range(0..3) {
        0 => {
            for _ in 0..rng.gen_range(1..5) {
                let i = rng.gen_range(0..bytes.len());
                bytes[i] = rng.r#gen();
            }
            Message::Text(String::from_utf8_lossy(&bytes).into_owned().into())
        }
        1 => {
            bytes.truncate(rng.gen_range(0..bytes.len()));
            Message::Text(String::from_utf8_lossy(&bytes).into_owned().into())
        }
        _ => Message::Binary(
            (0..rng.gen_range(1..256))
                .map(|_| rng.r#gen::<u8>())
                .collect::<Vec<u8>>()
                .into(),
        ),
    }
}

/// WebSocket runs: Connect, [`RUN`] well-formed frames, one bad frame, start over.
async fn ws_storm(addr: SocketAddr, sent: Arc<AtomicU64>, stop: Arc<AtomicBool>, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut request_id = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Ok(tcp) = TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let url = format!("ws://{addr}/api/1.48.0/sync");
        let Ok((socket, _)) = tokio_tungstenite::client_async(url, tcp).await else {
            continue;
        };
        let (mut sink, mut stream) = socket.split();
        // Whatever the server answers is read and dropped, so it never waits on us.
        let reader = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
        let connect = json!({"type": "Connect", "sessionId": format!("00000000-0000-4000-8000-{seed:012x}"), "connectionCount": 0, "lastCloseReason": "InitialConnect"});
        let mut ok = sink
            .send(Message::Text(connect.to_string().into()))
            .await
            .is_ok();
        for _ in 0..RUN {
            if !ok || stop.load(Ordering::Relaxed) {
                break;
            }
            request_id += 1;
            let frame = good_frame(&mut rng, request_id);
            ok = tokio::time::timeout(
                Duration::from_secs(5),
                sink.send(Message::Text(frame.into())),
            )
            .await
            .is_ok_and(|r| r.is_ok());
            if ok {
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        if ok && sink.send(bad_frame(&mut rng, request_id)).await.is_ok() {
            sent.fetch_add(1, Ordering::Relaxed);
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
    }
}

/// Junk function calls over keep-alive HTTP connections.
async fn http_storm(addr: SocketAddr, sent: Arc<AtomicU64>, stop: Arc<AtomicBool>, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut conn = None;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            conn = HttpConn::connect(addr).await.ok();
            if conn.is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        }
        let path = [
            "/api/mutation",
            "/api/query",
            "/api/function",
            "/api/action",
        ][rng.gen_range(0..4)];
        let mut body = json!({"path": junk(&mut rng, 0), "args": [junk(&mut rng, 0)], "format": "convex_encoded_json"}).to_string().into_bytes();
        match rng.gen_range(0..3) {
            0 => {
                let i = rng.gen_range(0..body.len());
                body[i] = rng.r#gen();
            }
            1 => body.truncate(rng.gen_range(0..body.len())),
            _ => {}
        }
        let token = rng.gen_ratio(1, 8).then_some("junk.token.value");
        let Some(c) = conn.as_mut() else { continue };
        match c.post(path, token, &body, Duration::from_secs(10)).await {
            Ok(_) => {
                sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => conn = None,
        }
    }
}

/// Random bytes on fresh TCP connections.
async fn tcp_storm(addr: SocketAddr, sent: Arc<AtomicU64>, stop: Arc<AtomicBool>, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut tcp) = TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let bytes: Vec<u8> = (0..rng.gen_range(1..512)).map(|_| rng.r#gen()).collect();
        if tcp.write_all(&bytes).await.is_ok() {
            sent.fetch_add(1, Ordering::Relaxed);
        }
        let mut sink = [0u8; 1024];
        let _ = tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut sink)).await;
    }
}
