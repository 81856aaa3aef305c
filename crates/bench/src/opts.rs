//! Command-line options: which scenarios to run and every count, rate and duration they use.
//! `--quick` shrinks them all for a smoke run of well under a minute per scenario.

use std::path::PathBuf;

use anyhow::bail;
use clap::parser::ValueSource;
use clap::{ArgMatches, Parser};

/// The scenarios in the order `all` runs them.
pub const ALL: &[&str] = &[
    "cold-start",
    "committer",
    "growth",
    "mutations",
    "fanout",
    "fanout-floor",
    "per-user",
    "idle",
    "refresh",
    "auth",
    "actions",
    "durability",
    "soak",
    "scheduler",
];

/// Scenarios run only when named (not by `all`): `scale-out` needs `--database-url`.
pub const BY_NAME: &[&str] = &["scale-out"];

/// The Pulsebase benchmark load generator (issue 7). Starts the server itself.
#[derive(Parser, Clone, Debug)]
#[command(name = "pulsebase-bench", version)]
pub struct Opts {
    /// Scenarios to run (`all`, or any of: cold-start committer growth mutations fanout fanout-floor per-user idle
    /// refresh auth actions durability soak scheduler; and, only by name, scale-out).
    #[arg(default_value = "all")]
    pub scenarios: Vec<String>,
    /// Write the full results (and the flat `metrics` map) here as JSON.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Small counts and short loops: a smoke run.
    #[arg(long)]
    pub quick: bool,
    /// The `pulsebase` binary (default: next to this binary).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// The repository root: its `schema.toml` and `functions/` are the workload app, and
    /// `bench/app/functions/` adds the bench-only functions.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Scratch folder for app copies, databases and server logs (wiped per scenario).
    #[arg(long, default_value = "/tmp/pulsebase-bench")]
    pub work: PathBuf,
    /// Tokio worker threads of this client (the server gets the rest of the machine).
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    /// The authenticator's `verify_bench` example binary (default: `examples/verify_bench`
    /// next to this binary; `cargo run --release -p authenticator --example verify_bench`
    /// when it is missing).
    #[arg(long)]
    pub verify_bench: Option<PathBuf>,

    /// Diagnostic: this client ACKs every packet at once (TCP_QUICKACK). Shows whether a
    /// latency is the server's Nagle wait for a delayed ACK; not for the reported figures.
    #[arg(long)]
    pub tcp_quickack: bool,

    /// Store each server's app in a fresh database of this PostgreSQL cluster instead of
    /// SQLite: the URL of a database of it (`postgres://USER@HOST:PORT/DB`, e.g. the one
    /// `scripts/pg-cluster.sh start` prints). Each server start creates its own database
    /// with `psql`.
    #[arg(long)]
    pub database_url: Option<String>,

    /// Hold a dashboard logs stream open (`/_dashboard/api/logs`, read as fast as it comes)
    /// on every server started, to measure what an open dashboard costs.
    #[arg(long)]
    pub dashboard_logs: bool,

    // ---- mutations
    /// Concurrent clients for `mutations` (each its own user, closed loop).
    #[arg(long, default_value = "1,8,32", value_delimiter = ',')]
    pub mutation_clients: Vec<usize>,
    /// Measured seconds per (transport, clients) cell.
    #[arg(long, default_value_t = 6.0)]
    pub mutation_s: f64,
    /// Warm-up seconds before each measured window.
    #[arg(long, default_value_t = 1.0)]
    pub warmup_s: f64,

    // ---- committer (in-process)
    /// Callers for the in-process committer figures.
    #[arg(long, default_value = "1,32", value_delimiter = ',')]
    pub committer_callers: Vec<usize>,
    /// Seconds per committer cell.
    #[arg(long, default_value_t = 3.0)]
    pub committer_s: f64,
    /// Documents in the table for the indexed point query.
    #[arg(long, default_value_t = 100_000)]
    pub point_docs: usize,
    /// Point queries measured.
    #[arg(long, default_value_t = 20_000)]
    pub point_queries: usize,
    /// Table sizes for `growth` (documents).
    #[arg(long, default_value = "10000,1000000,10000000", value_delimiter = ',')]
    pub growth_docs: Vec<usize>,

