//! The traits an engine implements, so the database crate never learns which one is
//! underneath: [`ReadRows`] (reads, on a snapshot or inside the write transaction),
//! [`SnapshotRows`] (a read-only connection's snapshot transactions), [`WriteRows`] (the one
//! write connection) and [`Engine`] (what opens readers). SQLite implements them in this
//! crate; PostgreSQL in `crates/pgstore`.
//!
//! Each connection is used by one thread at a time (`Send`, not `Sync`), as SQLite's are.

use std::path::Path;
use std::time::Duration;

use crate::checkpointer::{Checkpointer, WalProgress};
use crate::error::StorageError;
use crate::unavailable::Unavailable;

/// The one write connection. Holding it is the capability to write.
pub type Writer = Box<dyn WriteRows>;

/// A read-only connection.
pub type Reader = Box<dyn SnapshotRows>;

/// Scan direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

/// One stored document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredDocument {
    pub table_number: u32,
    /// Convex JSON of the whole document, system fields included.
    pub value: String,
}

/// One row of an index scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanRow {
    pub key: Vec<u8>,
    pub id: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableRow {
    pub number: u32,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexRow {
    pub id: u32,
    pub table_number: u32,
    pub name: String,
    /// JSON array of field paths, as the database crate wrote it.
    pub fields: String,
}

/// A mutation's recorded response (`_mutations`), replayed when its request is retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    /// The commit timestamp of the mutation.
    pub ts: u64,
    pub response: String,
}

/// The catalog as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    pub tables: Vec<TableRow>,
    pub indexes: Vec<IndexRow>,
}

/// Where the next slice of a de-duplication prune starts, given the slice just read (keys in
/// order, with their ts) and its size limit: after its last key, or `None` (start over) when
/// it came back short because the end of the table was reached.
pub fn next_prune_slice(
    mut scanned: Vec<((String, i64), i64)>,
    limit: usize,
) -> Option<(String, u64)> {
    if scanned.len() < limit {
        return None;
    }
    scanned
        .pop()
        .map(|((session, request), _)| (session, request as u64))
}

/// One commit as the commit log of a shared database holds it: its timestamp and what the
/// database crate wrote down about it (the write set its subscriptions need).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedCommit {
    pub ts: u64,
    pub record: Vec<u8>,
}

/// Reads shared by the writer (which sees its own uncommitted writes) and the readers (which
/// see their snapshot). Every engine reads the same rows the same way: index keys compare as
/// bytes (`memcmp`), document ids and other keys as bytes too.
pub trait ReadRows {
    fn catalog(&self) -> Result<Catalog, StorageError>;

    fn get_document(&self, id: &str) -> Result<Option<StoredDocument>, StorageError>;

    /// Up to `limit` rows of index `index_id` with keys in `[start, end)`, in `order`.
    fn scan(
        &self,
        index_id: u32,
        start: &[u8],
        end: Option<&[u8]>,
        order: Order,
        limit: usize,
    ) -> Result<Vec<ScanRow>, StorageError>;

    /// How many rows of index `index_id` have keys in `[start, end)` (no document is read).
    fn count(&self, index_id: u32, start: &[u8], end: Option<&[u8]>) -> Result<u64, StorageError>;

    /// A stored setting (e.g. the last applied schema.toml text).
    fn get_config(&self, key: &str) -> Result<Option<String>, StorageError>;

    /// Whether a one-time key was claimed ([`WriteRows::claim`]).
    fn is_claimed(&self, key: &str) -> Result<bool, StorageError>;

    /// A mutation's recorded response, replayed when its request is retried.
    fn get_mutation_response(
        &self,
        session_id: &str,
        request_id: u64,
    ) -> Result<Option<StoredResponse>, StorageError>;
}

/// A read-only connection: snapshot transactions.
pub trait SnapshotRows: ReadRows + Send {
    /// Starts a snapshot read and returns the commit timestamp it reflects. Every read until
    /// [`SnapshotRows::end`] sees exactly that commit.
    fn begin(&mut self) -> Result<u64, StorageError>;

    /// Ends the snapshot (a no-op when none is open).
    fn end(&mut self);

    /// Writes a consistent copy of the database as of now into the new file `dest`, where the
    /// engine can (SQLite's `VACUUM INTO`).
    fn vacuum_into(&mut self, dest: &Path) -> Result<(), StorageError> {
        let _ = dest;
        Err(StorageError::Unsupported(
            "copying the database into a file (this engine is backed up with its own tools)",
        ))
    }
}

