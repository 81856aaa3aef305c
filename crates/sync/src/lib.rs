//! WebSocket sessions of the Convex sync protocol, transport-agnostic: a session reads
//! [`Inbound`] frames from a stream and writes [`Outbound`] frames to a channel, so the server
//! crate owns the socket and this crate owns the protocol.
//!
//! Modules, from the leaves up (`cargo test -p tidy` keeps the imports one-way):
//! - `signal.rs`: [`SessionSignal`], how an invalidation wakes a session without waiting.
//! - `output.rs`: what one run of a query produces.
//! - `instance.rs`: one shared query instance, its freshness and its read set's registration.
//! - `registry.rs`: which sessions share which instance (per identity until a run shows the
//!   identity is not read), publishing runs into instances.
//! - `hub.rs`: [`SyncHub`], shared by all sessions: the app, the authenticator, the registry.
//! - `batch.rs`: running instances in one snapshot, for sessions and for the hub's recompute.
//! - `session/`: [`run_session`] drives one session (`session/frame_channel.rs`: the bounded
//!   queue of its frames to the transport's writer); `session/transition.rs` builds
//!   Transitions whose results all reflect one snapshot.
//!
//! Invariants: every Transition's `startVersion` is the previous `endVersion`; a successful
//! mutation's response is followed by a Transition at or past its commit `ts`; a session's
//! identity changes only through `Authenticate`, token expiry, or the removal of its token's
//! provider; a session never blocks the Committer.

mod batch;
mod hub;
mod instance;
mod output;
mod registry;
mod session;
mod signal;
#[cfg(test)]
mod tests;

pub use hub::{SyncHub, SyncStats};
pub use session::{
    FrameReceiver, FrameSender, Inbound, Outbound, SessionPeer, TrySendError, frame_channel,
    run_session, run_session_with, stall_limit,
};
pub use signal::SessionSignal;
