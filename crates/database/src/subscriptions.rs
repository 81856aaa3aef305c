//! [`Subscriptions`]: the index of registered read sets and the write log, the one place
//! where a commit turns into invalidations.
//!
//! The Committer calls [`Subscriptions::on_commit`] after every commit that takes a new
//! timestamp (all but the schema applied at startup, before anyone can subscribe), in commit
//! order, and only there does a subscription's callback run. Each written key is stabbed
//! into a per-index [`IntervalTree`], so the cost grows with the subscriptions actually
//! touched, not with all of them. A matched subscription is removed and
//! its callback runs once (subscriptions are one-shot: the owner re-runs its query and
//! registers the new read set).
//!
//! Registration is atomic with respect to commits: a read set computed at `ts` is first
//! checked against the write log for every commit in `(ts, processed_ts]` under the same lock
//! `on_commit` takes, so no commit can slip between a query's execution and its registration.
//! A read set computed at a `ts` the index has not processed yet is kept with `valid_from =
//! ts`, and commits at or below it are ignored for it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use crate::catalog::IndexId;
use crate::interval_tree::IntervalTree;
use crate::read_set::{ReadSet, WriteSet};

/// Identifies one registered read set.
pub type SubscriptionId = u64;

/// Runs once, with the timestamp of the commit that invalidated the read set.
pub type OnInvalidate = Box<dyn FnOnce(u64) + Send>;

/// How many recent commits registration can validate against. A registration for a `ts`
/// older than the log reports the read set invalid, and the caller re-runs the query.
const WRITE_LOG_CAPACITY: usize = 20_000;

/// The result of [`Subscriptions::subscribe`].
#[derive(Debug, PartialEq, Eq)]
pub enum Registration {
    Subscribed(SubscriptionId),
    /// A commit after the read set's `ts` already touched it; re-run and try again.
    Invalidated {
        ts: u64,
    },
}

/// One commit in the write log.
struct LoggedCommit {
    ts: u64,
    writes: Arc<WriteSet>,
}

struct Subscription {
    read_set: Arc<ReadSet>,
    valid_from: u64,
    on_invalidate: OnInvalidate,
}

#[derive(Default)]
struct Inner {
    trees: HashMap<IndexId, IntervalTree>,
    subscriptions: HashMap<SubscriptionId, Subscription>,
    /// Recent commits that wrote something, oldest first.
    log: VecDeque<LoggedCommit>,
    /// The log holds every commit with a timestamp above this.
    log_complete_after: u64,
    /// The newest commit matched against the trees (its callbacks may still be running).
    matched_ts: u64,
    /// The newest commit whose invalidation callbacks have all run.
    processed_ts: u64,
    next_id: SubscriptionId,
}

/// Registered read sets and the commits matched against them.
pub struct Subscriptions {
    /// One lock for the trees, the log and `processed_ts`, so registration and commit
    /// processing see each other atomically. Held only for in-memory work, never for I/O.
    inner: Mutex<Inner>,
    /// Publishes `processed_ts` so transitions can wait until a snapshot's commit is indexed.
    processed: watch::Sender<u64>,
    /// Wakes blocking waiters of [`Subscriptions::wait_processed`]; paired with `inner`.
    processed_changed: Condvar,
    /// `processed_ts`, readable without the lock (every session reads it per Transition).
    processed_now: std::sync::atomic::AtomicU64,
}

impl Subscriptions {
    pub(crate) fn new(initial_ts: u64) -> Subscriptions {
        let (processed, _) = watch::channel(initial_ts);
        Subscriptions {
            inner: Mutex::new(Inner {
                log_complete_after: initial_ts,
                matched_ts: initial_ts,
                processed_ts: initial_ts,
                ..Inner::default()
            }),
            processed,
            processed_changed: Condvar::new(),
            processed_now: std::sync::atomic::AtomicU64::new(initial_ts),
        }
    }

    /// Blocks until every commit up to `ts` has been processed, or `timeout` passes; returns
    /// whether it was. A snapshot can see a commit a moment before the Committer has matched
    /// it, and results computed at that snapshot must not be registered or sent before then.
    pub fn wait_processed(&self, ts: u64, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut inner = self.inner.lock();
        while inner.processed_ts < ts {
            if self
                .processed_changed
                .wait_until(&mut inner, deadline)
                .timed_out()
            {
                return inner.processed_ts >= ts;
            }
        }
        true
    }

