//! One provider's key set, cached: fetched once, kept for its TTL, refetched when a token
//! names a kid we do not know — but at most once per `min_refetch_interval_secs`.
//!
//! Concurrency: readers take a short `parking_lot` lock on the state; fetches go through a
//! `tokio` mutex so concurrent misses for one provider share one request (single flight):
//! whoever waited re-checks the state after the lock and finds the fresh keys. When a fetch
//! fails and older keys exist, the old keys keep serving (an issuer outage must not log
//! everyone out) and the failure is retried after `FAILED_FETCH_BACKOFF_SECS`.

use std::path::PathBuf;
use std::sync::Arc;

use auth::{JwksSource, KeySet, Provider, TokenRejection};
use url::Url;

use crate::fetch::{FetchError, Fetched, Fetcher};
use crate::options::FAILED_FETCH_BACKOFF_SECS;
use crate::status::KeyStatus;

enum KeySource {
    /// Keys known up front (built-in issuer, data: URI).
    Fixed(Arc<KeySet>),
    /// Keys that can never load (an unparseable data: URI slipped past config checks).
    Broken(String),
    Oidc {
        issuer: String,
    },
    Url(Url),
    File(PathBuf),
}

#[derive(Default)]
struct KeyState {
    keys: Option<Arc<KeySet>>,
    expires_at: u64,
    last_attempt_at: Option<u64>,
    last_error: Option<(u64, String)>,
    jwks_uri: Option<(Url, u64)>,
}

/// The cached keys of one provider.
pub(crate) struct ProviderKeys {
    label: String,
    source: KeySource,
    state: parking_lot::Mutex<KeyState>,
    fetch_lock: tokio::sync::Mutex<()>,
}

