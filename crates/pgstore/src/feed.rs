//! [`PgFeed`]: a node's view of the commit log. It listens on [`CHANNEL`], where every
//! commit is announced once it is visible, and reads `_commits` after the last timestamp its
//! node processed. A notification only wakes it; the table is the truth, so a notification
//! lost with a dropped connection costs at most one wait (the caller's `wait`, short).
//!
//! Commits are visible in timestamp order: each transaction takes the commit lock before it
//! picks its timestamp and keeps it until it is committed (see `writer.rs`), so once a
//! timestamp is readable every smaller one is too.

use std::time::Duration;

use fallible_iterator::FallibleIterator;
use postgres::Config;
use storage::{CommitFeed, LoggedCommit, StorageError};

use crate::conn::{PgConn, engine_error};

/// The channel commits are announced on (the writer's `log_commit` names it too).
pub(crate) const CHANNEL: &str = "pulsebase_commits";

/// Commits read at once, at most.
const BATCH: i64 = 1_000;

pub(crate) struct PgFeed {
    conn: PgConn,
}

impl PgFeed {
    pub(crate) fn open(config: &Config) -> Result<PgFeed, StorageError> {
        let conn = PgConn::connect(config)?;
        conn.batch(&format!("LISTEN {CHANNEL}"))?;
        Ok(PgFeed { conn })
    }

    fn read(&self, after: u64) -> Result<Vec<LoggedCommit>, StorageError> {
        Ok(self
            .conn
            .query(
                "SELECT ts, writes FROM _commits WHERE ts > $1 ORDER BY ts LIMIT $2",
                &[&(after as i64), &BATCH],
            )?
            .iter()
            .map(|r| LoggedCommit {
                ts: r.get::<_, i64>(0) as u64,
                record: r.get(1),
            })
            .collect())
    }

    /// Waits up to `wait` for an announcement, then drops the others already here: one read
    /// of the table answers them all.
    fn wait(&self, wait: Duration) -> Result<(), StorageError> {
        let mut client = self.conn.client();
        let mut notifications = client.notifications();
        notifications
            .timeout_iter(wait)
            .next()
            .map_err(engine_error)?;
        let mut pending = notifications.iter();
        while pending.next().map_err(engine_error)?.is_some() {}
        Ok(())
    }
}

impl CommitFeed for PgFeed {
    fn next(&mut self, after: u64, wait: Duration) -> Result<Vec<LoggedCommit>, StorageError> {
        if self.conn.is_closed() {
            // LISTEN went with the old connection; listen again before reading, so nothing
            // committed after the read goes unannounced.
            self.conn.reconnect()?;
            self.conn.batch(&format!("LISTEN {CHANNEL}"))?;
        }
        let commits = self.read(after)?;
        if !commits.is_empty() {
            return Ok(commits);
        }
        self.wait(wait)?;
        self.read(after)
    }
}
