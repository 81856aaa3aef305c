//! [`Instance`]: one shared query execution, its latest [`QueryOutput`], the snapshot `ts` it
//! was computed at, and its registration in [`database::Subscriptions`]. Which sessions share
//! an instance is the registry's business (`registry.rs`).
//!
//! A commit that touches the read set marks the instance invalid from that commit's `ts` on and
//! wakes every subscribed session. Freshness is a question about a timestamp: "is this output
//! what the function returns at `t`?" — yes when it was computed at or before `t`, no
//! invalidating commit happened up to `t`, and the code that produced it is still the live code.
//!
//! [`Instance::install`] installs an output and registers its read set in one step under the
//! instance's lock, so an output is never observable before the commits that landed after its
//! snapshot have been checked against it: whoever sees it also sees `invalid_since`.
//!
//! An instance sits below the hub that recomputes it; it calls back up through the
//! [`Recompute`] trait rather than naming the hub.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use auth::{Identity, IdentityCacheKey};
use database::{Registration, SubscriptionId, Subscriptions};
use functions::FunctionPath;
use parking_lot::Mutex;
use tokio::sync::Notify;
use value::Value;

use crate::output::{CodeStamp, QueryOutput, Run};
use crate::signal::SessionSignal;

/// Who recomputes an invalidated instance: the hub, which owns the app and the blocking pool.
pub(crate) trait Recompute: Send + Sync + 'static {
    /// Recomputes `instance` once, then wakes `subscribers`; called from the Committer's
    /// invalidation callback, so it only schedules work.
    fn recompute(self: &Arc<Self>, instance: Arc<Instance>, subscribers: Vec<Arc<SessionSignal>>);
}

/// The answer to "can this instance serve a transition at `t`?".
pub(crate) enum Status {
    Fresh(Arc<QueryOutput>),
    /// Valid at `t` but invalidated by the commit at the given `ts`, which is not processed
    /// yet; wait until it is and ask again.
    Superseded(u64),
    /// Another session is computing it; wait and ask again.
    Computing,
    Stale,
    /// The instance no longer fits this session's identity; re-resolve it.
    Retired,
}

/// What identifies an instance within its family.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FamilyKey {
    pub path: FunctionPath,
    /// Canonical JSON of the arguments (object keys sorted).
    pub args_json: String,
    /// Run for an admin session, which may see internal functions: never shared with clients.
    pub trusted: bool,
}

/// What [`Instance::install`] leaves for [`Instance::finish_install`], once the registry's
/// lock is released too.
#[must_use]
pub(crate) enum Installation {
    /// Not installed: the instance was retired or released while the run was computed.
    Discarded,
    Installed {
        /// The registration of the previous output, to remove.
        replaced: Option<SubscriptionId>,
        /// Subscribers to wake: a commit after the snapshot already touched the read set.
        invalidated: Vec<Arc<SessionSignal>>,
    },
}

/// What [`Instance::retire_claimed`] leaves for [`Instance::finish_retirement`], once the
/// registry's lock is released.
#[must_use]
pub(crate) struct Retirement {
    subscription: Option<SubscriptionId>,
    subscribers: Vec<Arc<SessionSignal>>,
}

struct State {
    output: Option<Arc<QueryOutput>>,
    computed_at: u64,
    /// Timestamp of the first commit after `computed_at` that touched the read set.
    invalid_since: Option<u64>,
    stamp: Option<CodeStamp>,
    computing: bool,
    subscription: Option<SubscriptionId>,
    /// Bumped by every install; an invalidation callback of an older registration (its read
    /// set is no longer the output's) is ignored.
    generation: u64,
    subscribers: HashMap<u64, Arc<SessionSignal>>,
    /// Never serves again: shared but its function read the identity, or released by its last
    /// session.
    retired: bool,
}

/// One shared query execution and its subscribers.
pub(crate) struct Instance {
    family: FamilyKey,
    args: Value,
    /// The key of the identity this instance was created for (`None`: anonymous).
    identity_key: Option<IdentityCacheKey>,
    /// The identity it runs with when the hub recomputes it on its own (see [`Recompute`]);
    /// irrelevant once shared, since shared functions ignore it.
    identity: Option<Identity>,
    /// Set once a run showed the function ignores the identity.
    shared: AtomicBool,
    state: Mutex<State>,
    /// Wakes sessions waiting for a computation to finish.
    computed: Notify,
}

