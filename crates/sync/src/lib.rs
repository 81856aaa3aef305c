//! WebSocket sessions of the Convex sync protocol, transport-agnostic: a session reads
//! [`Inbound`] frames from a stream and writes [`Outbound`] frames to a channel, so the server
//! crate owns the socket and this crate owns the protocol.
//!
//! - [`SyncHub`] is shared by all sessions: the app, the authenticator and the registry of
//!   shared query instances (`instance.rs`).
//! - [`run_session`] drives one session (`session.rs`); `transition.rs` builds Transitions
//!   whose results all reflect one snapshot.
//!
//! Invariants: every Transition's `startVersion` is the previous `endVersion`; a successful
//! mutation's response is followed by a Transition at or past its commit `ts`; a session's
//! identity changes only through `Authenticate` or token expiry; a session never blocks the
//! Committer.

mod hub;
mod instance;
mod session;
#[cfg(test)]
mod tests;
mod transition;

pub use hub::SyncHub;
pub use session::{Inbound, Outbound, SessionSignal, run_session, stall_limit};
