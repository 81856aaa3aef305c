//! Tests of shared query instances against a real database and real Rhai modules: sharing
//! across identities, identity-reading results never shared, retire and rebind, the race
//! between publishing a result and registering its read set, and code changes in modules a
//! query reaches through `ctx.runQuery`.
//!
//! The race tests run a poller thread that keeps asking an instance "are you fresh now?" while
//! the code under test publishes; a correct implementation never answers yes with a stale or
//! foreign result, whatever the interleaving. Every loop is bounded by a round count.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use application::{App, Identity};
use database::{Database, Transaction};
use functions::{Caller, FunctionKind, FunctionPath, ModuleSource, Modules};
use schema::Schema;
use value::Value;

use crate::hub::SyncHub;
use crate::instance::{FamilyKey, Instance, Published, QueryOutput, Run, Status};
use crate::session::{Inbound, Outbound, SessionSignal, run_session};
use crate::transition::{Unclaim, run_in_snapshot};

const SCHEMA: &str = r#"
[tables.todos]
fields = { text = "string", userId = "string", completed = "boolean" }
indexes = { by_user = ["userId"] }

[tables.flags]
"#;

const T_MODULE: &str = r#"
export const count = query(#{
    args: #{ room: "string" },
    handler: |ctx, args| ctx.db.query("todos").withIndex("by_user", |q| q.eq("userId", args.room)).collect().len()
});

export const whoami = query(|ctx, args| {
    let me = ctx.auth.getUserIdentity();
    if me == () { () } else { me.subject }
});

export const maybeWho = query(|ctx, args| {
    if ctx.db.query("flags").first() == () {
        "public"
    } else {
        let me = ctx.auth.getUserIdentity();
        if me == () { "anonymous" } else { me.subject }
    }
});

export const add = mutation(#{
    args: #{ room: "string", text: "string" },
    handler: |ctx, args| ctx.db.insert("todos", #{ text: args.text, userId: args.room, completed: false })
});

export const setFlag = mutation(|ctx, args| ctx.db.insert("flags", #{ on: true }));

export const clearFlag = mutation(|ctx, args| {
    for flag in ctx.db.query("flags").collect() { ctx.db.delete(flag._id); }
});
"#;

struct Fixture {
    hub: Arc<SyncHub>,
    _dir: tempfile::TempDir,
}

fn modules(sources: &[(&str, &str)]) -> Modules {
    let sources = sources
        .iter()
        .map(|(module, source)| ModuleSource {
            module: (*module).to_string(),
            file: format!("functions/{module}.rhai"),
            source: (*source).to_string(),
        })
        .collect();
    Modules::from_sources(sources).expect("the test modules load")
}

/// A hub over a fresh database. Created outside a tokio runtime it has no runtime of its
/// own, so invalidations only wake sessions and the test drives every run itself.
fn fixture(sources: &[(&str, &str)]) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let schema = Schema::parse(SCHEMA, "schema.toml").expect("schema");
    let db = Database::open(&dir.path().join("db.sqlite3"), schema, SCHEMA)
        .expect("open the database")
        .0;
    let app = App::new(db, modules(sources));
    let auth = authenticator::Authenticator::new(
        auth::AuthConfig::default(),
        authenticator::AuthenticatorOptions::new(dir.path()),
    )
    .expect("authenticator");
    let hub = SyncHub::new(app, Arc::new(auth), Some("test-admin-key".into()));
    Fixture { hub, _dir: dir }
}

fn identity(subject: &str) -> Identity {
    let claims = serde_json::json!({ "subject": subject, "issuer": "https://issuer.test" });
    Identity::from_json(claims.as_object().expect("an object"), None)
}

fn json_args(args: serde_json::Value) -> Value {
    Value::from_json(&args).expect("convex JSON")
}

fn family(path: &str, args: &Value) -> FamilyKey {
    FamilyKey {
        path: FunctionPath::parse(path),
        args_json: args.to_json_string(),
        trusted: false,
    }
}

/// Runs a mutation on the Committer from a plain thread; returns its commit `ts`.
fn mutate(hub: &SyncHub, path: &str, args: serde_json::Value) -> u64 {
    let app = hub.app().clone();
    let modules = app.modules();
    let path = FunctionPath::parse(path);
    let args = json_args(args);
    let outcome = app
        .db()
        .mutate_blocking(
            None,
            Box::new(move |txn| {
                let (execution, _) = modules.run(
                    &path,
                    FunctionKind::Mutation,
                    Caller::Client,
                    args,
                    None,
                    Box::new(txn),
                    0.0,
                );
                execution
                    .result
                    .map(|v| v.to_json_string())
                    .map_err(|e| e.message)
            }),
        )
        .expect("the committer runs the mutation");
    match outcome {
        database::MutationOutcome::Committed { ts, .. } => ts,
        other => panic!("the mutation did not commit: {other:?}"),
    }
}

fn value_of(output: &QueryOutput) -> String {
    match &output.value {
        Ok(raw) => raw.get().to_string(),
        Err(e) => format!("error: {}", e.message),
    }
}

/// Watches an instance from another thread until stopped, recording every result it reports
/// as fresh that `bad` rejects. Bounded by `max_polls`.
struct Poller {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<String>>,
}

impl Poller {
    fn start(
        hub: &Arc<SyncHub>,
        instance: &Arc<Instance>,
        bad: impl Fn(&QueryOutput) -> bool + Send + 'static,
    ) -> Poller {
        let stop = Arc::new(AtomicBool::new(false));
        let (hub, instance, flag) = (hub.clone(), instance.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            // The tests that poll never change the code: one stamp keeps each poll short.
            let stamp = hub.stamp();
            let subscriptions = hub.app().db().subscriptions().clone();
            let max_polls = 50_000_000usize;
            for _ in 0..max_polls {
                if flag.load(Ordering::Acquire) {
                    break;
                }
                let t = subscriptions.processed_ts();
                if let Status::Fresh(output) = instance.status(t, stamp)
                    && bad(&output)
                {
                    seen.push(format!("fresh at {t}: {}", value_of(&output)));
                    break;
                }
            }
            seen
        });
        Poller { stop, handle }
    }

    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Release);
        self.handle.join().expect("the poller does not panic")
    }
}

