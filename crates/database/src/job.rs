//! The jobs the [`Committer`](crate::committer) takes from its queue, and what a mutation is
//! and becomes: [`MutationFn`], [`DedupKey`], [`MutationOutcome`].

use std::sync::Arc;

use schema::Schema;
use tokio::sync::oneshot;

use crate::error::DbError;
use crate::mutation_txn::MutationTxn;
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
