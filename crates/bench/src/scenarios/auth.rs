//! `auth` (issue 3): token validations/s — the authenticator's own `verify_bench` example
//! (cache hits, cold cached-key RS256 verification, the pure function) run and parsed — and
//! the added latency of an `auth.config.toml` reload: a client runs closed-loop mutations
//! over HTTP (each request verifies its token, so it goes through the swapped config) while the file is rewritten every 2 s (a customJwt provider added,
//! then removed); the server's "✓ auth.config.toml synced … in N ms" lines give the reload
//! time, and the mutations answered within 250 ms of an edit are compared with the rest.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::{Ctx, field, num};
use crate::http::HttpConn;
use crate::stats::{dist_ms, wall_ns};

/// A mutation is "during a reload" if it was sent within this long after an edit.
const RELOAD_WINDOW_NS: u64 = 250_000_000;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Value> {
    let mut metrics = Map::new();
    let verify = match verify_bench(ctx).await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("   verify_bench failed: {e:#}");
            json!({"error": format!("{e:#}")})
        }
    };
    if let Some(rows) = verify.get("rows").and_then(Value::as_array) {
        for row in rows {
            if let (Some(k), Some(v)) = (row["key"].as_str(), row["per_s"].as_f64()) {
                metrics.insert(format!("verify.{k}.per_s"), num(Some(v), 0));
            }
        }
    }
    let reload = reload_latency(ctx).await?;
    for (k, v) in reload["metrics"].as_object().cloned().unwrap_or_default() {
        metrics.insert(format!("reload.{k}"), v);
    }
    Ok(json!({"verify_bench": verify, "reload": reload, "metrics": metrics}))
}

