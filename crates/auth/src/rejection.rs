//! Why a token was refused: one precise reason for logs and `pulsebase auth check`, and
//! Convex's short code and text for clients.
//!
//! Two audiences, two texts. `Display` is for the operator and names values (issuer
//! expected vs found, seconds since expiry); [`TokenRejection::client_message`] is the fixed
//! text Convex sends to clients, which leaks nothing about the configuration. Neither ever
//! contains the token itself: rejections carry only claim values, and untrusted strings are
//! cut and escaped by [`shown`] before they are stored.

use std::fmt;

/// A token we will not accept, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    /// Not a compact JWS with base64url JSON header and payload.
    #[error("the token is not a well-formed JWT: {reason}")]
    Malformed {
        /// What is wrong with its shape.
        reason: &'static str,
    },
    /// Over the size cap; refused before any parsing.
    #[error("the token is {size} bytes, over the {max}-byte limit")]
    TooLarge {
        /// Its length in bytes.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// A required claim is absent.
    #[error("the token has no `{0}` claim")]
    MissingClaim(&'static str),
    /// A claim has the wrong type or an impossible value.
    #[error("the token's `{name}` claim is invalid: {reason}")]
    InvalidClaim {
        /// The claim.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `iss` is not the provider's issuer.
    #[error(
        "issuer mismatch: the provider expects \"{expected}\" but the token's iss is \"{found}\""
    )]
    IssuerMismatch {
        /// The configured issuer/domain.
        expected: String,
        /// The token's `iss`.
        found: String,
    },
    /// `aud` does not contain the provider's applicationID.
    #[error(
        "audience mismatch: the provider expects \"{expected}\" in aud but the token's aud is {}: did you get the token from the `convex` JWT template?",
        list(found)
    )]
    AudienceMissing {
        /// The configured applicationID.
        expected: String,
        /// The token's audiences.
        found: Vec<String>,
    },
    /// The header's `kid` names no key of the provider.
    #[error(
        "no key with kid \"{kid}\" in the provider's key set (it has {})",
        list(known)
    )]
    UnknownKid {
        /// The header's kid.
        kid: String,
        /// The kids the provider publishes.
        known: Vec<String>,
    },
    /// No `kid` and no key of the token's algorithm.
    #[error("the token has no kid and the provider publishes no {alg} key")]
    NoCompatibleKey {
        /// The header's algorithm.
        alg: String,
    },
    /// No `kid` and several keys could apply, so we refuse to guess.
    #[error(
        "the token has no kid and the provider publishes {count} {alg} keys: a kid is needed to choose"
    )]
    AmbiguousKey {
        /// The header's algorithm.
        alg: String,
        /// How many keys qualify.
        count: usize,
    },
    /// The signature does not verify under the chosen key.
    #[error(
        "the signature does not verify with the provider's key{}",
        kid_suffix(kid)
    )]
    BadSignature {
        /// The key tried.
        kid: Option<String>,
    },
    /// `now >= exp`.
    #[error("the token expired {} ago", human_duration(*seconds_ago))]
    Expired {
        /// Seconds since `exp`.
        seconds_ago: u64,
    },
    /// `exp` is further ahead than any real token lives ([`crate::MAX_EXP_AHEAD_SECS`]).
    #[error(
        "the token's exp is {} from now, beyond the {}-year limit on token lifetimes: check the lifetime the issuer gives its tokens",
        human_duration(*seconds_ahead),
        max / 31_557_600
    )]
    ExpiresTooLate {
        /// Seconds until `exp`.
        seconds_ahead: u64,
        /// The limit applied.
        max: u64,
    },
    /// `nbf` is beyond the clock-skew leeway.
    #[error("the token is not valid yet: nbf is {} from now (leeway {leeway} s)", human_duration(*seconds_until))]
    NotYetValid {
        /// Seconds until `nbf`.
        seconds_until: u64,
        /// The leeway applied.
        leeway: u64,
    },
    /// `iat` is beyond the clock-skew leeway: the issuer's clock (or ours) is wrong.
    #[error("the token was issued in the future: iat is {} from now (leeway {leeway} s)", human_duration(*seconds_ahead))]
    IssuedInFuture {
        /// Seconds until `iat`.
        seconds_ahead: u64,
        /// The leeway applied.
        leeway: u64,
    },
    /// `alg` is not one we accept (`none`, HS*, PS*, ...).
    #[error(
        "algorithm \"{alg}\" is not accepted: only RS256 (RSA keys) and ES256 (P-256 keys) are"
    )]
    UnsupportedAlgorithm {
        /// The header's `alg`.
        alg: String,
    },
    /// The header's `alg` differs from what the key (or a customJwt provider) requires.
    #[error("the token says alg {token} but the provider's key requires {required}")]
    AlgorithmMismatch {
        /// The header's `alg`.
        token: String,
        /// The algorithm of the key or configuration.
        required: String,
    },
    /// No configured provider has this token's issuer and audience.
    #[error(
        "no auth provider matches iss \"{issuer}\" and aud {}:{}",
        list(audiences),
        mismatch_lines(mismatches)
    )]
    NoMatchingProvider {
        /// The token's `iss`.
        issuer: String,
        /// The token's audiences.
        audiences: Vec<String>,
        /// Why each provider declined.
        mismatches: Vec<ProviderMismatch>,
    },
    /// The configuration lists no provider at all.
    #[error("no auth providers are configured: add one to auth.config.toml")]
    NoProvidersConfigured,
    /// The provider's keys could not be obtained (discovery, JWKS download, file).
    #[error("could not get the keys of {provider}: {reason}")]
    KeyFetch {
        /// The provider's label.
        provider: String,
        /// What failed.
        reason: String,
    },
}

