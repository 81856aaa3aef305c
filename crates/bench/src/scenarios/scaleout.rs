//! `scale-out` (issue 16): several `pulsebase` nodes on one PostgreSQL database holding more
//! idle authenticated sessions than one process may (the per-process limit is 20,000
//! descriptors): `--scaleout-nodes` nodes × `--scaleout-sessions` sessions, each node's
//! sessions opened by a load-generator process of its own (this binary again, run with
//! `--scaleout-load SPEC`), so no process holds more than one node's share. Every session is
//! the same user subscribed to `bench:latestMine`, as in `fanout`; once all are open, one
//! writer session on the first node adds `--scaleout-events` todos at `--scaleout-rate`/s and
//! each load generator records when each of its sessions received each todo (kernel receive
//! time). Reported: the push latency over every (event, session) pair and per node, what was
//! delivered, and the memory: every node's RSS before and with its sessions, and the load
//! generators'.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::watch;

use super::helper::Helper;
use super::subscribers::{self, Receipt, WatchSpec};
use super::{Ctx, field, num};
use crate::proc;
use crate::server::Server;
use crate::ws::{self, OpenSpec};

/// What one load-generator process is asked to do (written as JSON to the file named by
/// `--scaleout-load`).
#[derive(Serialize, Deserialize)]
pub struct LoadSpec {
    pub addr: std::net::SocketAddr,
    pub sessions: usize,
    /// Index of this process's first session among all of the run's sessions.
    pub base: usize,
    pub token: String,
    pub query: String,
    pub tag: String,
    /// Todos the writer will add; the process stops once every session saw them all, or
    /// `wait_s` after the coordinator's go.
    pub events: usize,
    pub wait_s: f64,
    pub open_timeout_s: f64,
    /// Where to write the [`LoadOut`].
    pub out: PathBuf,
}

/// What a load-generator process found.
#[derive(Serialize, Deserialize, Default)]
pub struct LoadOut {
    pub subscribed: usize,
    pub failures: usize,
    pub failure_examples: Vec<String>,
    pub disconnected: usize,
    pub errors: Vec<String>,
    /// `[seq, session, kernel receive ns, read ns]`.
    pub receipts: Vec<[u64; 4]>,
    pub rss_mib: f64,
}

/// The load-generator role: opens `spec.sessions` sessions, prints `ready N`, waits for a
/// `go` line on stdin, then records pushes until all arrived or `wait_s` passed.
pub async fn load(spec_path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(spec_path)
        .with_context(|| format!("reading {}", spec_path.display()))?;
    let spec: LoadSpec = serde_json::from_str(&text).context("parsing the load spec")?;
    let ws::Opened { sessions, failures } = ws::open_many(
        spec.addr,
        spec.sessions,
        256,
        Duration::from_secs_f64(spec.open_timeout_s),
        |_| OpenSpec {
            token: Some(spec.token.as_str()),
            query: Some((spec.query.as_str(), json!({}))),
        },
    )
    .await;
    let subscribed = sessions.len();
    let progress = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let watch = WatchSpec {
        tag: spec.tag.as_str().into(),
        own_user: None,
    };
    let handles: Vec<_> = sessions
        .into_iter()
        .map(|(i, s)| {
            subscribers::spawn_subscriber(
                spec.base + i,
                s,
                watch.clone(),
                stop_rx.clone(),
                progress.clone(),
            )
        })
        .collect();
    println!("ready {subscribed} {}", failures.len());
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    loop {
        match stdin.next_line().await? {
            Some(line) if line.trim() == "go" => break,
            Some(_) => continue,
            None => bail!("the coordinator closed stdin before saying go"),
        }
    }
    subscribers::drain(
        &progress,
        subscribed * spec.events,
        Duration::from_secs_f64(spec.wait_s),
    )
    .await;
    let rss_mib = proc::rss_kib(std::process::id()).map_or(0.0, |k| k as f64 / 1024.0);
    let outs = subscribers::collect(&stop_tx, handles).await;
    let out = LoadOut {
        subscribed,
        failures: failures.len(),
        failure_examples: failures.into_iter().take(3).collect(),
        disconnected: outs.iter().filter(|o| o.closed).count(),
        errors: outs
            .iter()
            .flat_map(|o| o.errors.iter().cloned())
            .take(3)
            .collect(),
        receipts: outs
            .iter()
            .flat_map(|o| o.receipts.iter())
            .map(|r| [u64::from(r.seq), u64::from(r.sub), r.rx_ns, r.app_ns])
            .collect(),
        rss_mib,
    };
    std::fs::write(&spec.out, serde_json::to_vec(&out)?)
        .with_context(|| format!("writing {}", spec.out.display()))?;
    println!("done");
    Ok(())
}