    // ---- fanout
    /// `S@R` items: S subscribers of one query (one user), writer at R mutations/s.
    #[arg(
        long,
        default_value = "100@2,1000@2,10000@0.5,19000@0.5",
        value_delimiter = ','
    )]
    pub fanout_plan: Vec<String>,
    /// Writer seconds per fan-out row.
    #[arg(long, default_value_t = 20.0)]
    pub fanout_s: f64,
    /// Most seconds to wait after the last write for pushes to arrive.
    #[arg(long, default_value_t = 10.0)]
    pub drain_s: f64,

    /// Internal: run as `fanout-floor`'s sender process for S sessions.
    #[arg(long, hide = true, value_name = "S")]
    pub floor_sender: Option<usize>,

    // ---- per-user
    /// Sessions, each its own user, for `per-user`.
    #[arg(long, default_value_t = 1000)]
    pub peruser_users: usize,
    /// Writer rates (mutations/s, round-robin over the users, each by its owner).
    #[arg(long, default_value = "5,10,500", value_delimiter = ',')]
    pub peruser_rates: Vec<f64>,
    /// Writer seconds per rate.
    #[arg(long, default_value_t = 10.0)]
    pub peruser_s: f64,
    /// Keep-alive HTTP connections of the open-loop writer.
    #[arg(long, default_value_t = 64)]
    pub writer_conns: usize,

    // ---- idle
    /// Idle authenticated sessions to hold, in increasing order (`max` = both processes'
    /// descriptor limit less 500, in thousands).
    #[arg(long, default_value = "0,1000,5000,10000,max", value_delimiter = ',')]
    pub idle_levels: Vec<String>,
    /// Seconds to wait before sampling RSS at each level.
    #[arg(long, default_value_t = 3.0)]
    pub idle_settle_s: f64,

    // ---- scale-out (several nodes on one PostgreSQL database)
    /// Nodes started for `scale-out`.
    #[arg(long, default_value_t = 3)]
    pub scaleout_nodes: usize,
    /// Idle authenticated sessions per node (each node's opened by its own load-generator
    /// process; capped at the descriptor limit less 500).
    #[arg(long, default_value_t = 19_000)]
    pub scaleout_sessions: usize,
    /// Todos the writer adds once every session is open (each reaches every session).
    #[arg(long, default_value_t = 3)]
    pub scaleout_events: usize,
    /// The writer's rate, todos/s.
    #[arg(long, default_value_t = 0.5)]
    pub scaleout_rate: f64,
    /// Internal: run as one of `scale-out`'s load generators, as the JSON file SPEC says.
    #[arg(long, hide = true, value_name = "SPEC")]
    pub scaleout_load: Option<PathBuf>,

    // ---- refresh
    /// Sessions that refresh their token.
    #[arg(long, default_value_t = 10_000)]
    pub refresh_sessions: usize,
    /// Each session re-authenticates with a fresh token this often.
    #[arg(long, default_value_t = 10.0)]
    pub refresh_interval_s: f64,
    /// Measured seconds with refreshes (and the same again without, as the baseline).
    #[arg(long, default_value_t = 10.0)]
    pub refresh_s: f64,
    /// Mutations/s of the concurrent writer whose push latency is watched.
    #[arg(long, default_value_t = 10.0)]
    pub refresh_writer_rate: f64,

    // ---- cold start
    /// Process starts measured.
    #[arg(long, default_value_t = 5)]
    pub coldstart_reps: usize,
    /// Functions in the generated app.
    #[arg(long, default_value_t = 50)]
    pub coldstart_functions: usize,

    // ---- auth
    /// auth.config.toml edits made while a client measures mutation latency.
    #[arg(long, default_value_t = 5)]
    pub reload_edits: usize,

    // ---- actions
    /// Slow actions held in flight while the writers are measured again.
    #[arg(long, default_value_t = 1000)]
    pub actions_inflight: usize,
    /// Closed-loop WebSocket writers measured with and without the actions.
    #[arg(long, default_value_t = 8)]
    pub actions_writers: usize,
    /// Measured seconds in each state.
    #[arg(long, default_value_t = 6.0)]
    pub actions_s: f64,

    // ---- durability
    /// Closed-loop HTTP clients for `durability` (each its own user).
    #[arg(long, default_value = "1,32", value_delimiter = ',')]
    pub durability_clients: Vec<usize>,
    /// Seconds per (mode, clients) cell.
    #[arg(long, default_value_t = 5.0)]
    pub durability_s: f64,

    // ---- soak
    /// Frames the `soak` storm sends before it stops.
    #[arg(long, default_value_t = 1_000_000)]
    pub soak_frames: u64,
    /// Longest storm, in seconds (it stops at whichever bound comes first).
    #[arg(long, default_value_t = 300.0)]
    pub soak_s: f64,
    /// Storm connections (WebSocket, HTTP and raw TCP workers).
    #[arg(long, default_value_t = 12)]
    pub soak_conns: usize,

    // ---- scheduler
    /// Closed-loop clients scheduling `runAfter(0)` jobs.
    #[arg(long, default_value_t = 32)]
    pub scheduler_clients: usize,
    /// Seconds they schedule for.
    #[arg(long, default_value_t = 5.0)]
    pub scheduler_s: f64,
    /// Jobs scheduled one every 10 ms on a quiet server, for the delay when not saturated.
    #[arg(long, default_value_t = 500)]
    pub scheduler_quiet_jobs: usize,
}

