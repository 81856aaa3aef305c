//! [`SyncHub`]: what every session shares — the app, the authenticator, the registry of
//! query instances, and the code stamp (a fingerprint of the whole function set plus the
//! schema epoch) that decides whether a cached result was made by the live code.
//!
//! The stamp covers every module, not only the query's own: a query reaches other modules
//! through `ctx.runQuery`, so any deploy re-runs every subscribed query (as a Convex push
//! does); a re-run whose value did not change sends nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use application::App;
use authenticator::Authenticator;
use functions::Modules;
use subtle::ConstantTimeEq;

use functions::Caller;

use crate::instance::{CodeStamp, Instance, Instances};
use crate::session::{SessionSignal, TokenSessions};
use crate::transition::{Unclaim, run_in_snapshot};

/// Shared state of all sync sessions.
pub struct SyncHub {
    pub(crate) app: Arc<App>,
    pub(crate) auth: Arc<Authenticator>,
    admin_key: Option<String>,
    pub(crate) instances: Instances,
    /// Bumped on a schema change: every cached result becomes stale.
    epoch: AtomicU64,
    /// Query executions so far (diagnostics and tests).
    executions: AtomicU64,
    next_session: AtomicU64,
    live_sessions: AtomicUsize,
    /// Sessions signed in with a provider's token (see `auth_config_changed`).
    pub(crate) token_sessions: TokenSessions,
    /// Where invalidated instances are recomputed (the runtime the hub was created in).
    runtime: Option<tokio::runtime::Handle>,
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
    pub fn stats(&self) -> (usize, usize) {
        (
            self.live_sessions.load(Ordering::Relaxed),
            self.instances.len(),
        )
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

    /// Counts one query execution; returns the count so far.
    pub(crate) fn count_execution(&self) -> u64 {
        self.executions.fetch_add(1, Ordering::Relaxed) + 1
    }

    #[cfg(test)]
    pub(crate) fn executions(&self) -> u64 {
        self.executions.load(Ordering::Relaxed)
    }

    /// Recomputes an invalidated instance once, on the blocking pool, then wakes the
    /// sessions subscribed to it. Called from the Committer's invalidation callback, so it
    /// only schedules work. If another session already claimed the instance, the sessions
    /// are woken at once and wait for that computation.
    ///
    /// It runs with the identity the instance was created for. That is right for a
    /// per-identity instance; a shared one serves every identity only while its function
    /// ignores the identity, and a run that reads it is refused by `publish` (the instance
    /// is retired and each session re-runs the query as itself).
    pub(crate) fn recompute(
        self: &Arc<Self>,
        instance: Arc<Instance>,
        subscribers: Vec<Arc<SessionSignal>>,
    ) {
        let wake = |subscribers: Vec<Arc<SessionSignal>>| {
            for signal in subscribers {
                signal.mark_dirty();
            }
        };
        let Some(runtime) = &self.runtime else {
            return wake(subscribers);
        };
        if !instance.try_claim() {
            return wake(subscribers);
        }
        let hub = self.clone();
        runtime.spawn_blocking(move || {
            let identity = instance.identity.clone();
            let caller = if instance.family.trusted {
                Caller::Trusted
            } else {
                Caller::Client
            };
            let mut pending = Unclaim(vec![instance.clone()]);
            if let Err(e) = run_in_snapshot(
                &hub,
                &[(0, instance.clone(), true)],
                identity,
                caller,
                &mut pending,
            ) {
                tracing::warn!(error = %e, "recomputing a query failed; its sessions will retry");
            }
            drop(pending);
            wake(subscribers);
        });
    }

    pub(crate) fn is_admin_key(&self, key: &str) -> bool {
        self.admin_key
            .as_deref()
            .is_some_and(|admin| bool::from(admin.as_bytes().ct_eq(key.as_bytes())))
    }

    pub(crate) fn session_started(&self) -> u64 {
        self.live_sessions.fetch_add(1, Ordering::Relaxed);
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn session_ended(&self) {
        self.live_sessions.fetch_sub(1, Ordering::Relaxed);
    }
}