/// One provider's reason for not claiming a token during provider selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderMismatch {
    /// The provider's label, e.g. `OIDC(domain=https://x.clerk.accounts.dev, app_id=convex)`.
    pub provider: String,
    /// Why it declined: an [`TokenRejection::IssuerMismatch`] or [`TokenRejection::AudienceMissing`].
    pub reason: Box<TokenRejection>,
}

const PARSE_TEXT: &str = "Could not parse JWT payload. Check that the token is a valid JWT format with three base64-encoded parts separated by dots.";
const MISSING_ISS_TEXT: &str = "Missing issuer claim ('iss') in JWT payload. The JWT must include an 'iss' claim that matches one of your configured auth providers.";
const CLAIM_TEXT: &str = "Could not verify token claim. Check that the JWT contains valid claims and matches your auth provider configuration.";
const VERIFY_TEXT: &str = "Could not verify OIDC token claim. Check that the token signature is valid and the token hasn't expired.";
const NO_PROVIDER_TEXT: &str = "No auth provider found matching the given token. Check that your JWT's issuer and audience match one of your configured providers.";
const NO_PROVIDERS_TEXT: &str = "No auth provider found matching the given token (no providers configured). Check auth.config.toml.";
const DISCOVERY_TEXT: &str =
    "Auth provider discovery failed. Check that the provider's URL is correct and accessible.";

