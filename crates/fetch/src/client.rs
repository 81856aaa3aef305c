//! [`Fetcher`]: one outbound request from start to body, under the crate's rules (see `lib.rs`).
//!
//! Where each address is checked: an IP literal in the URL here before sending (the connector
//! never asks a resolver for one), a name in `resolver.rs` (the connector only ever sees the
//! addresses that survive), a redirect's target in the redirect policy below before it is
//! followed, and the peer of the final response once more after the fact.

use std::error::Error as StdError;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::redirect;
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;
use url::{Host, Url};

use crate::error::FetchError;
use crate::policy::{NetworkPolicy, Refused};
use crate::resolver::{GuardedResolver, NameRefused};
use crate::{FetchLimits, Request, Response};

/// Why a redirect was not followed; found again in the error chain by [`describe`].
#[derive(Debug, thiserror::Error)]
enum RedirectRefused {
    #[error("too many redirects")]
    TooMany,
    #[error("redirect to a URL that is not http(s)")]
    Scheme { to: String },
    #[error("redirect to a refused address")]
    Address { to: String, refused: Refused },
}

/// Makes outbound requests; shared by every action of the server.
pub struct Fetcher {
    outbound: Outbound,
    /// Drives every outbound connection; shut down in the background when dropped (dropping a
    /// runtime in place would block, which an async caller may not do).
    runtime: Option<Runtime>,
}

/// What one request needs; cheap to clone into the runtime.
#[derive(Clone)]
struct Outbound {
    client: reqwest::Client,
    policy: Arc<NetworkPolicy>,
    limits: FetchLimits,
    slots: Arc<Semaphore>,
}

impl Fetcher {
    /// A fetcher applying `policy` within `limits`, with its own runtime.
    pub fn new(policy: NetworkPolicy, limits: FetchLimits) -> std::io::Result<Fetcher> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            // getaddrinfo blocks; these threads do nothing else.
            .max_blocking_threads(8)
            .thread_name("fetch")
            .enable_all()
            .build()?;
        let policy = Arc::new(policy);
        let client = {
            let _inside = runtime.enter();
            build_client(&policy, limits.max_redirects).map_err(std::io::Error::other)?
        };
        Ok(Fetcher {
            outbound: Outbound {
                client,
                policy,
                slots: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
                limits,
            },
            runtime: Some(runtime),
        })
    }

    pub fn policy(&self) -> &NetworkPolicy {
        &self.outbound.policy
    }

    pub fn limits(&self) -> &FetchLimits {
        &self.outbound.limits
    }

    /// Sends `request` and reads the whole answer, blocking this thread. Call it from a plain
    /// thread or a blocking-pool thread, never from async code (use [`Fetcher::fetch`] there).
    pub fn fetch_blocking(&self, request: Request) -> Result<Response, FetchError> {
        match &self.runtime {
            Some(runtime) => runtime.block_on(self.outbound.clone().run(request)),
            None => Err(stopped(&request.url)),
        }
    }

    /// Sends `request` on the fetcher's runtime and reads the whole answer.
    pub async fn fetch(&self, request: Request) -> Result<Response, FetchError> {
        let url = request.url.clone();
        let Some(runtime) = &self.runtime else {
            return Err(stopped(&url));
        };
        runtime
            .spawn(self.outbound.clone().run(request))
            .await
            .unwrap_or_else(|e| {
                Err(FetchError::Failed {
                    url,
                    reason: format!("the request task failed: {e}"),
                })
            })
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn stopped(url: &str) -> FetchError {
    FetchError::Failed {
        url: url.to_string(),
        reason: "the server is shutting down".to_string(),
    }
}

fn build_client(
    policy: &Arc<NetworkPolicy>,
    max_redirects: usize,
) -> reqwest::Result<reqwest::Client> {
    let redirects = {
        let policy = policy.clone();
        redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max_redirects {
                return attempt.error(RedirectRefused::TooMany);
            }
            let next = attempt.url().clone();
            if !matches!(next.scheme(), "http" | "https") {
                return attempt.error(RedirectRefused::Scheme {
                    to: next.to_string(),
                });
            }
            if let Some(ip) = literal_ip(&next)
                && let Err(refused) = policy.check(ip)
            {
                return attempt.error(RedirectRefused::Address {
                    to: next.to_string(),
                    refused,
                });
            }
            attempt.follow()
        })
    };
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver::new(policy.clone())))
        .redirect(redirects)
        // A system proxy would resolve names itself, out of the policy's sight.
        .no_proxy()
        .user_agent(concat!("pulsebase/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
}

/// The IP address a URL names literally, if it does.
fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        Host::Domain(_) => None,
    }
}

