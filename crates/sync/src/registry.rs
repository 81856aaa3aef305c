//! [`Instances`]: the registry of live query instances, one family per (function, arguments,
//! admin or client), however many sessions subscribe.
//!
//! A new instance is keyed by its subscriber's identity; once a run shows the function did not
//! read the identity, it is promoted to the family's shared instance that every identity uses.
//! A run of a shared instance that reads the identity is never installed there
//! ([`Instances::publish`]): the instance is retired, its sessions re-resolve to per-identity
//! instances, and the session that ran it adopts its result into its own.
//!
//! Lock order: the registry (`Instances::families`), then an instance's state, then the
//! subscription index. `Subscriptions::on_commit` runs invalidation callbacks outside its own
//! lock, so a callback taking an instance's lock never waits inside the index.

use std::collections::HashMap;
use std::sync::Arc;

use auth::{Identity, IdentityCacheKey};
use database::Subscriptions;
use parking_lot::Mutex;
use value::Value;

use crate::instance::{FamilyKey, Instance, Recompute};
use crate::output::Run;
use crate::signal::SessionSignal;

/// What [`Instances::publish`] did with a run.
pub(crate) enum Published {
    Installed,
    /// Not installed: the instance is shared across identities and the run read the identity
    /// it ran with. The instance is retired; the run is handed back for its own session.
    Refused(Run),
    /// Not installed: the instance was retired or released while it ran.
    Discarded,
}

struct Binding {
    instance: Arc<Instance>,
    bindings: usize,
}

#[derive(Default)]
struct Family {
    shared: Option<Binding>,
    by_identity: HashMap<Option<IdentityCacheKey>, Binding>,
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
        identity: Option<&Identity>,
        session: u64,
        signal: &Arc<SessionSignal>,
    ) -> Arc<Instance> {
        let identity_key = identity.map(Identity::cache_key);
        let instance = {
            let mut families = self.families.lock();
            let entry = families.entry(family.clone()).or_default();
            let binding = match &mut entry.shared {
                Some(shared) => shared,
                None => entry
                    .by_identity
                    .entry(identity_key)
                    .or_insert_with(|| Binding {
                        instance: Arc::new(Instance::new(
                            family.clone(),
                            args.clone(),
                            identity_key,
                            identity.cloned(),
                        )),
                        bindings: 0,
                    }),
            };
            binding.bindings += 1;
            binding.instance.clone()
        };
        instance.add_subscriber(session, signal);
        instance
    }

    /// Unbinds a session; the last unbinding drops the instance and its subscription.
    pub(crate) fn release(
        &self,
        instance: &Arc<Instance>,
        session: u64,
        subscriptions: &Subscriptions,
    ) {
        instance.remove_subscriber(session);
        let dropped = {
            let mut families = self.families.lock();
            let Some(family) = families.get_mut(instance.family()) else {
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
                .get_mut(instance.identity_key())
                .filter(|b| slot_is_ours(b))
            {
                binding.bindings = binding.bindings.saturating_sub(1);
                if binding.bindings == 0 {
                    family.by_identity.remove(instance.identity_key());
                    dropped = true;
                }
            }
            if family.shared.is_none() && family.by_identity.is_empty() {
                families.remove(instance.family());
            }
            dropped
        };
        // Retired too, so a run still in flight does not register a read set nobody would
        // ever unsubscribe.
        let subscription = if dropped { instance.retire() } else { None };
        if let Some(id) = subscription {
            subscriptions.unsubscribe(id);
        }
    }

    /// Installs a run claimed with [`Instance::try_claim`] and registers its read set, or
    /// refuses it when the instance is shared and the run read the identity. A run that did
    /// not read the identity promotes a per-identity instance to its family's shared one, in
    /// the same critical section that installs the output.
    pub(crate) fn publish<H: Recompute>(
        &self,
        instance: &Arc<Instance>,
        run: Run,
        subscriptions: &Subscriptions,
        hub: &Arc<H>,
    ) -> Published {
        // `shared` changes only while a run is published, under the claim the caller holds:
        // reading it without a lock is exact here.
        if run.read_identity && instance.is_shared() {
            self.retire_claimed(instance, subscriptions);
            return Published::Refused(run);
        }
        let promote = !run.read_identity && !instance.is_shared();
        let mut families = promote.then(|| self.families.lock());
        let installation = instance.install(run, subscriptions, hub, || {
            if let Some(families) = families.as_mut() {
                promote_locked(families, instance);
            }
        });
        drop(families);
        if instance.finish_install(installation, subscriptions, hub) {
            Published::Installed
        } else {
            Published::Discarded
        }
    }

    /// Retires a shared instance whose run read the identity, before anything of that run is
    /// installed. The caller holds the claim, which this releases. Every session re-resolves
    /// the query on its next transition (to a per-identity instance) and the read set is
    /// unregistered, since the instance never serves again.
    fn retire_claimed(&self, instance: &Arc<Instance>, subscriptions: &Subscriptions) {
        let retirement = {
            let mut families = self.families.lock();
            if let Some(family) = families.get_mut(instance.family()) {
                if family
                    .shared
                    .as_ref()
                    .is_some_and(|b| Arc::ptr_eq(&b.instance, instance))
                {
                    family.shared = None;
                }
                if family.shared.is_none() && family.by_identity.is_empty() {
                    families.remove(instance.family());
                }
            }
            instance.retire_claimed()
        };
        instance.finish_retirement(retirement, subscriptions);
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
    let Some(family) = families.get_mut(instance.family()) else {
        return;
    };
    if family.shared.is_some() {
        return;
    }
    let ours = family
        .by_identity
        .get(instance.identity_key())
        .is_some_and(|b| Arc::ptr_eq(&b.instance, instance));
    if !ours {
        return;
    }
    if let Some(binding) = family.by_identity.remove(instance.identity_key()) {
        instance.mark_shared();
        family.shared = Some(binding);
    }
}