/// A started load generator and the file it writes its [`LoadOut`] to.
struct LoadGen {
    helper: Helper,
    out: PathBuf,
}

impl LoadGen {
    fn spawn(dir: &Path, i: usize, spec: &LoadSpec) -> anyhow::Result<LoadGen> {
        let spec_path = dir.join(format!("load{i}.json"));
        std::fs::write(&spec_path, serde_json::to_vec(spec)?)?;
        let args = [OsStr::new("--scaleout-load"), spec_path.as_os_str()];
        Ok(LoadGen {
            helper: Helper::spawn("a load generator", args)?,
            out: spec.out.clone(),
        })
    }

    /// Waits for the `ready N F` line (its sessions are open; the counts are in its
    /// [`LoadOut`]).
    async fn ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        self.helper.expect("ready", limit).await.map(drop)
    }

    async fn go(&mut self) -> anyhow::Result<()> {
        self.helper.say("go").await
    }

    async fn finish(self, limit: Duration) -> anyhow::Result<LoadOut> {
        let status = self.helper.wait(limit).await?;
        anyhow::ensure!(status.success(), "a load generator failed ({status})");
        let bytes = std::fs::read(&self.out)?;
        Ok(serde_json::from_slice(&bytes)?)
    }
}

/// Median of three RSS samples of `pid`, MiB.
async fn rss_mib(pid: u32) -> f64 {
    let mut samples = Vec::new();
    for _ in 0..3 {
        samples.extend(proc::rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or(0) as f64 / 1024.0
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Value> {
    let o = &ctx.opts;
    let Some(cluster) = o.database_url.as_deref() else {
        bail!("scale-out runs several nodes on one PostgreSQL database: pass --database-url");
    };
    let dir = ctx.work.join("scale-out");
    crate::app::wipe(&dir)?;
    let app = crate::app::stage(&ctx.repo, &dir.join("app"))?;
    let url = super::fresh_database(cluster, "scale-out")?;
    let mut nodes: Vec<Server> = Vec::new();
    for i in 0..o.scaleout_nodes.max(1) {
        let work = dir.join(format!("node{i}"));
        let extra = ["--database-url", url.as_str()];
        nodes.push(Server::start_with(&ctx.server_bin, &app, 0, &work, &extra).await?);
    }
    let minter = crate::tokens::Minter::load(&app, nodes[0].port)?;
    let token = minter.mint("fan_user", 7200, None)?;
    let tag = subscribers::new_tag();
    let events = o.scaleout_events.max(1);
    let rate = o.scaleout_rate;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut idle_rss = Vec::new();
    for n in &nodes {
        idle_rss.push(rss_mib(n.pid).await);
    }
    let per_node = nodes
        .iter()
        .map(|n| proc::fd_limit(n.pid).unwrap_or(1024))
        .chain([proc::own_fd_limit()])
        .min()
        .unwrap_or(1024)
        .saturating_sub(500) as usize;
    let sessions = o.scaleout_sessions.min(per_node);
    let t_open = std::time::Instant::now();
    let mut gens = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let spec = LoadSpec {
            addr: n.addr,
            sessions,
            base: i * sessions,
            token: token.clone(),
            query: super::fanout::QUERY.into(),
            tag: tag.to_string(),
            events,
            wait_s: events as f64 / rate + o.drain_s + 5.0,
            open_timeout_s: 600.0,
            out: dir.join(format!("load{i}.out.json")),
        };
        gens.push(LoadGen::spawn(&dir, i, &spec)?);
    }
    for g in &mut gens {
        g.ready(Duration::from_secs(660)).await?;
    }
    let open_s = t_open.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(o.idle_settle_s)).await;
    let mut node_rss = Vec::new();
    for n in &nodes {
        node_rss.push(rss_mib(n.pid).await);
    }
    let node_fds: Vec<_> = nodes.iter().map(|n| proc::fd_count(n.pid)).collect();
    let writer = ws::open(
        nodes[0].addr,
        &OpenSpec {
            token: Some(&token),
            query: None,
        },
        Duration::from_secs(20),
    )
    .await?;
    for g in &mut gens {
        g.go().await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu0: Vec<_> = nodes.iter().map(|n| proc::cpu_s(n.pid)).collect();
    let (w, writer) =
        subscribers::ws_writer(writer, events, rate, tag, events as f64 / rate + 10.0).await;
    let limit = Duration::from_secs_f64(o.drain_s + 90.0);
    let mut figures = Vec::new();
    for (i, g) in gens.into_iter().enumerate() {
        let load = g.finish(limit).await?;
        let node = &nodes[i];
        figures.push(NodeFigures {
            load,
            idle_rss: idle_rss[i],
            rss: node_rss[i],
            fds: node_fds[i],
            cpu_s: proc::cpu_s(node.pid).zip(cpu0[i]).map(|(b, a)| b - a),
        });
    }
    writer.close().await;
    for n in nodes {
        n.stop().await;
    }
    Ok(summarize(&figures, &w, open_s))
}

/// What one node's run measured: its load generator's findings and the node's process.
struct NodeFigures {
    load: LoadOut,
    /// RSS before its sessions opened and with them open, MiB.
    idle_rss: f64,
    rss: f64,
    fds: Option<usize>,
    /// CPU seconds the node spent while the writer wrote and its sessions received.
    cpu_s: Option<f64>,
}

fn receipts_of(load: &LoadOut) -> Vec<Receipt> {
    load.receipts
        .iter()
        .map(|&[seq, sub, rx_ns, app_ns]| Receipt {
            seq: seq as u32,
            sub: sub as u32,
            rx_ns,
            app_ns,
        })
        .collect()
}

fn summarize(nodes: &[NodeFigures], w: &subscribers::WriterOut, open_s: f64) -> Value {
    let total: usize = nodes.iter().map(|n| n.load.subscribed).sum();
    let all: Vec<Receipt> = nodes.iter().flat_map(|n| receipts_of(&n.load)).collect();
    let overall = subscribers::summarize(&all, w, total);
    let rss_total: f64 = nodes.iter().map(|n| n.rss).sum();
    let idle_total: f64 = nodes.iter().map(|n| n.idle_rss).sum();
    let per_session_kib = (total > 0).then(|| (rss_total - idle_total) * 1024.0 / total as f64);
    let loadgen_rss: f64 = nodes.iter().map(|n| n.load.rss_mib).sum();
    let mut metrics = Map::new();
    let mut per_node = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let load = &node.load;
        let row = subscribers::summarize(&receipts_of(load), w, load.subscribed);
        let p = &row["push_ms"];
        println!(
            "   node {i}: {} sessions ({} failed to open), RSS {:.1} MiB (idle {:.1}), push p50 {:.1} p99 {:.1} ms, delivered {}/{}, CPU {:.2} s",
            load.subscribed,
            load.failures,
            node.rss,
            node.idle_rss,
            field(p, "p50").unwrap_or(f64::NAN),
            field(p, "p99").unwrap_or(f64::NAN),
            row["delivered"],
            row["expected"],
            node.cpu_s.unwrap_or(f64::NAN),
        );
        metrics.insert(format!("node{i}.held"), json!(load.subscribed));
        metrics.insert(format!("node{i}.push_p99_ms"), num(field(p, "p99"), 3));
        metrics.insert(format!("node{i}.rss_mib"), num(Some(node.rss), 1));
        per_node.push(json!({
            "held": load.subscribed,
            "open_failures": load.failures,
            "open_failure_examples": load.failure_examples,
            "disconnected": load.disconnected,
            "errors": load.errors,
            "rss_mib": num(Some(node.rss), 1),
            "idle_rss_mib": num(Some(node.idle_rss), 1),
            "fds": node.fds,
            "cpu_s": num(node.cpu_s, 2),
            "loadgen_rss_mib": num(Some(load.rss_mib), 1),
            "push": row,
        }));
    }
    let p = &overall["push_ms"];
    println!(
        "   {} nodes, {total} sessions: push p50 {:.1} p99 {:.1} max {:.1} ms, delivered {}/{}, nodes' RSS {rss_total:.1} MiB ({:.1} KiB/session), load generators {loadgen_rss:.1} MiB, open {open_s:.1} s",
        nodes.len(),
        field(p, "p50").unwrap_or(f64::NAN),
        field(p, "p99").unwrap_or(f64::NAN),
        field(p, "max").unwrap_or(f64::NAN),
        overall["delivered"],
        overall["expected"],
        per_session_kib.unwrap_or(f64::NAN),
    );
    metrics.insert("nodes".into(), json!(nodes.len()));
    metrics.insert("sessions".into(), json!(total));
    for q in ["p50", "p99", "max"] {
        metrics.insert(format!("push_{q}_ms"), num(field(p, q), 3));
    }
    for key in ["delivered", "expected", "lost", "duplicates"] {
        metrics.insert(key.into(), overall[key].clone());
    }
    metrics.insert("nodes_rss_mib".into(), num(Some(rss_total), 1));
    metrics.insert("nodes_idle_rss_mib".into(), num(Some(idle_total), 1));
    metrics.insert("kib_per_session".into(), num(per_session_kib, 1));
    metrics.insert("loadgen_rss_mib".into(), num(Some(loadgen_rss), 1));
    metrics.insert("open_s".into(), num(Some(open_s), 1));
    json!({
        "sessions": total,
        "open_s": crate::stats::round(open_s, 1),
        "push": overall,
        "nodes": per_node,
        "metrics": metrics,
    })
}
