//! `idle`: the server's RSS (VmRSS) with 0 / 1,000 / 5,000 / 10,000 / max idle sessions,
//! each authenticated as one of 1,000 users and holding one live subscription
//! (`todos:getMyTodos`) — PocketBase's "SSE connection subscribed to `todos/*`". `max` is
//! both processes' descriptor limit less 500, in thousands (19,000 here).

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use super::subscribers::{self, WatchSpec};
use super::{Ctx, num};
use crate::proc;
use crate::ws::{self, OpenSpec};

const USERS: usize = 1000;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Value> {
    let o = &ctx.opts;
    let (server, minter) = ctx.start_server("idle").await?;
    let server_limit = proc::fd_limit(server.pid).unwrap_or(1024);
    let cap = server_limit.min(proc::own_fd_limit()).saturating_sub(500) as usize;
    let mut levels: Vec<usize> = o
        .idle_levels
        .iter()
        .filter_map(|l| {
            if l == "max" {
                Some(cap / 1000 * 1000)
            } else {
                l.parse::<usize>().ok().map(|v| v.min(cap))
            }
        })
        .collect();
    levels.sort_unstable();
    levels.dedup();
    let users: Vec<String> = (0..USERS).map(|i| format!("idle_user_{i}")).collect();
    let tokens = minter.for_users(&users, 7200)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let progress = Arc::new(AtomicUsize::new(0));
    let spec = WatchSpec {
        tag: "-".into(),
        own_user: None,
    };
    let mut handles = Vec::new();
    let mut rows = Vec::new();
    let mut metrics = Map::new();
    let mut rss0 = None;
    for &level in &levels {
        let need = level.saturating_sub(handles.len());
        let base = handles.len();
        let t = std::time::Instant::now();
        let ws::Opened { sessions, failures } =
            ws::open_many(server.addr, need, 256, Duration::from_secs(300), |i| {
                OpenSpec {
                    token: Some(tokens[(base + i) % USERS].as_str()),
                    query: Some(("todos:getMyTodos", json!({}))),
                }
            })
            .await;
        let open_s = t.elapsed().as_secs_f64();
        for (i, s) in sessions {
            handles.push(subscribers::spawn_subscriber(
                base + i,
                s,
                spec.clone(),
                stop_rx.clone(),
                progress.clone(),
            ));
        }
        tokio::time::sleep(Duration::from_secs_f64(o.idle_settle_s)).await;
        let mut samples = Vec::new();
        for _ in 0..3 {
            if let Some(r) = proc::rss_kib(server.pid) {
                samples.push(r);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        samples.sort_unstable();
        let rss = samples.get(samples.len() / 2).copied().unwrap_or(0) as f64 / 1024.0;
        if level == 0 || rss0.is_none() {
            rss0 = Some(rss);
        }
        let per_conn = if handles.is_empty() {
            None
        } else {
            rss0.map(|r0| (rss - r0) * 1024.0 / handles.len() as f64)
        };
        let emfile = server
            .lines_matching(&["Too many open files", "EMFILE"])
            .len();
        let row = json!({
            "target": level,
            "held": handles.len(),
            "open_failures": failures.len(),
            "open_failure_examples": failures.iter().take(3).collect::<Vec<_>>(),
            "open_s": crate::stats::round(open_s, 1),
            "rss_mib": crate::stats::round(rss, 1),
            "kib_per_conn": per_conn.map(|v| crate::stats::round(v, 1)),
            "vm_hwm_mib": proc::status_field(server.pid, "VmHWM").map(|v| crate::stats::round(v as f64 / 1024.0, 1)),
            "server_threads": proc::status_field(server.pid, "Threads"),
            "server_fds": proc::fd_count(server.pid),
            "server_fd_limit": server_limit,
            "emfile_lines": emfile,
            "client_rss_mib": proc::rss_kib(std::process::id()).map(|v| crate::stats::round(v as f64 / 1024.0, 1)),
        });
        println!(
            "   {level:>6} sessions (held {}): RSS {:.1} MiB  {} KiB/session  open {:.1} s  failures {}  EMFILE lines {emfile}",
            handles.len(),
            rss,
            per_conn.map_or("-".into(), |v| format!("{v:.1}")),
            open_s,
            failures.len(),
        );
        metrics.insert(format!("{level}.rss_mib"), num(Some(rss), 1));
        if level > 0 {
            metrics.insert(format!("{level}.kib_per_conn"), num(per_conn, 1));
            metrics.insert(format!("{level}.held"), json!(handles.len()));
        }
        rows.push(row);
    }
    let outs = subscribers::collect(&stop_tx, handles).await;
    drop(outs);
    server.stop().await;
    Ok(json!({"levels": rows, "metrics": metrics}))
}
