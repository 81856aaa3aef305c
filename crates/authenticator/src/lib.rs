//! The live token verifier: reads `auth.config.toml` (with `.env.local` / `.env`), fetches
//! and caches each provider's keys, caches verified tokens, and keeps the dev issuer's key on
//! disk. The rules for what a valid token is live in the pure `auth` crate; this crate adds
//! I/O, time and caches around them and must never decide validity itself.
//!
//! # Caches and limits (see `options` for the constants)
//!
//! * **Verified tokens**: SHA-256(token) → identity, until the token's `exp`; at most
//!   100,000 entries (soonest-expiring evicted first); tagged with the provider that
//!   verified them, and served only while that provider is configured unchanged.
//! * **Provider keys**: per provider, for the issuer's `Cache-Control: max-age`, else 1 h,
//!   clamped to [1 min, 24 h]. A token with an unknown `kid` triggers a refetch at most once
//!   per 10 s per provider ([`MIN_REFETCH_INTERVAL_SECS`]); concurrent misses share one fetch.
//!   On a failed refresh the previous keys keep serving.
//! * **Fetches**: https only (http on loopback), 5 s timeout, 1 MiB bodies, ≤ 5 redirects.
//! * `set_config` / `set_builtin` with an identical configuration change nothing; otherwise
//!   providers whose settings are unchanged keep their key caches and verified tokens, and
//!   removed or changed ones lose both at once (an issuer that is down during a reload
//!   cannot log its users out, and a removed issuer is not trusted a moment longer).
//!
//! # Map
//!
//! | module | owns |
//! | --- | --- |
//! | `authorize` | [`authorize`]: credentials from any transport → [`auth::Authorization`] |
//! | `verifier` | [`Authenticator`]: generations, `verify`, `diagnose`, rejection logs |
//! | `key_cache` | one provider's key set: TTL, single flight, refetch rate limit |
//! | `fetch` | OIDC discovery, JWKS over HTTP, JWKS files |
//! | `token_cache` | the bounded verified-token cache |
//! | `config_files` | [`load_auth_config`], [`watched_paths`], env files |
//! | `dev_issuer` | [`DevIssuer`]: the dev key file |
//! | `options` | [`AuthenticatorOptions`], [`Clock`], the constants |

// Tests may unwrap; library code may not (workspace lint `unwrap_used`).
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod authorize;
mod config_files;
mod dev_issuer;
mod fetch;
mod key_cache;
mod options;
mod status;
mod token_cache;
mod verifier;

pub use authorize::{authorize, is_admin};
pub use config_files::{
    AUTH_CONFIG_FILE, ENV_FILE, ENV_LOCAL_FILE, EnvFiles, load_auth_config, watched_paths,
};
pub use dev_issuer::{DEV_ISSUER_KEY_FILE, DevIssuer, DevIssuerLoadError};
pub use fetch::FetchError;
pub use options::{
    AuthenticatorOptions, Clock, DEFAULT_KEY_TTL_SECS, DEFAULT_TOKEN_CACHE_CAPACITY,
    FAILED_FETCH_BACKOFF_SECS, FETCH_TIMEOUT, MAX_KEY_DOCUMENT_BYTES, MAX_KEY_TTL_SECS,
    MIN_KEY_TTL_SECS, MIN_REFETCH_INTERVAL_SECS, system_clock,
};
pub use status::{KeyStatus, ProviderStatus, REJECTION_REASONS, rejection_reason};
pub use verifier::{Authenticator, AuthenticatorError};
