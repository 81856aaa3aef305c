//! `committer` (in-process, issue 2): single-document mutations/s through the Committer with
//! 1 and 32 concurrent callers — a native closure (`Database::mutate_blocking`, the
//! engine alone) and the example's Rhai `todos:addTodo` (`App::run_mutation`, engine +
//! Rhai) — and the p50/p99 of an indexed point query over a 100,000-document table
//! (`bench:todoByUser` through `App::run_query_blocking`, and a raw `get` by id).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use application::App;
use auth::Identity;
use database::{Database, MutationOutcome, Transaction as _};
use functions::{Caller, FunctionPath, Modules};
use rand::Rng as _;
use serde_json::{Map, Value, json};
use value::Object;

use super::{Ctx, field, num};
use crate::stats::{dist_ms, round};

/// Documents inserted per bulk-load mutation (the per-mutation write limit is 16,000).
const LOAD_BATCH: usize = 5_000;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Value> {
    let o = ctx.opts.clone();
    let (app, _) = in_process_app(ctx, "committer").await?;
    let mut metrics = Map::new();
    let mut rows = Vec::new();

    for &c in &o.committer_callers {
        let app2 = app.clone();
        let secs = o.committer_s;
        let row = tokio::task::spawn_blocking(move || native_cell(&app2, c, secs)).await??;
        report("native", c, &row, &mut metrics);
        rows.push(row);
    }
    for &c in &o.committer_callers {
        let row = rhai_cell(&app, c, o.committer_s).await?;
        report("rhai", c, &row, &mut metrics);
        rows.push(row);
    }

    let app2 = app.clone();
    let (docs, queries) = (o.point_docs, o.point_queries);
    let point = tokio::task::spawn_blocking(move || point_queries(&app2, docs, queries)).await??;
    for kind in ["rhai_index", "raw_get"] {
        let d = &point[kind];
        println!(
            "   point query ({kind}) over {docs} docs: p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
            field(d, "p50").unwrap_or(f64::NAN),
            field(d, "p99").unwrap_or(f64::NAN),
            field(d, "max").unwrap_or(f64::NAN),
        );
        for q in ["p50", "p99", "max"] {
            metrics.insert(format!("point.{kind}.{q}_ms"), num(field(d, q), 4));
        }
    }
    metrics.insert(
        "point.load_docs_per_s".into(),
        point["load_docs_per_s"].clone(),
    );
    Ok(json!({"rows": rows, "point": point, "metrics": metrics}))
}

/// The workload app in this process, on a fresh database under `<work>/<name>/`; returns it
/// and the database file's path.
pub(super) async fn in_process_app(ctx: &Ctx, name: &str) -> anyhow::Result<(Arc<App>, PathBuf)> {
    let dir = ctx.work.join(name);
    crate::app::wipe(&dir)?;
    let app_dir = crate::app::stage(&ctx.repo, &dir.join("app"))?;
    let schema_text = std::fs::read_to_string(app_dir.join("schema.toml"))?;
    let schema = schema::Schema::parse(&schema_text, "schema.toml")?;
    let db_path = dir.join("data.sqlite3");
    let open_path = db_path.clone();
    let (db, _) =
        tokio::task::spawn_blocking(move || Database::open(&open_path, schema, &schema_text))
            .await?
            .map_err(|e| anyhow!("{e}"))?;
    let modules = Modules::load_dir(&app_dir.join("functions"))
        .map_err(|e| anyhow!("loading functions: {e}"))?;
    Ok((App::new(db, modules), db_path))
}

