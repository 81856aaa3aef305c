//! [`ServerState`]: what every route shares, and the one way to assemble it, so that the
//! binary (`pulsebase dev`/`serve`) and the in-process tests build the same server from an
//! `App` and an `Authenticator`.
//!
//! Building the state creates the sync hub; adding the dev issuer also makes the
//! authenticator trust it (with its keys in hand, so the server never fetches its own JWKS).

use std::path::PathBuf;
use std::sync::Arc;

use application::App;
use authenticator::{Authenticator, DevIssuer};
use guard::{Guard, GuardConfig};
use sync::SyncHub;

use crate::lifecycle::Lifecycle;

/// Everything the routes need.
pub struct ServerState {
    pub(crate) app: Arc<App>,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) hub: Arc<SyncHub>,
    /// Authorises `Authorization: Convex <key>` (the admin endpoint, `pulsebase run`).
    pub(crate) admin_key: String,
    /// The built-in OIDC issuer, served under `/dev-issuer` by `pulsebase dev`.
    pub(crate) dev_issuer: Option<DevIssuerState>,
    /// Static files served for paths no other route takes (a built front-end).
    pub(crate) static_dir: Option<PathBuf>,
    /// `/metrics` answers without the admin key (`--metrics-public`).
    pub(crate) metrics_public: bool,
    /// Connection caps, rate limits and time limits (`guard`); none by default.
    pub(crate) guard: Arc<Guard>,
    /// The shutdown signal and the tasks it waits for (`lifecycle.rs`).
    pub(crate) lifecycle: Lifecycle,
}

/// The dev issuer and the URL it is served at.
pub(crate) struct DevIssuerState {
    pub(crate) issuer: Arc<DevIssuer>,
    pub(crate) issuer_url: String,
}

impl ServerState {
    /// The state of a server for `app`, verifying tokens with `auth` and taking
    /// `Authorization: Convex <admin_key>` (over HTTP and in the sync protocol) as the admin.
    /// No dev issuer and no static files until added.
    pub fn new(app: Arc<App>, auth: Arc<Authenticator>, admin_key: String) -> ServerState {
        let hub = SyncHub::new(app.clone(), auth.clone(), Some(admin_key.clone()));
        ServerState {
            app,
            auth,
            hub,
            admin_key,
            dev_issuer: None,
            static_dir: None,
            metrics_public: false,
            guard: Arc::new(Guard::new(GuardConfig::unlimited())),
            lifecycle: Lifecycle::default(),
        }
    }

    /// Enforces `guard`'s connection caps, rate limits and time limits.
    pub fn with_guard(mut self, guard: Guard) -> ServerState {
        self.guard = Arc::new(guard);
        self
    }

    /// Serves `issuer` under `/dev-issuer`, reachable at `issuer_url` (the `iss` of the tokens
    /// it signs), and makes the authenticator trust it as its built-in provider.
    pub fn with_dev_issuer(mut self, issuer: DevIssuer, issuer_url: String) -> ServerState {
        self.auth
            .set_builtin(vec![issuer.builtin_provider(&issuer_url)]);
        self.dev_issuer = Some(DevIssuerState {
            issuer: Arc::new(issuer),
            issuer_url,
        });
        self
    }

    /// Serves the files of `dir` for GET paths no other route takes (`--static-dir`).
    pub fn with_static_dir(mut self, dir: Option<PathBuf>) -> ServerState {
        self.static_dir = dir;
        self
    }

    /// Serves `/metrics` without the admin key (`--metrics-public`).
    pub fn with_metrics_public(mut self, public: bool) -> ServerState {
        self.metrics_public = public;
        self
    }

    /// The hub shared by the sync sessions (the file watcher tells it what changed).
    pub fn hub(&self) -> &Arc<SyncHub> {
        &self.hub
    }
}
