//! Who a session acts as ([`SessionAuth`]: the caller, the identity, the token behind it, the
//! identity version and the expiry timer) and what an `Authenticate` frame asks for once
//! checked ([`authorize_frame`]: the frame becomes the same `auth::Credentials` an HTTP
//! `Authorization` header does, checked by the same `authenticator::authorize`).
//!
//! Identity changes only through `Authenticate`, token expiry, or the removal of the token's
//! provider from `auth.config.toml`. The expiry timer is one long-lived `Sleep` reset only when
//! the expiry changes; a wait is capped at [`MAX_EXPIRY_WAIT`], so no `exp`, however large,
//! overflows an `Instant`.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth::{ActingAs, Authorization, Credentials, Identity};
use functions::Caller;
use protocol::{AuthenticateTokenType, ServerMessage};
use tokio::time::Sleep;

use super::frames::Outbound;
use crate::hub::SyncHub;

/// Longest single wait of the expiry timer: a later `exp` re-arms it when it fires.
const MAX_EXPIRY_WAIT: Duration = Duration::from_secs(24 * 3600);
pub(crate) const EXPIRED_MESSAGE: &str = "Convex token identity expired";
pub(crate) const REVOKED_MESSAGE: &str =
    "Convex token identity revoked: its issuer is no longer a provider in auth.config.toml";

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Who the session acts as.
pub(crate) struct SessionAuth {
    caller: Caller,
    identity: Option<Identity>,
    /// The token behind `identity`; `None` when anonymous or admin-impersonated.
    token: Option<TokenBehind>,
    /// The identity version of the protocol: one more per accepted `Authenticate`.
    version: u32,
    /// One timer for the identity's expiry, reset only when the expiry changes: a timer
    /// created per loop iteration costs an insert and a removal in tokio's wheel per wake.
    expiry_timer: Pin<Box<Sleep>>,
    /// The `exp` the timer was computed for.
    expiry_for: Option<u64>,
    /// Whether `expiry_timer` is set to fire.
    expiry_armed: bool,
}

/// The verified token a session's identity came from.
#[derive(Clone)]
pub(crate) struct TokenBehind {
    /// `iss`: the session loses the identity when this issuer stops being a provider.
    pub issuer: Arc<str>,
    /// `exp` (unix seconds): the session loses the identity then, unless refreshed.
    pub expires_at: u64,
}

/// What [`SessionAuth::replace`] changed.
pub(crate) struct AuthChange {
    /// Between admin and client: internal functions became visible or hidden.
    pub caller_changed: bool,
    pub identity_changed: bool,
}

impl SessionAuth {
    /// An anonymous client.
    pub(crate) fn new() -> SessionAuth {
        SessionAuth {
            caller: Caller::Client,
            identity: None,
            token: None,
            version: 0,
            expiry_timer: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
            expiry_for: None,
            expiry_armed: false,
        }
    }

    pub(crate) fn caller(&self) -> Caller {
        self.caller
    }

    pub(crate) fn is_trusted(&self) -> bool {
        self.caller == Caller::Trusted
    }

    pub(crate) fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    pub(crate) fn token(&self) -> Option<&TokenBehind> {
        self.token.as_ref()
    }

    pub(crate) fn token_issuer(&self) -> Option<&Arc<str>> {
        self.token.as_ref().map(|token| &token.issuer)
    }

    pub(crate) fn version(&self) -> u32 {
        self.version
    }

    /// Counts an accepted `Authenticate`.
    pub(crate) fn advance_version(&mut self) {
        self.version += 1;
    }

    pub(crate) fn identity_expired(&self) -> bool {
        self.token
            .as_ref()
            .is_some_and(|token| unix_now() >= token.expires_at)
    }

    /// Replaces who the session acts as.
    pub(crate) fn replace(
        &mut self,
        caller: Caller,
        identity: Option<Identity>,
        token: Option<TokenBehind>,
    ) -> AuthChange {
        self.token = token;
        let caller_changed = caller != self.caller;
        self.caller = caller;
        let identity_changed = self.identity.as_ref().map(Identity::cache_key)
            != identity.as_ref().map(Identity::cache_key);
        self.identity = identity;
        AuthChange {
            caller_changed,
            identity_changed,
        }
    }