    /// The newest commit whose writes have been matched against every subscription.
    pub fn processed_ts(&self) -> u64 {
        self.processed_now
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// A receiver of `processed_ts`, for waiting until a commit has been processed.
    pub fn watch_processed(&self) -> watch::Receiver<u64> {
        self.processed.subscribe()
    }

    /// Registers a read set computed at snapshot `ts`; `on_invalidate` runs on the first
    /// later commit that writes into it.
    pub fn subscribe(
        &self,
        read_set: Arc<ReadSet>,
        ts: u64,
        on_invalidate: OnInvalidate,
    ) -> Registration {
        let mut inner = self.inner.lock();
        if ts < inner.matched_ts {
            if ts < inner.log_complete_after {
                return Registration::Invalidated {
                    ts: inner.matched_ts,
                };
            }
            // Every commit after the snapshot, newest first, until the snapshot's own.
            let conflict = inner
                .log
                .iter()
                .rev()
                .take_while(|commit| commit.ts > ts)
                .filter(|commit| read_set.overlaps(&commit.writes))
                .map(|commit| commit.ts)
                .min();
            if let Some(commit_ts) = conflict {
                return Registration::Invalidated { ts: commit_ts };
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        for read in read_set.intervals() {
            inner.trees.entry(read.index).or_default().insert(
                &read.range.start,
                read.range.end.as_deref(),
                id,
            );
        }
        inner.subscriptions.insert(
            id,
            Subscription {
                read_set,
                valid_from: ts,
                on_invalidate,
            },
        );
        Registration::Subscribed(id)
    }

    /// Drops a registration (no callback runs). Unknown ids are ignored: the subscription may
    /// have been invalidated concurrently.
    pub fn unsubscribe(&self, id: SubscriptionId) {
        let mut inner = self.inner.lock();
        if let Some(sub) = inner.subscriptions.remove(&id) {
            remove_intervals(&mut inner.trees, &sub.read_set, id);
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().subscriptions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Matches one commit against every registered read set. Called by the Committer only,
    /// in commit order.
    pub(crate) fn on_commit(&self, ts: u64, writes: Arc<WriteSet>) {
        let fired = {
            let mut inner = self.inner.lock();
            let mut matched: HashSet<SubscriptionId> = HashSet::new();
            for (index, key) in writes.keys() {
                if let Some(tree) = inner.trees.get(&index) {
                    tree.stab(key, &mut |id| {
                        matched.insert(id);
                    });
                }
            }
            let mut fired = Vec::with_capacity(matched.len());
            for id in matched {
                let still_valid = inner
                    .subscriptions
                    .get(&id)
                    .is_some_and(|s| s.valid_from >= ts);
                if still_valid {
                    continue;
                }
                if let Some(sub) = inner.subscriptions.remove(&id) {
                    remove_intervals(&mut inner.trees, &sub.read_set, id);
                    fired.push(sub.on_invalidate);
                }
            }
            if !writes.is_empty() {
                inner.log.push_back(LoggedCommit { ts, writes });
            }
            while inner.log.len() > WRITE_LOG_CAPACITY {
                if let Some(oldest) = inner.log.pop_front() {
                    inner.log_complete_after = oldest.ts;
                }
            }
            inner.matched_ts = ts;
            fired
        };
        // Callbacks run outside the lock so they may subscribe or unsubscribe, and before
        // `processed_ts` moves: whoever sees `processed_ts >= ts` also sees every instance
        // this commit invalidated marked as such.
        for callback in fired {
            callback(ts);
        }
        self.inner.lock().processed_ts = ts;
        self.processed_now
            .store(ts, std::sync::atomic::Ordering::Release);
        self.processed.send_replace(ts);
        self.processed_changed.notify_all();
    }
}

fn remove_intervals(
    trees: &mut HashMap<IndexId, IntervalTree>,
    read_set: &ReadSet,
    id: SubscriptionId,
) {
    for read in read_set.intervals() {
        if let Some(tree) = trees.get_mut(&read.index) {
            tree.remove(&read.range.start, id);
            if tree.is_empty() {
                trees.remove(&read.index);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_set::IndexWrite;
    use std::sync::atomic::{AtomicU64, Ordering};
    use value::KeyRange;

    fn read(index: u32, start: &[u8], end: &[u8]) -> Arc<ReadSet> {
        let mut rs = ReadSet::new();
        rs.record(
            IndexId(index),
            KeyRange {
                start: start.to_vec(),
                end: Some(end.to_vec()),
            },
        );
        Arc::new(rs)
    }

    fn write(index: u32, key: &[u8]) -> Arc<WriteSet> {
        Arc::new(WriteSet {
            writes: vec![IndexWrite {
                index: IndexId(index),
                old_key: None,
                new_key: Some(key.to_vec()),
            }],
        })
    }

    fn counter() -> (Arc<AtomicU64>, OnInvalidate) {
        let fired = Arc::new(AtomicU64::new(0));
        let f = fired.clone();
        (fired, Box::new(move |ts| f.store(ts, Ordering::SeqCst)))
    }

    #[test]
    fn overlapping_commit_invalidates_once() {
        let subs = Subscriptions::new(1);
        let (fired, cb) = counter();
        assert_eq!(
            subs.subscribe(read(1, b"b", b"d"), 1, cb),
            Registration::Subscribed(0)
        );
        subs.on_commit(2, write(1, b"e"));
        subs.on_commit(3, write(2, b"c"));
        assert_eq!(fired.load(Ordering::SeqCst), 0, "other key, other index");
        subs.on_commit(4, write(1, b"c"));
        assert_eq!(fired.load(Ordering::SeqCst), 4);
        assert!(subs.is_empty());
    }

    #[test]
    fn registration_sees_commits_that_slipped_in() {
        let subs = Subscriptions::new(1);
        subs.on_commit(2, write(1, b"c"));
        let (_, cb) = counter();
        assert_eq!(
            subs.subscribe(read(1, b"b", b"d"), 1, cb),
            Registration::Invalidated { ts: 2 }
        );
        let (_, cb) = counter();
        assert!(matches!(
            subs.subscribe(read(1, b"x", b"z"), 1, cb),
            Registration::Subscribed(_)
        ));
    }

    #[test]
    fn read_sets_ahead_of_processing_ignore_older_commits() {
        let subs = Subscriptions::new(1);
        let (fired, cb) = counter();
        subs.subscribe(read(1, b"b", b"d"), 3, cb);
        subs.on_commit(3, write(1, b"c"));
        assert_eq!(
            fired.load(Ordering::SeqCst),
            0,
            "commit 3 is already in the result"
        );
        subs.on_commit(4, write(1, b"c"));
        assert_eq!(fired.load(Ordering::SeqCst), 4);
    }
}
