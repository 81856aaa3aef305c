//! [`SyncHub`]: what every session shares — the app, the authenticator, the registry of
//! query instances, and the code stamp (a fingerprint of the whole function set plus the
//! schema epoch) that decides whether a cached result was made by the live code.
//!
//! The stamp covers every module, not only the query's own: a query reaches other modules
//! through `ctx.runQuery`, so any deploy re-runs every subscribed query (as a Convex push
//! does); a re-run whose value did not change sends nothing.
//!
//! How the hub recomputes an invalidated instance is in `batch.rs`, beside the snapshot runs
//! it shares with sessions.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use application::App;
use authenticator::Authenticator;
use functions::Modules;

use crate::instance::Instance;
use crate::output::{CodeStamp, Run};
use crate::registry::{Instances, Published};
use crate::signal::TokenSessions;

/// Shared state of all sync sessions.
pub struct SyncHub {
    app: Arc<App>,
    auth: Arc<Authenticator>,
    admin_key: Option<String>,
    instances: Instances,
    /// Bumped on a schema change: every cached result becomes stale.
    epoch: AtomicU64,
    /// Query executions so far (diagnostics and tests).
    executions: AtomicU64,
    next_session: AtomicU64,
    live_sessions: AtomicUsize,
    /// Sessions signed in with a provider's token (see `auth_config_changed`).
    token_sessions: TokenSessions,
    /// Where invalidated instances are recomputed (the runtime the hub was created in).
    runtime: Option<tokio::runtime::Handle>,
}

/// What [`SyncHub::stats`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncStats {
    /// Open sessions.
    pub sessions: usize,
    /// Live query instances (one per shared execution, however many sessions use it).
    pub instances: usize,
}

impl SyncHub {
    pub fn new(app: Arc<App>, auth: Arc<Authenticator>, admin_key: Option<String>) -> Arc<SyncHub> {
        Arc::new(SyncHub {
            app,
            auth,
            admin_key,
            instances: Instances::default(),
            epoch: AtomicU64::new(0),
            executions: AtomicU64::new(0),
            next_session: AtomicU64::new(1),
            live_sessions: AtomicUsize::new(0),
            token_sessions: TokenSessions::default(),
            runtime: tokio::runtime::Handle::try_current().ok(),
        })
    }

    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Call after `App::replace_modules`: sessions re-run their queries (those whose result
    /// did not change send nothing).
    pub fn code_changed(&self) {
        self.instances.wake_all();
    }

    /// Call after a schema change: every query re-runs.
    pub fn schema_changed(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.instances.wake_all();
    }

    /// Call after `Authenticator::set_config`: sessions whose token's provider was removed
    /// become anonymous and are told with an `AuthError`.
    pub fn auth_config_changed(&self) {
        self.token_sessions.auth_changed();
    }

    /// Number of open sessions and of live query instances.
    pub fn stats(&self) -> SyncStats {
        SyncStats {
            sessions: self.live_sessions.load(Ordering::Relaxed),
            instances: self.instances.len(),
        }
    }

    /// Live sessions signed in with a provider's token, by the token's `iss`.
    pub fn sessions_by_issuer(&self) -> std::collections::HashMap<String, usize> {
        self.token_sessions.count_by_issuer()
    }

    pub(crate) fn auth(&self) -> &Authenticator {
        &self.auth
    }

    pub(crate) fn instances(&self) -> &Instances {
        &self.instances
    }

    pub(crate) fn token_sessions(&self) -> &TokenSessions {
        &self.token_sessions
    }

    /// Where invalidated instances are recomputed; `None` when the hub was created outside a
    /// tokio runtime (then invalidations only wake sessions).
    pub(crate) fn runtime(&self) -> Option<&tokio::runtime::Handle> {
        self.runtime.as_ref()
    }

    /// The stamp of the live code.
    pub(crate) fn stamp(&self) -> CodeStamp {
        self.stamp_with(&self.app.modules())
    }

    /// The stamp of a given version of the functions.
    pub(crate) fn stamp_with(&self, modules: &Arc<Modules>) -> CodeStamp {
        CodeStamp {
            code_hash: modules.fingerprint(),
            epoch: self.epoch.load(Ordering::Acquire),
        }
    }

    /// Publishes a run into its instance (see [`Instances::publish`]).
    pub(crate) fn publish(self: &Arc<Self>, instance: &Arc<Instance>, run: Run) -> Published {
        self.instances
            .publish(instance, run, self.app.db().subscriptions(), self)
    }

    /// Counts one query execution; returns the count so far.
    pub(crate) fn count_execution(&self) -> u64 {
        self.executions.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The deployment's admin key, which `authenticator::authorize` compares in constant time.
    pub(crate) fn admin_key(&self) -> Option<&str> {
        self.admin_key.as_deref()
    }

    pub(crate) fn session_started(&self) -> u64 {
        self.live_sessions.fetch_add(1, Ordering::Relaxed);
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn session_ended(&self) {
        self.live_sessions.fetch_sub(1, Ordering::Relaxed);
    }

    /// Query executions so far.
    #[cfg(test)]
    pub(crate) fn executions(&self) -> u64 {
        self.executions.load(Ordering::Relaxed)
    }
}