fn report(kind: &str, c: usize, row: &Value, metrics: &mut Map<String, Value>) {
    let lat = &row["latency_ms"];
    println!(
        "   committer {kind:<6} callers={c:<3} {:>8.0} mutations/s  p50 {:.3} ms  p99 {:.3} ms  errors {}",
        row["per_s"].as_f64().unwrap_or(0.0),
        field(lat, "p50").unwrap_or(f64::NAN),
        field(lat, "p99").unwrap_or(f64::NAN),
        row["errors"]
    );
    let k = format!("{kind}.c{c}");
    metrics.insert(format!("{k}.per_s"), row["per_s"].clone());
    metrics.insert(format!("{k}.p50_ms"), num(field(lat, "p50"), 4));
    metrics.insert(format!("{k}.p99_ms"), num(field(lat, "p99"), 4));
}

fn todo(text: String, user: &str) -> Object {
    let mut o = Object::new();
    o.insert("text".into(), value::Value::String(text));
    o.insert("userId".into(), value::Value::String(user.into()));
    o.insert("completed".into(), value::Value::Boolean(false));
    o
}

/// `c` threads, each a closed loop of one-insert native mutations, for `secs`.
fn native_cell(app: &Arc<App>, c: usize, secs: f64) -> anyhow::Result<Value> {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let results: Vec<CallerOut> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..c)
            .map(|i| {
                scope.spawn(move || {
                    let mut lat = Vec::new();
                    let mut errors = 0;
                    let mut n = 0u64;
                    while Instant::now() < end {
                        n += 1;
                        let fields = todo(format!("n{i}-{n}"), &format!("native_{i}"));
                        let t = Instant::now();
                        let outcome = app.db().mutate_blocking(
                            None,
                            Box::new(move |mut txn| {
                                txn.insert("todos", fields)
                                    .map(|id| id.to_string())
                                    .map_err(|e| e.to_string())
                            }),
                        );
                        match outcome {
                            Ok(MutationOutcome::Committed { .. }) => {
                                lat.push(t.elapsed().as_nanos() as i64);
                            }
                            _ => errors += 1,
                        }
                    }
                    CallerOut {
                        latencies_ns: lat,
                        errors,
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    Ok(cell_json("native", c, secs, results))
}

/// What one caller of a cell measured.
#[derive(Default)]
struct CallerOut {
    /// Latency of each committed mutation, in ns.
    latencies_ns: Vec<i64>,
    /// Mutations that failed.
    errors: usize,
}

fn cell_json(kind: &str, c: usize, secs: f64, results: Vec<CallerOut>) -> Value {
    let errors: usize = results.iter().map(|r| r.errors).sum();
    let lat: Vec<i64> = results.into_iter().flat_map(|r| r.latencies_ns).collect();
    json!({
        "kind": kind,
        "callers": c,
        "duration_s": secs,
        "ok": lat.len(),
        "per_s": round(lat.len() as f64 / secs, 1),
        "errors": errors,
        "latency_ms": dist_ms(&lat),
    })
}

/// `c` tasks, each a closed loop of `todos:addTodo` through `App::run_mutation`.
pub(super) async fn rhai_cell(app: &Arc<App>, c: usize, secs: f64) -> anyhow::Result<Value> {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let path = FunctionPath::parse("todos:addTodo");
    let mut handles = Vec::new();
    for i in 0..c {
        let app = app.clone();
        let path = path.clone();
        let identity = Identity::acting_as(&json!({
            "subject": format!("rhai_{i}"),
            "issuer": "bench",
        }))?;
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            let mut n = 0u64;
            while Instant::now() < end {
                n += 1;
                let mut args = Object::new();
                args.insert("text".into(), value::Value::String(format!("r{i}-{n}")));
                let t = Instant::now();
                let r = app
                    .run_mutation(
                        path.clone(),
                        value::Value::Object(args),
                        Some(identity.clone()),
                        Caller::Client,
                        None,
                    )
                    .await;
                match r {
                    Ok(m) if m.result.is_ok() => lat.push(t.elapsed().as_nanos() as i64),
                    _ => errors += 1,
                }
            }
            CallerOut {
                latencies_ns: lat,
                errors,
            }
        }));
    }
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap_or_default());
    }
    Ok(cell_json("rhai", c, secs, results))
}

