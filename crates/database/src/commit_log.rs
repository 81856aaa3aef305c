//! The commit log of a shared database (PostgreSQL with several nodes): how a commit's write
//! set is written down ([`encode`], [`decode`]) and [`CommitTail`], the thread that feeds
//! every commit of every node, in timestamp order, to this node's [`Subscriptions`].
//!
//! On such a database the Committer does not call `Subscriptions::on_commit` itself: its own
//! commits come back through the log like everyone else's, so this node's subscriptions see
//! one history in one order whatever node committed each part of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use storage::{CommitFeed, StorageError, Writer};

use crate::catalog::IndexId;
use crate::error::DbError;
use crate::read_set::{IndexWrite, WriteSet};
use crate::subscriptions::Subscriptions;

/// How long the tail waits for an announcement before it reads the log anyway, which is
/// also how long a stop request waits for it.
const POLL: Duration = Duration::from_millis(100);
/// Pause after a failed read of the log (the database restarting).
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// Stamps the open transaction with its commit timestamp `ts`; on a shared database also
/// logs `writes` for the other nodes (and this one's tail).
pub(crate) fn stamp(
    writer: &mut Writer,
    shared: bool,
    ts: u64,
    writes: &WriteSet,
) -> Result<(), StorageError> {
    if shared {
        writer.log_commit(ts, &encode(writes))?;
    }
    writer.set_ts(ts)
}

/// A write set as bytes: per write, the index id (u32 LE), then the old and the new key, each
/// as a presence byte and, when present, a u32 LE length and the key.
pub(crate) fn encode(writes: &WriteSet) -> Vec<u8> {
    let mut out = Vec::new();
    for write in &writes.writes {
        out.extend_from_slice(&write.index.0.to_le_bytes());
        for key in [&write.old_key, &write.new_key] {
            match key {
                None => out.push(0),
                Some(key) => {
                    out.push(1);
                    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
                    out.extend_from_slice(key);
                }
            }
        }
    }
    out
}

/// The write set [`encode`] wrote; `None` when `bytes` is not one.
pub(crate) fn decode(mut bytes: &[u8]) -> Option<WriteSet> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = bytes.split_at_checked(n)?;
        *bytes = rest;
        Some(head)
    }
    fn u32_le(bytes: &mut &[u8]) -> Option<u32> {
        Some(u32::from_le_bytes(take(bytes, 4)?.try_into().ok()?))
    }
    fn key(bytes: &mut &[u8]) -> Option<Option<Vec<u8>>> {
        match take(bytes, 1)?[0] {
            0 => Some(None),
            1 => {
                let len = u32_le(bytes)? as usize;
                Some(Some(take(bytes, len)?.to_vec()))
            }
            _ => None,
        }
    }
    let mut writes = Vec::new();
    while !bytes.is_empty() {
        let index = IndexId(u32_le(&mut bytes)?);
        let old_key = key(&mut bytes)?;
        let new_key = key(&mut bytes)?;
        writes.push(IndexWrite {
            index,
            old_key,
            new_key,
        });
    }
    Some(WriteSet { writes })
}

/// The running tail; dropping it stops the thread and waits for it.
pub(crate) struct CommitTail {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl CommitTail {
    /// Feeds the commits after `from_ts` to `subscriptions` until dropped.
    pub(crate) fn start(
        mut feed: Box<dyn CommitFeed>,
        subscriptions: Arc<Subscriptions>,
        from_ts: u64,
    ) -> Result<CommitTail, DbError> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let handle = std::thread::Builder::new()
            .name("commit-tail".into())
            .spawn(move || {
                let mut after = from_ts;
                let mut failing = false;
                while !stopping.load(Ordering::Acquire) {
                    match feed.next(after, POLL) {
                        Ok(commits) => {
                            failing = false;
                            for commit in commits {
                                let writes = decode(&commit.record).unwrap_or_else(|| {
                                    tracing::error!(ts = commit.ts, "a commit log record does not decode (a bug); its writes are not pushed to subscribers");
                                    WriteSet::default()
                                });
                                subscriptions.on_commit(commit.ts, Arc::new(writes));
                                after = commit.ts;
                            }
                        }
                        Err(e) => {
                            if !failing {
                                tracing::warn!(error = %e, "reading the commit log failed; retrying");
                            }
                            failing = true;
                            std::thread::sleep(RETRY_AFTER);
                        }
                    }
                }
            })
            .map_err(|e| DbError::internal(format!("cannot start the commit-log thread: {e}")))?;
        Ok(CommitTail {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for CommitTail {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_set_survives_the_log() {
        let writes = WriteSet {
            writes: vec![
                IndexWrite {
                    index: IndexId(3),
                    old_key: None,
                    new_key: Some(vec![1, 2, 3]),
                },
                IndexWrite {
                    index: IndexId(u32::MAX),
                    old_key: Some(vec![]),
                    new_key: None,
                },
            ],
        };
        assert_eq!(decode(&encode(&writes)), Some(writes));
        assert_eq!(decode(&[]), Some(WriteSet::default()));
        assert_eq!(
            decode(&[3, 0, 0, 0, 1, 9, 0, 0, 0]),
            None,
            "a key cut short"
        );
        assert_eq!(decode(&[3, 0, 0, 0, 2]), None, "not a presence byte");
    }
}
