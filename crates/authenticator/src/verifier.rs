//! `Authenticator`: the live verifier every request and WebSocket `Authenticate` goes through.
//!
//! It owns a *generation*: the configured providers plus the built-in ones, each with its key
//! cache. `set_config` / `set_builtin` build a new generation and swap the pointer, so a
//! verification in flight finishes on the generation it started with.
//!
//! A reload changes only what changed. Saving `auth.config.toml` (or `.env`) happens often,
//! and refetching every issuer's discovery and JWKS each time would log users out whenever
//! an issuer is briefly down. So: an identical configuration is a no-op; a provider whose
//! settings are unchanged keeps its key cache (the same `Arc<ProviderKeys>`); and verified
//! tokens carry a per-provider *tag* instead of a generation number. A removed or changed
//! provider gets no tag in the new generation, so its cached tokens are refused at once (and
//! swept from the cache). An unchanged provider keeps its tag, and so its cached tokens,
//! unless a new or reordered provider now comes before it: selection is first-match, so that
//! provider might claim its tokens.
//!
//! The verification rules themselves are `auth::verify_parsed`; this file adds the caches
//! around that one call and logs each rejection (reason and provider, never the token).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use telemetry::CounterSet;

use auth::{
    AuthConfig, Diagnosis, KeySet, MAX_TOKEN_BYTES, ParsedToken, Provider, TokenRejection,
    VerifiedToken, select_provider, verify_parsed,
};

use crate::fetch::Fetcher;
use crate::key_cache::ProviderKeys;
use crate::options::{AuthenticatorOptions, Clock};
use crate::status::{ProviderStatus, REJECTION_REASONS, rejection_reason};
use crate::token_cache::{TokenCache, token_hash};

/// Setting up the verifier failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthenticatorError {
    /// The HTTP client (TLS) could not be initialised.
    #[error("could not build the HTTP client for key fetches: {0}")]
    HttpClient(String),
}

/// Providers and their key caches for one configuration.
struct Generation {
    id: u64,
    config: AuthConfig,
    builtin: Vec<Provider>,
    /// Configured providers first (file order), then built-in ones.
    providers: Vec<Provider>,
    /// Per provider: its key cache, shared with earlier generations while it is unchanged.
    keys: Vec<Arc<ProviderKeys>>,
    /// Per provider: the tag its verified tokens carry in the token cache. A cached token is
    /// served only while its tag is one of these.
    tags: Vec<u64>,
}

impl Generation {
    /// A generation derived from `previous`: each provider equal to one of `previous`
    /// (matched in order, each at most once) takes over its key cache, and its tag too
    /// when every provider now ahead of it was already ahead of it before. `fresh_tag`
    /// hands out tags never used before.
    fn next(
        previous: Option<&Generation>,
        id: u64,
        config: AuthConfig,
        builtin: Vec<Provider>,
        fresh_tag: &dyn Fn() -> u64,
    ) -> Generation {
        let providers: Vec<Provider> = config
            .providers
            .iter()
            .chain(builtin.iter())
            .cloned()
            .collect();
        let old: &[Provider] = previous.map_or(&[], |p| &p.providers);
        let mut taken = vec![false; old.len()];
        // For each new provider, the index of the old one it continues, if any.
        let mut origin: Vec<Option<usize>> = Vec::with_capacity(providers.len());
        let mut keys = Vec::with_capacity(providers.len());
        let mut tags = Vec::with_capacity(providers.len());
        for provider in &providers {
            let found = (0..old.len()).find(|&j| !taken[j] && old[j] == *provider);
            let reused = found.zip(previous);
            match reused {
                Some((j, previous)) => {
                    taken[j] = true;
                    keys.push(Arc::clone(&previous.keys[j]));
                    let still_first_match = origin.iter().all(|o| o.is_some_and(|k| k < j));
                    tags.push(if still_first_match {
                        previous.tags[j]
                    } else {
                        fresh_tag()
                    });
                }
                None => {
                    keys.push(Arc::new(ProviderKeys::new(provider)));
                    tags.push(fresh_tag());
                }
            }
            origin.push(found);
        }
        Generation {
            id,
            config,
            builtin,
            providers,
            keys,
            tags,
        }
    }
}

/// The live token verifier. Cheap to share as `Arc<Authenticator>`.
pub struct Authenticator {
    generation: parking_lot::RwLock<Arc<Generation>>,
    /// Serialises `set_config` / `set_builtin` so neither loses the other's update.
    update: parking_lot::Mutex<()>,
    next_generation: AtomicU64,
    next_tag: AtomicU64,
    tokens: TokenCache,
    fetcher: Fetcher,
    clock: Clock,
    min_refetch_interval_secs: u64,
    /// Refused tokens by reason (`/metrics`).
    rejections: CounterSet,
}

