//! Identity providers we trust, and the URL policy for talking to them.
//!
//! A [`Provider`] is one `[[providers]]` entry of `auth.config.toml` (or the built-in dev
//! issuer). Selection is Convex's: the first provider whose issuer equals the token's `iss`
//! (a trailing slash aside) and whose applicationID is in `aud` gets the token.
//! URL policy: https everywhere, plain http only on loopback, so a config typo cannot send
//! key fetches in clear text across a network.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use url::{Host, Url};

use crate::keys::{KeyAlgorithm, KeySet};
use crate::rejection::{ProviderMismatch, TokenRejection, shown};
use crate::token::ParsedToken;

/// Where a customJwt provider's keys come from.
#[derive(Debug, Clone, PartialEq)]
pub enum JwksSource {
    /// Downloaded (https, or http on loopback).
    Url(Url),
    /// A file, relative to the app directory unless absolute.
    File(PathBuf),
    /// Inline in the config as a `data:` URI; this is the decoded JWKS document.
    DataUri(Value),
}

/// One trusted issuer.
#[derive(Debug, Clone, PartialEq)]
pub enum Provider {
    /// An OpenID Connect issuer (Clerk): keys via `<domain>/.well-known/openid-configuration`.
    Oidc {
        /// The issuer URL, normalised (`https://` added when the config had no scheme).
        domain: String,
        /// Must be in the token's `aud`.
        application_id: String,
    },
    /// A JWT issuer without discovery.
    CustomJwt {
        /// The issuer URL (`iss`).
        issuer: String,
        /// Where its keys are.
        jwks: JwksSource,
        /// The one algorithm its tokens use.
        algorithm: KeyAlgorithm,
        /// When set, must be in the token's `aud`.
        application_id: Option<String>,
    },
    /// An issuer whose keys we hold already: the server's own dev issuer, trusted without an
    /// HTTP round trip to itself.
    Builtin {
        /// The issuer URL (`iss`).
        issuer: String,
        /// Must be in the token's `aud`.
        application_id: String,
        /// Its public keys.
        jwks: Arc<KeySet>,
    },
}

/// How a provider's claims become a `UserIdentity` (Convex differs per provider type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimMapping {
    /// Standard OIDC claims to camelCase, custom claims kept nested.
    Oidc,
    /// No mapping, nested custom claims flattened to dotted keys.
    CustomJwt,
}

impl Provider {
    /// The issuer tokens must carry in `iss`.
    pub fn issuer(&self) -> &str {
        match self {
            Provider::Oidc { domain, .. } => domain,
            Provider::CustomJwt { issuer, .. } | Provider::Builtin { issuer, .. } => issuer,
        }
    }

    /// The audience tokens must carry, if any.
    pub fn application_id(&self) -> Option<&str> {
        match self {
            Provider::Oidc { application_id, .. } | Provider::Builtin { application_id, .. } => {
                Some(application_id)
            }
            Provider::CustomJwt { application_id, .. } => application_id.as_deref(),
        }
    }

    /// The identity mapping for this provider's tokens.
    pub fn claim_mapping(&self) -> ClaimMapping {
        match self {
            Provider::Oidc { .. } | Provider::Builtin { .. } => ClaimMapping::Oidc,
            Provider::CustomJwt { .. } => ClaimMapping::CustomJwt,
        }
    }

    /// The algorithm a customJwt provider is configured for.
    pub fn required_algorithm(&self) -> Option<KeyAlgorithm> {
        match self {
            Provider::CustomJwt { algorithm, .. } => Some(*algorithm),
            _ => None,
        }
    }

