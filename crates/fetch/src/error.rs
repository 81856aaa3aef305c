//! [`FetchError`]: why a `fetch()` failed, in words a script author can act on. Every message
//! starts with `fetch to URL` (the URL the script asked for), says what went wrong, and where
//! there is a fix, names it.

use std::time::Duration;

use crate::policy::Refused;

/// Where the allowance for private addresses is set, for refusal messages.
pub const ALLOWANCE_HINT: &str = "to allow it, start the server with --allow-private-network=ADDRESS_OR_CIDR (or set PULSEBASE_ALLOW_PRIVATE_NETWORK); `pulsebase dev` allows private addresses by default";

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("fetch to {url} refused: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("fetch to {url} refused: only http and https URLs can be fetched, not {scheme}:")]
    Scheme { url: String, scheme: String },
    /// The address (or every address the name resolved to) is not public.
    #[error("fetch to {url} refused: {via}{refused} ({ALLOWANCE_HINT})")]
    Refused {
        url: String,
        /// How the request got there, e.g. "it redirected to http://10.0.0.1/, and ".
        via: String,
        refused: Refused,
    },
    #[error("fetch to {url} timed out after {} ms", after.as_millis())]
    Timeout { url: String, after: Duration },
    #[error("fetch to {url} failed: the response body exceeds the limit of {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("fetch to {url} failed: more than {limit} redirects")]
    TooManyRedirects { url: String, limit: usize },
    #[error("fetch to {url}: {reason}")]
    BadRequest { url: String, reason: String },
    #[error("fetch to {url} failed: {reason}")]
    Failed { url: String, reason: String },
}
