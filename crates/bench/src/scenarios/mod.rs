//! The named scenarios, what they share (a staged app, a started server, a token minter),
//! and the flat `metrics` map (`scenario.name → number`) that `bench/aggregate.py` reads.

mod actions;
mod auth;
mod coldstart;
mod committer;
mod durability;
mod fanout;
mod floor;
mod growth;
mod helper;
mod idle;
mod mutations;
mod peruser;
mod refresh;
mod scaleout;
mod scheduler;
mod soak;
mod subscribers;

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde_json::{Map, Value};

use crate::opts::Opts;
use crate::server::Server;
use crate::tokens::Minter;

pub struct Ctx {
    pub opts: Opts,
    pub server_bin: PathBuf,
    pub repo: PathBuf,
    pub work: PathBuf,
}

impl Ctx {
    pub fn new(opts: &Opts) -> anyhow::Result<Ctx> {
        let server_bin = match &opts.server_bin {
            Some(p) => p.clone(),
            None => std::env::current_exe()?
                .parent()
                .context("no folder for this binary")?
                .join("pulsebase"),
        };
        if !server_bin.is_file() {
            bail!(
                "no server binary at {}; build it (cargo build --release -p pulsebase) or pass --server-bin",
                server_bin.display()
            );
        }
        let repo = opts
            .repo
            .canonicalize()
            .with_context(|| format!("no repository at {}", opts.repo.display()))?;
        Ok(Ctx {
            opts: opts.clone(),
            server_bin,
            repo,
            work: opts.work.clone(),
        })
    }

    /// A fresh copy of the workload app under `<work>/<name>/app`, served by a fresh server,
    /// and a minter for its dev issuer.
    pub async fn start_server(&self, name: &str) -> anyhow::Result<(Server, Minter)> {
        let dir = self.work.join(name);
        crate::app::wipe(&dir)?;
        let app = crate::app::stage(&self.repo, &dir.join("app"))?;
        let server = match &self.opts.database_url {
            Some(cluster) => {
                let url = fresh_database(cluster, name)?;
                let extra = ["--database-url", url.as_str()];
                Server::start_with(&self.server_bin, &app, 0, &dir, &extra).await?
            }
            None => Server::start(&self.server_bin, &app, 0, &dir).await?,
        };
        let minter = Minter::load(&app, server.port)?;
        Ok((server, minter))
    }
}

/// A new, empty database of the PostgreSQL cluster of `cluster` (a database URL), named after
/// the scenario and the time; its URL.
fn fresh_database(cluster: &str, scenario: &str) -> anyhow::Result<String> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let name = format!("bench_{}_{stamp}", scenario.replace('-', "_"));
    let made = std::process::Command::new("psql")
        .args([cluster, "-qc", &format!("CREATE DATABASE {name}")])
        .status()
        .map_err(|e| anyhow::anyhow!("running psql to create a bench database: {e}"))?;
    anyhow::ensure!(made.success(), "psql could not create the database {name}");
    let (base, _) = cluster
        .rsplit_once('/')
        .ok_or_else(|| anyhow::anyhow!("--database-url {cluster} names no database"))?;
    Ok(format!("{base}/{name}"))
}

pub async fn run(ctx: &Ctx, name: &str) -> anyhow::Result<Value> {
    match name {
        "mutations" => mutations::run(ctx).await,
        "committer" => committer::run(ctx).await,
        "fanout" => fanout::run(ctx).await,
        "fanout-floor" => floor::run(ctx).await,
        "growth" => growth::run(ctx).await,
        "per-user" => peruser::run(ctx).await,
        "idle" => idle::run(ctx).await,
        "refresh" => refresh::run(ctx).await,
        "cold-start" => coldstart::run(ctx).await,
        "auth" => auth::run(ctx).await,
        "actions" => actions::run(ctx).await,
        "durability" => durability::run(ctx).await,
        "soak" => soak::run(ctx).await,
        "scheduler" => scheduler::run(ctx).await,
        "scale-out" => scaleout::run(ctx).await,
        other => bail!("unknown scenario {other}"),
    }
}

/// The load-generator role of `scale-out` (`--scaleout-load SPEC`): one process per node.
pub async fn scale_out_load(spec: &std::path::Path) -> anyhow::Result<()> {
    scaleout::load(spec).await
}

/// The sender role of `fanout-floor` (`--floor-sender S`).
pub fn floor_sender(sessions: usize) -> anyhow::Result<()> {
    floor::sender(sessions)
}

/// Copies a scenario's `metrics` object into the run's flat map as `scenario.key`.
pub fn flatten(name: &str, result: &Value, out: &mut Map<String, Value>) {
    if let Some(metrics) = result.get("metrics").and_then(Value::as_object) {
        for (k, v) in metrics {
            out.insert(format!("{name}.{k}"), v.clone());
        }
    }
}

/// A metric value: a number rounded to `digits`, or null.
pub fn num(x: Option<f64>, digits: i32) -> Value {
    match x {
        Some(v) if v.is_finite() => Value::from(crate::stats::round(v, digits)),
        _ => Value::Null,
    }
}

/// `dist[key]` as f64.
pub fn field(dist: &Value, key: &str) -> Option<f64> {
    dist.get(key).and_then(Value::as_f64)
}

/// `"2"` / `"0p5"`: a rate as it appears in metric names (no dots).
pub fn rate_name(rate: f64) -> String {
    format!("{rate}").replace('.', "p")
}
