//! `fanout-floor`: what this machine allows for a fan-out when the server does nothing but
//! the socket writes, measured the way `fanout` measures Pulsebase, so the two can be read
//! side by side.
//!
//! For each `--fanout-plan` row (S sessions, R events/s) a sender process (this binary again,
//! `--floor-sender S`) accepts S WebSocket connections over loopback with plain blocking
//! sockets; the same client as `fanout` (one tokio thread, kernel receive timestamps) opens
//! them and watches for tagged todos. For each event the sender writes one prebuilt
//! Transition frame shaped like Pulsebase's (a little larger) to every socket, from two
//! threads (as many as the server's workers), and nothing else: no task wake-ups, no
//! per-session state, no serialisation. Push latency runs from the sender's first write to each session's kernel
//! receive time; the sender's CPU per write is the kernel's cost of one small loopback send
//! (with the delivery into the receiving socket, which loopback charges to the sender).

use std::io::{BufRead as _, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::helper::Helper;
use super::subscribers::{self, WatchSpec, WriterOut};
use super::{Ctx, field, num, rate_name};
use crate::proc;
use crate::stats::wall_ns;
use crate::ws::Session;

/// Writer threads of the sender: the server's tokio workers on this machine.
const SENDER_THREADS: usize = 2;

/// How long the sender may take to answer (opening 19,000 sockets takes a while).
const SAY_LIMIT: Duration = Duration::from_secs(300);

pub async fn run(ctx: &Ctx) -> anyhow::Result<Value> {
    let mut rows = Vec::new();
    let mut metrics = Map::new();
    for row in ctx.opts.fanout_rows()? {
        let r = floor_row(ctx, row.subscribers, row.rate).await?;
        let p = &r["push_ms"];
        println!(
            "   S={:<6} rate={}/s  push p50 {:.1} p99 {:.1} max {:.1} ms  delivered {}/{}  sender {:.2} µs of CPU per write  client {:.2} cores",
            row.subscribers,
            row.rate,
            field(p, "p50").unwrap_or(f64::NAN),
            field(p, "p99").unwrap_or(f64::NAN),
            field(p, "max").unwrap_or(f64::NAN),
            r["delivered"],
            r["expected"],
            r["sender_cpu_us_per_write"].as_f64().unwrap_or(f64::NAN),
            r["client_cpu_cores"].as_f64().unwrap_or(f64::NAN),
        );
        let k = format!("s{}.r{}", row.subscribers, rate_name(row.rate));
        for q in ["p50", "p99", "max"] {
            metrics.insert(format!("{k}.push_{q}_ms"), num(field(p, q), 3));
        }
        for key in ["delivered", "expected", "lost"] {
            metrics.insert(format!("{k}.{key}"), r[key].clone());
        }
        metrics.insert(
            format!("{k}.sender_cpu_us_per_write"),
            r["sender_cpu_us_per_write"].clone(),
        );
        rows.push(r);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(json!({"rows": rows, "metrics": metrics}))
}

async fn floor_row(ctx: &Ctx, s: usize, rate: f64) -> anyhow::Result<Value> {
    let o = &ctx.opts;
    let mut sender = Helper::spawn("the floor's sender", ["--floor-sender", &s.to_string()])?;
    let pid = sender.pid().context("the sender exited at once")?;
    let port: u16 = sender.expect("port", SAY_LIMIT).await?.parse()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let t_open = Instant::now();
    let opened: Vec<anyhow::Result<Session>> = futures::stream::iter(0..s)
        .map(|_| Session::connect(addr))
        .buffer_unordered(256)
        .collect()
        .await;
    let failures = opened.iter().filter(|r| r.is_err()).count();
    let sessions: Vec<Session> = opened.into_iter().filter_map(Result::ok).collect();
    let accepted: usize = sender.expect("ready", SAY_LIMIT).await?.parse()?;
    let open_s = t_open.elapsed().as_secs_f64();
    let subscribed = sessions.len().min(accepted);
    let tag = subscribers::new_tag();
    let progress = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let spec = WatchSpec {
        tag: tag.clone(),
        own_user: None,
    };
    let handles: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(i, sess)| {
            subscribers::spawn_subscriber(i, sess, spec.clone(), stop_rx.clone(), progress.clone())
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let n = (rate * o.fanout_s).round().max(1.0) as usize;
    let sender_cpu0 = proc::cpu_s(pid);
    let client_cpu0 = proc::self_cpu_s();
    let t_run = Instant::now();
    let mut w = WriterOut::default();
    let mut frame_bytes = 0usize;
    for seq in 0..n {
        tokio::time::sleep_until(t_run + Duration::from_secs_f64(seq as f64 / rate)).await;
        sender.say(&format!("go {seq} {tag}")).await?;
        let said = sender.expect("sent", SAY_LIMIT).await?;
        let mut parts = said.split(' ');
        let sent_ns: u64 = parts.next().unwrap_or_default().parse()?;
        frame_bytes = parts.next().unwrap_or_default().parse()?;
        w.sent.insert(seq as u32, sent_ns);
    }
    subscribers::drain(
        &progress,
        subscribed * n,
        Duration::from_secs_f64(o.drain_s),
    )
    .await;
    let wall = t_run.elapsed().as_secs_f64();
    let sender_cpu = proc::cpu_s(pid).zip(sender_cpu0).map(|(b, a)| b - a);
    let client_cpu = proc::self_cpu_s() - client_cpu0;
    let _ = sender.say("quit").await;
    let _ = sender.wait(Duration::from_secs(10)).await;
    let outs = subscribers::collect(&stop_tx, handles).await;
    let receipts: Vec<_> = outs
        .iter()
        .flat_map(|o| o.receipts.iter().copied())
        .collect();
    let mut row = subscribers::summarize(&receipts, &w, subscribed);
    let writes = (n * accepted).max(1) as f64;
    let extra = json!({
        "subscribers": s,
        "subscribed": subscribed,
        "open_failures": failures,
        "open_s": crate::stats::round(open_s, 1),
        "rate_per_s": rate,
        "frame_bytes": frame_bytes,
        "sender_cpu_s": sender_cpu.map(|c| crate::stats::round(c, 3)),
        "sender_cpu_us_per_write": sender_cpu.map(|c| crate::stats::round(c * 1e6 / writes, 2)),
        "client_cpu_cores": crate::stats::round(client_cpu / wall, 2),
    });
    if let (Some(r), Some(e)) = (row.as_object_mut(), extra.as_object()) {
        r.extend(e.clone());
    }
    drop(outs);
    Ok(row)
}

/// The sender role (`--floor-sender S`): prints `port P`, accepts S WebSocket connections,
/// prints `ready S`, then for each `go SEQ TAG` line writes one Transition carrying the todo
/// `TAG:SEQ` to every connection and prints `sent T BYTES` (T: wall-clock ns just before the
/// first write); `quit` or the end of stdin ends it.
pub fn sender(sessions: usize) -> anyhow::Result<()> {
    proc::raise_fd_limit();
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let mut out = std::io::stdout();
    writeln!(out, "port {}", listener.local_addr()?.port())?;
    out.flush()?;
    let mut groups: Vec<Vec<TcpStream>> = (0..SENDER_THREADS).map(|_| Vec::new()).collect();
    let mut accepted = 0usize;
    let mut attempts = 0usize;
    while accepted < sessions && attempts < sessions * 2 {
        attempts += 1;
        let (stream, _) = listener.accept()?;
        match handshake(stream) {
            Ok(stream) => {
                groups[accepted % SENDER_THREADS].push(stream);
                accepted += 1;
            }
            Err(e) => eprintln!("floor sender: a handshake failed: {e:#}"),
        }
    }
    writeln!(out, "ready {accepted}")?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let mut parts = line.split_whitespace();
        match parts.next() {
            Some("go") => {
                let seq: u32 = parts.next().unwrap_or_default().parse()?;
                let tag = parts.next().context("go without a tag")?;
                let frame = text_frame(transition(tag, seq).as_bytes());
                let t = wall_ns();
                std::thread::scope(|scope| {
                    for group in &mut groups {
                        let frame = &frame;
                        scope.spawn(move || {
                            for stream in group.iter_mut() {
                                // A socket the client closed is skipped, as the server would.
                                let _ = stream.write_all(frame);
                            }
                        });
                    }
                });
                writeln!(out, "sent {t} {}", frame.len())?;
                out.flush()?;
            }
            Some("quit") => break,
            _ => {}
        }
    }
    Ok(())
}

/// The server half of the WebSocket opening handshake, by hand (the client's first frame
/// stays unread in the socket: the floor never reads).
fn handshake(mut stream: TcpStream) -> anyhow::Result<TcpStream> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = Vec::new();
    let mut chunk = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            bail!("the client closed during the handshake");
        }
        request.extend_from_slice(&chunk[..n]);
        if request.len() > 16 << 10 {
            bail!("a handshake request over 16 KiB");
        }
    }
    let text = String::from_utf8_lossy(&request);
    let key = text
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_string())
        })
        .context("no Sec-WebSocket-Key in the handshake")?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    write!(
        stream,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    )?;
    Ok(stream)
}