/// Loads `docs` todos with distinct `userId`s, then times `queries` random point queries.
fn point_queries(app: &Arc<App>, docs: usize, queries: usize) -> anyhow::Result<Value> {
    let t = Instant::now();
    let mut ids = Vec::with_capacity(docs);
    bulk_load(app, 0, docs, &mut ids)?;
    let load_s = t.elapsed().as_secs_f64();
    let points = measure_points(app, docs, queries, &ids)?;
    Ok(json!({
        "docs": docs,
        "queries": queries,
        "load_s": round(load_s, 2),
        "load_docs_per_s": round(docs as f64 / load_s, 0),
        "misses": points.misses,
        "rhai_index": dist_ms(&points.rhai),
        "raw_get": dist_ms(&points.raw),
    }))
}

/// Inserts todos number `from..to` (user `point_NNNNNNN` each) in batches of [`LOAD_BATCH`],
/// appending their ids to `ids`.
pub(super) fn bulk_load(
    app: &Arc<App>,
    from: usize,
    to: usize,
    ids: &mut Vec<String>,
) -> anyhow::Result<()> {
    let mut k = from;
    while k < to {
        let (first, last) = (k, (k + LOAD_BATCH).min(to));
        let outcome = app
            .db()
            .mutate_blocking(
                None,
                Box::new(move |mut txn| {
                    let mut ids = Vec::with_capacity(last - first);
                    for j in first..last {
                        let id = txn
                            .insert(
                                "todos",
                                todo(format!("point {j}"), &format!("point_{j:07}")),
                            )
                            .map_err(|e| e.to_string())?;
                        ids.push(id.to_string());
                    }
                    Ok(ids.join(","))
                }),
            )
            .map_err(|e| anyhow!("{e}"))?;
        match outcome {
            MutationOutcome::Committed { response, .. } => {
                ids.extend(response.split(',').map(str::to_string));
            }
            other => return Err(anyhow!("bulk load failed: {other:?}")),
        }
        k = last;
    }
    Ok(())
}

/// Point-query latencies (ns) over a table holding todos `0..docs` with these ids.
pub(super) struct Points {
    pub rhai: Vec<i64>,
    pub raw: Vec<i64>,
    pub misses: usize,
}

/// `queries` Rhai point queries through the `by_user` index (`bench:todoByUser`) and as
/// many raw gets by id, each of a random document.
pub(super) fn measure_points(
    app: &Arc<App>,
    docs: usize,
    queries: usize,
    ids: &[String],
) -> anyhow::Result<Points> {
    let path = FunctionPath::parse("bench:todoByUser");
    let mut rng = rand::thread_rng();
    let mut rhai = Vec::with_capacity(queries);
    let mut misses = 0;
    for _ in 0..queries {
        let j = rng.gen_range(0..docs);
        let mut args = Object::new();
        args.insert(
            "userId".into(),
            value::Value::String(format!("point_{j:07}")),
        );
        let t = Instant::now();
        let r = app
            .run_query_blocking(&path, value::Value::Object(args), None, Caller::Client)
            .map_err(|e| anyhow!("{e}"))?;
        rhai.push(t.elapsed().as_nanos() as i64);
        if !matches!(r.execution.result, Ok(value::Value::Object(_))) {
            misses += 1;
        }
    }
    let mut raw = Vec::with_capacity(queries);
    for _ in 0..queries {
        let id = &ids[rng.gen_range(0..ids.len())];
        let t = Instant::now();
        let found = app
            .db()
            .read(|txn| txn.get(id))
            .map_err(|e| anyhow!("{e}"))?
            .map_err(|e| anyhow!("{e}"))?;
        raw.push(t.elapsed().as_nanos() as i64);
        if found.is_none() {
            misses += 1;
        }
    }
    Ok(Points { rhai, raw, misses })
}
