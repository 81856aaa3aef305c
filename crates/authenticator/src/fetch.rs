//! Getting a provider's keys from the outside world: OIDC discovery, JWKS over HTTP, JWKS
//! files. Each call is one attempt; caching, single-flight and rate limits live in `key_cache`.
//!
//! Every URL (including redirects and the `jwks_uri` a discovery document names) must pass
//! `auth::check_fetch_url` (https, or http on loopback), requests time out, and bodies are
//! capped, so a hostile or broken issuer can neither redirect us into the clear nor make us
//! buffer without bound.

use std::path::{Path, PathBuf};
use std::time::Duration;

use auth::{KeySet, KeySetError, UrlPolicyError, check_fetch_url, issuers_match, shown};
use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use serde_json::Value;
use url::Url;

use crate::options::{MAX_KEY_DOCUMENT_BYTES, MIN_KEY_TTL_SECS, ttl_from_cache_control};

/// Redirect hops we follow before giving up.
const MAX_REDIRECTS: usize = 5;

/// Why one fetch attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL breaks the fetch policy.
    #[error("{url}: {reason}")]
    Policy {
        /// The URL.
        url: String,
        /// The rule broken.
        reason: UrlPolicyError,
    },
    /// Network error, timeout or refused redirect.
    #[error("request to {url} failed: {reason}")]
    Network {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// A non-200 answer.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The answer is not JSON (e.g. an HTML login page).
    #[error(
        "{url} answered Content-Type \"{content_type}\"; expected application/json or application/jwk-set+json"
    )]
    ContentType {
        /// The URL.
        url: String,
        /// What it sent.
        content_type: String,
    },
    /// The body is over [`MAX_KEY_DOCUMENT_BYTES`].
    #[error("{url} sent more than {MAX_KEY_DOCUMENT_BYTES} bytes")]
    TooLarge {
        /// The URL.
        url: String,
    },
    /// The body is not the JSON we need.
    #[error("{source_name}: {reason}")]
    BadDocument {
        /// URL or file.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// The discovery document names another issuer.
    #[error("discovery at {url} says issuer \"{found}\", but the provider is \"{expected}\"")]
    IssuerMismatch {
        /// The discovery URL.
        url: String,
        /// The configured issuer.
        expected: String,
        /// The document's issuer.
        found: String,
    },
    /// The JWKS holds no RS256/ES256 key we can use.
    #[error(
        "{source_name} holds no usable RS256/ES256 key{}",
        skipped_suffix(skipped)
    )]
    NoUsableKeys {
        /// URL or file.
        source_name: String,
        /// Why each key was skipped.
        skipped: Vec<String>,
    },
    /// A JWKS file could not be read.
    #[error("cannot read {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        reason: String,
    },
}

fn skipped_suffix(skipped: &[String]) -> String {
    if skipped.is_empty() {
        String::new()
    } else {
        format!(" (skipped: {})", skipped.join("; "))
    }
}

/// A fetched value and how long it may be cached.
#[derive(Debug)]
pub(crate) struct Fetched<T> {
    pub value: T,
    pub ttl_secs: u64,
}

/// Performs fetch attempts for every provider.
pub(crate) struct Fetcher {
    client: reqwest::Client,
    app_dir: PathBuf,
}