    /// Whether this provider claims the token by its (unverified) `iss` and `aud`.
    pub fn check_iss_aud(&self, token: &ParsedToken<'_>) -> Result<(), TokenRejection> {
        let iss = token.issuer()?;
        let audiences = token.audiences()?;
        match self.mismatch(iss, &audiences) {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    /// Why this provider would not take a token with this `iss` and `aud`, if it would not.
    pub fn mismatch(&self, iss: &str, audiences: &[String]) -> Option<TokenRejection> {
        if !issuers_match(self.issuer(), iss) {
            return Some(TokenRejection::IssuerMismatch {
                expected: self.issuer().to_owned(),
                found: shown(iss),
            });
        }
        if let Some(app) = self.application_id()
            && !audiences.iter().any(|a| a == app)
        {
            return Some(TokenRejection::AudienceMissing {
                expected: app.to_owned(),
                found: audiences.iter().map(|a| shown(a)).collect(),
            });
        }
        None
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provider::Oidc {
                domain,
                application_id,
            } => write!(f, "OIDC(domain={domain}, app_id={application_id})"),
            Provider::CustomJwt {
                issuer,
                application_id,
                algorithm,
                ..
            } => write!(
                f,
                "CustomJWT(issuer={issuer}, app_id={}, algorithm={algorithm})",
                application_id.as_deref().unwrap_or("none")
            ),
            Provider::Builtin {
                issuer,
                application_id,
                ..
            } => write!(f, "Builtin(issuer={issuer}, app_id={application_id})"),
        }
    }
}

/// Issuer equality as Convex does it for selection: exact, except for trailing slashes.
pub fn issuers_match(configured: &str, token_iss: &str) -> bool {
    configured.trim_end_matches('/') == token_iss.trim_end_matches('/')
}

/// Picks the first provider that claims this token (Convex's order rule), or explains, per
/// provider, why none did.
pub fn select_provider(
    token: &ParsedToken<'_>,
    providers: &[Provider],
) -> Result<usize, TokenRejection> {
    let iss = token.issuer()?;
    let audiences = token.audiences()?;
    if providers.is_empty() {
        return Err(TokenRejection::NoProvidersConfigured);
    }
    let mut mismatches = Vec::with_capacity(providers.len());
    for (index, provider) in providers.iter().enumerate() {
        match provider.mismatch(iss, &audiences) {
            None => return Ok(index),
            Some(reason) => mismatches.push(ProviderMismatch {
                provider: provider.to_string(),
                reason: Box::new(reason),
            }),
        }
    }
    Err(TokenRejection::NoMatchingProvider {
        issuer: shown(iss),
        audiences: audiences.iter().map(|a| shown(a)).collect(),
        mismatches,
    })
}

/// Why a URL may not be used to fetch keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlPolicyError {
    /// Not http(s).
    #[error("the scheme must be https:// (got {0}://)")]
    Scheme(String),
    /// Plain http to a non-loopback host.
    #[error("http:// is only allowed for 127.0.0.1, localhost and [::1]; use https:// for {host}")]
    InsecureHttp {
        /// The host that would be reached in clear text.
        host: String,
    },
    /// No host.
    #[error("the URL has no host: write it as https://your-issuer.example/...")]
    NoHost,
}

/// https anywhere, http only on loopback.
pub fn check_fetch_url(url: &Url) -> Result<(), UrlPolicyError> {
    let host = url.host().ok_or(UrlPolicyError::NoHost)?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&host) => Ok(()),
        "http" => Err(UrlPolicyError::InsecureHttp {
            host: host.to_string(),
        }),
        other => Err(UrlPolicyError::Scheme(other.to_owned())),
    }
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_slash_is_tolerated_scheme_is_not() {
        assert!(issuers_match("https://a.dev/", "https://a.dev"));
        assert!(issuers_match("https://a.dev", "https://a.dev//"));
        assert!(!issuers_match("https://a.dev", "http://a.dev"));
        assert!(!issuers_match("https://a.dev", "https://A.dev"));
    }

    #[test]
    fn url_policy() {
        let ok = |s: &str| check_fetch_url(&Url::parse(s).unwrap());
        assert!(ok("https://example.com/jwks").is_ok());
        assert!(ok("http://127.0.0.1:8080/x").is_ok());
        assert!(ok("http://localhost/x").is_ok());
        assert!(ok("http://[::1]:9/x").is_ok());
        assert!(matches!(
            ok("http://example.com"),
            Err(UrlPolicyError::InsecureHttp { .. })
        ));
        assert!(matches!(
            ok("ftp://example.com"),
            Err(UrlPolicyError::Scheme(_))
        ));
    }

    #[test]
    fn mismatch_reasons() {
        let p = Provider::Oidc {
            domain: "https://a.dev".into(),
            application_id: "convex".into(),
        };
        assert!(p.mismatch("https://a.dev/", &["convex".into()]).is_none());
        assert!(matches!(
            p.mismatch("https://b.dev", &["convex".into()]),
            Some(TokenRejection::IssuerMismatch { .. })
        ));
        assert!(matches!(
            p.mismatch("https://a.dev", &["other".into()]),
            Some(TokenRejection::AudienceMissing { .. })
        ));
        let open = Provider::CustomJwt {
            issuer: "https://c.dev".into(),
            jwks: JwksSource::File("k.json".into()),
            algorithm: KeyAlgorithm::Es256,
            application_id: None,
        };
        assert!(open.mismatch("https://c.dev", &[]).is_none());
    }
}
