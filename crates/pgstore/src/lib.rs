//! The only crate that knows PostgreSQL: the storage traits of `crates/storage`
//! ([`storage::WriteRows`], [`storage::SnapshotRows`], [`storage::Engine`]) on a Postgres
//! database, so `pulsebase serve --database-url postgres://...` runs the same Committer,
//! subscriptions and sync code as on SQLite.
//!
//! Several nodes (processes, machines) may serve one database: their writers take turns under
//! one commit lock (`writer.rs`) and each commit is recorded in a commit log that every node
//! tails (`feed.rs`).
//!
//! The tables mirror SQLite's layout (see `conn.rs`). The driver is the synchronous
//! `postgres` crate: the storage traits are blocking, called from the Committer's thread and
//! from blocking read tasks, as SQLite's are.

mod conn;
mod deferred;
mod feed;
mod lease;
mod reader;
mod writer;

use std::sync::Arc;

use postgres::Config;
use storage::{CommitFeed, Engine, Lease, Reader, Storage, StorageError, Writer};

use crate::conn::ENGINE;
use crate::feed::PgFeed;
use crate::lease::PgLease;
use crate::reader::PgReader;
use crate::writer::PgWriter;

/// Read connections open at once, at most (each is a server process on the Postgres side;
/// its default `max_connections` is 100).
const MAX_READERS: usize = 32;

/// Connects to the database at `url` (`postgres://USER[:PASSWORD]@HOST:PORT/DB`), creates
/// the tables that do not exist yet and returns this node's writer. Other nodes may write to
/// the same database (see `writer.rs`).
pub fn open(url: &str) -> Result<(Storage, Writer), StorageError> {
    let config: Config = url.parse().map_err(|e| StorageError::Engine {
        engine: ENGINE,
        message: format!(
            "cannot read the database URL: {e}; expected postgres://USER[:PASSWORD]@HOST:PORT/DATABASE"
        ),
        unavailable: None,
    })?;
    let writer = PgWriter::open(&config)?;
    let engine = PgEngine {
        described: describe(&config),
        config,
    };
    Ok((Storage::of(Arc::new(engine)), Box::new(writer)))
}

/// A Postgres database.
struct PgEngine {
    config: Config,
    described: String,
}

impl Engine for PgEngine {
    fn reader(&self) -> Result<Reader, StorageError> {
        Ok(Box::new(PgReader::open(&self.config)?))
    }

    fn commit_feed(&self) -> Result<Option<Box<dyn CommitFeed>>, StorageError> {
        Ok(Some(Box::new(PgFeed::open(&self.config)?)))
    }

    fn try_lease(&self, name: &str) -> Result<Option<Box<dyn Lease>>, StorageError> {
        Ok(PgLease::try_take(&self.config, name)?.map(|lease| Box::new(lease) as Box<dyn Lease>))
    }

    fn max_readers(&self) -> Option<usize> {
        Some(MAX_READERS)
    }

    fn describe(&self) -> String {
        self.described.clone()
    }
}

/// The URL without its password, for logs.
fn describe(config: &Config) -> String {
    let user = config.get_user().unwrap_or("");
    let host = config
        .get_hosts()
        .first()
        .map(|host| match host {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("");
    format!("postgres://{user}@{host}:{port}/{db}")
}