/// Runs the `verify_bench` example and parses every `... N validations/s` line.
async fn verify_bench(ctx: &Ctx) -> anyhow::Result<Value> {
    let bin: PathBuf = match &ctx.opts.verify_bench {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no folder for this binary")?
            .join("examples/verify_bench"),
    };
    let mut cmd = if bin.is_file() {
        tokio::process::Command::new(&bin)
    } else {
        let mut c = tokio::process::Command::new("cargo");
        c.args([
            "run",
            "--release",
            "-q",
            "-p",
            "authenticator",
            "--example",
            "verify_bench",
        ])
        .current_dir(&ctx.repo);
        c
    };
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(600), cmd.output())
        .await
        .context("verify_bench took longer than 10 minutes")?
        .context("running verify_bench")?;
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    if !output.status.success() {
        anyhow::bail!(
            "verify_bench exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut rows = Vec::new();
    for line in stdout.lines() {
        let Some(at) = line.find("validations/s") else {
            continue;
        };
        let number = line[..at]
            .split_whitespace()
            .last()
            .and_then(|n| n.replace(',', "").parse::<f64>().ok());
        let key = line
            .trim()
            .strip_prefix('(')
            .and_then(|r| r.split(')').next())
            .unwrap_or("")
            .to_string();
        let label = line[..at]
            .rsplit_once(':')
            .map_or(line, |(l, _)| l)
            .trim()
            .to_string();
        if let Some(n) = number {
            println!("   verify_bench {label}: {n:.0} validations/s");
            rows.push(json!({"key": key, "label": label, "per_s": n}));
        }
    }
    Ok(json!({"command": bin.display().to_string(), "stdout": stdout, "rows": rows}))
}

async fn reload_latency(ctx: &Ctx) -> anyhow::Result<Value> {
    let o = &ctx.opts;
    let (server, minter) = ctx.start_server("auth").await?;
    let config = server.app_dir.join("auth.config.toml");
    let original = std::fs::read_to_string(&config).unwrap_or_default();
    let jwks = base64::engine::general_purpose::STANDARD.encode(minter.jwks_json().to_string());
    let with_provider = format!(
        "{original}\n# added by pulsebase-bench (reload latency)\n[[providers]]\ntype = \"customJwt\"\nissuer = \"https://bench.invalid\"\njwks = \"data:application/json;base64,{jwks}\"\nalgorithm = \"RS256\"\napplicationID = \"bench\"\n"
    );
    let token = minter.mint("reload_user", 3600, None)?;
    let mut conn = HttpConn::connect(server.addr).await?;
    let lines_before = server.line_count();
    let edit_every = Duration::from_secs(2);
    let total = edit_every * (o.reload_edits as u32 + 1);
    let start = Instant::now();
    let end = start + total;
    let mut next_edit = start + edit_every;
    let mut edits: Vec<u64> = Vec::new();
    let mut samples: Vec<(u64, i64)> = Vec::new(); // (send ns, latency ns)
    let mut errors = Vec::new();
    let mut n = 0u64;
    while Instant::now() < end {
        if Instant::now() >= next_edit && edits.len() < o.reload_edits {
            let text = if edits.len().is_multiple_of(2) {
                &with_provider
            } else {
                &original
            };
            edits.push(wall_ns());
            std::fs::write(&config, text).context("editing auth.config.toml")?;
            next_edit += edit_every;
        }
        n += 1;
        let body = json!({"path": "todos:addTodo", "args": [{"text": format!("reload-{n}")}], "format": "convex_encoded_json"}).to_string();
        match conn
            .post(
                "/api/mutation",
                Some(&token),
                body.as_bytes(),
                Duration::from_secs(10),
            )
            .await
        {
            Ok(r) => {
                let done = wall_ns();
                if r.status == 200
                    && memchr::memmem::find(&r.body, br#""status":"success""#).is_some()
                {
                    samples.push((r.sent_ns, (done - r.sent_ns) as i64));
                } else {
                    errors.push(format!(
                        "HTTP {}: {}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    ));
                }
            }
            Err(e) => {
                errors.push(format!("{e:#}"));
                break;
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let synced: Vec<f64> = server
        .lines_from(lines_before)
        .iter()
        .filter(|l| l.contains("auth.config.toml synced"))
        .filter_map(|l| {
            l.rsplit(" in ")
                .next()
                .and_then(|r| r.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        })
        .collect();
    let rejected = server
        .lines_from(lines_before)
        .iter()
        .filter(|l| l.contains("auth.config.toml") && l.contains('✗'))
        .count();
    server.stop().await;
    let (mut during, mut quiet) = (Vec::new(), Vec::new());
    for (sent, lat) in samples {
        if edits
            .iter()
            .any(|&e| sent >= e && sent < e + RELOAD_WINDOW_NS)
        {
            during.push(lat);
        } else {
            quiet.push(lat);
        }
    }
    let mut sorted = synced.clone();
    sorted.sort_by(f64::total_cmp);
    let reload_ms = sorted.get(sorted.len() / 2).copied();
    let (d, q) = (dist_ms(&during), dist_ms(&quiet));
    println!(
        "   auth.config.toml reload: {} edits, {} synced (median {} ms, rejected {rejected}); mutation latency quiet p50 {:.3} p99 {:.3} max {:.3} ms, within 250 ms of an edit p50 {:.3} p99 {:.3} max {:.3} ms",
        edits.len(),
        synced.len(),
        reload_ms.map_or("-".into(), |v| format!("{v:.0}")),
        field(&q, "p50").unwrap_or(f64::NAN),
        field(&q, "p99").unwrap_or(f64::NAN),
        field(&q, "max").unwrap_or(f64::NAN),
        field(&d, "p50").unwrap_or(f64::NAN),
        field(&d, "p99").unwrap_or(f64::NAN),
        field(&d, "max").unwrap_or(f64::NAN),
    );
    let mut metrics = Map::new();
    metrics.insert("edits".into(), json!(edits.len()));
    metrics.insert("synced".into(), json!(synced.len()));
    metrics.insert("sync_ms".into(), num(reload_ms, 1));
    for (name, dist) in [("quiet", &q), ("during", &d)] {
        for k in ["p50", "p99", "max"] {
            metrics.insert(format!("{name}.{k}_ms"), num(field(dist, k), 3));
        }
    }
    Ok(json!({
        "edits": edits.len(),
        "sync_ms": synced,
        "rejected": rejected,
        "errors": errors.iter().take(3).collect::<Vec<_>>(),
        "latency_quiet_ms": q,
        "latency_during_reload_ms": d,
        "metrics": metrics,
    }))
}
