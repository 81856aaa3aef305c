//! [`authorize`]: the one check of [`Credentials`], for every transport (the HTTP API, HTTP
//! actions and WebSocket `Authenticate` frames), turning them into an [`Authorization`].
//!
//! A user token is verified by [`Authenticator::verify`], called from here only; the admin key
//! is compared in constant time, here only; an acting-as object becomes an `auth::Identity` by
//! Convex's rule (`Identity::acting_as`, through [`ActingAs::identity`]), so HTTP and WebSocket
//! give the same identity.

use auth::{ActingAs, Authorization, Credentials, Rejection};
use subtle::ConstantTimeEq;

use crate::verifier::Authenticator;

/// Checks `credentials` against the live auth configuration and the deployment's admin key
/// (`None`: no admin key is accepted). A refused token is logged by `verify` with its reason.
pub async fn authorize(
    auth: &Authenticator,
    admin_key: Option<&str>,
    credentials: Credentials,
) -> Authorization {
    match credentials {
        Credentials::Anonymous => Authorization::Anonymous,
        Credentials::UserToken(token) => match auth.verify(&token).await {
            Ok(verified) => Authorization::User(verified),
            Err(rejection) => Authorization::Rejected(Rejection::Token(rejection)),
        },
        Credentials::AdminKey { key, acting_as } => {
            if !key_matches(admin_key, &key) {
                tracing::info!("an admin key was refused");
                return Authorization::Rejected(Rejection::AdminKey);
            }
            // Read only now: nothing a caller without the key sends is looked at.
            match acting_as.as_ref().map(ActingAs::identity).transpose() {
                Ok(acting_as) => Authorization::Admin { acting_as },
                Err(rejection) => Authorization::Rejected(rejection),
            }
        }
        Credentials::Malformed(rejection) => Authorization::Rejected(rejection),
    }
}

/// Whether `credentials` carry this deployment's admin key, without verifying anything else
/// (for rate limits, which spare the admin before any function runs).
pub fn is_admin(admin_key: Option<&str>, credentials: &Credentials) -> bool {
    matches!(credentials, Credentials::AdminKey { key, .. } if key_matches(admin_key, key))
}

/// The one comparison of an admin key, in constant time.
fn key_matches(admin_key: Option<&str>, key: &str) -> bool {
    admin_key.is_some_and(|k| bool::from(key.as_bytes().ct_eq(k.as_bytes())))
}
