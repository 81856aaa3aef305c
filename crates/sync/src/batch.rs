//! Running query instances together in one snapshot ([`run_in_snapshot`]), for a session's
//! Transition (`session/transition.rs`) and for the hub's own recompute after an invalidation
//! (the [`Recompute`] implementation of [`SyncHub`]).
//!
//! A batch waits until the Committer has processed its snapshot's commit before publishing, so
//! a result at that snapshot never overtakes the mutation responses or invalidations before it.
//! Claims it has not published are released in `Drop` ([`Unclaim`]), also when a run panics.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use application::{ExecutedPath, Finished};
use auth::Identity;
use database::{DbError, Transaction};
use functions::{Call, Caller, FunctionKind, Ran};

use crate::hub::SyncHub;
use crate::instance::{Instance, Recompute};
use crate::output::{QueryOutput, Run};
use crate::registry::Published;
use crate::signal::SessionSignal;

/// How long a batch waits for the Committer to finish processing its snapshot's commit.
const PROCESSING_WAIT: Duration = Duration::from_secs(10);

/// One instance to run in a batch.
pub(crate) struct BatchItem {
    /// The session's id for the query (0 when the hub runs it on its own).
    pub query_id: u32,
    pub instance: Arc<Instance>,
    /// The batch holds the instance's claim ([`Instance::try_claim`]): its run is published.
    pub claimed: bool,
}

/// One query's output, as a Transition reports it.
pub(crate) struct Answer {
    pub query_id: u32,
    pub output: Arc<QueryOutput>,
}

/// A run a shared instance refused because it read the identity (see
/// [`Published::Refused`]); the session that ran it may adopt it.
pub(crate) struct RefusedRun {
    pub query_id: u32,
    pub run: Run,
}

/// What one snapshot's runs produced.
pub(crate) struct Batch {
    /// The snapshot's `ts`.
    pub snapshot: u64,
    /// Every run's output, computed with the batch's identity.
    pub outputs: Vec<Answer>,
    pub refused: Vec<RefusedRun>,
}

/// Why a batch of query runs failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("a query did not return its transaction")]
    LostTransaction,
    /// The Committer did not finish processing the snapshot's commit in time; results at that
    /// snapshot could overtake mutation responses or miss invalidations, so none is published.
    #[error("commit {snapshot} was not processed within {waited:?} (processed up to {processed})")]
    ProcessingStalled {
        snapshot: u64,
        processed: u64,
        waited: Duration,
    },
}

/// Claims of a batch not yet published; released if the batch ends early (error, panic).
pub(crate) struct Unclaim(Vec<Arc<Instance>>);

impl Unclaim {
    /// The claims `items` hold.
    pub(crate) fn of(items: &[BatchItem]) -> Unclaim {
        Unclaim(
            items
                .iter()
                .filter(|item| item.claimed)
                .map(|item| item.instance.clone())
                .collect(),
        )
    }

    fn published(&mut self, instance: &Arc<Instance>) {
        self.0.retain(|i| !Arc::ptr_eq(i, instance));
    }
}

impl Drop for Unclaim {
    fn drop(&mut self) {
        for instance in &self.0 {
            instance.unclaim();
        }
    }
}

impl Recompute for SyncHub {
    /// Recomputes an invalidated instance once, on the blocking pool, then wakes the
    /// sessions subscribed to it. If another session already claimed the instance, the
    /// sessions are woken at once and wait for that computation.
    ///
    /// It runs with the identity the instance was created for. That is right for a
    /// per-identity instance; a shared one serves every identity only while its function
    /// ignores the identity, and a run that reads it is refused by `Instances::publish` (the
    /// instance is retired and each session re-runs the query as itself).
    fn recompute(self: &Arc<Self>, instance: Arc<Instance>, subscribers: Vec<Arc<SessionSignal>>) {
        let wake = |subscribers: Vec<Arc<SessionSignal>>| {
            for signal in subscribers {
                signal.mark_dirty();
            }
        };
        let Some(runtime) = self.runtime() else {
            return wake(subscribers);
        };
        if !instance.try_claim() {
            return wake(subscribers);
        }
        let hub = self.clone();
        let handle = runtime.clone();
        runtime.spawn_blocking(move || {
            let identity = instance.identity().cloned();
            let caller = if instance.family().trusted {
                Caller::Trusted
            } else {
                Caller::Client
            };
            let items = [BatchItem {
                query_id: 0,
                instance,
                claimed: true,
            }];
            let mut pending = Unclaim::of(&items);
            if let Err(e) = run_in_snapshot(&hub, &items, identity, caller, &mut pending) {
                tracing::warn!(error = %e, "recomputing a query failed; its sessions will retry");
            }
            drop(pending);
            // Woken from a worker thread, the sessions go to its local run queue (the other
            // worker steals half), not one at a time through the runtime's shared queue
            // and its lock, as wakes from this blocking thread would.
            handle.spawn(async move { wake(subscribers) });
        });
    }
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Runs `items` with `identity` in one snapshot and publishes the claimed ones. The code
/// stamp is taken before the snapshot, so a deploy or schema change racing with the run can
/// only make the output look older than it is (one extra run), never newer.
pub(crate) fn run_in_snapshot(
    hub: &Arc<SyncHub>,
    items: &[BatchItem],
    identity: Option<Identity>,
    caller: Caller,
    pending: &mut Unclaim,
) -> Result<Batch, RunError> {
    let app = hub.app();
    let modules = app.modules();
    let stamp = hub.stamp_with(&modules);
    let db = app.db();
    let mut txn: Box<dyn Transaction + Send> = Box::new(db.snapshot()?);
    let snapshot = txn.ts();
    if !db.subscriptions().wait_processed(snapshot, PROCESSING_WAIT) {
        let processed = db.subscriptions().processed_ts();
        tracing::warn!(
            snapshot,
            processed,
            "the Committer has not processed the snapshot's commit; abandoning the query runs"
        );
        return Err(RunError::ProcessingStalled {
            snapshot,
            processed,
            waited: PROCESSING_WAIT,
        });
    }
    let mut outputs = Vec::with_capacity(items.len());
    let mut refused = Vec::new();
    for item in items {
        let instance = &item.instance;
        let path = &instance.family().path;
        let started = (SystemTime::now(), Instant::now());
        let Ran {
            execution,
            txn: back,
        } = modules.run(
            Call {
                path: path.clone(),
                kind: FunctionKind::Query,
                caller,
                args: instance.args().clone(),
                identity: identity.clone(),
                now_ms: now_ms(),
            },
            txn,
        );
        app.executions().record(Finished {
            path: ExecutedPath::Function(path),
            kind: FunctionKind::Query.as_str(),
            caller,
            identity: identity.as_ref(),
            started: started.0,
            duration: started.1.elapsed(),
            error: execution.result.as_ref().err(),
            log_lines: &execution.log_lines,
        });
        let runs = hub.count_execution();
        tracing::trace!(function = %path, snapshot, runs, "query ran");
        txn = back.ok_or(RunError::LostTransaction)?;
        let output = Arc::new(QueryOutput::from_execution(&execution));
        if item.claimed {
            let run = Run {
                output: output.clone(),
                ts: snapshot,
                read_set: execution.read_set,
                stamp,
                read_identity: execution.read_identity,
            };
            let published = hub.publish(instance, run);
            pending.published(instance);
            if let Published::Refused(run) = published {
                refused.push(RefusedRun {
                    query_id: item.query_id,
                    run,
                });
            }
        }
        outputs.push(Answer {
            query_id: item.query_id,
            output,
        });
    }
    Ok(Batch {
        snapshot,
        outputs,
        refused,
    })
}
