//! [`Actions`]: a session's actions in flight.
//!
//! Unlike mutations, actions run side by side and answer in the order they finish, each as the
//! caller and identity the session had when its frame arrived. They run on the app's action
//! pool, so a slow action holds neither this session (its queries, mutations and Transitions go
//! on) nor any other. When the session ends, its actions still run to the end (what they write
//! stays written) and their answers are dropped; the client has already failed them with
//! "Connection lost while action was in flight", as it does with Convex.

use std::future::Future;
use std::pin::Pin;

use ::auth::Identity;
use application::ActionError;
use functions::{ActionOutcome, Caller, ErrorKind, FunctionError, FunctionPath};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use protocol::ServerMessage;

use super::frames::{Outbound, OutcomeFields, decode_args};
use crate::hub::SyncHub;

/// An action that finished, as the session's loop receives it.
pub(crate) struct ActionDone {
    request_id: u64,
    result: Result<ActionOutcome, ActionError>,
}

type ActionFuture = Pin<Box<dyn Future<Output = ActionDone> + Send>>;

/// The actions of one session that have not answered yet.
pub(crate) struct Actions {
    running: FuturesUnordered<ActionFuture>,
}

impl Actions {
    pub(crate) fn new() -> Actions {
        Actions {
            running: FuturesUnordered::new(),
        }
    }

    /// Starts the action of an `Action` frame as `caller` with `identity`.
    pub(crate) fn start(
        &mut self,
        hub: &SyncHub,
        request_id: u64,
        udf_path: &str,
        args: serde_json::Value,
        identity: Option<Identity>,
        caller: Caller,
    ) {
        let path = FunctionPath::parse(udf_path);
        let args = decode_args(args);
        let app = hub.app().clone();
        self.running.push(Box::pin(async move {
            let result = match args {
                Ok(args) => app.run_action(path, args, identity, caller).await,
                Err(message) => Ok(ActionOutcome {
                    result: Err(FunctionError::new(ErrorKind::BadArgs, message)),
                    log_lines: Vec::new(),
                }),
            };
            ActionDone { request_id, result }
        }));
    }

    /// Completes when one of the running actions finishes; `None` at once when none runs.
    pub(crate) async fn finished(&mut self) -> Option<ActionDone> {
        self.running.next().await
    }

    /// The `ActionResponse` for a finished action.
    pub(crate) fn response(done: ActionDone) -> Outbound {
        let ActionDone { request_id, result } = done;
        let outcome = result.unwrap_or_else(|e| ActionOutcome {
            result: Err(FunctionError::new(ErrorKind::Limit, e.to_string())),
            log_lines: Vec::new(),
        });
        let fields = OutcomeFields::of(&outcome.result);
        let frame = ServerMessage::ActionResponse {
            request_id,
            success: fields.success,
            result: &fields.result,
            log_lines: &outcome.log_lines,
            error_data: fields.error_data.as_deref(),
        }
        .to_text();
        Outbound::Text(frame)
    }
}
