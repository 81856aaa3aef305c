//! Building a Transition: every result in it reflects one snapshot `ts`.
//!
//! 1. Take `t` = the newest commit whose writes have been matched against subscriptions.
//! 2. Every query whose instance is fresh at `t` is served from it (no database access). An
//!    instance another session is computing is awaited (single flight); a stale one is
//!    claimed.
//! 3. If nothing is stale, send at `t`. Otherwise run the claimed instances together in one
//!    snapshot `s` (on the blocking pool, `batch.rs`), wait until commit `s` is processed,
//!    publish them (registering their read sets at `s`), and start over: the next `t` is at
//!    least `s`. A run of a shared instance that read the session's identity is not published
//!    there (the instance is retired); the session re-binds the query to its per-identity
//!    instance and installs the run there, so the run is not wasted and no other user sees it.
//! 4. If writes keep invalidating the session's queries faster than this converges, the last
//!    attempt runs every query of the session in one snapshot and sends exactly that.
//!
//! A session never waits on another instance while holding a claim of its own, so two
//! sessions cannot deadlock on each other's computations.
//!
//! [`Transitions`] keeps what the client was last sent; each Transition's `startVersion` is the
//! previous one's `endVersion`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use protocol::{QueryModification, ServerMessage, StateVersion, Ts};

use super::auth::SessionAuth;
use super::frames::End;
use super::query_set::{Member, QuerySet, Source};
use crate::batch::{Answer, Batch, BatchItem, RefusedRun, Unclaim, run_in_snapshot};
use crate::instance::{Instance, Status};

/// Rounds of "run what is stale, then re-check" before falling back to one full snapshot.
const MAX_ROUNDS: usize = 4;
/// Waits for other sessions' computations, across all rounds.
const MAX_WAITS: usize = 64;

/// What the client was last sent, and whether it is owed a Transition.
pub(crate) struct Transitions {
    /// The `endVersion` of the last Transition sent.
    sent: StateVersion,
    /// A Transition must go out even if no result changed (versions moved, or a mutation
    /// response needs a covering Transition).
    must_send: bool,
    /// A query instance was invalidated or re-bound: results must be re-checked.
    must_recheck: bool,
}

impl Transitions {
    pub(crate) fn new() -> Transitions {
        Transitions {
            sent: StateVersion::default(),
            must_send: false,
            must_recheck: false,
        }
    }

    /// Whether the session has anything to tell the client, or to find out.
    pub(crate) fn wanted(&self) -> bool {
        self.must_send || self.must_recheck
    }

    /// A Transition must go out (a mutation response is waiting for one, or versions moved).
    pub(crate) fn owed(&self) -> bool {
        self.must_send
    }

    /// The next Transition goes out even if no result changed.
    pub(crate) fn owe(&mut self) {
        self.must_send = true;
    }

    /// Results must be re-checked before the next Transition.
    pub(crate) fn recheck(&mut self) {
        self.must_recheck = true;
    }

    /// Computes the next Transition, or `None` when there is nothing to tell the client.
    pub(crate) async fn build(
        &mut self,
        member: &Member,
        queries: &mut QuerySet,
        auth: &SessionAuth,
        clock_skew: Option<i64>,
    ) -> Result<Option<String>, End> {
        self.must_recheck = false;
        Builder {
            state: self,
            member,
            queries,
            auth,
            clock_skew,
        }
        .build()
        .await
    }
}

/// One Transition in the making, over the parts of the session it reads and updates.
struct Builder<'a> {
    state: &'a mut Transitions,
    member: &'a Member,
    queries: &'a mut QuerySet,
    auth: &'a SessionAuth,
    clock_skew: Option<i64>,
}

