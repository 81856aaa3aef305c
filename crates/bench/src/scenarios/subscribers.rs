//! What the push scenarios share: subscriber tasks that watch their query's Transitions for
//! the writer's tagged todos (`"text":"<tag>:<seq>"`), the open-loop writers (one WebSocket
//! session, or a pool of keep-alive HTTP connections with each owner's token), and the
//! summary of push latency, delivery and leaks, computed as the PocketBase peer's
//! `summarize_push` does.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::http::HttpConn;
use crate::proto;
use crate::stats::{dist_ms, quantiles_ms, wall_ns};
use crate::ws::{self, Session};

/// One (event, subscriber) receipt.
#[derive(Clone, Copy)]
pub struct Receipt {
    pub seq: u32,
    pub sub: u32,
    pub rx_ns: u64,
    pub app_ns: u64,
}

#[derive(Default)]
pub struct SubOut {
    pub receipts: Vec<Receipt>,
    /// Todos of another user seen in this session's results.
    pub leaks: usize,
    pub frames: usize,
    /// Bytes of the frames that carried new receipts.
    pub push_bytes: usize,
    pub pushes: usize,
    pub closed: bool,
    pub errors: Vec<String>,
    pub session: Option<Session>,
}

/// What a subscriber looks for.
#[derive(Clone)]
pub struct WatchSpec {
    pub tag: Arc<str>,
    /// When set, every `userId` in the session's results must be this (the leak check).
    pub own_user: Option<Arc<str>>,
}

/// Reads `session`'s frames until `stop` flips, recording the first receipt of every
/// tagged todo; `progress` counts receipts across all subscribers. The session is handed
/// back in the output so the caller can close it (or keep it open).
pub fn spawn_subscriber(
    idx: usize,
    mut session: Session,
    spec: WatchSpec,
    mut stop: watch::Receiver<bool>,
    progress: Arc<AtomicUsize>,
) -> JoinHandle<SubOut> {
    tokio::spawn(async move {
        let mut out = SubOut::default();
        let mut seen: HashSet<u32> = HashSet::new();
        loop {
            let frame = tokio::select! {
                f = session.next_frame() => f,
                _ = stop.changed() => break,
            };
            let frame = match frame {
                Ok(Some(f)) => f,
                Ok(None) => {
                    out.closed = true;
                    break;
                }
                Err(e) => {
                    out.closed = true;
                    out.errors.push(format!("{e:#}"));
                    break;
                }
            };
            out.frames += 1;
            let msg = match proto::parse(&frame.text) {
                Ok(m) => m,
                Err(e) => {
                    out.errors.push(format!("unparsable frame: {e}"));
                    continue;
                }
            };
            if let Err(e) = session.observe(&msg) {
                out.errors.push(format!("{e:#}"));
                continue;
            }
            let Some(raw) = msg.modifications.map(|r| r.get()) else {
                continue;
            };
            let mut new = 0;
            for seq in proto::tagged_seqs(raw, &spec.tag) {
                let seq = seq as u32;
                if seen.insert(seq) {
                    new += 1;
                    out.receipts.push(Receipt {
                        seq,
                        sub: idx as u32,
                        rx_ns: if frame.rx_ns > 0 {
                            frame.rx_ns
                        } else {
                            frame.app_ns
                        },
                        app_ns: frame.app_ns,
                    });
                }
            }
            if new > 0 {
                out.pushes += 1;
                out.push_bytes += frame.text.len();
                progress.fetch_add(new, Ordering::Relaxed);
            }
            if let Some(own) = &spec.own_user {
                out.leaks += proto::string_fields(raw, "userId")
                    .filter(|u| *u != own.as_ref())
                    .count();
            }
        }
        out.session = Some(session);
        out
    })
}

/// What an open-loop writer did.
#[derive(Default)]
pub struct WriterOut {
    /// seq → actual send time (only writes that succeeded).
    pub sent: HashMap<u32, u64>,
    /// seq → scheduled send time.
    pub sched: HashMap<u32, u64>,
    /// send → response, ns.
    pub call_latency: Vec<i64>,
    pub errors: Vec<String>,
    pub skipped: usize,
    pub unanswered: usize,
    pub send_window_s: f64,
}

impl WriterOut {
    /// Writes actually sent per second: (k − 1) / (last send − first send).
    pub fn achieved_rate(&self) -> Option<f64> {
        let mut ts: Vec<u64> = self.sent.values().copied().collect();
        ts.sort_unstable();
        if ts.len() < 2 || ts[ts.len() - 1] == ts[0] {
            return None;
        }
        Some((ts.len() - 1) as f64 / ((ts[ts.len() - 1] - ts[0]) as f64 / 1e9))
    }
}

