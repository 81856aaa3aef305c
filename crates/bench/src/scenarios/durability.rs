//! `durability`: what `--durability full` (SQLite `synchronous=FULL`, every commit synced to
//! the disk before it is acknowledged) costs against the default `normal` (survives a crash
//! of the process, a power loss can lose the last commits): authenticated HTTP mutations/s
//! (`todos:addTodo`) with C = 1 and 32 closed-loop clients, each its own user, one fresh
//! server per mode. Group commit shares one sync among the mutations of a batch, so the gap
//! narrows as clients are added.

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::{Ctx, num};
use crate::http::HttpConn;
use crate::server::Server;
use crate::tokens::Minter;

const REPLY_LIMIT: Duration = Duration::from_secs(10);

pub async fn run(ctx: &Ctx) -> anyhow::Result<Value> {
    let o = &ctx.opts;
    let mut metrics = Map::new();
    let mut rows = Vec::new();
    for mode in ["normal", "full"] {
        let dir = ctx.work.join(format!("durability-{mode}"));
        crate::app::wipe(&dir)?;
        let app = crate::app::stage(&ctx.repo, &dir.join("app"))?;
        let server =
            Server::start_with(&ctx.server_bin, &app, 0, &dir, &["--durability", mode]).await?;
        let minter = Minter::load(&app, server.port)?;
        let max_c = o.durability_clients.iter().copied().max().unwrap_or(1);
        let users: Vec<String> = (0..max_c).map(|i| format!("dur_user_{i}")).collect();
        let tokens = minter.for_users(&users, 3600)?;
        for &c in &o.durability_clients {
            let (per_s, errors) = measure(&server, &tokens[..c], o.durability_s).await?;
            println!("   {mode:<6} C={c:<3} {per_s:>8.0} mutations/s  errors {errors}");
            metrics.insert(format!("{mode}.c{c}.per_s"), num(Some(per_s), 0));
            rows.push(
                json!({"mode": mode, "clients": c, "per_s": per_s.round(), "errors": errors}),
            );
        }
        server.stop().await;
    }
    Ok(json!({"rows": rows, "metrics": metrics}))
}

/// Closed-loop HTTP mutations from one client per token for `seconds`: (mutations/s, errors).
async fn measure(server: &Server, tokens: &[String], seconds: f64) -> anyhow::Result<(f64, usize)> {
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut workers = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let mut conn = HttpConn::connect(server.addr).await?;
        let token = token.clone();
        workers.push(tokio::spawn(async move {
            let (mut ok, mut errors) = (0u64, 0usize);
            let mut n = 0u64;
            while Instant::now() < end {
                n += 1;
                let body = json!({"path": "todos:addTodo", "args": [{"text": format!("d{i}-{n}")}], "format": "convex_encoded_json"}).to_string();
                match conn.post("/api/mutation", Some(&token), body.as_bytes(), REPLY_LIMIT).await {
                    Ok(r) if r.status == 200 => ok += 1,
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
            }
            (ok, errors)
        }));
    }
    let started = Instant::now();
    let (mut ok, mut errors) = (0u64, 0usize);
    for w in workers {
        let (o, e) = w.await?;
        ok += o;
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64().max(seconds);
    Ok((ok as f64 / elapsed, errors))
}