/// Runs an instance's query in a fresh snapshot without publishing anything.
fn run_at_snapshot(hub: &Arc<SyncHub>, instance: &Arc<Instance>, who: Option<&Identity>) -> Run {
    let app = hub.app();
    let modules = app.modules();
    let stamp = hub.stamp_with(&modules);
    let txn = app.db().snapshot().expect("snapshot");
    let ts = txn.ts();
    let (execution, _) = modules.run(
        &instance.family.path,
        FunctionKind::Query,
        Caller::Client,
        instance.args.clone(),
        who.map(|i| i.value().clone()),
        Box::new(txn),
        0.0,
    );
    Run {
        output: Arc::new(QueryOutput::from_execution(&execution)),
        ts,
        read_set: execution.read_set,
        stamp,
        read_identity: execution.read_identity,
    }
}

#[test]
fn an_output_invalidated_after_its_snapshot_is_never_fresh_past_that_commit() {
    let f = fixture(&[("t", T_MODULE)]);
    let hub = &f.hub;
    let args = json_args(serde_json::json!({ "room": "race" }));
    let signal = Arc::new(SessionSignal::default());
    let instance = hub
        .instances
        .acquire(&family("t:count", &args), &args, None, 1, &signal);
    // Every output published below was computed before a commit that changed it, which is
    // processed before the publish: at the current `processed_ts` it is never fresh.
    let poller = Poller::start(hub, &instance, |_| true);
    const ROUNDS: usize = 400;
    for round in 0..ROUNDS {
        let ran = run_at_snapshot(hub, &instance, None);
        // Unrelated commits after the snapshot lengthen the registration check.
        for _ in 0..2 {
            mutate(
                hub,
                "t:add",
                serde_json::json!({ "room": "elsewhere", "text": "x" }),
            );
        }
        let conflict = mutate(
            hub,
            "t:add",
            serde_json::json!({ "room": "race", "text": format!("r{round}") }),
        );
        assert!(hub.app().db().subscriptions().processed_ts() >= conflict);
        assert!(instance.try_claim(), "nothing else computes this instance");
        assert!(matches!(instance.publish(ran, hub), Published::Installed));
        let t = hub.app().db().subscriptions().processed_ts();
        assert!(
            matches!(instance.status(t, hub.stamp()), Status::Stale),
            "round {round}: an output computed before commit {conflict} must be stale at {t}"
        );
    }
    let seen = poller.finish();
    assert!(
        seen.is_empty(),
        "a stale output was observable as fresh: {seen:?}"
    );
}

