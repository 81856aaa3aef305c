//! [`Mutations`]: a session's mutations, run one at a time in the order their frames arrived.
//!
//! A mutation runs as the caller and identity that were current when its frame arrived, never
//! as a later `Authenticate`'s. Inbound back-pressure: while [`MAX_QUEUED_MUTATIONS`]
//! mutations (or [`MAX_QUEUED_MUTATION_BYTES`] of their frames) wait behind the running one,
//! the session stops reading frames, so a client that pipelines mutations waits in its own
//! socket buffers instead of our memory.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use application::MutationResult;
use auth::Identity;
use database::{DbError, DedupKey};
use functions::{Caller, FunctionPath};
use protocol::ServerMessage;
use value::Value;

use super::auth::{SessionAuth, TokenBehind, unix_now};
use super::frames::{Outbound, OutcomeFields, decode_args};
use crate::hub::SyncHub;

/// Most mutations waiting behind the running one before the session stops reading frames.
pub const MAX_QUEUED_MUTATIONS: usize = 128;
/// Most bytes of waiting Mutation frames before the session stops reading frames (one more
/// frame, at most 20 MiB, may already be in hand when the limit is reached).
pub const MAX_QUEUED_MUTATION_BYTES: usize = 16 << 20;

/// A mutation that finished, as the session's loop receives it.
pub(crate) struct MutationDone {
    request_id: u64,
    result: Result<MutationResult, DbError>,
}

type MutationFuture = Pin<Box<dyn Future<Output = MutationDone> + Send>>;

struct PendingMutation {
    request_id: u64,
    path: FunctionPath,
    args: Result<Value, String>,
    /// Who sent it, captured when the frame arrived (see `Mutations::start_next`).
    identity: Option<Identity>,
    /// The token behind `identity`, whose expiry and issuer are checked again at the start.
    token: Option<TokenBehind>,
    caller: Caller,
    /// Size of the frame, counted in `Mutations::queued_bytes` while it waits.
    bytes: usize,
    /// Refused when it arrived (a rate limit): answered with this error, in its turn.
    refused: Option<functions::FunctionError>,
}

/// The `MutationResponse` for a finished mutation. A Transition always follows it, as in
/// Convex: the npm client resolves a success only once a Transition reaches its `ts`, and the
/// Rust client (also inside the Python one) resolves a failure only on the next Transition.
pub(crate) struct MutationResponse {
    pub frame: Outbound,
}

/// The mutations of one session: the one running and those waiting behind it.
pub(crate) struct Mutations {
    queue: VecDeque<PendingMutation>,
    /// Frame bytes of the mutations in `queue`.
    queued_bytes: usize,
    in_flight: Option<MutationFuture>,
}

impl Mutations {
    pub(crate) fn new() -> Mutations {
        Mutations {
            queue: VecDeque::new(),
            queued_bytes: 0,
            in_flight: None,
        }
    }

    /// Whether the session may read another frame (see the module docs).
    pub(crate) fn accepting(&self) -> bool {
        self.queue.len() < MAX_QUEUED_MUTATIONS && self.queued_bytes < MAX_QUEUED_MUTATION_BYTES
    }

    pub(crate) fn is_running(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Nothing runs and nothing waits.
    pub(crate) fn is_idle(&self) -> bool {
        self.in_flight.is_none() && self.queue.is_empty()
    }

    /// Queues a `Mutation` frame of `bytes` bytes, sent as `auth` says; a `refused` one is
    /// answered with that error in its turn, without running.
    pub(crate) fn enqueue(
        &mut self,
        request_id: u64,
        udf_path: &str,
        args: serde_json::Value,
        auth: &SessionAuth,
        bytes: usize,
        refused: Option<functions::FunctionError>,
    ) {
        let args = decode_args(args);
        self.queued_bytes += bytes;
        self.queue.push_back(PendingMutation {
            request_id,
            path: FunctionPath::parse(udf_path),
            args,
            identity: auth.identity().cloned(),
            token: auth.token().cloned(),
            caller: auth.caller(),
            bytes,
            refused,
        });
    }

    /// Completes when the running mutation finishes; `None` at once when none runs.
    pub(crate) async fn finished(&mut self) -> Option<MutationDone> {
        let done = self.in_flight.as_mut()?.await;
        self.in_flight = None;
        Some(done)
    }

    /// Starts the next queued mutation, if any. `client_session_id` (from `Connect`)
    /// de-duplicates it with its request id.
    pub(crate) fn start_next(&mut self, hub: &SyncHub, client_session_id: Option<&String>) {
        let Some(pending) = self.queue.pop_front() else {
            return;
        };
        let PendingMutation {
            request_id,
            path,
            args,
            mut identity,
            token,
            caller,
            bytes,
            refused,
        } = pending;
        self.queued_bytes = self.queued_bytes.saturating_sub(bytes);
        // The mutation runs as whoever sent it, even if an Authenticate arrived while it
        // waited. One exception, the session's own expiry rule: if that identity's token has
        // expired by now, or its provider was removed from auth.config.toml, the mutation
        // runs anonymously rather than as that user. It is not refused: a session whose token
        // expires turns anonymous and runs the mutations it is sent after that anonymously
        // too, and the function decides what an anonymous caller may do. The caller (admin or
        // client) is kept: admin sessions have no token that could expire.
        let now = unix_now();
        if token.as_ref().is_some_and(|token| {
            now >= token.expires_at || !hub.auth().trusts_issuer(&token.issuer)
        }) {
            identity = None;
        }
        let app = hub.app().clone();
        let dedup = client_session_id.cloned().map(|session_id| DedupKey {
            session_id,
            request_id,
        });
        self.in_flight = Some(Box::pin(async move {
            let result = match (refused, args) {
                (Some(error), _) => Ok(MutationResult {
                    result: Err(error),
                    log_lines: Vec::new(),
                    ts: None,
                }),
                (None, Ok(args)) => app.run_mutation(path, args, identity, caller, dedup).await,
                (None, Err(message)) => Ok(MutationResult {
                    result: Err(functions::FunctionError::new(
                        functions::ErrorKind::BadArgs,
                        message,
                    )),
                    log_lines: Vec::new(),
                    ts: None,
                }),
            };
            MutationDone { request_id, result }
        }));
    }

    /// The response to a finished mutation.
    pub(crate) fn response(done: MutationDone) -> MutationResponse {
        let MutationDone { request_id, result } = done;
        let result = result.unwrap_or_else(|e| MutationResult {
            result: Err(functions::FunctionError::new(
                functions::ErrorKind::Limit,
                e.to_string(),
            )),
            log_lines: Vec::new(),
            ts: None,
        });
        let fields = OutcomeFields::of(&result.result);
        let frame = ServerMessage::MutationResponse {
            request_id,
            success: fields.success,
            result: &fields.result,
            // A failed mutation committed nothing: it has no ts.
            ts: result.ts.filter(|_| fields.success).map(protocol::Ts),
            log_lines: &result.log_lines,
            error_data: fields.error_data.as_deref(),
        }
        .to_text();
        MutationResponse {
            frame: Outbound::Text(frame),
        }
    }
}
