//! [`ReaderPool`]: idle read-only connections, shared by the [`Database`](crate::Database) and
//! every open [`QueryTxn`](crate::QueryTxn), so a transaction gives its reader back when dropped.
//!
//! An engine whose connections are costly (PostgreSQL: a server process each) caps how many
//! are open at once; a read past the cap waits for one to come back.

use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use storage::{Reader, Storage};

use crate::error::DbError;

/// Idle read connections kept open.
const IDLE_READERS: usize = 16;
/// How long a read waits for a connection when the engine's cap is reached.
const WAIT_FOR_READER: Duration = Duration::from_secs(30);

/// Idle read-only connections, and the storage that opens new ones when none is idle.
pub(crate) struct ReaderPool {
    storage: Storage,
    /// A plain mutex: it is held only to push or pop.
    state: Mutex<PoolState>,
    /// Signalled when a reader comes back while reads wait at the cap.
    returned: Condvar,
    /// At most this many readers out of the pool at once (`usize::MAX`: no cap).
    cap: usize,
}

struct PoolState {
    idle: Vec<Reader>,
    /// Readers open, idle or in use.
    open: usize,
}

impl ReaderPool {
    pub(crate) fn new(storage: Storage) -> ReaderPool {
        let cap = storage.max_readers().unwrap_or(usize::MAX);
        ReaderPool {
            storage,
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
            cap,
        }
    }

    /// The storage the pool opens readers from.
    pub(crate) fn storage(&self) -> &Storage {
        &self.storage
    }

    pub(crate) fn take(&self) -> Result<Reader, DbError> {
        let mut state = self.state.lock();
        loop {
            if let Some(reader) = state.idle.pop() {
                return Ok(reader);
            }
            if state.open < self.cap {
                break;
            }
            if self
                .returned
                .wait_for(&mut state, WAIT_FOR_READER)
                .timed_out()
            {
                return Err(DbError::internal(format!(
                    "all {} read connections to the database stayed busy for {} s",
                    self.cap,
                    WAIT_FOR_READER.as_secs()
                )));
            }
        }
        state.open += 1;
        drop(state);
        self.storage.reader().map_err(|e| {
            self.forget();
            e.into()
        })
    }

    pub(crate) fn put(&self, reader: Reader) {
        let mut state = self.state.lock();
        if state.idle.len() < IDLE_READERS {
            state.idle.push(reader);
        } else {
            state.open -= 1;
        }
        drop(state);
        self.returned.notify_one();
    }

    /// A reader taken out was lost (it failed to open).
    fn forget(&self) {
        self.state.lock().open -= 1;
        self.returned.notify_one();
    }
}
