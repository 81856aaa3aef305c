//! Pure auth logic for Pulsebase: which issuers an app trusts, whether a JWT is good, and who
//! it says the user is. No tokio, no network, no files; the clock is always a parameter, so
//! every rule here is tested to the second. The `authenticator` crate adds key fetching and
//! caches on top.
//!
//! # Token rules (our product's rules)
//!
//! A token is accepted by [`verify_with_keys`] only if all of these hold:
//!
//! * **Size**: at most [`MAX_TOKEN_BYTES`] (16 KiB), checked before any parsing, so a 1 MiB
//!   token costs one comparison.
//! * **Algorithm from the key, never from the token**: an RSA key verifies RS256 only, a P-256
//!   key ES256 only ([`KeyAlgorithm`]). `alg: none`, every HS*/PS*/other algorithm, and a
//!   header `alg` that differs from the key's (or from a customJwt provider's configured
//!   `algorithm`) are rejected. Symmetric JWKs are never loaded, so the classic "HS256 signed
//!   with the RSA public key" forgery has no key to succeed with.
//! * **Key choice by `kid`**; a token without `kid` is accepted only when the key set holds
//!   exactly one key of its algorithm.
//! * **Issuer**: `iss` equals the provider's issuer (OIDC `domain`) exactly, a trailing slash
//!   aside. **Audience**: `aud` (string or array) contains the provider's `applicationID`
//!   when it has one; other audiences may be present.
//! * **Time**: `exp` is required and the token is dead once `now >= exp` (no leeway); `nbf`
//!   and `iat` may be at most [`CLOCK_SKEW_LEEWAY_SECS`] (5 s) in the future. `exp` may be
//!   at most [`MAX_EXP_AHEAD_SECS`] (10 years) ahead, and every time claim must be a
//!   non-negative number of seconds no later than [`MAX_NUMERIC_DATE`] (the end of year
//!   9999), so no absurd value (an `exp` of 1.8e19) reaches caches or timers.
//! * **Subject**: `sub` is required.
//!
//! Provider selection follows Convex: the first provider (in file order) whose issuer and
//! audience match gets the token ([`select_provider`]); when none does, the rejection lists
//! each provider's reason. Rejections ([`TokenRejection`]) carry a precise reason for logs and
//! Convex's short code and text for clients, and never contain the token.
//!
//! # Map
//!
//! | module | owns |
//! | --- | --- |
//! | `config` | `auth.config.toml` → [`AuthConfig`], errors with file:line:column and the fix |
//! | `provider` | [`Provider`], selection, the https-or-loopback URL policy |
//! | `keys` | JWKS → [`KeySet`] of usable keys |
//! | `token` | splitting an unverified token, the size cap |
//! | `verify` | the one verification function |
//! | `identity` | [`Identity`] (Convex's UserIdentity, the one identity type from token to function) and its cache key |
//! | `authorization` | [`Credentials`] (the one reader of the `Authorization` header) and [`Authorization`] |
//! | `rejection` | [`TokenRejection`] |
//! | `dev_issuer` | [`DevIssuerKey`]: mint dev tokens, publish JWKS/discovery |
//! | `diagnosis` | [`Diagnosis`] for `pulsebase auth check` |

// Tests may unwrap; library code may not (workspace lint `unwrap_used`).
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod authorization;
mod config;
mod dev_issuer;
mod diagnosis;
mod identity;
mod keys;
mod provider;
mod rejection;
mod token;
mod verify;

pub use authorization::{ActingAs, Authorization, Credentials, Rejection};
pub use config::{AuthConfig, AuthConfigError, AuthConfigErrorKind};
pub use dev_issuer::{
    DEV_AUDIENCE, DEV_KEY_BITS, DevIssuerError, DevIssuerKey, RESERVED_CLAIMS, openid_configuration,
};
pub use diagnosis::{Diagnosis, ProviderVerdict, diagnose_with_keys};
pub use identity::{Identity, IdentityCacheKey, IdentityShapeError, rfc3339};
pub use keys::{
    KeyAlgorithm, KeySet, KeySetError, MIN_RSA_BITS, SkippedKey, VerificationKey, decode_data_uri,
};
pub use provider::{
    ClaimMapping, JwksSource, Provider, UrlPolicyError, check_fetch_url, issuers_match,
    loopback_issuers_match, select_provider,
};
pub use rejection::{ProviderMismatch, TokenRejection, human_duration, shown};
pub use token::{MAX_NUMERIC_DATE, MAX_TOKEN_BYTES, ParsedToken, check_size};
pub use verify::{
    CLOCK_SKEW_LEEWAY_SECS, MAX_EXP_AHEAD_SECS, VerifiedToken, verify_parsed, verify_with_keys,
};
