//! [`SessionPeer`]: what the transport knows about the other end of a session and the server
//! around it: the client's address, the [`Guard`] whose rate limits the session applies, and
//! the shutdown signal after which it drains and closes with 1001 ("going away").
//!
//! Every function call the client makes (a query added to the query set, a mutation, an
//! action) takes a token from the address's and the user's buckets; a refused call fails
//! alone with the limit's message and Convex's rate-limit error data, and the session goes
//! on. A refused `Authenticate` counts against the address's failed-authentication bucket.
//! Admin sessions are not rate-limited.

use std::net::IpAddr;
use std::sync::Arc;

use functions::{ErrorKind, FunctionError};
use guard::{Guard, RateLimited};
use tokio_util::sync::CancellationToken;
use value::Value;

use super::auth::SessionAuth;

/// See [`SessionPeer::stopping`].
pub(crate) type Stopping = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The other end of a session, as the transport describes it.
#[derive(Clone, Default)]
pub struct SessionPeer {
    /// The client's address (behind a trusted proxy, the forwarded one).
    pub addr: Option<IpAddr>,
    /// Rate limits to apply; none without a guard.
    pub guard: Option<Arc<Guard>>,
    /// Cancelled when the server begins to shut down.
    pub shutdown: Option<CancellationToken>,
}

impl SessionPeer {
    /// Takes a token for one function call of the session.
    pub(crate) fn check_call(&self, auth: &SessionAuth) -> Result<(), RateLimited> {
        let Some(guard) = &self.guard else {
            return Ok(());
        };
        if auth.is_trusted() {
            return Ok(());
        }
        let user = auth.identity().map(|i| i.token_identifier());
        guard.rates.check_call(user, self.addr)
    }

    /// Whether the client may try to authenticate now.
    pub(crate) fn check_auth_attempt(&self) -> Result<(), RateLimited> {
        match &self.guard {
            Some(guard) => guard.rates.check_auth_attempt(self.addr),
            None => Ok(()),
        }
    }

    /// The client's token or admin key was refused.
    pub(crate) fn auth_failed(&self) {
        if let Some(guard) = &self.guard {
            guard.rates.auth_failed(self.addr);
        }
    }

    /// Completes when the server begins to shut down (never without a signal). Made once
    /// per session and polled by every turn of its loop: a `cancelled()` future made per turn
    /// would join and leave the token's waiter list, one lock shared by every session, each
    /// time any session wakes (10,000 times for one write pushed to 10,000 sessions).
    pub(crate) fn stopping(&self) -> Stopping {
        match &self.shutdown {
            Some(token) => Box::pin(token.clone().cancelled_owned()),
            None => Box::pin(std::future::pending()),
        }
    }
}

/// A call refused by a rate limit, as the function error the client gets.
pub(crate) fn limited_error(limited: &RateLimited) -> FunctionError {
    FunctionError {
        kind: ErrorKind::Limit,
        message: limited.to_string(),
        data: Value::from_json(&limited.error_data()).ok(),
    }
}