/// The one read-write connection. Transactions are explicit: `begin` / `commit` /
/// `rollback`, with one level of savepoint so several mutations can share one commit and
/// still fail one at a time.
pub trait WriteRows: ReadRows + Send {
    /// Whether a transaction is open. An engine may end a transaction by itself after some
    /// failures (SQLite after a full disk or an I/O error); the Committer checks this so that
    /// it never goes on writing outside the transaction it believes it is in.
    fn in_transaction(&self) -> bool;

    /// Whether `error` means the database cannot be written for now (full disk, read-only,
    /// lock held elsewhere, server unreachable) rather than a fault of this server.
    fn unavailable(&self, error: &StorageError) -> Option<Unavailable>;

    /// How many savepoints one transaction should hold at most, i.e. how many mutations a
    /// group commit takes (PostgreSQL slows every snapshot past 64).
    fn savepoints_per_transaction(&self) -> usize {
        usize::MAX
    }

    fn begin(&mut self) -> Result<(), StorageError>;

    /// On a shared database: begins a transaction (taking the commit lock) and returns, read
    /// under the lock, the latest commit's timestamp and the setting `config_key` (the schema
    /// in force). One round trip where the engine can.
    fn begin_shared(&mut self, config_key: &str) -> Result<(u64, Option<String>), StorageError> {
        self.begin()?;
        Ok((self.ts()?, self.get_config(config_key)?))
    }

    fn commit(&mut self) -> Result<(), StorageError>;
    fn rollback(&mut self) -> Result<(), StorageError>;

    /// Starts a nested unit that can be undone alone (one mutation inside a group commit).
    fn savepoint(&mut self) -> Result<(), StorageError>;
    fn release_savepoint(&mut self) -> Result<(), StorageError>;
    fn rollback_to_savepoint(&mut self) -> Result<(), StorageError>;

    /// The last committed timestamp (or the one written in the open transaction).
    fn ts(&self) -> Result<u64, StorageError>;
    fn set_ts(&mut self, ts: u64) -> Result<(), StorageError>;

    fn create_table(&mut self, name: &str) -> Result<u32, StorageError>;
    fn create_index(
        &mut self,
        table_number: u32,
        name: &str,
        fields_json: &str,
    ) -> Result<u32, StorageError>;
    /// Removes an index and all its entries.
    fn drop_index(&mut self, index_id: u32) -> Result<(), StorageError>;

    /// Inserts or overwrites a document.
    fn put_document(
        &mut self,
        id: &str,
        table_number: u32,
        value: &str,
    ) -> Result<(), StorageError>;
    fn delete_document(&mut self, id: &str) -> Result<(), StorageError>;
    fn insert_index_entry(
        &mut self,
        index_id: u32,
        key: &[u8],
        id: &str,
    ) -> Result<(), StorageError>;
    fn delete_index_entry(&mut self, index_id: u32, key: &[u8]) -> Result<(), StorageError>;

    /// Records a mutation's response so a retry of the same request replays it.
    fn put_mutation_response(
        &mut self,
        session_id: &str,
        request_id: u64,
        ts: u64,
        response: &str,
    ) -> Result<(), StorageError>;

    /// The recorded responses of `keys` (session id, request id), in their order: what a
    /// group commit reads up front rather than one mutation at a time.
    fn get_mutation_responses(
        &self,
        keys: &[(&str, u64)],
    ) -> Result<Vec<Option<StoredResponse>>, StorageError> {
        keys.iter()
            .map(|(session, request)| self.get_mutation_response(session, *request))
            .collect()
    }

    /// Forgets the de-duplication records older than `before_ts` among the next `limit`
    /// records in key order after `after` (from the start when `None`). Returns how many were
    /// removed and where the next call goes on (`None` once the end was reached). The table is
    /// keyed by session and request, not by time, so a prune walks it a slice at a time: the
    /// work of each call is bounded whatever the table's size.
    fn prune_mutation_responses(
        &mut self,
        before_ts: u64,
        after: Option<&(String, u64)>,
        limit: usize,
    ) -> Result<(usize, Option<(String, u64)>), StorageError>;

    fn put_config(&mut self, key: &str, value: &str) -> Result<(), StorageError>;
    fn delete_config(&mut self, key: &str) -> Result<(), StorageError>;

    /// Claims a one-time key (an upload URL's nonce) until `expires` (any unit the caller
    /// keeps to); `false` if it was claimed before. Claims roll back with the transaction.
    fn claim(&mut self, key: &str, expires: u64) -> Result<bool, StorageError>;
    /// Forgets claims that expired before `now`: an expired key is refused for its expiry.
    fn prune_claims(&mut self, now: u64) -> Result<usize, StorageError>;

    /// Whether other processes commit to this database too (PostgreSQL, several nodes). Then
    /// [`WriteRows::begin`] waits for the database-wide commit lock, [`WriteRows::ts`] read
    /// after it is the latest commit of any node, every commit writes its record with
    /// [`WriteRows::log_commit`], and every node learns of commits, its own included, from
    /// the engine's [`CommitFeed`], in timestamp order.
    fn shared(&self) -> bool {
        false
    }