impl Authenticator {
    /// A verifier for `config` (built-in providers can be added with [`Authenticator::set_builtin`]).
    pub fn new(
        config: AuthConfig,
        options: AuthenticatorOptions,
    ) -> Result<Authenticator, AuthenticatorError> {
        let fetcher = Fetcher::new(options.app_dir.clone(), options.fetch_timeout)
            .map_err(|e| AuthenticatorError::HttpClient(e.to_string()))?;
        let next_tag = AtomicU64::new(1);
        let fresh_tag = || next_tag.fetch_add(1, Ordering::Relaxed);
        let first = Generation::next(None, 1, config, Vec::new(), &fresh_tag);
        Ok(Authenticator {
            generation: parking_lot::RwLock::new(Arc::new(first)),
            update: parking_lot::Mutex::new(()),
            next_generation: AtomicU64::new(2),
            next_tag,
            tokens: TokenCache::new(options.token_cache_capacity),
            fetcher,
            clock: options.clock,
            min_refetch_interval_secs: options.min_refetch_interval_secs,
            rejections: CounterSet::new(REJECTION_REASONS),
        })
    }

    /// Replaces the configuration. Unchanged providers keep their key caches and cached
    /// tokens; removed or changed ones are forgotten at once; an identical config is a no-op.
    pub fn set_config(&self, config: AuthConfig) {
        let _update = self.update.lock();
        let builtin = self.current().builtin.clone();
        self.install(config, builtin);
    }

    /// Replaces the built-in providers (the dev issuer), with the same cache rules as `set_config`.
    pub fn set_builtin(&self, providers: Vec<Provider>) {
        let _update = self.update.lock();
        let config = self.current().config.clone();
        self.install(config, providers);
    }

    /// The configuration in force.
    pub fn config(&self) -> AuthConfig {
        self.current().config.clone()
    }

    /// Every trusted provider, configured ones first.
    pub fn providers(&self) -> Vec<Provider> {
        self.current().providers.clone()
    }

    /// Whether any trusted provider (configured or built-in) takes tokens with issuer `iss`.
    /// Live sessions use it to drop identities whose provider was removed.
    pub fn trusts_issuer(&self, iss: &str) -> bool {
        // The same issuer rule provider selection applies (the dev issuer's any-loopback-port
        // rule included).
        self.current()
            .providers
            .iter()
            .any(|p| p.accepts_issuer(iss))
    }

    /// The verifier's idea of now (unix seconds).
    pub fn now(&self) -> u64 {
        (self.clock)()
    }

    /// Refused tokens so far, by reason ([`REJECTION_REASONS`]).
    pub fn rejections(&self) -> Vec<(&'static str, u64)> {
        self.rejections.snapshot()
    }

    /// Every trusted provider with the state of its key cache (no fetch is made).
    pub fn provider_status(&self) -> Vec<ProviderStatus> {
        let generation = self.current();
        generation
            .providers
            .iter()
            .zip(&generation.keys)
            .map(|(provider, keys)| ProviderStatus {
                label: provider.to_string(),
                kind: match provider {
                    Provider::Oidc { .. } => "oidc",
                    Provider::CustomJwt { .. } => "customJwt",
                    Provider::Builtin { .. } => "builtin",
                },
                issuer: provider.issuer().to_string(),
                application_id: provider.application_id().map(str::to_string),
                keys: keys.status(),
            })
            .collect()
    }

    /// Tokens currently in the verified-token cache.
    pub fn cached_tokens(&self) -> usize {
        self.tokens.len()
    }

    fn current(&self) -> Arc<Generation> {
        Arc::clone(&self.generation.read())
    }

    /// Called with `update` held, so `current()` is the generation being replaced.
    fn install(&self, config: AuthConfig, builtin: Vec<Provider>) {
        let previous = self.current();
        if previous.config == config && previous.builtin == builtin {
            tracing::debug!(
                generation = previous.id,
                "auth configuration unchanged: nothing to reload"
            );
            return;
        }
        let id = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let fresh_tag = || self.next_tag.fetch_add(1, Ordering::Relaxed);
        let generation = Arc::new(Generation::next(
            Some(&previous),
            id,
            config,
            builtin,
            &fresh_tag,
        ));
        let kept = (generation.keys.iter())
            .filter(|k| previous.keys.iter().any(|p| Arc::ptr_eq(k, p)))
            .count();
        *self.generation.write() = Arc::clone(&generation);
        // Memory hygiene only: `get` already refuses tags the new generation lacks.
        self.tokens.retain_tags(&generation.tags);
        tracing::debug!(
            generation = id,
            providers = generation.providers.len(),
            kept_key_caches = kept,
            "auth configuration installed"
        );
    }