impl Builder<'_> {
    async fn build(mut self) -> Result<Option<String>, End> {
        let member = self.member;
        let hub = member.hub();
        let subscriptions = hub.app().db().subscriptions().clone();
        let mut rounds = 0;
        let mut waits = 0;
        loop {
            let t = subscriptions.processed_ts().max(self.state.sent.ts.0);
            let stamp = hub.stamp();
            let mut outputs: Vec<Answer> = Vec::with_capacity(self.queries.len());
            let mut stale: Vec<BatchItem> = Vec::new();
            let mut busy: Option<Arc<Instance>> = None;
            let mut superseded_at: Option<u64> = None;
            'queries: for query_id in self.queries.ids() {
                loop {
                    let Some(query) = self.queries.get(query_id) else {
                        continue 'queries;
                    };
                    let instance = match query.source() {
                        Source::Fixed(fixed) => {
                            outputs.push(Answer {
                                query_id,
                                output: fixed.clone(),
                            });
                            continue 'queries;
                        }
                        Source::Instance(instance) => instance.clone(),
                    };
                    match instance.status(t, stamp) {
                        Status::Fresh(output) => outputs.push(Answer { query_id, output }),
                        Status::Superseded(commit_ts) => {
                            superseded_at =
                                Some(superseded_at.map_or(commit_ts, |s| s.max(commit_ts)));
                        }
                        Status::Retired => {
                            self.queries.rebind(query_id, member, self.auth.identity());
                            continue;
                        }
                        Status::Computing => busy = Some(instance),
                        Status::Stale => {
                            if instance.try_claim() {
                                stale.push(BatchItem {
                                    query_id,
                                    instance,
                                    claimed: true,
                                });
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
                unclaim(&stale);
                let mut processed = subscriptions.watch_processed();
                let caught_up = tokio::time::timeout(
                    Duration::from_secs(5),
                    processed.wait_for(|ts| *ts >= commit_ts),
                )
                .await;
                if !matches!(caught_up, Ok(Ok(_))) {
                    return Err(End::internal(
                        "InternalServerError: commit processing stalled".into(),
                    ));
                }
                continue;
            }
            if let Some(instance) = busy {
                unclaim(&stale);
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
                unclaim(&stale);
                return self.run_all_and_emit().await;
            }
            self.run_batch(stale).await?;
        }
    }

    /// Runs every query of the session in one snapshot and sends exactly those results.
    async fn run_all_and_emit(mut self) -> Result<Option<String>, End> {
        let items: Vec<BatchItem> = self
            .queries
            .iter()
            .filter_map(|(query_id, query)| {
                let instance = query.instance()?.clone();
                let claimed = instance.try_claim();
                Some(BatchItem {
                    query_id,
                    instance,
                    claimed,
                })
            })
            .collect();
        let batch = self.run_batch(items).await?;
        let mut outputs = batch.outputs;
        for (query_id, query) in self.queries.iter() {
            if let Source::Fixed(fixed) = query.source() {
                outputs.push(Answer {
                    query_id,
                    output: fixed.clone(),
                });
            }
        }
        Ok(self.emit(batch.snapshot.max(self.state.sent.ts.0), outputs))
    }

    /// Runs instances in one snapshot on the blocking pool; claimed ones are published.
    /// Returns the batch: its snapshot and every run's output (each computed with this
    /// session's identity, so all of them are right for this session).
    async fn run_batch(&mut self, items: Vec<BatchItem>) -> Result<Batch, End> {
        let hub = self.member.hub().clone();
        let identity = self.auth.identity().cloned();
        let caller = self.auth.caller();
        let task = tokio::task::spawn_blocking(move || {
            let mut pending = Unclaim::of(&items);
            run_in_snapshot(&hub, &items, identity, caller, &mut pending)
        });
        match task.await {
            Ok(Ok(mut batch)) => {
                self.adopt(std::mem::take(&mut batch.refused));
                Ok(batch)
            }
            Ok(Err(e)) => Err(End::internal(format!("InternalServerError: {e}"))),
            Err(e) => Err(End::internal(format!(
                "InternalServerError: query task failed: {e}"
            ))),
        }
    }

    /// Installs runs that a shared instance refused (they read this session's identity) into
    /// the per-identity instances the queries now resolve to. The identity cannot have
    /// changed since the runs started: building a Transition holds the session.
    fn adopt(&mut self, refused: Vec<RefusedRun>) {
        let hub = self.member.hub();
        for RefusedRun { query_id, run } in refused {
            self.queries
                .rebind(query_id, self.member, self.auth.identity());
            let Some(query) = self.queries.get(query_id) else {
                continue;
            };
            tracing::debug!(
                session = self.member.id(),
                function = %query.path(),
                "a shared query read the identity; it now runs per identity"
            );
            let Some(instance) = query.instance() else {
                continue;
            };
            // Another session of this identity may have filled it already.
            let t = hub.app().db().subscriptions().processed_ts();
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
            hub.publish(instance, run);
        }
    }

    /// The Transition for results at `t`, or `None` if the client already has all of it.
    fn emit(&mut self, t: u64, outputs: Vec<Answer>) -> Option<String> {
        let mut modifications = Vec::new();
        // Positions in `outputs` of the results the client does not have yet.
        let mut changed = Vec::new();
        for (at, Answer { query_id, output }) in outputs.iter().enumerate() {
            let Some(query) = self.queries.get(*query_id) else {
                continue;
            };
            if query.was_sent(output.hash) {
                continue;
            }
            changed.push(at);
            modifications.push(match &output.value {
                Ok(value) => QueryModification::QueryUpdated {
                    query_id: *query_id,
                    value,
                    log_lines: &output.log_lines,
                    journal: None,
                },
                Err(error) => QueryModification::QueryFailed {
                    query_id: *query_id,
                    error_message: &error.message,
                    error_data: error.data.as_deref(),
                    log_lines: &output.log_lines,
                    journal: None,
                },
            });
        }
        let removed = self.queries.take_removed();
        for query_id in &removed {
            modifications.push(QueryModification::QueryRemoved {
                query_id: *query_id,
            });
        }
        let end = StateVersion {
            query_set: self.queries.version(),
            identity: self.auth.version(),
            ts: Ts(t),
        };
        let state = &mut *self.state;
        if modifications.is_empty() && !state.must_send {
            return None;
        }
        let server_ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let text = ServerMessage::Transition {
            start_version: state.sent,
            end_version: end,
            modifications,
            client_clock_skew: self.clock_skew,
            server_ts,
        }
        .to_text();
        for answer in changed.into_iter().filter_map(|at| outputs.get(at)) {
            self.queries.mark_sent(answer.query_id, answer.output.hash);
        }
        state.sent = end;
        state.must_send = false;
        Some(text)
    }
}

/// Gives up the claims of runs that will not happen this round.
fn unclaim(items: &[BatchItem]) {
    for item in items {
        item.instance.unclaim();
    }
}