#[test]
fn a_shared_instance_never_serves_a_result_computed_under_one_identity_to_another() {
    let f = fixture(&[("t", T_MODULE)]);
    let hub = &f.hub;
    let (alice, bob) = (identity("alice"), identity("bob"));
    let signal_a = Arc::new(SessionSignal::default());
    let signal_b = Arc::new(SessionSignal::default());
    const ROUNDS: usize = 300;
    for round in 0..ROUNDS {
        mutate(hub, "t:clearFlag", serde_json::json!({}));
        // A fresh family per round: alice's first run does not read the identity, so the
        // instance becomes the one every identity shares, and bob binds to it.
        let args = json_args(serde_json::json!({ "round": round }));
        let key = family("t:maybeWho", &args);
        let shared = hub
            .instances
            .acquire(&key, &args, Some(&alice), 1, &signal_a);
        assert!(shared.try_claim());
        let first = run_at_snapshot(hub, &shared, Some(&alice));
        assert_eq!(value_of(&first.output), "\"public\"");
        assert!(matches!(shared.publish(first, hub), Published::Installed));
        assert!(
            shared.is_shared(),
            "a run that ignores the identity is shared"
        );
        let for_bob = hub.instances.acquire(&key, &args, Some(&bob), 2, &signal_b);
        assert!(
            Arc::ptr_eq(&shared, &for_bob),
            "bob shares alice's instance"
        );

        // Now the function reads the identity. Re-running the shared instance as alice must
        // never make alice's answer visible through the shared instance.
        mutate(hub, "t:setFlag", serde_json::json!({}));
        let poller = Poller::start(hub, &shared, |output| value_of(output) != "\"public\"");
        assert!(shared.try_claim());
        let mut pending = Unclaim(vec![shared.clone()]);
        let done = run_in_snapshot(
            hub,
            &[(0, shared.clone(), true)],
            Some(alice.clone()),
            Caller::Client,
            &mut pending,
        );
        drop(pending);
        let seen = poller.finish();
        assert!(seen.is_empty(), "round {round}: bob could read {seen:?}");
        let batch = done.expect("the run succeeds");
        assert_eq!(
            batch
                .outputs
                .iter()
                .map(|(_, o)| value_of(o))
                .collect::<Vec<_>>(),
            ["\"alice\""],
            "the session that ran it gets its own answer"
        );
        assert_eq!(
            batch
                .refused
                .iter()
                .map(|(id, r)| (*id, value_of(&r.output)))
                .collect::<Vec<_>>(),
            [(0, "\"alice\"".to_string())],
            "the shared instance refused the identity-reading run"
        );
        let t = hub.app().db().subscriptions().processed_ts();
        assert!(
            matches!(shared.status(t, hub.stamp()), Status::Retired),
            "round {round}: the shared instance is retired once its function reads the identity"
        );
        let rebound = hub.instances.acquire(&key, &args, Some(&bob), 2, &signal_b);
        assert!(
            !Arc::ptr_eq(&rebound, &shared),
            "bob re-resolves to an instance of his own"
        );
        assert!(
            !matches!(rebound.status(t, hub.stamp()), Status::Fresh(_)),
            "bob's own instance has not run yet"
        );
        for (instance, session) in [(&shared, 1), (&shared, 2), (&rebound, 2)] {
            hub.instances
                .release(instance, session, hub.app().db().subscriptions());
        }
    }
}

#[test]
fn a_run_finishing_after_its_last_session_left_registers_nothing() {
    let f = fixture(&[("t", T_MODULE)]);
    let hub = &f.hub;
    let subscriptions = hub.app().db().subscriptions();
    let args = json_args(serde_json::json!({ "room": "gone" }));
    let signal = Arc::new(SessionSignal::default());
    let instance = hub
        .instances
        .acquire(&family("t:count", &args), &args, None, 1, &signal);
    assert!(instance.try_claim());
    let ran = run_at_snapshot(hub, &instance, None);
    let before = subscriptions.len();
    hub.instances.release(&instance, 1, subscriptions);
    assert_eq!(hub.instances.len(), 0);
    assert!(matches!(instance.publish(ran, hub), Published::Discarded));
    assert_eq!(subscriptions.len(), before, "no read set left behind");
    assert!(
        !instance.try_claim(),
        "a released instance is never computed again"
    );
}

// ---- Whole sessions: the protocol in, frames out. ----

const ISSUER: &str = "http://127.0.0.1:9/dev-issuer";