impl Opts {
    /// Shrinks every count and duration the command line did not set explicitly.
    pub fn apply_quick(&mut self, matches: &ArgMatches) {
        let free = |id: &str| matches.value_source(id) != Some(ValueSource::CommandLine);
        macro_rules! quick {
            ($($field:ident = $value:expr;)*) => {
                $(if free(stringify!($field)) {
                    self.$field = $value;
                })*
            };
        }
        quick! {
            mutation_clients = vec![1, 8];
            mutation_s = 1.5;
            warmup_s = 0.3;
            committer_callers = vec![1, 8];
            committer_s = 0.5;
            point_docs = 5_000;
            point_queries = 1_000;
            growth_docs = vec![1_000, 10_000];
            fanout_plan = vec!["10@5".into(), "100@5".into()];
            fanout_s = 2.0;
            drain_s = 3.0;
            peruser_users = 50;
            peruser_rates = vec![20.0];
            peruser_s = 2.0;
            writer_conns = 8;
            idle_levels = vec!["0".into(), "200".into()];
            idle_settle_s = 1.0;
            scaleout_sessions = 200;
            scaleout_events = 2;
            scaleout_rate = 2.0;
            refresh_sessions = 200;
            refresh_interval_s = 2.0;
            refresh_s = 2.0;
            coldstart_reps = 2;
            reload_edits = 2;
            actions_inflight = 100;
            actions_writers = 2;
            actions_s = 1.5;
            durability_s = 1.0;
            soak_frames = 20_000;
            soak_s = 30.0;
            scheduler_s = 1.5;
            scheduler_quiet_jobs = 100;
        }
    }

    pub fn scenario_list(&self) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        for s in &self.scenarios {
            for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if name == "all" {
                    out.extend(ALL.iter().map(|n| n.to_string()));
                } else if ALL.contains(&name) || BY_NAME.contains(&name) {
                    out.push(name.to_string());
                } else {
                    bail!(
                        "unknown scenario {name:?}; known: all, {}, {}",
                        ALL.join(", "),
                        BY_NAME.join(", ")
                    );
                }
            }
        }
        out.dedup();
        Ok(out)
    }

    /// `"1000@2"` → 1,000 subscribers, 2 mutations/s (2/s when the rate is left out).
    pub fn fanout_rows(&self) -> anyhow::Result<Vec<FanoutRow>> {
        self.fanout_plan
            .iter()
            .map(|item| {
                let (s, r) = item.split_once('@').unwrap_or((item.as_str(), "2"));
                Ok(FanoutRow {
                    subscribers: s.trim().parse()?,
                    rate: r.trim().parse()?,
                })
            })
            .collect()
    }
}

/// One row of the `fanout` scenario (an item of `--fanout-plan`).
#[derive(Clone, Copy, Debug)]
pub struct FanoutRow {
    /// Sessions subscribed to the one query.
    pub subscribers: usize,
    /// The writer's mutations per second.
    pub rate: f64,
}
