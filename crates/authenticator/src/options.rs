//! Knobs of the live verifier, with their defaults and the reasons for them, and the clock.
//!
//! Everything time-based (token expiry, key-cache TTLs, the unknown-kid refetch limit) reads
//! one injectable [`Clock`], so tests move time instead of sleeping.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unix seconds now. Injected so tests are deterministic.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    })
}

/// At most one key refetch per provider in this many seconds when tokens name an unknown
/// `kid`. A real rotation is picked up within this window; a flood of bogus kids costs the
/// issuer at most one request per window.
pub const MIN_REFETCH_INTERVAL_SECS: u64 = 10;

/// Key-set lifetime when the issuer sends no `Cache-Control: max-age`.
pub const DEFAULT_KEY_TTL_SECS: u64 = 3_600;
/// Floor for key-set lifetimes (`no-cache` and tiny max-ages would otherwise mean a fetch per token).
pub const MIN_KEY_TTL_SECS: u64 = 60;
/// Ceiling for key-set lifetimes, so a revoked key is dropped within a day at worst.
pub const MAX_KEY_TTL_SECS: u64 = 86_400;
/// After a failed fetch, wait this long before trying again (stale keys keep serving meanwhile).
pub const FAILED_FETCH_BACKOFF_SECS: u64 = 2;
/// Per-request timeout for discovery and JWKS fetches.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest discovery or JWKS document we read.
pub const MAX_KEY_DOCUMENT_BYTES: usize = 1 << 20;
/// Verified tokens kept in memory (~1 KiB each with their identity).
pub const DEFAULT_TOKEN_CACHE_CAPACITY: usize = 100_000;

/// How an [`crate::Authenticator`] behaves.
#[derive(Clone)]
pub struct AuthenticatorOptions {
    /// Base directory for customJwt `jwks` file paths.
    pub app_dir: PathBuf,
    /// The time source.
    pub clock: Clock,
    /// See [`MIN_REFETCH_INTERVAL_SECS`].
    pub min_refetch_interval_secs: u64,
    /// See [`FETCH_TIMEOUT`].
    pub fetch_timeout: Duration,
    /// Verified-token cache size; 0 disables the cache (benchmarks, paranoia).
    pub token_cache_capacity: usize,
}

impl AuthenticatorOptions {
    /// Defaults for an app in `app_dir`.
    pub fn new(app_dir: impl Into<PathBuf>) -> AuthenticatorOptions {
        AuthenticatorOptions {
            app_dir: app_dir.into(),
            clock: system_clock(),
            min_refetch_interval_secs: MIN_REFETCH_INTERVAL_SECS,
            fetch_timeout: FETCH_TIMEOUT,
            token_cache_capacity: DEFAULT_TOKEN_CACHE_CAPACITY,
        }
    }

    /// Replaces the clock.
    pub fn with_clock(mut self, clock: Clock) -> AuthenticatorOptions {
        self.clock = clock;
        self
    }

    /// Replaces the unknown-kid refetch interval.
    pub fn with_min_refetch_interval_secs(mut self, secs: u64) -> AuthenticatorOptions {
        self.min_refetch_interval_secs = secs;
        self
    }

    /// Replaces the verified-token cache size (0 disables it).
    pub fn with_token_cache_capacity(mut self, capacity: usize) -> AuthenticatorOptions {
        self.token_cache_capacity = capacity;
        self
    }
}

/// Key-set lifetime from a `Cache-Control` header, clamped to [`MIN_KEY_TTL_SECS`, `MAX_KEY_TTL_SECS`].
pub(crate) fn ttl_from_cache_control(header: Option<&str>) -> u64 {
    let mut ttl = DEFAULT_KEY_TTL_SECS;
    if let Some(value) = header {
        for directive in value.split(',').map(str::trim) {
            let lower = directive.to_ascii_lowercase();
            if lower == "no-cache" || lower == "no-store" {
                ttl = 0;
                break;
            }
            if let Some(secs) = lower.strip_prefix("max-age=")
                && let Ok(secs) = secs.trim_matches('"').parse::<u64>()
            {
                ttl = secs;
            }
        }
    }
    ttl.clamp(MIN_KEY_TTL_SECS, MAX_KEY_TTL_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_ttls() {
        assert_eq!(ttl_from_cache_control(None), 3_600);
        assert_eq!(ttl_from_cache_control(Some("public, max-age=600")), 600);
        assert_eq!(ttl_from_cache_control(Some("max-age=5")), 60);
        assert_eq!(ttl_from_cache_control(Some("max-age=9999999")), 86_400);
        assert_eq!(ttl_from_cache_control(Some("no-store")), 60);
        assert_eq!(ttl_from_cache_control(Some("max-age=junk")), 3_600);
    }
}