impl TokenRejection {
    /// Convex's short error code for this rejection.
    pub fn code(&self) -> &'static str {
        match self {
            TokenRejection::Malformed { .. }
            | TokenRejection::TooLarge { .. }
            | TokenRejection::MissingClaim("iss") => "InvalidAuthHeader",
            TokenRejection::NoMatchingProvider { .. } | TokenRejection::NoProvidersConfigured => {
                "NoAuthProvider"
            }
            TokenRejection::KeyFetch { .. } => "AuthProviderDiscoveryFailed",
            _ => "Unauthenticated",
        }
    }

    /// Convex's fixed client-facing text: no configuration details, no token contents.
    pub fn client_message(&self) -> &'static str {
        match self {
            TokenRejection::Malformed { .. } | TokenRejection::TooLarge { .. } => PARSE_TEXT,
            TokenRejection::MissingClaim("iss") => MISSING_ISS_TEXT,
            TokenRejection::MissingClaim(_) | TokenRejection::InvalidClaim { .. } => CLAIM_TEXT,
            TokenRejection::NoMatchingProvider { .. } => NO_PROVIDER_TEXT,
            TokenRejection::NoProvidersConfigured => NO_PROVIDERS_TEXT,
            TokenRejection::KeyFetch { .. } => DISCOVERY_TEXT,
            TokenRejection::IssuerMismatch { .. }
            | TokenRejection::AudienceMissing { .. }
            | TokenRejection::UnknownKid { .. }
            | TokenRejection::NoCompatibleKey { .. }
            | TokenRejection::AmbiguousKey { .. }
            | TokenRejection::BadSignature { .. }
            | TokenRejection::Expired { .. }
            | TokenRejection::ExpiresTooLate { .. }
            | TokenRejection::NotYetValid { .. }
            | TokenRejection::IssuedInFuture { .. }
            | TokenRejection::UnsupportedAlgorithm { .. }
            | TokenRejection::AlgorithmMismatch { .. } => VERIFY_TEXT,
        }
    }

    /// True when retrying later may succeed without a new token (the issuer was unreachable).
    pub fn is_transient(&self) -> bool {
        matches!(self, TokenRejection::KeyFetch { .. })
    }
}

/// Makes an untrusted string safe to log: at most 200 characters, control characters escaped.
pub fn shown(s: &str) -> String {
    const MAX_CHARS: usize = 200;
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == MAX_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// "42 s", "3 min", "2 h", "5 days", "12 years" — coarse on purpose, for humans reading logs.
pub fn human_duration(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs} s"),
        120..7_200 => format!("{} min", secs / 60),
        7_200..172_800 => format!("{} h", secs / 3_600),
        172_800..63_115_200 => format!("{} days", secs / 86_400),
        _ => format!("{} years", secs / 31_557_600),
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        return "[] (none)".into();
    }
    let quoted: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

fn kid_suffix(kid: &Option<String>) -> String {
    kid.as_ref()
        .map(|k| format!(" \"{k}\""))
        .unwrap_or_default()
}

fn mismatch_lines(mismatches: &[ProviderMismatch]) -> String {
    let mut out = String::new();
    for m in mismatches {
        out.push_str(&format!("\n  - {}: {}", m.provider, m.reason));
    }
    out
}

impl fmt::Display for ProviderMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.provider, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_client_texts() {
        let expired = TokenRejection::Expired { seconds_ago: 180 };
        assert_eq!(expired.code(), "Unauthenticated");
        assert_eq!(expired.client_message(), VERIFY_TEXT);
        assert_eq!(expired.to_string(), "the token expired 3 min ago");
        assert_eq!(
            TokenRejection::MissingClaim("iss").code(),
            "InvalidAuthHeader"
        );
        assert_eq!(
            TokenRejection::NoProvidersConfigured.client_message(),
            NO_PROVIDERS_TEXT
        );
    }

    #[test]
    fn audience_message_points_at_the_template() {
        let r = TokenRejection::AudienceMissing {
            expected: "convex".into(),
            found: vec!["other".into()],
        };
        assert!(r.to_string().contains("[\"other\"]"));
        assert!(r.to_string().contains("`convex` JWT template"));
    }

    #[test]
    fn shown_cuts_and_escapes() {
        assert_eq!(shown("a\nb"), "a\\nb");
        assert_eq!(shown(&"x".repeat(500)).chars().count(), 201);
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(42), "42 s");
        assert_eq!(human_duration(3 * 60 + 5), "3 min");
        assert_eq!(human_duration(5 * 3600), "5 h");
        assert_eq!(human_duration(3 * 86_400), "3 days");
        assert_eq!(human_duration(700 * 86_400), "700 days");
        assert_eq!(human_duration(u64::MAX), "584542046090 years");
    }
}
