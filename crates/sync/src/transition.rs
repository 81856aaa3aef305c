//! Building a Transition: every result in it reflects one snapshot `ts`.
//!
//! 1. Take `t` = the newest commit whose writes have been matched against subscriptions.
//! 2. Every query whose instance is fresh at `t` is served from it (no database access). An
//!    instance another session is computing is awaited (single flight); a stale one is
//!    claimed.
//! 3. If nothing is stale, send at `t`. Otherwise run the claimed instances together in one
//!    snapshot `s` (on the blocking pool), wait until commit `s` is processed, publish them
//!    (registering their read sets at `s`), and start over: the next `t` is at least `s`.
//!    A run of a shared instance that read the session's identity is not published there
//!    (the instance is retired); the session re-binds the query to its per-identity instance
//!    and installs the run there, so the run is not wasted and no other user sees it.
//! 4. If writes keep invalidating the session's queries faster than this converges, the last
//!    attempt runs every query of the session in one snapshot and sends exactly that.
//!
//! A session never waits on another instance while holding a claim of its own, so two
//! sessions cannot deadlock on each other's computations.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use database::{DbError, Transaction};
use functions::FunctionKind;
use protocol::{QueryModification, ServerMessage, StateVersion, Ts};

use crate::hub::SyncHub;
use crate::instance::{Instance, Published, QueryOutput, Run, Status};
use crate::session::{End, Session};

/// Rounds of "run what is stale, then re-check" before falling back to one full snapshot.
const MAX_ROUNDS: usize = 4;
/// Waits for other sessions' computations, across all rounds.
const MAX_WAITS: usize = 64;
/// How long a batch waits for the Committer to finish processing its snapshot's commit.
const PROCESSING_WAIT: Duration = Duration::from_secs(10);

type Outputs = Vec<(u32, Arc<QueryOutput>)>;

/// What one snapshot's runs produced.
pub(crate) struct Batch {
    /// The snapshot.
    pub s: u64,
    pub outputs: Outputs,
    /// Runs of shared instances that read the identity: not published (see
    /// [`Published::Refused`]); the session that ran them may adopt them.
    pub refused: Vec<(u32, Run)>,
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

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

impl Session {
    /// Computes the next Transition, or `None` when there is nothing to tell the client.
    pub(crate) async fn build_transition(&mut self) -> Result<Option<String>, End> {
        self.must_recheck = false;
        let subscriptions = self.hub.app().db().subscriptions().clone();
        let mut rounds = 0;
        let mut waits = 0;
        loop {
            let t = subscriptions.processed_ts().max(self.sent.ts.0);
            let stamp = self.hub.stamp();
            let mut outputs: Outputs = Vec::with_capacity(self.queries.len());
            let mut stale: Vec<(u32, Arc<Instance>)> = Vec::new();
            let mut busy: Option<Arc<Instance>> = None;
            let mut superseded_at: Option<u64> = None;
            let ids: Vec<u32> = self.queries.keys().copied().collect();
            'queries: for id in ids {
                loop {
                    let Some(query) = self.queries.get(&id) else {
                        continue 'queries;
                    };
                    if let Some(fixed) = &query.fixed {
                        outputs.push((id, fixed.clone()));
                        continue 'queries;
                    }
                    let Some(instance) = query.instance.clone() else {
                        continue 'queries;
                    };
                    match instance.status(t, stamp) {
                        Status::Fresh(output) => outputs.push((id, output)),
                        Status::Superseded(commit_ts) => {
                            superseded_at =
                                Some(superseded_at.map_or(commit_ts, |s| s.max(commit_ts)));
                        }
                        Status::Retired => {
                            self.rebind(id);
                            continue;
                        }
                        Status::Computing => busy = Some(instance),
                        Status::Stale => {
                            if instance.try_claim() {
                                stale.push((id, instance));
                            } else {
                                busy = Some(instance);
                            }
                        }
                    }
                    if busy.is_some() {
                        break 'queries;
                    }
                    continue 'queries;
                }
            }

            if let Some(commit_ts) = superseded_at.filter(|_| busy.is_none()) {
                for (_, claimed) in &stale {
                    claimed.unclaim();
                }
                let mut processed = subscriptions.watch_processed();
                let caught_up = tokio::time::timeout(
                    Duration::from_secs(5),
                    processed.wait_for(|ts| *ts >= commit_ts),
                )
                .await;
                if !matches!(caught_up, Ok(Ok(_))) {
                    return Err(End::Close(
                        1011,
                        "InternalServerError: commit processing stalled".into(),
                    ));
                }
                continue;
            }
            if let Some(instance) = busy {
                for (_, claimed) in &stale {
                    claimed.unclaim();
                }
                waits += 1;
                if waits <= MAX_WAITS {
                    let _ = tokio::time::timeout(Duration::from_secs(2), instance.computed()).await;
                    continue;
                }
                // Another session keeps the instance busy: compute everything ourselves.
                return self.run_all_and_emit().await;
            }
            if stale.is_empty() {
                return Ok(self.emit(t, outputs));
            }
            rounds += 1;
            if rounds >= MAX_ROUNDS {
                for (_, claimed) in &stale {
                    claimed.unclaim();
                }
                return self.run_all_and_emit().await;
            }
            let items = stale.into_iter().map(|(id, i)| (id, i, true)).collect();
            self.run_batch(items).await?;
        }
    }