    /// Appends the record of the commit at `ts` to the commit log, in the open transaction
    /// (a shared database only), and wakes the nodes' feeds once it commits.
    fn log_commit(&mut self, ts: u64, record: &[u8]) -> Result<(), StorageError> {
        let _ = (ts, record);
        Err(StorageError::Unsupported("a commit log"))
    }

    /// Forgets the commit log before `before_ts`; how many records went.
    fn prune_commit_log(&mut self, before_ts: u64) -> Result<usize, StorageError> {
        let _ = before_ts;
        Ok(0)
    }

    /// Between two transactions: copies what is left of a write-ahead log the engine keeps
    /// in this process (SQLite's WAL; see `Checkpointer`). Engines without one report a
    /// complete, empty log.
    fn checkpoint(&mut self) -> Result<WalProgress, StorageError> {
        Ok(WalProgress::EMPTY)
    }

    /// For a clean shutdown: leaves every commit in the database proper (SQLite truncates
    /// its WAL). `Ok(false)` when a reader still held an old snapshot.
    fn checkpoint_truncate(&mut self) -> Result<bool, StorageError> {
        Ok(true)
    }
}

/// The commits of a shared database, in timestamp order, as every node's subscriptions need
/// them (see [`WriteRows::shared`]).
pub trait CommitFeed: Send {
    /// The commits after `after` (at most a bounded batch), waiting up to `wait` for one when
    /// there is none yet; empty when none came.
    fn next(&mut self, after: u64, wait: Duration) -> Result<Vec<LoggedCommit>, StorageError>;
}

/// A lease on a database that at most one process holds at a time (the scheduler's, so that
/// one node alone runs scheduled jobs and crons). Dropping it gives it up.
pub trait Lease: Send {
    /// Whether it is still held (a server engine loses it with its connection).
    fn held(&mut self) -> bool;
}

/// The lease of a database only this process uses: always held.
struct SoleLease;

impl Lease for SoleLease {
    fn held(&mut self) -> bool {
        true
    }
}

/// What opens connections to one database.
pub trait Engine: Send + Sync {
    /// A new read-only connection.
    fn reader(&self) -> Result<Reader, StorageError>;

    /// The connection that folds a local write-ahead log back into the database, for an
    /// engine that has one (SQLite); `None` otherwise.
    fn checkpointer(&self) -> Result<Option<Checkpointer>, StorageError> {
        Ok(None)
    }

    /// How many read connections may be open at once (`None`: no limit, SQLite's are cheap).
    fn max_readers(&self) -> Option<usize> {
        None
    }

    /// Takes the lease named `name` if no other process holds it; `None` when one does. A
    /// database only this process uses always grants it.
    fn try_lease(&self, name: &str) -> Result<Option<Box<dyn Lease>>, StorageError> {
        let _ = name;
        Ok(Some(Box::new(SoleLease)))
    }

    /// The feed of commits, for a database other processes commit to as well.
    fn commit_feed(&self) -> Result<Option<Box<dyn CommitFeed>>, StorageError> {
        Ok(None)
    }

    /// The database file, for an engine that keeps the database in one.
    fn path(&self) -> Option<&Path> {
        None
    }

    /// Where the database is, for logs and errors (a file path, or a URL without password).
    fn describe(&self) -> String;
}

impl<T: ReadRows + ?Sized> ReadRows for Box<T> {
    fn catalog(&self) -> Result<Catalog, StorageError> {
        (**self).catalog()
    }

    fn get_document(&self, id: &str) -> Result<Option<StoredDocument>, StorageError> {
        (**self).get_document(id)
    }

    fn scan(
        &self,
        index_id: u32,
        start: &[u8],
        end: Option<&[u8]>,
        order: Order,
        limit: usize,
    ) -> Result<Vec<ScanRow>, StorageError> {
        (**self).scan(index_id, start, end, order, limit)
    }

    fn count(&self, index_id: u32, start: &[u8], end: Option<&[u8]>) -> Result<u64, StorageError> {
        (**self).count(index_id, start, end)
    }

    fn get_config(&self, key: &str) -> Result<Option<String>, StorageError> {
        (**self).get_config(key)
    }

    fn is_claimed(&self, key: &str) -> Result<bool, StorageError> {
        (**self).is_claimed(key)
    }

    fn get_mutation_response(
        &self,
        session_id: &str,
        request_id: u64,
    ) -> Result<Option<StoredResponse>, StorageError> {
        (**self).get_mutation_response(session_id, request_id)
    }
}
