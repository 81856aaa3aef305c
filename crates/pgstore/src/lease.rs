//! [`PgLease`]: a lease at most one node holds, as a session-level advisory lock on a
//! connection of its own. PostgreSQL frees it when that connection ends, so a node that dies
//! or is cut off loses it and another node can take it.

use postgres::Config;
use storage::{Lease, StorageError};

use crate::conn::{PgConn, missing};

pub(crate) struct PgLease {
    conn: PgConn,
}

impl PgLease {
    /// Takes the lease `name` on a new connection; `None` when another session holds it.
    pub(crate) fn try_take(config: &Config, name: &str) -> Result<Option<PgLease>, StorageError> {
        let conn = PgConn::connect(config)?;
        let key = lock_key(name);
        let rows = conn.query("SELECT pg_try_advisory_lock($1)", &[&key])?;
        let taken: bool = rows
            .first()
            .map(|r| r.get(0))
            .ok_or_else(|| missing("the answer to pg_try_advisory_lock"))?;
        Ok(taken.then_some(PgLease { conn }))
    }
}

impl Lease for PgLease {
    fn held(&mut self) -> bool {
        // A round trip: a connection the server cut shows only when used.
        !self.conn.is_closed() && self.conn.batch("SELECT 1").is_ok()
    }
}

/// The advisory lock key of a lease: FNV-1a of "pulsebase lease " and its name, so it does not
/// collide with the locks of other software sharing the database.
fn lock_key(name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"pulsebase lease ".iter().chain(name.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}
