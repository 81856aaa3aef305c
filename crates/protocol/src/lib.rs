//! The wire format: the Convex sync protocol over WebSocket ([`ClientMessage`],
//! [`ServerMessage`]) and the HTTP API bodies ([`UdfRequest`], [`UdfResponse`]), exactly as the
//! unmodified `convex` npm client (1.x) speaks them; the README's "The HTTP API" section lists
//! the routes.
//!
//! This crate is an API boundary: changes are additive only. Values travel as convex JSON
//! (see the `value` crate); results already serialised once are spliced in as raw JSON so a
//! result shared by many sessions is never serialised again per session.

mod http;
mod sync;
mod ts;

pub use http::{UdfRequest, UdfResponse, canonical_args};
pub use sync::{
    AuthenticateTokenType, ClientMessage, QueryModification, QuerySetModification, ServerMessage,
    StateVersion,
};
pub use ts::Ts;

/// The client's error for a frame this crate cannot parse.
#[derive(Debug, thiserror::Error)]
#[error("malformed message: {0}")]
pub struct ProtocolError(pub String);