    /// Verifies a bearer token (the JWT alone, without `Bearer `): a cache hit, or provider
    /// selection + keys + `auth::verify_parsed`. Every rejection is logged with its reason.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, TokenRejection> {
        let (result, provider) = self.verify_logged(token).await;
        if let Err(rejection) = &result {
            self.rejections.increment(rejection_reason(rejection));
            let provider = provider.as_deref().unwrap_or("-");
            if rejection.is_transient() {
                tracing::warn!(%provider, code = rejection.code(), reason = %rejection, "token rejected");
            } else {
                tracing::info!(%provider, code = rejection.code(), reason = %rejection, "token rejected");
            }
        }
        result
    }

    async fn verify_logged(
        &self,
        token: &str,
    ) -> (Result<VerifiedToken, TokenRejection>, Option<String>) {
        if token.len() > MAX_TOKEN_BYTES {
            let rejection = TokenRejection::TooLarge {
                size: token.len(),
                max: MAX_TOKEN_BYTES,
            };
            return (Err(rejection), None);
        }
        let now = self.now();
        let generation = self.current();
        let hash = token_hash(token);
        if let Some(hit) = self.tokens.get(&hash, &generation.tags, now) {
            return (Ok(hit), None);
        }
        let parsed = match ParsedToken::parse(token) {
            Ok(parsed) => parsed,
            Err(e) => return (Err(e), None),
        };
        let index = match select_provider(&parsed, &generation.providers) {
            Ok(index) => index,
            Err(e) => return (Err(e), None),
        };
        let result = self
            .verify_with_provider(&parsed, &generation, index, now)
            .await;
        if let Ok(verified) = &result {
            self.tokens
                .insert(hash, generation.tags[index], verified.clone(), now);
        }
        (result, Some(generation.providers[index].to_string()))
    }

    /// Keys (cached or fetched), verification, and one refetch if the kid is new to us.
    ///
    /// The signature check runs inline on the async worker on purpose. With `ring`, a cold
    /// RS256 verification costs ~30-60 µs, under the ~100 µs a task may run between awaits;
    /// handing it to `spawn_blocking` costs more than the check itself (verify_bench (c) vs
    /// (d): ~27k/s inline, ~13k/s offloaded), and in a burst it is worse on both counts:
    /// hundreds of blocking threads then compete with the workers for the same cores, so
    /// other tasks wait longer, not less (verify_bench (e) vs (f)). Offloading one at a time
    /// keeps the workers free but cuts burst throughput by half to two thirds (verify_bench
    /// (g)): a trade-off, not a free win, so it is not done here.
    async fn verify_with_provider(
        &self,
        parsed: &ParsedToken<'_>,
        generation: &Generation,
        index: usize,
        now: u64,
    ) -> Result<VerifiedToken, TokenRejection> {
        let provider = &generation.providers[index];
        let cache = &generation.keys[index];
        let keys: Arc<KeySet> = cache.current(&self.fetcher, now).await?;
        match verify_parsed(parsed, provider, &keys, now) {
            Err(
                miss @ (TokenRejection::UnknownKid { .. } | TokenRejection::NoCompatibleKey { .. }),
            ) => {
                let refreshed = cache
                    .refresh_after_miss(&self.fetcher, now, &keys, self.min_refetch_interval_secs)
                    .await;
                match refreshed {
                    Some(newer) => verify_parsed(parsed, provider, &newer, now),
                    None => Err(miss),
                }
            }
            other => other,
        }
    }

    /// `pulsebase auth check`: the decoded token and every provider's verdict with its reason.
    pub async fn diagnose(&self, token: &str) -> Diagnosis {
        let now = self.now();
        let generation = self.current();
        let mut diagnosis = Diagnosis::decode(token, now);
        if diagnosis.decode_error.is_some() {
            return diagnosis;
        }
        let Ok(parsed) = ParsedToken::parse(token) else {
            return diagnosis;
        };
        for (index, provider) in generation.providers.iter().enumerate() {
            let outcome = match provider.check_iss_aud(&parsed) {
                Err(reason) => Err(reason),
                Ok(()) => {
                    self.verify_with_provider(&parsed, &generation, index, now)
                        .await
                }
            };
            diagnosis.add_verdict(provider, outcome);
        }
        diagnosis
    }
}
