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
//! [`Instance::publish`] installs an output and registers its read set in one step under the
//! instance's lock, so an output is never observable before the commits that landed after its
//! snapshot have been checked against it: whoever sees it also sees `invalid_since`.
//!
//! [`Instances`] is the registry. A new instance is keyed by its subscriber's identity; once a
//! run shows the function did not read the identity, it is promoted to the family's shared
//! instance that every identity uses. A run of a shared instance that reads the identity is
//! never installed there: the instance is retired, its sessions re-resolve to per-identity
//! instances, and the session that ran it adopts its result into its own.
//!
//! Lock order: the registry (`Instances::families`), then an instance's state, then the
//! subscription index. `Subscriptions::on_commit` runs invalidation callbacks outside its own
//! lock, so a callback taking an instance's lock never waits inside the index.

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

/// Which code produced an output: the whole deployed function set (a query reaches other
/// modules through `ctx.runQuery`) and the schema epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CodeStamp {
    pub code_hash: u64,
    pub epoch: u64,
}

/// One run of an instance's function, ready to be published.
pub(crate) struct Run {
    pub output: Arc<QueryOutput>,
    /// The snapshot it ran at.
    pub ts: u64,
    pub read_set: ReadSet,
    pub stamp: CodeStamp,
    /// The function read the identity it ran with.
    pub read_identity: bool,
}

/// What [`Instance::publish`] did with a run.
pub(crate) enum Published {
    Installed,
    /// Not installed: the instance is shared across identities and the run read the identity
    /// it ran with. The instance is retired; the run is handed back for its own session.
    Refused(Run),
    /// Not installed: the instance was retired or released while it ran.
    Discarded,
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
    /// Bumped by every publish; an invalidation callback of an older registration (its read
    /// set is no longer the output's) is ignored.
    generation: u64,
    subscribers: HashMap<u64, Arc<SessionSignal>>,
    /// Never serves again: shared but its function read the identity, or released by its last
    /// session.
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
                generation: 0,
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

    /// Installs a run claimed with [`Instance::try_claim`] and registers its read set, or
    /// refuses it when the instance is shared and the run read the identity.
    ///
    /// The read set is validated against the commits after `run.ts` while the instance's lock
    /// is held, and the output, `computed_at` and `invalid_since` change in that same critical
    /// section: nobody can see the new output as fresh at a `t` past a commit that changed it.
    pub(crate) fn publish(self: &Arc<Self>, run: Run, hub: &Arc<SyncHub>) -> Published {
        let subscriptions = hub.app().db().subscriptions();
        // `shared` changes only in `publish`, under the claim the caller holds: reading it
        // without a lock is exact here.
        if run.read_identity && self.is_shared() {
            hub.instances.retire_claimed(self, subscriptions);
            return Published::Refused(run);
        }
        let promote = !run.read_identity && !self.is_shared();
        let mut families = promote.then(|| hub.instances.families.lock());
        let mut state = self.state.lock();
        if state.retired {
            state.computing = false;
            drop(state);
            drop(families);
            self.computed.notify_waiters();
            return Published::Discarded;
        }
        let generation = state.generation.wrapping_add(1);
        let weak: Weak<Instance> = Arc::downgrade(self);
        let weak_hub: Weak<SyncHub> = Arc::downgrade(hub);
        let registration = subscriptions.subscribe(
            Arc::new(run.read_set),
            run.ts,
            Box::new(move |commit_ts| {
                if let Some(instance) = weak.upgrade() {
                    instance.invalidate(generation, commit_ts, weak_hub.upgrade());
                }
            }),
        );
        let old_subscription = state.subscription.take();
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
        if let Some(families) = families.as_mut() {
            promote_locked(families, self);
        }
        let subscribers: Vec<Arc<SessionSignal>> = if invalidated {
            state.subscribers.values().cloned().collect()
        } else {
            Vec::new()
        };
        drop(state);
        drop(families);
        if let Some(id) = old_subscription {
            subscriptions.unsubscribe(id);
        }
        self.computed.notify_waiters();
        self.invalidated(subscribers, Some(hub.clone()));
        Published::Installed
    }

    /// A commit at `ts` touched the read set registered by publish number `generation`: the
    /// output is stale from `ts` on.
    fn invalidate(self: &Arc<Self>, generation: u64, ts: u64, hub: Option<Arc<SyncHub>>) {
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
    fn invalidated(
        self: &Arc<Self>,
        subscribers: Vec<Arc<SessionSignal>>,
        hub: Option<Arc<SyncHub>>,
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
            // Retired too, so a run still in flight does not register a read set nobody
            // would ever unsubscribe.
            let mut state = instance.state.lock();
            state.retired = true;
            state.subscription.take()
        } else {
            None
        };
        if let Some(id) = subscription {
            subscriptions.unsubscribe(id);
        }
    }

    /// Retires a shared instance whose run read the identity, before anything of that run is
    /// installed. The caller holds the claim, which this releases. Every session re-resolves
    /// the query on its next transition (to a per-identity instance) and the read set is
    /// unregistered, since the instance never serves again.
    fn retire_claimed(&self, instance: &Arc<Instance>, subscriptions: &Subscriptions) {
        let (subscription, subscribers) = {
            let mut families = self.families.lock();
            if let Some(family) = families.get_mut(&instance.family) {
                if family
                    .shared
                    .as_ref()
                    .is_some_and(|b| Arc::ptr_eq(&b.instance, instance))
                {
                    family.shared = None;
                }
                if family.shared.is_none() && family.by_identity.is_empty() {
                    families.remove(&instance.family);
                }
            }
            let mut state = instance.state.lock();
            state.retired = true;
            state.computing = false;
            let subscribers: Vec<Arc<SessionSignal>> =
                state.subscribers.values().cloned().collect();
            (state.subscription.take(), subscribers)
        };
        if let Some(id) = subscription {
            subscriptions.unsubscribe(id);
        }
        instance.computed.notify_waiters();
        for signal in subscribers {
            signal.mark_dirty();
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

/// Makes a per-identity instance the family's shared one, after a run that did not read the
/// identity (its output is then right for every identity). Called by `publish` with the
/// registry and the instance's state locked, so the flag and the output it is justified by
/// change together. A family that already has a shared instance keeps it.
fn promote_locked(families: &mut HashMap<FamilyKey, Family>, instance: &Arc<Instance>) {
    let Some(family) = families.get_mut(&instance.family) else {
        return;
    };
    if family.shared.is_some() {
        return;
    }
    let ours = family
        .by_identity
        .get(&instance.identity_key)
        .is_some_and(|b| Arc::ptr_eq(&b.instance, instance));
    if !ours {
        return;
    }
    if let Some(binding) = family.by_identity.remove(&instance.identity_key) {
        instance.shared.store(true, Ordering::Release);
        family.shared = Some(binding);
    }
}
