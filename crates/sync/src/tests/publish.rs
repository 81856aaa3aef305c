//! Publishing runs into instances, driven directly (no session): the race between publishing
//! a result and registering its read set, a shared instance never serving a result computed
//! under one identity to another, and a run that finishes after its last session left.
//!
//! The race tests run a poller thread that keeps asking an instance "are you fresh now?" while
//! the code under test publishes; a correct implementation never answers yes with a stale or
//! foreign result, whatever the interleaving. Every loop is bounded by a round count.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use auth::Identity;
use database::Transaction;
use functions::{Call, Caller, FunctionKind, Ran};

use super::fixture::{T_MODULE, family, fixture, identity, json_args, mutate, value_of};
use crate::batch::{BatchItem, Unclaim, run_in_snapshot};
use crate::hub::SyncHub;
use crate::instance::{Instance, Status};
use crate::output::{QueryOutput, Run};
use crate::registry::Published;
use crate::signal::SessionSignal;

/// Watches an instance from another thread until stopped, recording every result it reports
/// as fresh that `bad` rejects. Bounded by `max_polls`.
struct Poller {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<String>>,
}

impl Poller {
    fn start(
        hub: &Arc<SyncHub>,
        instance: &Arc<Instance>,
        bad: impl Fn(&QueryOutput) -> bool + Send + 'static,
    ) -> Poller {
        let stop = Arc::new(AtomicBool::new(false));
        let (hub, instance, flag) = (hub.clone(), instance.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            // The tests that poll never change the code: one stamp keeps each poll short.
            let stamp = hub.stamp();
            let subscriptions = hub.app().db().subscriptions().clone();
            let max_polls = 50_000_000usize;
            for _ in 0..max_polls {
                if flag.load(Ordering::Acquire) {
                    break;
                }
                let t = subscriptions.processed_ts();
                if let Status::Fresh(output) = instance.status(t, stamp)
                    && bad(&output)
                {
                    seen.push(format!("fresh at {t}: {}", value_of(&output)));
                    break;
                }
            }
            seen
        });
        Poller { stop, handle }
    }

    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Release);
        self.handle.join().expect("the poller does not panic")
    }
}

/// Runs an instance's query in a fresh snapshot without publishing anything.
fn run_at_snapshot(hub: &Arc<SyncHub>, instance: &Arc<Instance>, who: Option<&Identity>) -> Run {
    let app = hub.app();
    let modules = app.modules();
    let stamp = hub.stamp_with(&modules);
    let txn = app.db().snapshot().expect("snapshot");
    let ts = txn.ts();
    let Ran { execution, .. } = modules.run(
        Call {
            path: instance.family().path.clone(),
            kind: FunctionKind::Query,
            caller: Caller::Client,
            args: instance.args().clone(),
            identity: who.cloned(),
            now_ms: 0.0,
        },
        Box::new(txn),
    );
    Run {
        output: Arc::new(QueryOutput::from_execution(&execution)),
        ts,
        read_set: execution.read_set,
        stamp,
        read_identity: execution.read_identity,
    }
}

#[test]
fn an_output_invalidated_after_its_snapshot_is_never_fresh_past_that_commit() {
    let f = fixture(&[("t", T_MODULE)]);
    let hub = &f.hub;
    let args = json_args(serde_json::json!({ "room": "race" }));
    let signal = Arc::new(SessionSignal::default());
    let instance = hub
        .instances()
        .acquire(&family("t:count", &args), &args, None, 1, &signal);
    // Every output published below was computed before a commit that changed it, which is
    // processed before the publish: at the current `processed_ts` it is never fresh.
    let poller = Poller::start(hub, &instance, |_| true);
    const ROUNDS: usize = 400;
    for round in 0..ROUNDS {
        let ran = run_at_snapshot(hub, &instance, None);
        // Unrelated commits after the snapshot lengthen the registration check.
        for _ in 0..2 {
            mutate(
                hub,
                "t:add",
                serde_json::json!({ "room": "elsewhere", "text": "x" }),
            );
        }
        let conflict = mutate(
            hub,
            "t:add",
            serde_json::json!({ "room": "race", "text": format!("r{round}") }),
        );
        assert!(hub.app().db().subscriptions().processed_ts() >= conflict);
        assert!(instance.try_claim(), "nothing else computes this instance");
        assert!(matches!(hub.publish(&instance, ran), Published::Installed));
        let t = hub.app().db().subscriptions().processed_ts();
        assert!(
            matches!(instance.status(t, hub.stamp()), Status::Stale),
            "round {round}: an output computed before commit {conflict} must be stale at {t}"
        );
    }
    let seen = poller.finish();
    assert!(
        seen.is_empty(),
        "a stale output was observable as fresh: {seen:?}"
    );
}