impl Instance {
    pub(crate) fn new(
        family: FamilyKey,
        args: Value,
        identity_key: Option<IdentityCacheKey>,
        identity: Option<Identity>,
    ) -> Instance {
        Instance {
            family,
            args,
            identity_key,
            identity,
            shared: AtomicBool::new(false),
            state: Mutex::new(State {
                output: None,
                computed_at: 0,
                invalid_since: None,
                stamp: None,
                computing: false,
                subscription: None,
                generation: 0,
                subscribers: HashMap::new(),
                retired: false,
            }),
            computed: Notify::new(),
        }
    }

    pub(crate) fn family(&self) -> &FamilyKey {
        &self.family
    }

    pub(crate) fn args(&self) -> &Value {
        &self.args
    }

    pub(crate) fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    pub(crate) fn identity_key(&self) -> &Option<IdentityCacheKey> {
        &self.identity_key
    }

    pub(crate) fn is_shared(&self) -> bool {
        self.shared.load(Ordering::Acquire)
    }

    /// Marks the instance as its family's shared one. Called by the registry under its lock,
    /// inside [`Instance::install`] (so the flag changes together with the output that
    /// justifies it).
    pub(crate) fn mark_shared(&self) {
        self.shared.store(true, Ordering::Release);
    }

    pub(crate) fn status(&self, t: u64, stamp: CodeStamp) -> Status {
        let state = self.state.lock();
        if state.retired {
            return Status::Retired;
        }
        if state.computing {
            return Status::Computing;
        }
        match &state.output {
            Some(output) if state.computed_at <= t && state.stamp == Some(stamp) => {
                match state.invalid_since {
                    None => Status::Fresh(output.clone()),
                    // Invalidated by a commit the session's `t` does not reach yet: the commit's
                    // processing is finishing; wait for it instead of serving what it replaces.
                    Some(commit_ts) if commit_ts > t => Status::Superseded(commit_ts),
                    Some(_) => Status::Stale,
                }
            }
            _ => Status::Stale,
        }
    }

    /// Claims the right to compute this instance (single flight).
    pub(crate) fn try_claim(&self) -> bool {
        let mut state = self.state.lock();
        if state.computing || state.retired {
            return false;
        }
        state.computing = true;
        true
    }

    /// Gives up a claim without publishing (the computation failed or was abandoned).
    pub(crate) fn unclaim(&self) {
        self.state.lock().computing = false;
        self.computed.notify_waiters();
    }

    /// Waits for the computation in progress (if any) to finish.
    pub(crate) async fn computed(&self) {
        let notified = self.computed.notified();
        if !self.state.lock().computing {
            return;
        }
        notified.await;
    }

    /// Adds a session to wake when this instance is invalidated.
    pub(crate) fn add_subscriber(&self, session: u64, signal: &Arc<SessionSignal>) {
        self.state
            .lock()
            .subscribers
            .insert(session, signal.clone());
    }

    pub(crate) fn remove_subscriber(&self, session: u64) {
        self.state.lock().subscribers.remove(&session);
    }

    /// Its last session released it: it never serves again, so a run still in flight does not
    /// register a read set nobody would ever unsubscribe. Returns the registration to remove.
    pub(crate) fn retire(&self) -> Option<SubscriptionId> {
        let mut state = self.state.lock();
        state.retired = true;
        state.subscription.take()
    }

    /// Retires a shared instance whose run read the identity, releasing the caller's claim.
    /// Called under the registry's lock; [`Instance::finish_retirement`] does the rest.
    pub(crate) fn retire_claimed(&self) -> Retirement {
        let mut state = self.state.lock();
        state.retired = true;
        state.computing = false;
        let subscribers: Vec<Arc<SessionSignal>> = state.subscribers.values().cloned().collect();
        Retirement {
            subscription: state.subscription.take(),
            subscribers,
        }
    }

    /// After [`Instance::retire_claimed`], outside every lock: unregisters the read set (the
    /// instance never serves again) and wakes the sessions, which re-resolve the query.
    pub(crate) fn finish_retirement(&self, retirement: Retirement, subscriptions: &Subscriptions) {
        if let Some(id) = retirement.subscription {
            subscriptions.unsubscribe(id);
        }
        self.computed.notify_waiters();
        for signal in retirement.subscribers {
            signal.mark_dirty();
        }
    }