/// Open loop over one WebSocket session: mutation `seq` (`todos:addTodo {text: tag:seq}`)
/// leaves at `t0 + seq / rate` whatever became of the earlier ones.
pub async fn ws_writer(
    mut s: Session,
    n: usize,
    rate: f64,
    tag: Arc<str>,
    max_s: f64,
) -> (WriterOut, Session) {
    let mut out = WriterOut::default();
    let t0 = Instant::now() + Duration::from_millis(50);
    let wall0 = wall_ns() + 50_000_000;
    let t_stop = t0 + Duration::from_secs_f64(max_s);
    let hard_stop = t_stop + Duration::from_secs(30);
    let mut pending: HashMap<u64, (u32, u64)> = HashMap::new();
    let mut seq = 0usize;
    loop {
        let next_at = t0 + Duration::from_secs_f64(seq as f64 / rate);
        let sending = seq < n;
        tokio::select! {
            () = tokio::time::sleep_until(next_at), if sending => {
                if Instant::now() > t_stop {
                    out.skipped = n - seq;
                    seq = n;
                    continue;
                }
                let args = json!({"text": format!("{tag}:{seq}")});
                match s.mutation("todos:addTodo", &args).await {
                    Ok(ws::SentMutation {
                        request_id: rid,
                        sent_ns: t,
                    }) => {
                        pending.insert(rid, (seq as u32, t));
                        out.sent.insert(seq as u32, t);
                        out.sched.insert(seq as u32, wall0 + (seq as f64 / rate * 1e9) as u64);
                    }
                    Err(e) => out.errors.push(format!("{e:#}")),
                }
                seq += 1;
            }
            frame = s.next_frame() => {
                let Ok(Some(frame)) = frame else {
                    out.errors.push("the writer's socket closed".into());
                    break;
                };
                if let Ok(msg) = proto::parse(&frame.text) {
                    let _ = s.observe(&msg);
                    if msg.kind == "MutationResponse"
                        && let Some((seq, t)) = msg.request_id.and_then(|r| pending.remove(&r))
                    {
                        if msg.success == Some(true) {
                            out.call_latency.push((frame.app_ns - t) as i64);
                        } else {
                            out.sent.remove(&seq);
                            out.errors.push(msg.result.map_or(String::new(), |r| r.get().to_string()));
                        }
                    }
                }
            }
            () = tokio::time::sleep_until(hard_stop) => break,
        }
        if seq >= n && pending.is_empty() {
            break;
        }
    }
    out.unanswered = pending.len();
    out.send_window_s = t0.elapsed().as_secs_f64();
    (out, s)
}

/// One write the HTTP API answered with success.
struct Answered {
    seq: u32,
    /// When it was sent (wall clock, ns).
    sent_ns: u64,
    /// When it was scheduled to be sent (wall clock, ns).
    scheduled_ns: u64,
    /// Send → response, ns.
    latency_ns: i64,
}

