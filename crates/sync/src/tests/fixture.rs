//! What the tests share: [`Fixture`], a hub over a fresh database with test modules (and
//! [`T_MODULE`], the module most tests load), plain-thread helpers to run mutations and read
//! outputs, and [`Client`], one session driven through its protocol that keeps every frame it
//! was sent.

use std::sync::Arc;
use std::time::Duration;

use application::App;
use auth::Identity;
use database::Database;
use functions::{Call, Caller, FunctionKind, FunctionPath, ModuleSource, Modules, Ran};
use schema::Schema;
use value::Value;

use crate::hub::SyncHub;
use crate::instance::FamilyKey;
use crate::output::QueryOutput;
use crate::session::{Inbound, Outbound, run_session};

const SCHEMA: &str = r#"
[tables.todos]
fields = { text = "string", userId = "string", completed = "boolean" }
indexes = { by_user = ["userId"] }

[tables.flags]
"#;

pub(super) const T_MODULE: &str = r#"
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

pub(super) struct Fixture {
    pub hub: Arc<SyncHub>,
    /// The key the authenticator trusts, in a [`session_fixture`].
    dev_issuer: Option<auth::DevIssuerKey>,
    _dir: tempfile::TempDir,
}

pub(super) fn modules(sources: &[(&str, &str)]) -> Modules {
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
pub(super) fn fixture(sources: &[(&str, &str)]) -> Fixture {
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
    Fixture {
        hub,
        dev_issuer: None,
        _dir: dir,
    }
}

pub(super) fn identity(subject: &str) -> Identity {
    let claims = serde_json::json!({ "subject": subject, "issuer": "https://issuer.test" });
    Identity::acting_as(&claims).expect("an identity")
}

pub(super) fn json_args(args: serde_json::Value) -> Value {
    Value::from_json(&args).expect("convex JSON")
}

pub(super) fn family(path: &str, args: &Value) -> FamilyKey {
    FamilyKey {
        path: FunctionPath::parse(path),
        args_json: args.to_json_string(),
        trusted: false,
    }
}

/// Runs a mutation on the Committer from a plain thread; returns its commit `ts`.
pub(super) fn mutate(hub: &SyncHub, path: &str, args: serde_json::Value) -> u64 {
    let app = hub.app().clone();
    let modules = app.modules();
    let path = FunctionPath::parse(path);
    let args = json_args(args);
    let outcome = app
        .db()
        .mutate_blocking(
            None,
            Box::new(move |txn| {
                let Ran { execution, .. } = modules.run(
                    Call {
                        path: path.clone(),
                        kind: FunctionKind::Mutation,
                        caller: Caller::Client,
                        args,
                        identity: None,
                        now_ms: 0.0,
                    },
                    Box::new(txn),
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

pub(super) fn value_of(output: &QueryOutput) -> String {
    match &output.value {
        Ok(raw) => raw.get().to_string(),
        Err(e) => format!("error: {}", e.message),
    }
}

const ISSUER: &str = "http://127.0.0.1:9/dev-issuer";

/// A hub inside the test's runtime (so invalidated instances are recomputed by the hub, as
/// in the server) whose authenticator trusts a fresh dev-issuer key.
pub(super) fn session_fixture(sources: &[(&str, &str)]) -> Fixture {
    let mut f = fixture(sources);
    let (key, _) = auth::DevIssuerKey::generate().expect("an RSA key");
    f.hub
        .auth()
        .set_builtin(vec![key.builtin_provider(ISSUER, auth::DEV_AUDIENCE)]);
    f.dev_issuer = Some(key);
    f
}

impl Fixture {
    /// A session signed in as `subject` with a token of the [`session_fixture`]'s dev issuer.
    pub(super) async fn signed_in(&self, subject: &str) -> Client {
        let mut client = Client::connect(&self.hub);
        client.authenticate(&self.token(subject)).await;
        client
    }

    /// A token of the [`session_fixture`]'s dev issuer for `subject`, valid for an hour.
    pub(super) fn token(&self, subject: &str) -> String {
        let key = self
            .dev_issuer
            .as_ref()
            .expect("a session_fixture trusts a dev issuer");
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
}

/// One session driven through its protocol, keeping every frame it sent.
pub(super) struct Client {
    inbound: futures::channel::mpsc::UnboundedSender<Inbound>,
    outbound: crate::FrameReceiver,
    frames: Vec<serde_json::Value>,
    query_set: u32,
    identity: u32,
}

impl Client {
    pub(super) fn connect(hub: &Arc<SyncHub>) -> Client {
        let (inbound, frames_in) = futures::channel::mpsc::unbounded();
        let (frames_out, outbound) = crate::frame_channel(16);
        tokio::spawn(run_session(hub.clone(), frames_in, frames_out));
        Client {
            inbound,
            outbound,
            frames: Vec::new(),
            query_set: 0,
            identity: 0,
        }
    }

    pub(super) fn send(&self, message: serde_json::Value) {
        self.inbound
            .unbounded_send(Inbound::Text(message.to_string()))
            .expect("the session is running");
    }

    /// The next Transition (other frames are kept but skipped).
    pub(super) async fn transition(&mut self) -> serde_json::Value {
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
    pub(super) async fn value(&mut self, query: u32) -> serde_json::Value {
        for _ in 0..20 {
            let transition = self.transition().await;
            if let Some(m) = modification(&transition, query) {
                assert_eq!(m["type"], "QueryUpdated", "{m}");
                return m["value"].clone();
            }
        }
        panic!("query {query} was not updated in 20 Transitions");
    }

    pub(super) async fn authenticate(&mut self, token: &str) {
        self.send(serde_json::json!({
            "type": "Authenticate", "baseVersion": self.identity, "tokenType": "User", "value": token,
        }));
        self.identity += 1;
        let t = self.transition().await;
        assert_eq!(t["endVersion"]["identity"], self.identity, "{t}");
    }

    /// Subscribes and returns the first value.
    pub(super) async fn subscribe(
        &mut self,
        query: u32,
        path: &str,
        args: serde_json::Value,
    ) -> serde_json::Value {
        self.add(query, path, args);
        self.value(query).await
    }

    pub(super) fn add(&mut self, query: u32, path: &str, args: serde_json::Value) {
        self.send(serde_json::json!({
            "type": "ModifyQuerySet", "baseVersion": self.query_set, "newVersion": self.query_set + 1,
            "modifications": [{ "type": "Add", "queryId": query, "udfPath": path, "args": [args] }],
        }));
        self.query_set += 1;
    }

    /// Every value this session was ever sent for `query`.
    pub(super) fn history(&self, query: u32) -> Vec<serde_json::Value> {
        self.frames
            .iter()
            .filter_map(|f| modification(f, query))
            .map(|m| m["value"].clone())
            .collect()
    }
}

pub(super) fn modification(
    transition: &serde_json::Value,
    query: u32,
) -> Option<&serde_json::Value> {
    transition["modifications"]
        .as_array()?
        .iter()
        .find(|m| m["queryId"] == query)
}

pub(super) async fn run_mutation(hub: &SyncHub, path: &str, args: serde_json::Value) {
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
pub(super) async fn executions_reach(hub: &SyncHub, n: u64) {
    for _ in 0..500 {
        if hub.executions() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} executions after 5 s, expected {n}", hub.executions());
}
