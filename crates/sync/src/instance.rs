//! Query instances: one shared execution and cached result per (function, args, and identity
//! when the function read it), however many sessions subscribe to it.
//!
//! An [`Instance`] holds its latest [`QueryOutput`], the snapshot `ts` it was computed at,
//! and its registration in [`database::Subscriptions`]. A commit that touches its read set
//! marks it invalid from that commit's `ts` on and wakes every subscribed session. Freshness
//! is a question about a timestamp: "is this output what the function returns at `t`?" —
//! yes when it was computed at or before `t`, no invalidating commit happened up to `t`, and
//! the code that produced it is still the live code.
//!
//! [`Instances`] is the registry. A new instance is keyed by its subscriber's identity; once a
//! run shows the function did not read the identity, it is promoted to the family's shared
//! instance that every identity uses. If a shared instance later reads the identity it is
//! retired, and its sessions re-resolve to per-identity instances.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use database::{ReadSet, Registration, SubscriptionId, Subscriptions};
use functions::{Execution, FunctionPath};
use parking_lot::Mutex;
use serde_json::value::RawValue;
use tokio::sync::Notify;
use value::Value;

use crate::hub::SyncHub;
use crate::session::SessionSignal;

/// A computed result, serialised once and shared by every session that sends it.
#[derive(Debug)]
pub(crate) struct QueryOutput {
    pub value: Result<Box<RawValue>, QueryError>,
    pub log_lines: Vec<String>,
    /// Hash of the value or error, to send nothing when a re-run changes nothing.
    pub hash: u64,
}

#[derive(Debug)]
pub(crate) struct QueryError {
    pub message: String,
    pub data: Option<Box<RawValue>>,
}

impl QueryOutput {
    pub(crate) fn from_execution(execution: &Execution) -> QueryOutput {
        let mut hasher = DefaultHasher::new();
        let value = match &execution.result {
            Ok(value) => {
                let text = value.to_json_string();
                text.hash(&mut hasher);
                raw(text)
            }
            Err(error) => {
                let data = error.data.as_ref().map(|d| d.to_json_string());
                ("error", &error.message, &data).hash(&mut hasher);
                Err(QueryError {
                    message: error.message.clone(),
                    data: data.and_then(|d| raw(d).ok()),
                })
            }
        };
        QueryOutput {
            value,
            log_lines: execution.log_lines.clone(),
            hash: hasher.finish(),
        }
    }

    pub(crate) fn failure(message: String) -> QueryOutput {
        let mut hasher = DefaultHasher::new();
        ("error", &message).hash(&mut hasher);
        QueryOutput {
            value: Err(QueryError {
                message,
                data: None,
            }),
            log_lines: Vec::new(),
            hash: hasher.finish(),
        }
    }
}

fn raw(text: String) -> Result<Box<RawValue>, QueryError> {
    RawValue::from_string(text).map_err(|e| QueryError {
        message: format!("internal error: the result could not be encoded: {e}"),
        data: None,
    })
}

/// Which code produced an output: the function's module source and the schema epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CodeStamp {
    pub module_hash: u64,
    pub epoch: u64,
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

struct State {
    output: Option<Arc<QueryOutput>>,
    computed_at: u64,
    /// Timestamp of the first commit after `computed_at` that touched the read set.
    invalid_since: Option<u64>,
    stamp: Option<CodeStamp>,
    computing: bool,
    subscription: Option<SubscriptionId>,
    subscribers: HashMap<u64, Arc<SessionSignal>>,
    retired: bool,
}

/// One shared query execution and its subscribers.
pub(crate) struct Instance {
    pub family: FamilyKey,
    pub args: Value,
    /// The identity key this instance was created for ("" = anonymous).
    identity_key: Arc<str>,
    /// The identity it runs with when the hub recomputes it on its own (see
    /// `SyncHub::recompute`); irrelevant once shared, since shared functions ignore it.
    pub identity: Option<application::Identity>,
    /// Set once a run showed the function ignores the identity.
    shared: AtomicBool,
    state: Mutex<State>,
    /// Wakes sessions waiting for a computation to finish.
    computed: Notify,
}

