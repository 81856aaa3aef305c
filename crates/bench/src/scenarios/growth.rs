//! `growth` (in-process, issue 17): how cost grows with the size of the table. The `todos`
//! table is filled in steps to each size of `--growth-docs` (10,000 / 1,000,000 / 10,000,000
//! by default); at each size: the indexed point query (`bench:todoByUser` through Rhai, and a
//! raw `get` by id) p50/p99 over random documents, `todos:addTodo` through Rhai with 32
//! callers for `--committer-s` (mutations/s, p50/p99), and the database's size on disk (the
//! file, and its WAL apart). The mutations' own inserts stay in the table: the next size is
//! that much larger than its name (a few hundred thousand at most).

use std::path::Path;

use serde_json::{Map, Value, json};

use super::committer::{bulk_load, in_process_app, measure_points, rhai_cell};
use super::{Ctx, field, num};
use crate::stats::{dist_ms, round};

/// Callers of the mutation cell at each size.
const CALLERS: usize = 32;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Value> {
    let o = ctx.opts.clone();
    let (app, db_path) = in_process_app(ctx, "growth").await?;
    let mut sizes = o.growth_docs.clone();
    sizes.sort_unstable();
    sizes.dedup();

    let mut metrics = Map::new();
    let mut rows = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    for docs in sizes {
        let (from, app2) = (ids.len(), app.clone());
        let mut loaded = std::mem::take(&mut ids);
        let queries = o.point_queries;
        let (loaded, points) = tokio::task::spawn_blocking(move || {
            bulk_load(&app2, from, docs, &mut loaded)?;
            let points = measure_points(&app2, docs, queries, &loaded)?;
            anyhow::Ok((loaded, points))
        })
        .await??;
        ids = loaded;
        // Sized before the mutation cell, whose inserts (tens of thousands) join the table.
        let bytes = file_size(&db_path);
        let wal = file_size(&db_path.with_extension("sqlite3-wal"));
        let mutations = rhai_cell(&app, CALLERS, o.committer_s).await?;
        let (rhai, raw) = (dist_ms(&points.rhai), dist_ms(&points.raw));
        let per_s = mutations["per_s"].as_f64().unwrap_or(0.0);
        let lat = &mutations["latency_ms"];
        println!(
            "   {docs:>10} docs ({:.0} MiB, WAL {:.0} MiB): point query p50 {:.3} p99 {:.3} ms, get p99 {:.3} ms; addTodo x{CALLERS} {per_s:.0}/s p99 {:.2} ms",
            mib(bytes),
            mib(wal),
            field(&rhai, "p50").unwrap_or(f64::NAN),
            field(&rhai, "p99").unwrap_or(f64::NAN),
            field(&raw, "p99").unwrap_or(f64::NAN),
            field(lat, "p99").unwrap_or(f64::NAN),
        );
        let k = format!("d{docs}");
        metrics.insert(format!("{k}.db_mib"), num(Some(mib(bytes)), 1));
        metrics.insert(format!("{k}.wal_mib"), num(Some(mib(wal)), 1));
        for q in ["p50", "p99"] {
            metrics.insert(format!("{k}.point_{q}_ms"), num(field(&rhai, q), 4));
            metrics.insert(format!("{k}.get_{q}_ms"), num(field(&raw, q), 4));
            metrics.insert(format!("{k}.mutation_{q}_ms"), num(field(lat, q), 4));
        }
        metrics.insert(format!("{k}.mutations_per_s"), json!(round(per_s, 0)));
        metrics.insert(format!("{k}.misses"), json!(points.misses));
        rows.push(json!({
            "docs": docs,
            "db_bytes": bytes,
            "wal_bytes": wal,
            "point_rhai": rhai,
            "point_get": raw,
            "misses": points.misses,
            "mutations": mutations,
        }));
    }
    Ok(json!({"rows": rows, "metrics": metrics}))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}
