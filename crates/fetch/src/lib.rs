//! Outbound HTTP for user functions: what `fetch(url, #{ method, headers, body })` in an action
//! does, safe by default.
//!
//! [`Fetcher`] owns one `reqwest` client (rustls, no system proxy, no automatic decompression)
//! and a small tokio runtime of its own that drives every outbound connection, so outbound I/O
//! never runs on the threads that serve clients and a blocking DNS lookup never waits for an
//! action thread. Its rules:
//! - http and https only, on every hop;
//! - the [`NetworkPolicy`] judges every address connected to: names through the resolver
//!   (`resolver.rs`), IP literals and redirects in `client.rs`, and the peer of the final
//!   response once more;
//! - at most [`FetchLimits::max_redirects`] redirects, each checked like the first URL;
//! - a timeout per call (waiting for a free slot included), a cap on the response body read in
//!   chunks, and a bound on concurrent requests (a semaphore; callers beyond it wait).
//!
//! The crate knows nothing of Rhai or of actions: `application` adapts it to
//! `functions::ActionHost::fetch`.

mod client;
mod error;
mod policy;
mod resolver;

use std::time::Duration;

pub use client::Fetcher;
pub use error::{ALLOWANCE_HINT, FetchError};
pub use policy::{AddressKind, NetworkPolicy, PolicyError, Refused, classify, embedded_ipv4};

/// One outbound request.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub url: String,
    /// `GET` when empty.
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// Overrides [`FetchLimits::default_timeout`], up to [`FetchLimits::max_timeout`].
    pub timeout: Option<Duration>,
}

/// The answer, body read in full.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    /// The reason phrase of the status (`OK`, `Not Found`), empty when unknown.
    pub status_text: String,
    /// The URL that answered, after redirects.
    pub url: String,
    /// Lowercase names; repeated headers joined with `, `.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The bounds of outbound requests.
#[derive(Clone, Debug)]
pub struct FetchLimits {
    /// Largest response body read (20 MiB, Convex's HTTP action body limit).
    pub max_body_bytes: usize,
    /// Timeout of a call that sets none.
    pub default_timeout: Duration,
    /// Largest timeout a call may ask for.
    pub max_timeout: Duration,
    /// Requests in flight at once, across the server; more wait for a slot.
    pub max_concurrent: usize,
    pub max_redirects: usize,
}

impl Default for FetchLimits {
    fn default() -> FetchLimits {
        FetchLimits {
            max_body_bytes: 20 << 20,
            default_timeout: Duration::from_secs(60),
            max_timeout: Duration::from_secs(600),
            max_concurrent: 256,
            max_redirects: 10,
        }
    }
}