    /// Runs every query of the session in one snapshot and sends exactly those results.
    async fn run_all_and_emit(&mut self) -> Result<Option<String>, End> {
        let items: Vec<(u32, Arc<Instance>, bool)> = self
            .queries
            .iter()
            .filter_map(|(id, q)| q.instance.clone().map(|i| (*id, i)))
            .map(|(id, i)| {
                let claimed = i.try_claim();
                (id, i, claimed)
            })
            .collect();
        let (s, mut outputs) = self.run_batch(items).await?;
        for (id, query) in &self.queries {
            if let Some(fixed) = &query.fixed {
                outputs.push((*id, fixed.clone()));
            }
        }
        Ok(self.emit(s.max(self.sent.ts.0), outputs))
    }

    /// Runs instances in one snapshot on the blocking pool; claimed ones are published.
    /// Returns the snapshot and every run's output (each computed with this session's
    /// identity, so all of them are right for this session).
    async fn run_batch(
        &mut self,
        items: Vec<(u32, Arc<Instance>, bool)>,
    ) -> Result<(u64, Outputs), End> {
        let hub = self.hub.clone();
        let identity = self.identity.clone();
        let caller = self.caller;
        let task = tokio::task::spawn_blocking(move || {
            let mut pending = Unclaim(
                items
                    .iter()
                    .filter(|(_, _, c)| *c)
                    .map(|(_, i, _)| i.clone())
                    .collect(),
            );
            run_in_snapshot(&hub, &items, identity, caller, &mut pending)
        });
        match task.await {
            Ok(Ok(batch)) => {
                self.adopt(batch.refused);
                Ok((batch.s, batch.outputs))
            }
            Ok(Err(e)) => Err(End::Close(1011, format!("InternalServerError: {e}"))),
            Err(e) => Err(End::Close(
                1011,
                format!("InternalServerError: query task failed: {e}"),
            )),
        }
    }

    /// Installs runs that a shared instance refused (they read this session's identity) into
    /// the per-identity instances the queries now resolve to. The identity cannot have
    /// changed since the runs started: `build_transition` holds the session.
    fn adopt(&mut self, refused: Vec<(u32, Run)>) {
        for (id, run) in refused {
            self.rebind(id);
            let Some(query) = self.queries.get(&id) else {
                continue;
            };
            tracing::debug!(
                session = self.id,
                function = %query.path,
                "a shared query read the identity; it now runs per identity"
            );
            let Some(instance) = query.instance.clone() else {
                continue;
            };
            // Another session of this identity may have filled it already.
            let t = self.hub.app().db().subscriptions().processed_ts();
            if matches!(instance.status(t, run.stamp), Status::Fresh(_)) {
                continue;
            }
            if !instance.try_claim() {
                // Someone else is computing it; the next round waits for that run instead.
                continue;
            }
            // A family may have gained another shared instance meanwhile (a run elsewhere did
            // not read the identity); an identity-reading result never goes there.
            if instance.is_shared() {
                instance.unclaim();
                continue;
            }
            instance.publish(run, &self.hub);
        }
    }

