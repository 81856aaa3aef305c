//! An in-process server for the tests in this folder: a temporary app folder (a small
//! `schema.toml` and `functions/notes.rhai`), loaded and served by `server::serve` on
//! `127.0.0.1:0` with the dev issuer, as `pulsebase dev` serves it, plus the few client
//! calls the tests make.
//!
//! The dev issuer's RSA key is generated once per test binary and written into each app's
//! state folder: generating one per server would cost more than the tests themselves.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use application::App;
use authenticator::{Authenticator, AuthenticatorOptions, DEV_ISSUER_KEY_FILE, DevIssuer};
use database::Database;
use functions::Modules;
use schema::Schema;
use server::ServerState;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const SCHEMA: &str = r#"
[tables.notes]
fields = { text = "string" }
"#;

/// Every function the tests call: a query and a mutation for the sync round trip, an action
/// that runs that mutation, the caller's identity, an internal function, and the two ways a
/// function fails.
const NOTES: &str = r#"
export const texts = query(#{
    args: #{},
    handler: |ctx, args| {
        let out = [];
        for note in ctx.db.query("notes").collect() { out.push(note.text); }
        out
    }
});

export const add = mutation(#{
    args: #{ text: "string" },
    handler: |ctx, args| ctx.db.insert("notes", #{ text: args.text })
});

export const whoami = query(#{ args: #{}, handler: |ctx, args| ctx.auth.getUserIdentity() });

export const secret = internalQuery(#{ args: #{}, handler: |ctx, args| "internal only" });

export const addAndLog = action(#{
    args: #{ text: "string" },
    handler: |ctx, args| {
        print("adding " + args.text);
        ctx.runMutation("notes:add", #{ text: args.text })
    }
});

export const failWithText = mutation(#{ args: #{}, handler: |ctx, args| { throw "boom"; } });

export const failWithData = mutation(#{
    args: #{},
    handler: |ctx, args| { throw #{ code: "TAKEN", detail: #{ field: "name", tries: 3 } }; }
});
"#;

/// The admin key of every test server.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// A served app; dropping it shuts the server down.
pub struct TestServer {
    pub addr: SocketAddr,
    issuer: DevIssuer,
    issuer_url: String,
    http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    _served: JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

/// An HTTP answer: its status and its JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: serde_json::Value,
}

impl TestServer {
    /// Writes the app, loads it and serves it; panics (failing the test) when anything fails.
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let app_dir = dir.path();
        std::fs::write(app_dir.join("schema.toml"), SCHEMA).expect("schema.toml written");
        std::fs::create_dir(app_dir.join("functions")).expect("functions/ created");
        std::fs::write(app_dir.join("functions/notes.rhai"), NOTES).expect("notes.rhai written");
        let state_dir = app_dir.join(".pulsebase");
        std::fs::create_dir(&state_dir).expect(".pulsebase/ created");
        std::fs::write(state_dir.join(DEV_ISSUER_KEY_FILE), dev_key_pem()).expect("key written");

        let app = load_app(app_dir);
        let config = authenticator::load_auth_config(app_dir).expect("no auth.config.toml");
        let auth = Arc::new(
            Authenticator::new(config, AuthenticatorOptions::new(app_dir)).expect("authenticator"),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bound");
        let addr = listener.local_addr().expect("an address");
        let issuer = DevIssuer::load_or_create(&state_dir).expect("the dev issuer key");
        let issuer_url = format!("http://{addr}/dev-issuer");
        let state = ServerState::new(app, auth, ADMIN_KEY.to_string())
            .with_dev_issuer(issuer.clone(), issuer_url.clone());
        let (shutdown, stop) = oneshot::channel::<()>();
        let served = tokio::spawn(server::serve(listener, Arc::new(state), async move {
            let _ = stop.await;
        }));
        TestServer {
            addr,
            issuer,
            issuer_url,
            http: reqwest::Client::new(),
            shutdown: Some(shutdown),
            _served: served,
            _dir: dir,
        }
    }

    /// The issuer URL of the dev issuer's tokens (the `iss` claim).
    pub fn issuer_url(&self) -> &str {
        &self.issuer_url
    }

    /// A dev-issuer token for `sub`, named "Ada", valid for an hour.
    pub fn token(&self, sub: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        self.issuer
            .mint(
                &self.issuer_url,
                sub,
                Some("Ada"),
                None,
                serde_json::Map::new(),
                3600,
                now,
            )
            .expect("a token")
    }

    /// `POST path` with `body`, and `Authorization: authorization` when given.
    pub async fn post(&self, path: &str, authorization: Option<&[u8]>, body: &str) -> Reply {
        let mut request = self
            .http
            .post(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json")
            .body(body.to_string())
            .timeout(Duration::from_secs(5));
        if let Some(value) = authorization {
            let value = reqwest::header::HeaderValue::from_bytes(value).expect("a header value");
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        let response = request.send().await.expect("an HTTP answer");
        let status = response.status().as_u16();
        let body = response.json().await.expect("a JSON body");
        Reply { status, body }
    }

    /// Calls `path` (`module:function`) over `/api/query` or `/api/mutation` the way
    /// `ConvexHttpClient` does.
    pub async fn call(
        &self,
        route: &str,
        path: &str,
        args: serde_json::Value,
        authorization: Option<&str>,
    ) -> Reply {
        let body = serde_json::json!({
            "path": path,
            "args": [args],
            "format": "convex_encoded_json",
        });
        self.post(route, authorization.map(str::as_bytes), &body.to_string())
            .await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// The app of `dir` as `pulsebase dev` loads it: schema, database, functions.
fn load_app(dir: &Path) -> Arc<App> {
    let text = std::fs::read_to_string(dir.join("schema.toml")).expect("schema.toml");
    let schema = Schema::parse(&text, "schema.toml").expect("the schema parses");
    let (db, _) = Database::open(&dir.join(".pulsebase/data.sqlite3"), schema, &text)
        .expect("the database opens");
    let modules = Modules::load_dir(&dir.join("functions")).expect("the functions load");
    App::new(db, modules)
}

/// One dev issuer key for the whole test binary, as PEM.
fn dev_key_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| auth::DevIssuerKey::generate().expect("a key").1)
}