    /// Installs a run claimed with [`Instance::try_claim`] and registers its read set;
    /// `promote` runs at the moment the output changes (the registry passes one that makes the
    /// instance its family's shared one, under the registry's lock taken before this one).
    ///
    /// The read set is validated against the commits after `run.ts` while the instance's lock
    /// is held, and the output, `computed_at` and `invalid_since` change in that same critical
    /// section: nobody can see the new output as fresh at a `t` past a commit that changed it.
    pub(crate) fn install<H: Recompute>(
        self: &Arc<Self>,
        run: Run,
        subscriptions: &Subscriptions,
        hub: &Arc<H>,
        promote: impl FnOnce(),
    ) -> Installation {
        let mut state = self.state.lock();
        if state.retired {
            state.computing = false;
            return Installation::Discarded;
        }
        let generation = state.generation.wrapping_add(1);
        let weak: Weak<Instance> = Arc::downgrade(self);
        let weak_hub: Weak<H> = Arc::downgrade(hub);
        let registration = subscriptions.subscribe(
            Arc::new(run.read_set),
            run.ts,
            Box::new(move |commit_ts| {
                if let Some(instance) = weak.upgrade() {
                    instance.invalidate(generation, commit_ts, weak_hub.upgrade());
                }
            }),
        );
        let replaced = state.subscription.take();
        state.generation = generation;
        state.output = Some(run.output);
        state.computed_at = run.ts;
        state.stamp = Some(run.stamp);
        state.computing = false;
        let invalidated = match registration {
            Registration::Subscribed(id) => {
                state.subscription = Some(id);
                state.invalid_since = None;
                false
            }
            Registration::Invalidated { ts: commit_ts } => {
                state.invalid_since = Some(commit_ts);
                true
            }
        };
        promote();
        let invalidated: Vec<Arc<SessionSignal>> = if invalidated {
            state.subscribers.values().cloned().collect()
        } else {
            Vec::new()
        };
        Installation::Installed {
            replaced,
            invalidated,
        }
    }

    /// After [`Instance::install`], outside every lock: removes the replaced registration,
    /// wakes the sessions waiting for the computation, and handles an invalidation that came
    /// in before the registration. Returns whether the run was installed.
    pub(crate) fn finish_install<H: Recompute>(
        self: &Arc<Self>,
        installation: Installation,
        subscriptions: &Subscriptions,
        hub: &Arc<H>,
    ) -> bool {
        match installation {
            Installation::Discarded => {
                self.computed.notify_waiters();
                false
            }
            Installation::Installed {
                replaced,
                invalidated,
            } => {
                if let Some(id) = replaced {
                    subscriptions.unsubscribe(id);
                }
                self.computed.notify_waiters();
                self.invalidated(invalidated, Some(hub.clone()));
                true
            }
        }
    }

    /// A commit at `ts` touched the read set registered by install number `generation`: the
    /// output is stale from `ts` on.
    fn invalidate<H: Recompute>(self: &Arc<Self>, generation: u64, ts: u64, hub: Option<Arc<H>>) {
        let subscribers: Vec<Arc<SessionSignal>> = {
            let mut state = self.state.lock();
            if state.generation != generation || ts <= state.computed_at {
                return;
            }
            state.invalid_since = Some(state.invalid_since.map_or(ts, |i| i.min(ts)));
            state.subscription = None;
            state.subscribers.values().cloned().collect()
        };
        self.invalidated(subscribers, hub);
    }

    /// After an invalidation: with a hub, the instance is recomputed once right away and its
    /// sessions are woken when the new output is published, so each wakes once and finds a
    /// fresh result; without one, the sessions are woken now and recompute it themselves.
    fn invalidated<H: Recompute>(
        self: &Arc<Self>,
        subscribers: Vec<Arc<SessionSignal>>,
        hub: Option<Arc<H>>,
    ) {
        if subscribers.is_empty() {
            return;
        }
        match hub {
            Some(hub) => hub.recompute(self.clone(), subscribers),
            None => {
                for signal in subscribers {
                    signal.mark_dirty();
                }
            }
        }
    }

    /// Marks stale and wakes subscribers (code or schema changed).
    pub(crate) fn wake_all(&self) {
        let subscribers: Vec<Arc<SessionSignal>> =
            self.state.lock().subscribers.values().cloned().collect();
        for signal in subscribers {
            signal.mark_dirty();
        }
    }
}