    /// The Transition for results at `t`, or `None` if the client already has all of it.
    fn emit(&mut self, t: u64, outputs: Outputs) -> Option<String> {
        let mut modifications = Vec::new();
        let mut changed = Vec::new();
        for (id, output) in &outputs {
            let Some(query) = self.queries.get(id) else {
                continue;
            };
            if query.last_hash == Some(output.hash) {
                continue;
            }
            changed.push((*id, output.hash));
            modifications.push(match &output.value {
                Ok(value) => QueryModification::QueryUpdated {
                    query_id: *id,
                    value,
                    log_lines: &output.log_lines,
                    journal: None,
                },
                Err(error) => QueryModification::QueryFailed {
                    query_id: *id,
                    error_message: &error.message,
                    error_data: error.data.as_deref(),
                    log_lines: &output.log_lines,
                    journal: None,
                },
            });
        }
        let removed = std::mem::take(&mut self.removed);
        for id in &removed {
            modifications.push(QueryModification::QueryRemoved { query_id: *id });
        }
        let end = StateVersion {
            query_set: self.query_set_version,
            identity: self.identity_version,
            ts: Ts(t),
        };
        if modifications.is_empty() && !self.must_send {
            return None;
        }
        let server_ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let text = ServerMessage::Transition {
            start_version: self.sent,
            end_version: end,
            modifications,
            client_clock_skew: self.clock_skew(),
            server_ts,
        }
        .to_text();
        for (id, hash) in changed {
            if let Some(query) = self.queries.get_mut(&id) {
                query.last_hash = Some(hash);
            }
        }
        self.sent = end;
        self.must_send = false;
        Some(text)
    }
}

/// Claims of a batch not yet published; released if the batch ends early (error, panic).
pub(crate) struct Unclaim(pub(crate) Vec<Arc<Instance>>);

impl Unclaim {
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

/// Runs `items` with `identity` in one snapshot and publishes the claimed ones. The code
/// stamp is taken before the snapshot, so a deploy or schema change racing with the run can
/// only make the output look older than it is (one extra run), never newer.
pub(crate) fn run_in_snapshot(
    hub: &Arc<SyncHub>,
    items: &[(u32, Arc<Instance>, bool)],
    identity: Option<application::Identity>,
    caller: functions::Caller,
    pending: &mut Unclaim,
) -> Result<Batch, RunError> {
    let app = hub.app();
    let modules = app.modules();
    let stamp = hub.stamp_with(&modules);
    let db = app.db();
    let mut txn: Box<dyn Transaction + Send> = Box::new(db.snapshot()?);
    let s = txn.ts();
    if !db.subscriptions().wait_processed(s, PROCESSING_WAIT) {
        let processed = db.subscriptions().processed_ts();
        tracing::warn!(
            snapshot = s,
            processed,
            "the Committer has not processed the snapshot's commit; abandoning the query runs"
        );
        return Err(RunError::ProcessingStalled {
            snapshot: s,
            processed,
            waited: PROCESSING_WAIT,
        });
    }
    let identity_value = identity.as_ref().map(|i| i.value().clone());
    let mut outputs = Vec::with_capacity(items.len());
    let mut refused = Vec::new();
    for (id, instance, claimed) in items {
        let path = &instance.family.path;
        let (execution, back) = modules.run(
            path,
            FunctionKind::Query,
            caller,
            instance.args.clone(),
            identity_value.clone(),
            txn,
            now_ms(),
        );
        let runs = hub.count_execution();
        tracing::trace!(function = %path, snapshot = s, runs, "query ran");
        txn = back.ok_or(RunError::LostTransaction)?;
        let output = Arc::new(QueryOutput::from_execution(&execution));
        if *claimed {
            let run = Run {
                output: output.clone(),
                ts: s,
                read_set: execution.read_set,
                stamp,
                read_identity: execution.read_identity,
            };
            let published = instance.publish(run, hub);
            pending.published(instance);
            if let Published::Refused(run) = published {
                refused.push((*id, run));
            }
        }
        outputs.push((*id, output));
    }
    Ok(Batch {
        s,
        outputs,
        refused,
    })
}