/// A hub inside the test's runtime (so invalidated instances are recomputed by the hub, as
/// in the server) whose authenticator trusts a fresh dev-issuer key.
fn session_fixture(sources: &[(&str, &str)]) -> (Fixture, auth::DevIssuerKey) {
    let f = fixture(sources);
    let (key, _) = auth::DevIssuerKey::generate().expect("an RSA key");
    f.hub
        .auth
        .set_builtin(vec![key.builtin_provider(ISSUER, auth::DEV_AUDIENCE)]);
    (f, key)
}

fn token(key: &auth::DevIssuerKey, subject: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    key.mint(
        ISSUER,
        subject,
        None,
        None,
        serde_json::Map::new(),
        3600,
        now,
    )
    .expect("a token")
}

/// One session driven through its protocol, keeping every frame it sent.
struct Client {
    inbound: futures::channel::mpsc::UnboundedSender<Inbound>,
    outbound: tokio::sync::mpsc::Receiver<Outbound>,
    frames: Vec<serde_json::Value>,
    query_set: u32,
    identity: u32,
}

impl Client {
    fn connect(hub: &Arc<SyncHub>) -> Client {
        let (inbound, frames_in) = futures::channel::mpsc::unbounded();
        let (frames_out, outbound) = tokio::sync::mpsc::channel(16);
        tokio::spawn(run_session(hub.clone(), frames_in, frames_out));
        Client {
            inbound,
            outbound,
            frames: Vec::new(),
            query_set: 0,
            identity: 0,
        }
    }

    fn send(&self, message: serde_json::Value) {
        self.inbound
            .unbounded_send(Inbound::Text(message.to_string()))
            .expect("the session is running");
    }

    /// The next Transition (other frames are kept but skipped).
    async fn transition(&mut self) -> serde_json::Value {
        for _ in 0..100 {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.outbound.recv())
                .await
                .expect("a frame within 10 s")
                .expect("the session is open");
            let Outbound::Text(text) = frame else {
                panic!("the session closed: {frame:?}");
            };
            let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            self.frames.push(json.clone());
            if json["type"] == "Transition" {
                return json;
            }
        }
        panic!("no Transition among 100 frames");
    }

    /// Waits for the next Transition that updates `query`; returns its value.
    async fn value(&mut self, query: u32) -> serde_json::Value {
        for _ in 0..20 {
            let transition = self.transition().await;
            if let Some(m) = modification(&transition, query) {
                assert_eq!(m["type"], "QueryUpdated", "{m}");
                return m["value"].clone();
            }
        }
        panic!("query {query} was not updated in 20 Transitions");
    }

    async fn authenticate(&mut self, token: &str) {
        self.send(serde_json::json!({
            "type": "Authenticate", "baseVersion": self.identity, "tokenType": "User", "value": token,
        }));
        self.identity += 1;
        let t = self.transition().await;
        assert_eq!(t["endVersion"]["identity"], self.identity, "{t}");
    }

    /// Subscribes and returns the first value.
    async fn subscribe(
        &mut self,
        query: u32,
        path: &str,
        args: serde_json::Value,
    ) -> serde_json::Value {
        self.add(query, path, args);
        self.value(query).await
    }

    fn add(&mut self, query: u32, path: &str, args: serde_json::Value) {
        self.send(serde_json::json!({
            "type": "ModifyQuerySet", "baseVersion": self.query_set, "newVersion": self.query_set + 1,
            "modifications": [{ "type": "Add", "queryId": query, "udfPath": path, "args": [args] }],
        }));
        self.query_set += 1;
    }

    /// Every value this session was ever sent for `query`.
    fn history(&self, query: u32) -> Vec<serde_json::Value> {
        self.frames
            .iter()
            .filter_map(|f| modification(f, query))
            .map(|m| m["value"].clone())
            .collect()
    }
}

fn modification(transition: &serde_json::Value, query: u32) -> Option<&serde_json::Value> {
    transition["modifications"]
        .as_array()?
        .iter()
        .find(|m| m["queryId"] == query)
}

async fn run_mutation(hub: &SyncHub, path: &str, args: serde_json::Value) {
    let result = hub
        .app()
        .run_mutation(
            FunctionPath::parse(path),
            json_args(args),
            None,
            Caller::Client,
            None,
        )
        .await
        .expect("the mutation runs");
    assert!(result.result.is_ok(), "{:?}", result.result);
}

/// Waits (bounded) until the hub has run `n` queries in all.
async fn executions_reach(hub: &SyncHub, n: u64) {
    for _ in 0..500 {
        if hub.executions() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} executions after 5 s, expected {n}", hub.executions());
}