/// Open loop over `conns` keep-alive HTTP connections: create `seq` (by its owner, with the
/// owner's token) is scheduled at `t0 + seq / rate` and sent on the next free connection.
pub async fn http_writer(
    addr: SocketAddr,
    conns: usize,
    n: usize,
    rate: f64,
    tag: Arc<str>,
    tokens: Arc<Vec<String>>,
    max_s: f64,
) -> anyhow::Result<WriterOut> {
    let (jobs_tx, jobs_rx) = mpsc::unbounded_channel::<(u32, u64)>();
    let jobs_rx = Arc::new(Mutex::new(jobs_rx));
    let mut workers = Vec::new();
    for _ in 0..conns {
        let mut conn = HttpConn::connect(addr).await?;
        let jobs = jobs_rx.clone();
        let tokens = tokens.clone();
        let tag = tag.clone();
        workers.push(tokio::spawn(async move {
            let mut done: Vec<Answered> = Vec::new();
            let mut errors = Vec::new();
            loop {
                let job = jobs.lock().await.recv().await;
                let Some((seq, sched)) = job else { break };
                let token = &tokens[seq as usize % tokens.len()];
                let body = json!({"path": "todos:addTodo", "args": [{"text": format!("{tag}:{seq}")}], "format": "convex_encoded_json"}).to_string();
                match conn
                    .post("/api/mutation", Some(token), body.as_bytes(), Duration::from_secs(30))
                    .await
                {
                    Ok(r) if r.status == 200
                        && memchr::memmem::find(&r.body, br#""status":"success""#).is_some() =>
                    {
                        done.push(Answered {
                            seq,
                            sent_ns: r.sent_ns,
                            scheduled_ns: sched,
                            latency_ns: (wall_ns() - r.sent_ns) as i64,
                        });
                    }
                    Ok(r) => errors.push(format!(
                        "HTTP {}: {}",
                        r.status,
                        String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
                    )),
                    Err(e) => {
                        errors.push(format!("{e:#}"));
                        break;
                    }
                }
            }
            (done, errors)
        }));
    }
    let t0 = Instant::now() + Duration::from_millis(50);
    let wall0 = wall_ns() + 50_000_000;
    let t_stop = t0 + Duration::from_secs_f64(max_s);
    let mut out = WriterOut::default();
    for seq in 0..n {
        let at = t0 + Duration::from_secs_f64(seq as f64 / rate);
        tokio::time::sleep_until(at).await;
        if Instant::now() > t_stop {
            out.skipped = n - seq;
            break;
        }
        let _ = jobs_tx.send((seq as u32, wall0 + (seq as f64 / rate * 1e9) as u64));
    }
    drop(jobs_tx);
    out.send_window_s = t0.elapsed().as_secs_f64();
    let limit = Instant::now() + Duration::from_secs(30);
    for w in workers {
        match tokio::time::timeout_at(limit, w).await {
            Ok(Ok((done, errors))) => {
                for answered in done {
                    out.sent.insert(answered.seq, answered.sent_ns);
                    out.sched.insert(answered.seq, answered.scheduled_ns);
                    out.call_latency.push(answered.latency_ns);
                }
                out.errors.extend(errors);
            }
            _ => out.unanswered += 1,
        }
    }
    Ok(out)
}

/// Push latency, delivery and duplicates over every (event, subscriber) pair; `expected` is
/// per written event (S for fan-out, 1 for per-user).
pub fn summarize(receipts: &[Receipt], w: &WriterOut, expected_per_event: usize) -> Value {
    let mut uniq: HashMap<(u32, u32), (u64, u64)> = HashMap::with_capacity(receipts.len());
    let mut dups = 0;
    for r in receipts {
        if !w.sent.contains_key(&r.seq) {
            continue;
        }
        if uniq.insert((r.seq, r.sub), (r.rx_ns, r.app_ns)).is_some() {
            dups += 1;
        }
    }
    let mut wire = Vec::with_capacity(uniq.len());
    let mut app = Vec::with_capacity(uniq.len());
    let mut from_sched = Vec::with_capacity(uniq.len());
    for ((seq, _), (rx, at)) in &uniq {
        let sent = w.sent[seq];
        wire.push(*rx as i64 - sent as i64);
        app.push(*at as i64 - sent as i64);
        if let Some(s) = w.sched.get(seq) {
            from_sched.push(*rx as i64 - *s as i64);
        }
    }
    let expected = expected_per_event * w.sent.len();
    let mut per_seq: HashMap<u32, usize> = HashMap::new();
    for (seq, _) in uniq.keys() {
        *per_seq.entry(*seq).or_default() += 1;
    }
    let mut incomplete: Vec<u32> = w
        .sent
        .keys()
        .filter(|s| per_seq.get(s).copied().unwrap_or(0) < expected_per_event)
        .copied()
        .collect();
    incomplete.sort_unstable();
    json!({
        "incomplete_events": incomplete.len(),
        "incomplete_examples": incomplete.iter().take(10).collect::<Vec<_>>(),
        "events_sent_ok": w.sent.len(),
        "expected": expected,
        "delivered": uniq.len(),
        "lost": expected as i64 - uniq.len() as i64,
        "duplicates": dups,
        "push_ms": dist_ms(&wire),
        "push_app_ms": dist_ms(&app),
        "push_from_schedule_ms": dist_ms(&from_sched),
        "push_quantiles_ms": quantiles_ms(&wire),
        "call_latency_ms": dist_ms(&w.call_latency),
        "achieved_rate_per_s": w.achieved_rate().map(|r| crate::stats::round(r, 1)),
        "write_errors": w.errors.len(),
        "write_error_examples": w.errors.iter().take(3).collect::<Vec<_>>(),
        "skipped": w.skipped,
        "unanswered": w.unanswered,
    })
}

/// Waits until `progress` reaches `target` or `limit` passes.
pub async fn drain(progress: &AtomicUsize, target: usize, limit: Duration) {
    let end = Instant::now() + limit;
    while Instant::now() < end && progress.load(Ordering::Relaxed) < target {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops every subscriber and gathers their outputs (bounded in time).
pub async fn collect(stop: &watch::Sender<bool>, handles: Vec<JoinHandle<SubOut>>) -> Vec<SubOut> {
    let _ = stop.send(true);
    let limit = Instant::now() + Duration::from_secs(30);
    let mut outs = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(Ok(o)) = tokio::time::timeout_at(limit, h).await {
            outs.push(o);
        }
    }
    outs
}

/// A random 6-letter tag, so each run's todos are told apart from earlier ones.
pub fn new_tag() -> Arc<str> {
    use rand::Rng as _;
    let mut rng = rand::thread_rng();
    (0..6)
        .map(|_| char::from(b'a' + rng.gen_range(0..26u8)))
        .collect::<String>()
        .into()
}