    /// An `AuthError` frame at the current identity version.
    pub(crate) fn error_frame(&self, error: &str, auth_update_attempted: bool) -> Outbound {
        let frame = ServerMessage::AuthError {
            error,
            base_version: self.version,
            auth_update_attempted,
        }
        .to_text();
        Outbound::Text(frame)
    }

    /// Points the expiry timer at the identity's `exp`, touching it only when `exp` changed.
    pub(crate) fn arm_expiry_timer(&mut self) {
        let expires_at = self.token.as_ref().map(|token| token.expires_at);
        if expires_at == self.expiry_for {
            return;
        }
        self.expiry_for = expires_at;
        self.expiry_armed = false;
        if let Some(deadline) =
            expires_at.and_then(|exp| expiry_deadline(exp, unix_now(), tokio::time::Instant::now()))
        {
            self.expiry_timer.as_mut().reset(deadline);
            self.expiry_armed = true;
        }
    }

    pub(crate) fn expiry_armed(&self) -> bool {
        self.expiry_armed
    }

    pub(crate) fn expiry_timer(&mut self) -> Pin<&mut Sleep> {
        self.expiry_timer.as_mut()
    }

    /// The timer fired. It is computed again by the next [`SessionAuth::arm_expiry_timer`]: if
    /// the wall clock has not reached `exp` yet (or `exp` was beyond [`MAX_EXPIRY_WAIT`]), it
    /// is set again.
    pub(crate) fn expiry_fired(&mut self) {
        self.expiry_armed = false;
        self.expiry_for = None;
    }
}

/// When the expiry timer for a token with `exp` should fire, seen at (`now_unix`, `now`):
/// at `exp`, or after [`MAX_EXPIRY_WAIT`] if that is sooner (the timer is then set again).
/// `None` only if even that cannot be represented, in which case no timer runs.
fn expiry_deadline(
    exp: u64,
    now_unix: u64,
    now: tokio::time::Instant,
) -> Option<tokio::time::Instant> {
    let wait = Duration::from_secs(exp.saturating_sub(now_unix)).min(MAX_EXPIRY_WAIT);
    now.checked_add(wait)
}

/// Checks the token or admin key of an `Authenticate` frame: the frame becomes
/// `auth::Credentials`, checked by `authenticator::authorize` as an HTTP header is.
pub(crate) async fn authorize_frame(
    hub: &SyncHub,
    session: u64,
    token_type: AuthenticateTokenType,
    value: Option<String>,
    impersonating: Option<serde_json::Value>,
) -> Authorization {
    let credentials = match token_type {
        AuthenticateTokenType::None => Credentials::Anonymous,
        AuthenticateTokenType::User => Credentials::UserToken(value.unwrap_or_default()),
        AuthenticateTokenType::Admin => Credentials::AdminKey {
            key: value.unwrap_or_default(),
            acting_as: impersonating.map(ActingAs::Object),
        },
    };
    let authorization = authenticator::authorize(hub.auth(), hub.admin_key(), credentials).await;
    match &authorization {
        Authorization::User(verified) => {
            tracing::debug!(
                session,
                subject = verified.identity.subject(),
                "authenticated"
            );
        }
        Authorization::Rejected(rejection) => {
            tracing::debug!(session, code = rejection.code(), "Authenticate was refused");
        }
        Authorization::Anonymous | Authorization::Admin { .. } => {}
    }
    authorization
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn expiry_deadline_never_overflows_and_caps_long_waits() {
        let now = tokio::time::Instant::now();
        // exp near u64::MAX: Instant + Duration::from_secs(exp - now) used to panic here.
        let far = expiry_deadline(u64::MAX, 1_000, now).unwrap();
        assert_eq!(far - now, MAX_EXPIRY_WAIT);
        assert_eq!(
            expiry_deadline(10_000_000_000_000_000_000, 1_000, now).unwrap() - now,
            MAX_EXPIRY_WAIT
        );
        assert_eq!(
            expiry_deadline(1_030, 1_000, now).unwrap() - now,
            Duration::from_secs(30)
        );
        // Already expired: fire at once.
        assert_eq!(expiry_deadline(900, 1_000, now).unwrap(), now);
    }
}
