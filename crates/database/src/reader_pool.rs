//! [`ReaderPool`]: idle read-only connections, shared by the [`Database`](crate::Database) and
//! every open [`QueryTxn`](crate::QueryTxn), so a transaction gives its reader back when dropped.

use parking_lot::Mutex;
use storage::{Reader, Storage};

use crate::error::DbError;

/// Idle read connections kept open.
const IDLE_READERS: usize = 16;

/// Idle read-only connections, and the storage that opens new ones when none is idle.
pub(crate) struct ReaderPool {
    storage: Storage,
    /// A plain mutex: it is held only to push or pop.
    idle: Mutex<Vec<Reader>>,
}

impl ReaderPool {
    pub(crate) fn new(storage: Storage) -> ReaderPool {
        ReaderPool {
            storage,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The storage the pool opens readers from.
    pub(crate) fn storage(&self) -> &Storage {
        &self.storage
    }

    pub(crate) fn take(&self) -> Result<Reader, DbError> {
        match self.idle.lock().pop() {
            Some(reader) => Ok(reader),
            None => Ok(self.storage.reader()?),
        }
    }

    pub(crate) fn put(&self, reader: Reader) {
        let mut idle = self.idle.lock();
        if idle.len() < IDLE_READERS {
            idle.push(reader);
        }
    }
}