const TOUCH_MODULE: &str = r#"
export const touch = mutation(#{
    args: #{ room: "string" },
    handler: |ctx, args| {
        for t in ctx.db.query("todos").withIndex("by_user", |q| q.eq("userId", args.room)).collect() {
            ctx.db.patch(t._id, #{ completed: !t.completed });
        }
    }
});
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_of_different_users_share_one_execution_and_unchanged_reruns_send_nothing() {
    let (f, key) = session_fixture(&[("t", T_MODULE), ("u", TOUCH_MODULE)]);
    let hub = &f.hub;
    let room = serde_json::json!({ "room": "lobby" });
    let mut alice = Client::connect(hub);
    alice.authenticate(&token(&key, "alice")).await;
    assert_eq!(
        alice.subscribe(0, "t:count", room.clone()).await,
        serde_json::json!({ "$integer": "AAAAAAAAAAA=" })
    );
    assert_eq!(hub.executions(), 1);
    let mut bob = Client::connect(hub);
    bob.authenticate(&token(&key, "bob")).await;
    let mut anonymous = Client::connect(hub);
    for client in [&mut bob, &mut anonymous] {
        assert_eq!(
            client.subscribe(0, "t:count", room.clone()).await,
            serde_json::json!({ "$integer": "AAAAAAAAAAA=" })
        );
    }
    assert_eq!(
        hub.executions(),
        1,
        "bob and the anonymous session reuse alice's result"
    );
    assert_eq!(hub.stats().1, 1, "one instance for three sessions");

    // A commit into the read set: one shared re-run, every session gets the new value.
    run_mutation(
        hub,
        "t:add",
        serde_json::json!({ "room": "lobby", "text": "hi" }),
    )
    .await;
    for client in [&mut alice, &mut bob, &mut anonymous] {
        assert_eq!(
            client.value(0).await,
            serde_json::json!({ "$integer": "AQAAAAAAAAA=" })
        );
    }
    assert_eq!(hub.executions(), 2, "one re-run for three sessions");

    // A commit into the read set that does not change the result: re-run, nothing sent.
    run_mutation(hub, "u:touch", serde_json::json!({ "room": "lobby" })).await;
    executions_reach(hub, 3).await;
    for client in [&mut alice, &mut bob, &mut anonymous] {
        // Frames arrive in order: had the re-run sent anything, it would come before the
        // Transition for this new query.
        client.add(1, "t:whoami", serde_json::json!({}));
        let t = client.transition().await;
        assert!(modification(&t, 1).is_some(), "{t}");
        assert!(
            modification(&t, 0).is_none(),
            "an unchanged result was sent again: {t}"
        );
        assert_eq!(client.history(0).len(), 2, "{:?}", client.history(0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_reading_query_is_never_shared_across_users() {
    let (f, key) = session_fixture(&[("t", T_MODULE)]);
    let hub = &f.hub;
    let mut alice = Client::connect(hub);
    alice.authenticate(&token(&key, "alice")).await;
    let mut bob = Client::connect(hub);
    bob.authenticate(&token(&key, "bob")).await;
    let mut anonymous = Client::connect(hub);
    assert_eq!(
        alice.subscribe(0, "t:whoami", serde_json::json!({})).await,
        "alice"
    );
    assert_eq!(
        bob.subscribe(0, "t:whoami", serde_json::json!({})).await,
        "bob"
    );
    assert_eq!(
        anonymous
            .subscribe(0, "t:whoami", serde_json::json!({}))
            .await,
        serde_json::Value::Null
    );
    assert_eq!(hub.executions(), 3);
    assert_eq!(hub.stats().1, 3, "one instance per identity");
    let mut alice_again = Client::connect(hub);
    alice_again.authenticate(&token(&key, "alice")).await;
    assert_eq!(
        alice_again
            .subscribe(0, "t:whoami", serde_json::json!({}))
            .await,
        "alice"
    );
    assert_eq!(
        hub.executions(),
        3,
        "a second session of alice reuses alice's result"
    );

    // Re-authenticating as someone else re-binds the query to that identity's instance.
    alice_again.send(serde_json::json!({
        "type": "Authenticate", "baseVersion": 1, "tokenType": "User", "value": token(&key, "bob"),
    }));
    assert_eq!(alice_again.value(0).await, "bob");
    assert_eq!(hub.executions(), 3, "bob's result was already there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_query_that_starts_reading_the_identity_is_retired_and_rebound_per_user() {
    let (f, key) = session_fixture(&[("t", T_MODULE)]);
    let hub = &f.hub;
    let mut alice = Client::connect(hub);
    alice.authenticate(&token(&key, "alice")).await;
    let mut bob = Client::connect(hub);
    bob.authenticate(&token(&key, "bob")).await;
    assert_eq!(
        alice
            .subscribe(0, "t:maybeWho", serde_json::json!({}))
            .await,
        "public"
    );
    assert_eq!(
        bob.subscribe(0, "t:maybeWho", serde_json::json!({})).await,
        "public"
    );
    assert_eq!(
        (hub.executions(), hub.stats().1),
        (1, 1),
        "shared while it ignores the identity"
    );

    // The hub re-runs the shared instance with the identity it was created with (alice's);
    // that run reads the identity, so it must never reach bob.
    run_mutation(hub, "t:setFlag", serde_json::json!({})).await;
    assert_eq!(alice.value(0).await, "alice");
    assert_eq!(bob.value(0).await, "bob");
    assert_eq!(
        hub.stats().1,
        2,
        "the shared instance gave way to one per user"
    );
    assert!(
        !bob.history(0).contains(&serde_json::json!("alice")),
        "bob was sent alice's result: {:?}",
        bob.history(0)
    );

    // Once it stops reading the identity, the users' instances agree again.
    run_mutation(hub, "t:clearFlag", serde_json::json!({})).await;
    assert_eq!(alice.value(0).await, "public");
    assert_eq!(bob.value(0).await, "public");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_keeps_the_identity_reading_run_a_shared_instance_refused() {
    let (f, key) = session_fixture(&[("q", r#"export const who = query(|ctx, args| "nobody");"#)]);
    let hub = &f.hub;
    let mut alice = Client::connect(hub);
    alice.authenticate(&token(&key, "alice")).await;
    let mut bob = Client::connect(hub);
    bob.authenticate(&token(&key, "bob")).await;
    assert_eq!(
        alice.subscribe(0, "q:who", serde_json::json!({})).await,
        "nobody"
    );
    assert_eq!(
        bob.subscribe(0, "q:who", serde_json::json!({})).await,
        "nobody"
    );
    assert_eq!(hub.executions(), 1);

    // A deploy makes the function read the identity. No commit is involved, so the sessions
    // re-run it themselves; whichever runs the shared instance first has its run refused
    // there and keeps it in its own instance: two runs in all, one per user.
    hub.app().replace_modules(modules(&[(
        "q",
        r#"export const who = query(|ctx, args| ctx.auth.getUserIdentity().subject);"#,
    )]));
    hub.code_changed();
    assert_eq!(alice.value(0).await, "alice");
    assert_eq!(bob.value(0).await, "bob");
    assert_eq!(hub.executions(), 3, "no run was thrown away");
    assert_eq!(hub.stats().1, 2);
}

const VIA_B: &str = r#"export const viaB = query(|ctx, args| ctx.runQuery("b:value", #{}));"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_in_a_module_reached_through_run_query_reruns_the_query() {
    let (f, _key) = session_fixture(&[
        ("a", VIA_B),
        ("b", r#"export const value = query(|ctx, args| "one");"#),
    ]);
    let hub = &f.hub;
    let mut client = Client::connect(hub);
    assert_eq!(
        client.subscribe(0, "a:viaB", serde_json::json!({})).await,
        "one"
    );

    hub.app().replace_modules(modules(&[
        ("a", VIA_B),
        ("b", r#"export const value = query(|ctx, args| "two");"#),
    ]));
    hub.code_changed();
    assert_eq!(client.value(0).await, "two", "only b.rhai changed");

    // A deploy that changes nothing this query returns re-runs it and sends nothing.
    let before = hub.executions();
    hub.app().replace_modules(modules(&[
        ("a", VIA_B),
        ("b", r#"export const value = query(|ctx, args| "two");"#),
        ("c", r#"export const other = query(|ctx, args| 3);"#),
    ]));
    hub.code_changed();
    executions_reach(hub, before + 1).await;
    client.add(1, "b:value", serde_json::json!({}));
    let t = client.transition().await;
    assert!(modification(&t, 1).is_some(), "{t}");
    assert!(
        modification(&t, 0).is_none(),
        "an unchanged result was sent again: {t}"
    );
    assert_eq!(client.history(0), ["one", "two"]);
}
