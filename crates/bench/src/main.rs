//! `pulsebase-bench`: the benchmark load generator of issue 7.
//!
//! It starts the `pulsebase` binary itself (a fresh app folder and database per scenario),
//! speaks the Convex sync protocol over WebSocket (and the HTTP API where PocketBase's
//! workload does), and prints a table and writes JSON for each named scenario:
//! `mutations`, `committer`, `growth`, `fanout`, `per-user`, `idle`, `refresh`, `cold-start`, `auth`
//! (and, since, `actions`, `durability`, `soak`, `scheduler`, `fanout-floor` and `scale-out`, which
//! start copies of this binary as their sender or load generators).
//! Every loop is bounded in count and in time. `bench/run.sh` runs this binary several
//! times beside the PocketBase peer scripts and aggregates the figures.

mod app;
mod dashboard_viewer;
mod http;
mod opts;
mod proc;
mod proto;
mod scenarios;
mod server;
mod stats;
mod tokens;
mod tsstream;
mod ws;

use std::time::Instant;

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _};
use serde_json::{Map, Value, json};

use crate::opts::Opts;

/// mimalloc rather than the system allocator: Rhai, JSON and per-session buffers allocate
/// small objects from many threads, and glibc's malloc spent ~15% of a write-heavy server's
/// CPU on that (see ARCHITECTURE.md, "Dependencies worth a word").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let matches = Opts::command().get_matches();
    let mut opts = Opts::from_arg_matches(&matches)?;
    if opts.quick {
        opts.apply_quick(&matches);
    }
    if let Some(sessions) = opts.floor_sender {
        return scenarios::floor_sender(sessions);
    }
    tsstream::QUICKACK.store(opts.tcp_quickack, std::sync::atomic::Ordering::Relaxed);
    dashboard_viewer::ENABLED.store(opts.dashboard_logs, std::sync::atomic::Ordering::Relaxed);
    proc::raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.client_threads.max(1))
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let result = match &opts.scaleout_load {
        Some(spec) => runtime.block_on(scenarios::scale_out_load(spec)),
        None => opts
            .scenario_list()
            .and_then(|scenarios| runtime.block_on(run(opts.clone(), scenarios))),
    };
    // Sessions still open in detached tasks must not delay the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

async fn run(opts: Opts, scenarios: Vec<String>) -> anyhow::Result<()> {
    let started = Instant::now();
    let ctx = scenarios::Ctx::new(&opts)?;
    let mut results = Map::new();
    let mut metrics = Map::new();
    let load_start = proc::loadavg();
    for name in &scenarios {
        println!(
            "== {name} (load average {})",
            proc::loadavg().unwrap_or_default()
        );
        let t = Instant::now();
        let outcome = scenarios::run(&ctx, name).await;
        match outcome {
            Ok(value) => {
                scenarios::flatten(name, &value, &mut metrics);
                results.insert(name.clone(), value);
            }
            Err(e) => {
                eprintln!("!! scenario {name} failed: {e:#}");
                results.insert(name.clone(), json!({ "error": format!("{e:#}") }));
            }
        }
        println!("   ({name}: {:.1} s)", t.elapsed().as_secs_f64());
    }
    let out = json!({
        "tool": "pulsebase-bench",
        "started": stats::now_rfc3339(),
        "quick": opts.quick,
        "tcp_quickack": opts.tcp_quickack,
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "loadavg_start": load_start,
        "loadavg_end": proc::loadavg(),
        "total_s": stats::round(started.elapsed().as_secs_f64(), 1),
        "server_bin": ctx.server_bin.display().to_string(),
        "scenarios": Value::Object(results),
        "metrics": Value::Object(metrics.clone()),
    });
    println!("\n== figures (this run)");
    for (k, v) in &metrics {
        println!("{k:<55} {v}");
    }
    if let Some(path) = &opts.out {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).ok();
        }
        std::fs::write(path, serde_json::to_string_pretty(&out)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
