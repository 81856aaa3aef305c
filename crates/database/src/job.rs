//! The jobs the [`Committer`](crate::committer) takes from its queue, and what a mutation is
//! and becomes: [`MutationFn`], [`DedupKey`], [`MutationOutcome`].

use std::collections::HashMap;
use std::sync::Arc;

use schema::Schema;
use storage::{StorageError, StoredResponse, Writer};
use tokio::sync::oneshot;

use crate::error::DbError;
use crate::mutation_txn::MutationTxn;
use crate::read_set::WriteSet;
use crate::schema_change::SchemaChangeReport;

/// Runs a mutation against the writer: `Ok(response)` commits (and `response` is stored for
/// de-duplication), `Err(response)` rolls the mutation's writes back. Both strings are opaque
/// to the database; the caller decides what they mean.
pub type MutationFn = Box<dyn FnOnce(MutationTxn) -> Result<String, String> + Send>;

/// Identifies a client request so a retry after a reconnect is applied once.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DedupKey {
    pub session_id: String,
    pub request_id: u64,
}

/// What became of a mutation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MutationOutcome {
    Committed {
        ts: u64,
        response: String,
    },
    /// The same request was applied before; this is its stored response.
    Replayed {
        ts: u64,
        response: String,
    },
    Failed {
        response: String,
    },
}

/// A mutation waiting in a batch, with the channel its outcome goes back on.
pub(crate) struct QueuedMutation {
    pub(crate) dedup: Option<DedupKey>,
    pub(crate) run: MutationFn,
    pub(crate) reply: oneshot::Sender<Result<MutationOutcome, DbError>>,
}

pub(crate) enum Job {
    Mutation {
        dedup: Option<DedupKey>,
        run: MutationFn,
        reply: oneshot::Sender<Result<MutationOutcome, DbError>>,
    },
    ApplySchema {
        schema: Arc<Schema>,
        text: String,
        reply: oneshot::Sender<Result<SchemaChangeReport, DbError>>,
    },
}

/// What the mutations of one group commit share while it runs: the commit timestamp, the
/// creation clock, the writes so far, and the responses of requests applied before (to
/// replay instead of running again).
pub(crate) struct BatchRun {
    pub(crate) ts: u64,
    pub(crate) now_ms: f64,
    pub(crate) writes: WriteSet,
    pub(crate) replays: HashMap<DedupKey, StoredResponse>,
}

/// The recorded responses of the batch's requests that were applied before, read in one go
/// in the open transaction (under the commit lock on a shared database).
pub(crate) fn recorded_responses(
    writer: &Writer,
    batch: &[QueuedMutation],
) -> Result<HashMap<DedupKey, StoredResponse>, StorageError> {
    let keys: Vec<&DedupKey> = batch.iter().filter_map(|q| q.dedup.as_ref()).collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let pairs: Vec<(&str, u64)> = keys
        .iter()
        .map(|k| (k.session_id.as_str(), k.request_id))
        .collect();
    let found = writer.get_mutation_responses(&pairs)?;
    Ok(keys
        .into_iter()
        .zip(found)
        .filter_map(|(key, stored)| Some((key.clone(), stored?)))
        .collect())
}
