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
        /// Also accept `iss` = this issuer's path on any loopback host and port (see
        /// [`loopback_issuers_match`]); set for the dev issuer, whose tokens are minted for
        /// whatever port a server had, or would have, when they were made.
        any_loopback_port: bool,
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
    /// Whether a token with this `iss` is this provider's (the issuer part of selection and
    /// of verification).
    pub fn accepts_issuer(&self, iss: &str) -> bool {
        match self {
            Provider::Builtin {
                issuer,
                any_loopback_port: true,
                ..
            } => issuers_match(issuer, iss) || loopback_issuers_match(issuer, iss),
            _ => issuers_match(self.issuer(), iss),
        }
    }

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
        if !self.accepts_issuer(iss) {
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
                any_loopback_port,
                ..
            } => write!(
                f,
                "Builtin(issuer={issuer}{}, app_id={application_id})",
                if *any_loopback_port {
                    " on any loopback port"
                } else {
                    ""
                }
            ),
        }
    }
}

/// Issuer equality as Convex does it for selection: exact, except for trailing slashes.
pub fn issuers_match(configured: &str, token_iss: &str) -> bool {
    configured.trim_end_matches('/') == token_iss.trim_end_matches('/')
}

/// The dev issuer's rule: the token's `iss` is a plain-http URL on a loopback host
/// (127.0.0.0/8, `localhost`, `[::1]`), any port, with the configured issuer's path (a
/// trailing slash aside). The token's signature is what proves it comes from the dev key;
/// the port in its `iss` only records where a server was, or would be, listening when it
/// was minted (`pulsebase token` with no server running assumes the default port).
pub fn loopback_issuers_match(configured: &str, token_iss: &str) -> bool {
    let Ok(configured) = Url::parse(configured) else {
        return false;
    };
    let Ok(token) = Url::parse(token_iss) else {
        return false;
    };
    token.scheme() == "http"
        && token.host().is_some_and(|host| is_loopback(&host))
        && token.username().is_empty()
        && token.password().is_none()
        && token.query().is_none()
        && token.fragment().is_none()
        && token.path().trim_end_matches('/') == configured.path().trim_end_matches('/')
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

    #[test]
    fn dev_issuer_accepts_its_path_on_any_loopback_port() {
        let builtin = |issuer: &str, any_loopback_port| Provider::Builtin {
            issuer: issuer.into(),
            application_id: "convex".into(),
            jwks: Arc::new(KeySet::default()),
            any_loopback_port,
        };
        let dev = builtin("http://127.0.0.1:41234/dev-issuer", true);
        for ok in [
            "http://127.0.0.1:41234/dev-issuer",
            "http://127.0.0.1:3210/dev-issuer",
            "http://127.0.0.1:3210/dev-issuer/",
            "http://localhost:9/dev-issuer",
            "http://[::1]:3210/dev-issuer",
            "http://127.0.0.1/dev-issuer",
        ] {
            assert!(dev.accepts_issuer(ok), "{ok}");
        }
        for bad in [
            "https://127.0.0.1:3210/dev-issuer",
            "http://10.0.0.1:3210/dev-issuer",
            "http://evil.example:3210/dev-issuer",
            "http://127.0.0.1:3210/other-issuer",
            "http://127.0.0.1:3210/dev-issuer?x",
            "http://u@127.0.0.1:3210/dev-issuer",
            "not a url",
        ] {
            assert!(!dev.accepts_issuer(bad), "{bad}");
        }
        assert!(dev.to_string().contains("on any loopback port"));
        // Without the flag, only the exact issuer.
        let exact = builtin("http://127.0.0.1:41234/dev-issuer", false);
        assert!(exact.accepts_issuer("http://127.0.0.1:41234/dev-issuer/"));
        assert!(!exact.accepts_issuer("http://127.0.0.1:3210/dev-issuer"));
        // A server bound to 0.0.0.0 takes its own tokens and those minted for the loopback default.
        let wildcard = builtin("http://0.0.0.0:4000/dev-issuer", true);
        assert!(wildcard.accepts_issuer("http://0.0.0.0:4000/dev-issuer"));
        assert!(wildcard.accepts_issuer("http://127.0.0.1:3210/dev-issuer"));
        assert!(!wildcard.accepts_issuer("http://0.0.0.0:3210/dev-issuer"));
    }
}
