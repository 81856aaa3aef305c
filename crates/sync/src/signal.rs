//! How a session is woken. [`SessionSignal`] is all that query instances and the hub hold of a
//! session: an invalidation sets a flag and wakes the session's task, and never waits for it,
//! so no session can hold up the Committer. [`TokenSessions`] lists the sessions to wake when
//! `auth.config.toml` changes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::sync::futures::Notified;

/// Wakes a session when one of its query instances is invalidated.
#[derive(Default, Debug)]
pub struct SessionSignal {
    dirty: AtomicBool,
    /// The auth configuration changed: the session re-checks its token's issuer.
    auth_changed: AtomicBool,
    notify: Notify,
}

impl SessionSignal {
    pub(crate) fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    pub(crate) fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn mark_auth_changed(&self) {
        self.auth_changed.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    pub(crate) fn take_auth_changed(&self) -> bool {
        self.auth_changed.swap(false, Ordering::AcqRel)
    }

    /// Completes on the next mark, or at once if a mark arrived since the last wait
    /// (`Notify::notify_one` keeps one permit).
    pub(crate) fn notified(&self) -> Notified<'_> {
        self.notify.notified()
    }
}

/// The sessions whose identity came from a provider's token. Kept apart from the query
/// instances because a session with no queries must be reached too; it changes only when a
/// session signs in or out, never on the hot path.
#[derive(Default)]
pub(crate) struct TokenSessions {
    sessions: Mutex<HashMap<u64, TokenSession>>,
}

/// One signed-in session: how to wake it, and the `iss` of its token.
struct TokenSession {
    signal: Arc<SessionSignal>,
    issuer: Arc<str>,
}

impl TokenSessions {
    /// Registers (or re-registers, with a new issuer) a signed-in session.
    pub(crate) fn insert(&self, id: u64, signal: &Arc<SessionSignal>, issuer: &Arc<str>) {
        let session = TokenSession {
            signal: signal.clone(),
            issuer: issuer.clone(),
        };
        self.sessions.lock().insert(id, session);
    }

    /// How many sessions are signed in with a token of each issuer.
    pub(crate) fn count_by_issuer(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for session in self.sessions.lock().values() {
            *counts.entry(session.issuer.to_string()).or_insert(0) += 1;
        }
        counts
    }

    pub(crate) fn remove(&self, id: u64) {
        self.sessions.lock().remove(&id);
    }

    /// Wakes every registered session to re-check its token's issuer.
    pub(crate) fn auth_changed(&self) {
        for session in self.sessions.lock().values() {
            session.signal.mark_auth_changed();
        }
    }
}