impl Outbound {
    async fn run(self, request: Request) -> Result<Response, FetchError> {
        let shown = request.url.clone();
        let url = Url::parse(&request.url).map_err(|e| FetchError::BadUrl {
            url: shown.clone(),
            reason: format!("not a valid URL ({e})"),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::Scheme {
                url: shown,
                scheme: url.scheme().to_string(),
            });
        }
        if let Some(ip) = literal_ip(&url) {
            self.policy
                .check(ip)
                .map_err(|refused| FetchError::Refused {
                    url: shown.clone(),
                    via: String::new(),
                    refused,
                })?;
        }
        let timeout = request
            .timeout
            .unwrap_or(self.limits.default_timeout)
            .min(self.limits.max_timeout);
        match tokio::time::timeout(timeout, self.send(url, request)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(FetchError::Timeout {
                url: shown,
                after: timeout,
            }),
        }
    }

    async fn send(&self, url: Url, request: Request) -> Result<Response, FetchError> {
        let shown = request.url.clone();
        let bad = |reason: String| FetchError::BadRequest {
            url: shown.clone(),
            reason,
        };
        let method = if request.method.is_empty() {
            reqwest::Method::GET
        } else {
            reqwest::Method::from_bytes(request.method.to_ascii_uppercase().as_bytes())
                .map_err(|_| bad(format!("{:?} is not an HTTP method", request.method)))?
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &request.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| bad(format!("{name:?} is not a valid header name")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| bad(format!("the value of header {name} is not valid HTTP")))?;
            headers.append(name, value);
        }
        let mut builder = self.client.request(method, url).headers(headers);
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        // Waiting for a slot counts towards the call's timeout (the caller's clock runs).
        let _slot = self.slots.acquire().await.map_err(|_| stopped(&shown))?;
        let mut response = builder
            .send()
            .await
            .map_err(|e| describe(&shown, &e, self.limits.max_redirects))?;
        // The resolver and the redirect policy decided where to connect; this re-checks the
        // peer that answered, so a gap in either cannot go unnoticed.
        if let Some(peer) = response.remote_addr()
            && let Err(refused) = self.policy.check(peer.ip())
        {
            tracing::error!(url = %shown, peer = %peer, "fetch reached a refused address; answer discarded");
            return Err(FetchError::Refused {
                url: shown,
                via: format!("the answer came from {}, and ", response.url()),
                refused,
            });
        }
        // reqwest hands back, unfollowed, a redirect whose target is not http(s); Web fetch
        // calls that a network error, and so does this.
        if response.status().is_redirection()
            && let Some(to) = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| response.url().join(l).ok())
            && !matches!(to.scheme(), "http" | "https")
        {
            return Err(FetchError::BadUrl {
                url: shown,
                reason: format!("it redirected to {to}, which is not an http or https URL"),
            });
        }
        let limit = self.limits.max_body_bytes;
        let too_large = || FetchError::TooLarge {
            url: shown.clone(),
            limit,
        };
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(too_large());
        }
        let status = response.status();
        let final_url = response.url().to_string();
        let mut headers: Vec<(String, String)> = Vec::new();
        for (name, value) in response.headers() {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            match headers.iter_mut().find(|(n, _)| n == name.as_str()) {
                Some((_, joined)) => {
                    joined.push_str(", ");
                    joined.push_str(&value);
                }
                None => headers.push((name.as_str().to_string(), value)),
            }
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| describe(&shown, &e, self.limits.max_redirects))?
        {
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status: status.as_u16(),
            status_text: status.canonical_reason().unwrap_or_default().to_string(),
            url: final_url,
            headers,
            body,
        })
    }
}

/// A reqwest error in the terms of [`FetchError`]: the policy's refusals are found in its
/// source chain (the resolver's and the redirect policy's own error types).
fn describe(shown: &str, error: &reqwest::Error, max_redirects: usize) -> FetchError {
    let url = shown.to_string();
    let redirected = error
        .url()
        .map(Url::as_str)
        .filter(|at| *at != shown && Url::parse(shown).map(|u| u.as_str() != *at).unwrap_or(true));
    let mut source: Option<&(dyn StdError + 'static)> = Some(error);
    let mut reasons: Vec<String> = Vec::new();
    while let Some(current) = source {
        if let Some(refusal) = current.downcast_ref::<RedirectRefused>() {
            return match refusal {
                RedirectRefused::TooMany => FetchError::TooManyRedirects {
                    url,
                    limit: max_redirects,
                },
                RedirectRefused::Scheme { to } => FetchError::BadUrl {
                    url,
                    reason: format!("it redirected to {to}, which is not an http or https URL"),
                },
                RedirectRefused::Address { to, refused } => FetchError::Refused {
                    url,
                    via: format!("it redirected to {to}, and "),
                    refused: refused.clone(),
                },
            };
        }
        if let Some(refusal) = current.downcast_ref::<NameRefused>() {
            let via = match redirected {
                Some(at) => format!(
                    "it redirected to {at}, and {} resolves to non-public addresses only: ",
                    refusal.host
                ),
                None => format!("{} resolves to non-public addresses only: ", refusal.host),
            };
            return FetchError::Refused {
                url,
                via,
                refused: refusal.refused.clone(),
            };
        }
        let text = current.to_string();
        if !reasons.iter().any(|r| r.contains(&text)) {
            reasons.push(text);
        }
        source = current.source();
    }
    FetchError::Failed {
        url,
        reason: reasons.join(": "),
    }
}
