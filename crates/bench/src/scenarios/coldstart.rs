//! `cold-start`: process start → first answered query, on an app with 50 generated
//! functions (provisioned once: data file, dev issuer key), median over several starts.
//! The first query is authenticated (`cold0:f0`, the caller's todos by index), as the
//! PocketBase peer's first authenticated list is.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Map, Value, json};

use super::{Ctx, num};
use crate::http::HttpConn;
use crate::server::{Server, free_port};
use crate::tokens::Minter;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Value> {
    let o = &ctx.opts;
    let dir = ctx.work.join("cold-start");
    crate::app::wipe(&dir)?;
    let app = crate::app::generate_cold_app(&ctx.repo, &dir.join("app"), o.coldstart_functions)?;
    // Provisioning start: creates the database and the dev issuer key (not measured).
    let first = Server::start(&ctx.server_bin, &app, 0, &dir).await?;
    let provision_ms = first.ready_ms;
    first.stop().await;

    let mut ready = Vec::new();
    let mut first_query = Vec::new();
    let mut self_reported = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..o.coldstart_reps {
        let port = free_port()?;
        let minter = Minter::load(&app, port)?;
        let token = minter.mint("cold_user", 3600, None)?;
        let t0 = Instant::now();
        let server = Server::start(&ctx.server_bin, &app, port, &dir).await?;
        let answered = first_answer(&server, &token).await;
        let elapsed = t0.elapsed().as_secs_f64() * 1000.0;
        ready.push(server.ready_ms);
        if let Some(ms) = server
            .lines_matching(&["ready in "])
            .first()
            .and_then(|l| l.split("ready in ").nth(1))
            .and_then(|r| r.split(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
        {
            self_reported.push(ms);
        }
        rss.push(crate::proc::rss_kib(server.pid).unwrap_or(0) as f64 / 1024.0);
        server.stop().await;
        answered?;
        first_query.push(elapsed);
    }
    let med = |v: &mut Vec<f64>| -> Option<f64> {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    let (r, q, s, m) = (
        med(&mut ready.clone()),
        med(&mut first_query.clone()),
        med(&mut self_reported.clone()),
        med(&mut rss.clone()),
    );
    println!(
        "   {} functions: exec → ready line {:.1} ms, → first authenticated query answered {:.1} ms (median of {}; server says ready in {} ms; RSS {:.1} MiB)",
        o.coldstart_functions,
        r.unwrap_or(f64::NAN),
        q.unwrap_or(f64::NAN),
        first_query.len(),
        s.map_or("-".into(), |v| format!("{v:.0}")),
        m.unwrap_or(f64::NAN),
    );
    let mut metrics = Map::new();
    metrics.insert("ready_ms".into(), num(r, 1));
    metrics.insert("first_query_ms".into(), num(q, 1));
    metrics.insert("self_reported_ready_ms".into(), num(s, 1));
    metrics.insert("rss_mib".into(), num(m, 1));
    Ok(json!({
        "functions": o.coldstart_functions,
        "provision_ms": crate::stats::round(provision_ms, 1),
        "ready_ms": ready,
        "first_query_ms": first_query,
        "self_reported_ready_ms": self_reported,
        "rss_mib": rss,
        "metrics": metrics,
    }))
}

/// Sends the first query as soon as the server is up; retries a refused connection.
async fn first_answer(server: &Server, token: &str) -> anyhow::Result<()> {
    let body =
        json!({"path": "cold0:f0", "args": [{}], "format": "convex_encoded_json"}).to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut conn) = HttpConn::connect(server.addr).await {
            let r = conn
                .post(
                    "/api/query",
                    Some(token),
                    body.as_bytes(),
                    Duration::from_secs(10),
                )
                .await?;
            if r.status == 200 && memchr::memmem::find(&r.body, br#""status":"success""#).is_some()
            {
                return Ok(());
            }
            bail!(
                "first query failed: HTTP {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
        }
        if Instant::now() > deadline {
            bail!("the server did not accept connections within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
