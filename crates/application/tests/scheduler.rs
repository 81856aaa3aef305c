//! The scheduler on a real database and the real loop: due jobs run in order of
//! `scheduledTime`, the loop wakes at the due time and when an earlier job is committed while
//! it sleeps, cancel racing the due time never lets a job both run and be canceled, a failing
//! mutation rolls back and records `failed`, and an action left `inProgress` by a stop is
//! marked failed at start, never re-run.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use application::App;
use database::{Database, MutationOutcome};
use functions::scheduled::jobs::{JobState, set_state};
use functions::{Caller, FunctionPath, ModuleSource, Modules};
use schema::Schema;
use value::{Object, Value};

const SCHEMA: &str = "[tables.effects]\nfields = { tag = \"string\" }\n";

const JOBS: &str = r#"
export const record = internalMutation(#{
    args: #{ tag: "string" },
    handler: |ctx, args| { ctx.db.insert("effects", #{ tag: args.tag }); }
});
export const at = mutation(#{
    args: #{ time: "number", tag: "string" },
    handler: |ctx, args| ctx.scheduler.runAt(args.time, "jobs:record", #{ tag: args.tag })
});
export const cancel = mutation(#{
    args: #{ id: "string" },
    handler: |ctx, args| ctx.scheduler.cancel(args.id)
});
export const boom = internalMutation(|ctx, args| {
    ctx.db.insert("effects", #{ tag: "boom" });
    throw "boom on purpose";
});
export const scheduleBoom = mutation(|ctx, args| ctx.scheduler.runAfter(0, "jobs:boom"));
export const act = internalAction(|ctx, args| "acted");
export const scheduleAct = mutation(|ctx, args| ctx.scheduler.runAfter(0, "jobs:act"));
export const effects = query(|ctx, args| ctx.db.query("effects").collect().map(|e| e.tag));
export const job = query(#{ args: #{ id: "string" }, handler: |ctx, args| ctx.db.system.get(args.id) });
"#;

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn open(dir: &std::path::Path) -> Arc<App> {
    let schema = Schema::parse(SCHEMA, "schema.toml").expect("schema");
    let (db, _) = Database::open(&dir.join("db.sqlite3"), schema, SCHEMA).expect("db");
    let modules = Modules::from_sources(vec![ModuleSource {
        module: "jobs".into(),
        file: "functions/jobs.rhai".into(),
        source: JOBS.into(),
    }])
    .expect("modules");
    App::new(db, modules)
}

fn args(pairs: &[(&str, Value)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<Object>(),
    )
}

async fn mutate(app: &Arc<App>, path: &str, a: Value) -> Value {
    app.run_mutation(FunctionPath::parse(path), a, None, Caller::Client, None)
        .await
        .expect("committed")
        .result
        .expect("succeeded")
}

async fn query(app: &Arc<App>, path: &str, a: Value) -> Value {
    app.run_query(FunctionPath::parse(path), a, None, Caller::Client)
        .await
        .expect("ran")
        .execution
        .result
        .expect("succeeded")
}

async fn effects(app: &Arc<App>) -> Vec<String> {
    match query(app, "jobs:effects", args(&[])).await {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        other => panic!("effects: {other:?}"),
    }
}

async fn state(app: &Arc<App>, id: &str) -> (String, Option<String>) {
    let job = query(app, "jobs:job", args(&[("id", Value::String(id.into()))])).await;
    let state = job
        .as_object()
        .and_then(|o| o.get("state"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    (
        state
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        state
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string),
    )
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn schedule_at(time: f64, tag: &str) -> Value {
    args(&[
        ("time", Value::Float64(time)),
        ("tag", Value::String(tag.into())),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_jobs_run_in_order_of_their_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = open(dir.path());
    app.start_scheduler().await.expect("scheduler");
    let base = now_ms() + 300.0;
    for (offset, tag) in [(200.0, "third"), (0.0, "first"), (100.0, "second")] {
        mutate(&app, "jobs:at", schedule_at(base + offset, tag)).await;
    }
    // Same time: creation order.
    mutate(&app, "jobs:at", schedule_at(base + 200.0, "fourth")).await;
    wait_until("four effects", Duration::from_secs(5), || {
        let app = app.clone();
        async move { effects(&app).await.len() == 4 }
    })
    .await;
    assert_eq!(effects(&app).await, ["first", "second", "third", "fourth"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_wakes_at_the_due_time_and_for_an_earlier_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = open(dir.path());
    app.start_scheduler().await.expect("scheduler");
    // The loop now sleeps until this one, 60 s away...
    mutate(&app, "jobs:at", schedule_at(now_ms() + 60_000.0, "late")).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    // ...and an earlier job committed meanwhile wakes it.
    let due = now_ms() + 300.0;
    let id = mutate(&app, "jobs:at", schedule_at(due, "early")).await;
    let id = id.as_str().expect("an id").to_string();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        effects(&app).await.is_empty(),
        "nothing runs before its time"
    );
    wait_until("the early job", Duration::from_secs(3), || {
        let app = app.clone();
        async move { effects(&app).await == ["early"] }
    })
    .await;
    let late_by = now_ms() - due;
    assert!(late_by < 500.0, "ran {late_by} ms after its time");
    assert_eq!(state(&app, &id).await.0, "success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_racing_the_due_time_never_both_runs_and_cancels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = open(dir.path());
    app.start_scheduler().await.expect("scheduler");
    let due = now_ms() + 30.0;
    let mut ids = Vec::new();
    for i in 0..60 {
        let id = mutate(&app, "jobs:at", schedule_at(due, &format!("job{i}"))).await;
        ids.push(id.as_str().expect("id").to_string());
    }
    // Cancel every other one around the due time: some before, some while running.
    for id in ids.iter().step_by(2) {
        mutate(
            &app,
            "jobs:cancel",
            args(&[("id", Value::String(id.clone()))]),
        )
        .await;
    }
    wait_until("every job to finish", Duration::from_secs(10), || {
        let app = app.clone();
        let ids = ids.clone();
        async move {
            for id in &ids {
                if matches!(state(&app, id).await.0.as_str(), "pending" | "inProgress") {
                    return false;
                }
            }
            true
        }
    })
    .await;
    let ran = effects(&app).await;
    for (i, id) in ids.iter().enumerate() {
        let (kind, _) = state(&app, id).await;
        let effect = ran.iter().filter(|t| **t == format!("job{i}")).count();
        match kind.as_str() {
            "success" => assert_eq!(effect, 1, "job{i} succeeded {effect} times"),
            "canceled" => assert_eq!(effect, 0, "job{i} was canceled but ran"),
            other => panic!("job{i} ended {other}"),
        }
        if i % 2 == 1 {
            assert_eq!(kind, "success", "job{i} was never canceled");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_mutation_rolls_back_and_records_failed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = open(dir.path());
    app.start_scheduler().await.expect("scheduler");
    let id = mutate(&app, "jobs:scheduleBoom", args(&[])).await;
    let id = id.as_str().expect("id").to_string();
    wait_until("the failure", Duration::from_secs(5), || {
        let app = app.clone();
        let id = id.clone();
        async move { state(&app, &id).await.0 == "failed" }
    })
    .await;
    let (_, error) = state(&app, &id).await;
    assert!(error.is_some_and(|e| e.contains("boom on purpose")));
    assert!(effects(&app).await.is_empty(), "its write was rolled back");
    // Actions run too, and record success.
    let act = mutate(&app, "jobs:scheduleAct", args(&[])).await;
    let act = act.as_str().expect("id").to_string();
    wait_until("the action", Duration::from_secs(5), || {
        let app = app.clone();
        let act = act.clone();
        async move { state(&app, &act).await.0 == "success" }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_left_in_progress_by_a_stop_is_failed_not_rerun() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = {
        let app = open(dir.path());
        // No scheduler yet: schedule, then mark it as the loop would before starting it.
        let id = mutate(&app, "jobs:scheduleAct", args(&[])).await;
        let id = id.as_str().expect("id").to_string();
        let marked = id.clone();
        let outcome = app
            .db()
            .mutate(
                None,
                Box::new(move |mut txn| {
                    set_state(&mut txn, &marked, JobState::InProgress, None, now_ms())
                        .map(|()| String::new())
                }),
            )
            .await
            .expect("committed");
        assert!(matches!(outcome, MutationOutcome::Committed { .. }));
        id
    };
    let app = open(dir.path());
    let start = app.start_scheduler().await.expect("scheduler");
    assert_eq!(start.interrupted, 1);
    let (kind, error) = state(&app, &id).await;
    assert_eq!(kind, "failed");
    assert!(error.is_some_and(|e| e.contains("server stopped while this action ran")));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(state(&app, &id).await.0, "failed", "it is not re-run");
}