/// One unmasked WebSocket text frame (server to client).
fn text_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 10);
    frame.push(0x81);
    match payload.len() {
        n if n < 126 => frame.push(n as u8),
        n if n <= 0xffff => {
            frame.push(126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    frame
}

/// A Transition shaped like the one `fanout` receives (`bench:latestMine`: the user's 10
/// newest todos, the first being the new one), about as large.
fn transition(tag: &str, seq: u32) -> String {
    let todo = |i: usize, text: &str| {
        format!(
            r#"{{"_creationTime":1764979200{i:03}.5,"_id":"k57{i:0>29}","completed":false,"text":"{text}","userId":"http://127.0.0.1:40000/dev-issuer|fan_user"}}"#
        )
    };
    let todos: Vec<String> = (0..10)
        .map(|i| {
            if i == 0 {
                todo(i, &format!("{tag}:{seq}"))
            } else {
                todo(i, &format!("earlier todo {i}"))
            }
        })
        .collect();
    format!(
        r#"{{"type":"Transition","startVersion":{{"querySet":1,"identity":1,"ts":"AQAAAAAAAAA="}},"endVersion":{{"querySet":1,"identity":1,"ts":"AgAAAAAAAAA="}},"modifications":[{{"type":"QueryUpdated","queryId":0,"value":[{}],"logLines":[]}}]}}"#,
        todos.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_frame_parses_and_carries_its_todo() {
        let text = transition("abc", 7);
        let msg = crate::proto::parse(&text).expect("a Transition");
        assert_eq!(msg.kind, "Transition");
        let raw = msg.modifications.expect("modifications").get();
        assert_eq!(
            crate::proto::tagged_seqs(raw, "abc").collect::<Vec<_>>(),
            [7]
        );
        let frame = text_frame(text.as_bytes());
        assert_eq!(&frame[..2], &[0x81, 126]);
        assert_eq!(frame.len(), text.len() + 4);
    }
}