impl Fetcher {
    pub(crate) fn new(app_dir: PathBuf, timeout: Duration) -> Result<Fetcher, reqwest::Error> {
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error("too many redirects");
            }
            match check_fetch_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(reason) => attempt.error(format!("refused redirect: {reason}")),
            }
        });
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(redirects)
            .user_agent(concat!(
                "pulsebase-authenticator/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()?;
        Ok(Fetcher { client, app_dir })
    }

    /// OIDC discovery for `issuer`: returns the `jwks_uri` after checking the document's issuer.
    pub(crate) async fn discover_jwks_uri(&self, issuer: &str) -> Result<Fetched<Url>, FetchError> {
        let address = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let url = Url::parse(&address).map_err(|e| FetchError::BadDocument {
            source_name: address.clone(),
            reason: format!("not a URL: {e}"),
        })?;
        let Fetched { value, ttl_secs } = self.get_json(&url).await?;
        let bad = |reason: &str| FetchError::BadDocument {
            source_name: url.to_string(),
            reason: reason.to_owned(),
        };
        let found = value
            .get("issuer")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("the discovery document has no \"issuer\""))?;
        if !issuers_match(issuer, found) {
            return Err(FetchError::IssuerMismatch {
                url: url.to_string(),
                expected: issuer.to_owned(),
                found: shown(found),
            });
        }
        let jwks_uri = value
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("the discovery document has no \"jwks_uri\""))?;
        let jwks_url = Url::parse(jwks_uri).map_err(|_| bad("its \"jwks_uri\" is not a URL"))?;
        check_fetch_url(&jwks_url).map_err(|reason| FetchError::Policy {
            url: jwks_url.to_string(),
            reason,
        })?;
        Ok(Fetched {
            value: jwks_url,
            ttl_secs,
        })
    }

    /// Downloads and parses a JWKS.
    pub(crate) async fn jwks_from_url(&self, url: &Url) -> Result<Fetched<KeySet>, FetchError> {
        let Fetched { value, ttl_secs } = self.get_json(url).await?;
        let keys = usable_keys(url.as_str(), KeySet::from_jwks_json(&value))?;
        Ok(Fetched {
            value: keys,
            ttl_secs,
        })
    }

    /// Reads a JWKS file (relative paths are under the app directory).
    pub(crate) async fn jwks_from_file(&self, path: &Path) -> Result<Fetched<KeySet>, FetchError> {
        let full = self.app_dir.join(path);
        let name = full.display().to_string();
        let bytes = tokio::fs::read(&full).await.map_err(|e| FetchError::File {
            path: name.clone(),
            reason: e.to_string(),
        })?;
        let keys = usable_keys(&name, KeySet::from_jwks_bytes(&bytes))?;
        // Files change when someone edits them; re-read at the shortest key TTL.
        Ok(Fetched {
            value: keys,
            ttl_secs: MIN_KEY_TTL_SECS,
        })
    }

    async fn get_json(&self, url: &Url) -> Result<Fetched<Value>, FetchError> {
        check_fetch_url(url).map_err(|reason| FetchError::Policy {
            url: url.to_string(),
            reason,
        })?;
        let network = |e: reqwest::Error| FetchError::Network {
            url: url.to_string(),
            reason: if e.is_timeout() {
                "timed out".to_owned()
            } else {
                error_chain(&e)
            },
        };
        let mut response = self
            .client
            .get(url.clone())
            .header(ACCEPT, "application/json, application/jwk-set+json")
            .send()
            .await
            .map_err(network)?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(FetchError::Status {
                url: url.to_string(),
                status: response.status().as_u16(),
            });
        }
        if let Some(content_type) = response.headers().get(CONTENT_TYPE) {
            let text = content_type.to_str().unwrap_or("(not text)");
            if !is_json_content_type(text) {
                return Err(FetchError::ContentType {
                    url: url.to_string(),
                    content_type: shown(text),
                });
            }
        }
        let ttl_secs = ttl_from_cache_control(
            response
                .headers()
                .get(CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
        );
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(network)? {
            if body.len() + chunk.len() > MAX_KEY_DOCUMENT_BYTES {
                return Err(FetchError::TooLarge {
                    url: url.to_string(),
                });
            }
            body.extend_from_slice(&chunk);
        }
        let value = serde_json::from_slice(&body).map_err(|e| FetchError::BadDocument {
            source_name: url.to_string(),
            reason: format!("not valid JSON ({e})"),
        })?;
        Ok(Fetched { value, ttl_secs })
    }
}

/// A key set with at least one usable key, or an error that says why each key was skipped.
fn usable_keys(
    source_name: &str,
    parsed: Result<KeySet, KeySetError>,
) -> Result<KeySet, FetchError> {
    let keys = parsed.map_err(|e| FetchError::BadDocument {
        source_name: source_name.to_owned(),
        reason: e.to_string(),
    })?;
    if keys.is_empty() {
        return Err(FetchError::NoUsableKeys {
            source_name: source_name.to_owned(),
            skipped: keys.skipped().iter().map(|s| s.reason.clone()).collect(),
        });
    }
    Ok(keys)
}

fn is_json_content_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence == "application/jwk-set+json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// reqwest's top-level message is often just "error sending request"; the cause is below.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("application/json; charset=utf-8"));
        assert!(is_json_content_type("Application/JWK-Set+JSON"));
        assert!(!is_json_content_type("text/html"));
    }
}