impl Instance {
    fn new(
        family: FamilyKey,
        args: Value,
        identity_key: Arc<str>,
        identity: Option<application::Identity>,
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
                subscribers: HashMap::new(),
                retired: false,
            }),
            computed: Notify::new(),
        }
    }

    pub(crate) fn is_shared(&self) -> bool {
        self.shared.load(Ordering::Acquire)
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

    /// Installs an output computed at snapshot `ts` and registers its read set.
    pub(crate) fn publish(
        self: &Arc<Self>,
        output: Arc<QueryOutput>,
        ts: u64,
        read_set: ReadSet,
        stamp: CodeStamp,
        hub: &Arc<SyncHub>,
    ) {
        let subscriptions = hub.app().db().subscriptions();
        let old_subscription = {
            let mut state = self.state.lock();
            state.output = Some(output);
            state.computed_at = ts;
            state.invalid_since = None;
            state.stamp = Some(stamp);
            state.computing = false;
            state.subscription.take()
        };
        if let Some(id) = old_subscription {
            subscriptions.unsubscribe(id);
        }
        let weak: Weak<Instance> = Arc::downgrade(self);
        let weak_hub: Weak<SyncHub> = Arc::downgrade(hub);
        let registration = subscriptions.subscribe(
            Arc::new(read_set),
            ts,
            Box::new(move |commit_ts| {
                if let Some(instance) = weak.upgrade() {
                    instance.invalidate(commit_ts, weak_hub.upgrade());
                }
            }),
        );
        match registration {
            Registration::Subscribed(id) => {
                let mut state = self.state.lock();
                if state.computed_at == ts && state.invalid_since.is_none() {
                    state.subscription = Some(id);
                } else {
                    drop(state);
                    subscriptions.unsubscribe(id);
                }
            }
            Registration::Invalidated { ts: commit_ts } => {
                self.invalidate(commit_ts, Some(hub.clone()))
            }
        }
        self.computed.notify_waiters();
    }

    /// A commit at `ts` touched the read set: the output is stale from `ts` on. With a hub,
    /// the instance is recomputed once right away and its sessions are woken when the new
    /// output is published, so each wakes once and finds a fresh result; without one, the
    /// sessions are woken now and recompute it themselves.
    pub(crate) fn invalidate(self: &Arc<Self>, ts: u64, hub: Option<Arc<SyncHub>>) {
        let subscribers: Vec<Arc<SessionSignal>> = {
            let mut state = self.state.lock();
            if ts <= state.computed_at {
                return;
            }
            state.invalid_since = Some(state.invalid_since.map_or(ts, |i| i.min(ts)));
            state.subscription = None;
            state.subscribers.values().cloned().collect()
        };
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

    /// Retires the instance: every session re-resolves it on its next transition.
    fn retire(&self) {
        let subscribers: Vec<Arc<SessionSignal>> = {
            let mut state = self.state.lock();
            state.retired = true;
            state.subscribers.values().cloned().collect()
        };
        for signal in subscribers {
            signal.mark_dirty();
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

struct Binding {
    instance: Arc<Instance>,
    bindings: usize,
}

#[derive(Default)]
struct Family {
    shared: Option<Binding>,
    by_identity: HashMap<Arc<str>, Binding>,
}

/// The registry of live instances.
#[derive(Default)]
pub(crate) struct Instances {
    families: Mutex<HashMap<FamilyKey, Family>>,
}

impl Instances {
    /// Binds a session to the instance for (family, identity), creating it if needed.
    pub(crate) fn acquire(
        &self,
        family: &FamilyKey,
        args: &Value,
        identity: Option<&application::Identity>,
        session: u64,
        signal: &Arc<SessionSignal>,
    ) -> Arc<Instance> {
        let identity_key: Arc<str> = Arc::from(identity.map_or("", |i| i.key()));
        let identity_key = &identity_key;
        let instance = {
            let mut families = self.families.lock();
            let entry = families.entry(family.clone()).or_default();
            let binding = match &mut entry.shared {
                Some(shared) => shared,
                None => entry
                    .by_identity
                    .entry(identity_key.clone())
                    .or_insert_with(|| Binding {
                        instance: Arc::new(Instance::new(
                            family.clone(),
                            args.clone(),
                            identity_key.clone(),
                            identity.cloned(),
                        )),
                        bindings: 0,
                    }),
            };
            binding.bindings += 1;
            binding.instance.clone()
        };
        instance
            .state
            .lock()
            .subscribers
            .insert(session, signal.clone());
        instance
    }

    /// Unbinds a session; the last unbinding drops the instance and its subscription.
    pub(crate) fn release(
        &self,
        instance: &Arc<Instance>,
        session: u64,
        subscriptions: &Subscriptions,
    ) {
        instance.state.lock().subscribers.remove(&session);
        let dropped = {
            let mut families = self.families.lock();
            let Some(family) = families.get_mut(&instance.family) else {
                return;
            };
            let slot_is_ours = |b: &Binding| Arc::ptr_eq(&b.instance, instance);
            let mut dropped = false;
            if family.shared.as_ref().is_some_and(slot_is_ours) {
                if let Some(binding) = family.shared.as_mut() {
                    binding.bindings = binding.bindings.saturating_sub(1);
                    if binding.bindings == 0 {
                        family.shared = None;
                        dropped = true;
                    }
                }
            } else if let Some(binding) = family
                .by_identity
                .get_mut(&instance.identity_key)
                .filter(|b| slot_is_ours(b))
            {
                binding.bindings = binding.bindings.saturating_sub(1);
                if binding.bindings == 0 {
                    family.by_identity.remove(&instance.identity_key);
                    dropped = true;
                }
            }
            if family.shared.is_none() && family.by_identity.is_empty() {
                families.remove(&instance.family);
            }
            dropped
        };
        let subscription = if dropped {
            instance.state.lock().subscription.take()
        } else {
            None
        };
        if let Some(id) = subscription {
            subscriptions.unsubscribe(id);
        }
    }

    /// After a run: share an instance whose function ignored the identity, retire a shared
    /// one whose function now reads it.
    pub(crate) fn after_run(&self, instance: &Arc<Instance>, read_identity: bool) {
        let mut families = self.families.lock();
        let Some(family) = families.get_mut(&instance.family) else {
            return;
        };
        if !read_identity && !instance.is_shared() && family.shared.is_none() {
            if let Some(binding) = family.by_identity.remove(&instance.identity_key) {
                if Arc::ptr_eq(&binding.instance, instance) {
                    instance.shared.store(true, Ordering::Release);
                    family.shared = Some(binding);
                } else {
                    family
                        .by_identity
                        .insert(instance.identity_key.clone(), binding);
                }
            }
        } else if read_identity && instance.is_shared() {
            if family
                .shared
                .as_ref()
                .is_some_and(|b| Arc::ptr_eq(&b.instance, instance))
            {
                family.shared = None;
            }
            drop(families);
            instance.retire();
        }
    }

    /// Wakes every session subscribed to any instance (after a code or schema change).
    pub(crate) fn wake_all(&self) {
        let instances: Vec<Arc<Instance>> = self
            .families
            .lock()
            .values()
            .flat_map(|f| {
                f.shared
                    .iter()
                    .chain(f.by_identity.values())
                    .map(|b| b.instance.clone())
            })
            .collect();
        for instance in instances {
            instance.wake_all();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.families
            .lock()
            .values()
            .map(|f| usize::from(f.shared.is_some()) + f.by_identity.len())
            .sum()
    }
}