#[test]
fn a_shared_instance_never_serves_a_result_computed_under_one_identity_to_another() {
    let f = fixture(&[("t", T_MODULE)]);
    let hub = &f.hub;
    let (alice, bob) = (identity("alice"), identity("bob"));
    let signal_a = Arc::new(SessionSignal::default());
    let signal_b = Arc::new(SessionSignal::default());
    const ROUNDS: usize = 300;
    for round in 0..ROUNDS {
        mutate(hub, "t:clearFlag", serde_json::json!({}));
        // A fresh family per round: alice's first run does not read the identity, so the
        // instance becomes the one every identity shares, and bob binds to it.
        let args = json_args(serde_json::json!({ "round": round }));
        let key = family("t:maybeWho", &args);
        let shared = hub
            .instances()
            .acquire(&key, &args, Some(&alice), 1, &signal_a);
        assert!(shared.try_claim());
        let first = run_at_snapshot(hub, &shared, Some(&alice));
        assert_eq!(value_of(&first.output), "\"public\"");
        assert!(matches!(hub.publish(&shared, first), Published::Installed));
        assert!(
            shared.is_shared(),
            "a run that ignores the identity is shared"
        );
        let for_bob = hub
            .instances()
            .acquire(&key, &args, Some(&bob), 2, &signal_b);
        assert!(
            Arc::ptr_eq(&shared, &for_bob),
            "bob shares alice's instance"
        );

        // Now the function reads the identity. Re-running the shared instance as alice must
        // never make alice's answer visible through the shared instance.
        mutate(hub, "t:setFlag", serde_json::json!({}));
        let poller = Poller::start(hub, &shared, |output| value_of(output) != "\"public\"");
        assert!(shared.try_claim());
        let items = [BatchItem {
            query_id: 0,
            instance: shared.clone(),
            claimed: true,
        }];
        let mut pending = Unclaim::of(&items);
        let done = run_in_snapshot(
            hub,
            &items,
            Some(alice.clone()),
            Caller::Client,
            &mut pending,
        );
        drop(pending);
        let seen = poller.finish();
        assert!(seen.is_empty(), "round {round}: bob could read {seen:?}");
        let batch = done.expect("the run succeeds");
        assert_eq!(
            batch
                .outputs
                .iter()
                .map(|answer| value_of(&answer.output))
                .collect::<Vec<_>>(),
            ["\"alice\""],
            "the session that ran it gets its own answer"
        );
        assert_eq!(
            batch
                .refused
                .iter()
                .map(|refused| (refused.query_id, value_of(&refused.run.output)))
                .collect::<Vec<_>>(),
            [(0, "\"alice\"".to_string())],
            "the shared instance refused the identity-reading run"
        );
        let t = hub.app().db().subscriptions().processed_ts();
        assert!(
            matches!(shared.status(t, hub.stamp()), Status::Retired),
            "round {round}: the shared instance is retired once its function reads the identity"
        );
        let rebound = hub
            .instances()
            .acquire(&key, &args, Some(&bob), 2, &signal_b);
        assert!(
            !Arc::ptr_eq(&rebound, &shared),
            "bob re-resolves to an instance of his own"
        );
        assert!(
            !matches!(rebound.status(t, hub.stamp()), Status::Fresh(_)),
            "bob's own instance has not run yet"
        );
        for (instance, session) in [(&shared, 1), (&shared, 2), (&rebound, 2)] {
            hub.instances()
                .release(instance, session, hub.app().db().subscriptions());
        }
    }
}

#[test]
fn a_run_finishing_after_its_last_session_left_registers_nothing() {
    let f = fixture(&[("t", T_MODULE)]);
    let hub = &f.hub;
    let subscriptions = hub.app().db().subscriptions();
    let args = json_args(serde_json::json!({ "room": "gone" }));
    let signal = Arc::new(SessionSignal::default());
    let instance = hub
        .instances()
        .acquire(&family("t:count", &args), &args, None, 1, &signal);
    assert!(instance.try_claim());
    let ran = run_at_snapshot(hub, &instance, None);
    let before = subscriptions.len();
    hub.instances().release(&instance, 1, subscriptions);
    assert_eq!(hub.instances().len(), 0);
    assert!(matches!(hub.publish(&instance, ran), Published::Discarded));
    assert_eq!(subscriptions.len(), before, "no read set left behind");
    assert!(
        !instance.try_claim(),
        "a released instance is never computed again"
    );
}