impl ProviderKeys {
    pub(crate) fn new(provider: &Provider) -> ProviderKeys {
        let source = match provider {
            Provider::Oidc { domain, .. } => KeySource::Oidc {
                issuer: domain.clone(),
            },
            Provider::Builtin { jwks, .. } => KeySource::Fixed(Arc::clone(jwks)),
            Provider::CustomJwt { jwks, .. } => match jwks {
                JwksSource::Url(url) => KeySource::Url(url.clone()),
                JwksSource::File(path) => KeySource::File(path.clone()),
                JwksSource::DataUri(doc) => match KeySet::from_jwks_json(doc) {
                    Ok(set) => KeySource::Fixed(Arc::new(set)),
                    Err(e) => KeySource::Broken(format!("the jwks data URI: {e}")),
                },
            },
        };
        ProviderKeys {
            label: provider.to_string(),
            source,
            state: parking_lot::Mutex::new(KeyState::default()),
            fetch_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Fresh keys: cached ones within their TTL, else a fetch (shared with concurrent callers).
    pub(crate) async fn current(
        &self,
        fetcher: &Fetcher,
        now: u64,
    ) -> Result<Arc<KeySet>, TokenRejection> {
        match &self.source {
            KeySource::Fixed(keys) => return Ok(Arc::clone(keys)),
            KeySource::Broken(reason) => return Err(self.rejection(reason.clone())),
            _ => {}
        }
        if let Some(answer) = self.cached(now) {
            return answer;
        }
        let _flight = self.fetch_lock.lock().await;
        if let Some(answer) = self.cached(now) {
            return answer;
        }
        self.fetch_and_store(fetcher, now).await
    }

    /// After a token named an unknown kid with `seen` keys: newer keys if someone already
    /// fetched them or we may fetch now; `None` when rate-limited or nothing changed.
    pub(crate) async fn refresh_after_miss(
        &self,
        fetcher: &Fetcher,
        now: u64,
        seen: &Arc<KeySet>,
        min_interval_secs: u64,
    ) -> Option<Arc<KeySet>> {
        if matches!(self.source, KeySource::Fixed(_) | KeySource::Broken(_)) {
            return None;
        }
        let decide = |state: &KeyState| -> Option<Option<Arc<KeySet>>> {
            if let Some(keys) = &state.keys
                && !Arc::ptr_eq(keys, seen)
            {
                return Some(Some(Arc::clone(keys)));
            }
            match state.last_attempt_at {
                Some(at) if now < at.saturating_add(min_interval_secs) => Some(None),
                _ => None,
            }
        };
        if let Some(answer) = decide(&self.state.lock()) {
            return answer;
        }
        let _flight = self.fetch_lock.lock().await;
        if let Some(answer) = decide(&self.state.lock()) {
            return answer;
        }
        tracing::info!(provider = %self.label, "token names an unknown kid: refetching the provider's keys");
        match self.fetch_and_store(fetcher, now).await {
            Ok(keys) if !Arc::ptr_eq(&keys, seen) => Some(keys),
            _ => None,
        }
    }

    /// `Some` when the cache can answer without a fetch.
    fn cached(&self, now: u64) -> Option<Result<Arc<KeySet>, TokenRejection>> {
        let state = self.state.lock();
        if let Some(keys) = &state.keys
            && now < state.expires_at
        {
            return Some(Ok(Arc::clone(keys)));
        }
        if let Some((at, reason)) = &state.last_error
            && now < at.saturating_add(FAILED_FETCH_BACKOFF_SECS)
        {
            return Some(match &state.keys {
                Some(stale) => Ok(Arc::clone(stale)),
                None => Err(self.rejection(reason.clone())),
            });
        }
        None
    }

    async fn fetch_and_store(
        &self,
        fetcher: &Fetcher,
        now: u64,
    ) -> Result<Arc<KeySet>, TokenRejection> {
        let result = self.fetch_once(fetcher, now).await;
        let mut state = self.state.lock();
        state.last_attempt_at = Some(now);
        match result {
            Ok(Fetched { value, ttl_secs }) => {
                let keys = Arc::new(value);
                state.keys = Some(Arc::clone(&keys));
                state.expires_at = now.saturating_add(ttl_secs);
                state.last_error = None;
                tracing::debug!(provider = %self.label, keys = keys.len(), ttl_secs, "fetched provider keys");
                Ok(keys)
            }
            Err(error) => {
                let reason = error.to_string();
                state.last_error = Some((now, reason.clone()));
                match &state.keys {
                    Some(stale) => {
                        tracing::warn!(provider = %self.label, %reason, "key refresh failed; still using the previous keys");
                        Ok(Arc::clone(stale))
                    }
                    None => {
                        tracing::warn!(provider = %self.label, %reason, "could not fetch the provider's keys");
                        Err(self.rejection(reason))
                    }
                }
            }
        }
    }

    async fn fetch_once(&self, fetcher: &Fetcher, now: u64) -> Result<Fetched<KeySet>, FetchError> {
        match &self.source {
            KeySource::Url(url) => fetcher.jwks_from_url(url).await,
            KeySource::File(path) => fetcher.jwks_from_file(path).await,
            KeySource::Oidc { issuer } => {
                let known = self
                    .state
                    .lock()
                    .jwks_uri
                    .clone()
                    .filter(|(_, until)| now < *until);
                let jwks_uri = match known {
                    Some((url, _)) => url,
                    None => {
                        let found = fetcher.discover_jwks_uri(issuer).await?;
                        let until = now.saturating_add(found.ttl_secs);
                        self.state.lock().jwks_uri = Some((found.value.clone(), until));
                        found.value
                    }
                };
                fetcher.jwks_from_url(&jwks_uri).await
            }
            KeySource::Fixed(keys) => Ok(Fetched {
                value: (**keys).clone(),
                ttl_secs: u64::MAX,
            }),
            KeySource::Broken(reason) => Err(FetchError::BadDocument {
                source_name: self.label.clone(),
                reason: reason.clone(),
            }),
        }
    }

    /// What the cache holds now, for the dashboard (no fetch).
    pub(crate) fn status(&self) -> KeyStatus {
        let state = self.state.lock();
        let held = match &self.source {
            KeySource::Fixed(keys) => Some(Arc::clone(keys)),
            _ => state.keys.clone(),
        };
        KeyStatus {
            keys_cached: held.as_ref().map_or(0, |k| k.len()),
            key_ids: held
                .iter()
                .flat_map(|k| {
                    k.keys()
                        .iter()
                        .filter_map(|key| key.kid().map(str::to_string))
                })
                .collect(),
            source: match self.source {
                KeySource::Fixed(_) => "fixed",
                _ => "fetched",
            },
            last_fetch_at: state.last_attempt_at,
            fresh_until: (state.keys.is_some() && !matches!(self.source, KeySource::Fixed(_)))
                .then_some(state.expires_at),
            last_error: match &self.source {
                KeySource::Broken(reason) => Some(reason.clone()),
                _ => state.last_error.as_ref().map(|(_, e)| e.clone()),
            },
            last_error_at: state.last_error.as_ref().map(|(at, _)| *at),
        }
    }

    fn rejection(&self, reason: String) -> TokenRejection {
        TokenRejection::KeyFetch {
            provider: self.label.clone(),
            reason,
        }
    }
}
