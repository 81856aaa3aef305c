//! The one place a token is verified: key choice, signature, then claims.
//!
//! Order matters: the key (and so the algorithm) is chosen from the provider's key set, the
//! signature is checked, and only then are claims believed. See the crate docs for the rules;
//! the clock is a parameter so the rules are testable to the second.

use crate::identity::Identity;
use crate::keys::{KeyAlgorithm, KeySet, VerificationKey};
use crate::provider::Provider;
use crate::rejection::{TokenRejection, shown};
use crate::token::{ParsedToken, shown_claim, string_claim, time_claim};

/// Clock skew we forgive on `nbf` and `iat` (Clerk's templates default to 5 s too).
/// `exp` gets none: a token is dead at `exp`, as in Convex's OIDC path.
pub const CLOCK_SKEW_LEEWAY_SECS: u64 = 5;

/// The furthest in the future an `exp` may be: 10 years (3,652.5 days). Real issuers mint
/// tokens for minutes to days (Clerk: 60 s); an `exp` beyond this is a bug (a lifetime in
/// the wrong unit, a garbage value), and accepting it would keep a token alive for good and
/// push absurd deadlines into every cache and timer downstream.
pub const MAX_EXP_AHEAD_SECS: u64 = 315_576_000;

/// A token that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    /// Who it is.
    pub identity: Identity,
    /// The token's `exp` (unix seconds): caches must forget it then.
    pub expires_at: u64,
}

/// Verifies `token` against one provider's keys at time `now` (unix seconds).
pub fn verify_with_keys(
    token: &str,
    provider: &Provider,
    keys: &KeySet,
    now: u64,
) -> Result<VerifiedToken, TokenRejection> {
    // `parse` enforces the size cap before looking at a single byte.
    let parsed = ParsedToken::parse(token)?;
    verify_parsed(&parsed, provider, keys, now)
}

/// [`verify_with_keys`] for a token already split by [`ParsedToken::parse`].
pub fn verify_parsed(
    token: &ParsedToken<'_>,
    provider: &Provider,
    keys: &KeySet,
    now: u64,
) -> Result<VerifiedToken, TokenRejection> {
    let key = choose_key(token, provider, keys)?;
    check_signature(token, key)?;
    let expires_at = check_claims(token, provider, now)?;
    let identity = Identity::from_claims(token.claims(), provider.claim_mapping())?;
    Ok(VerifiedToken {
        identity,
        expires_at,
    })
}

/// The header's algorithm, if it is one we accept at all.
fn header_algorithm(token: &ParsedToken<'_>) -> Result<KeyAlgorithm, TokenRejection> {
    let alg = token.alg().ok_or(TokenRejection::Malformed {
        reason: "the header has no string `alg`",
    })?;
    KeyAlgorithm::from_jose(alg)
        .ok_or_else(|| TokenRejection::UnsupportedAlgorithm { alg: shown(alg) })
}

fn choose_key<'k>(
    token: &ParsedToken<'_>,
    provider: &Provider,
    keys: &'k KeySet,
) -> Result<&'k VerificationKey, TokenRejection> {
    let alg = header_algorithm(token)?;
    if let Some(required) = provider.required_algorithm()
        && required != alg
    {
        return Err(TokenRejection::AlgorithmMismatch {
            token: alg.to_string(),
            required: required.to_string(),
        });
    }
    match token.kid()? {
        Some(kid) => {
            let key = keys.find(kid).ok_or_else(|| TokenRejection::UnknownKid {
                kid: shown(kid),
                known: keys.kids(),
            })?;
            if key.algorithm() != alg {
                return Err(TokenRejection::AlgorithmMismatch {
                    token: alg.to_string(),
                    required: key.algorithm().to_string(),
                });
            }
            Ok(key)
        }
        None => {
            let mut compatible = keys.keys().iter().filter(|k| k.algorithm() == alg);
            match (compatible.next(), compatible.count()) {
                (Some(only), 0) => Ok(only),
                (None, _) => Err(TokenRejection::NoCompatibleKey {
                    alg: alg.to_string(),
                }),
                (Some(_), more) => Err(TokenRejection::AmbiguousKey {
                    alg: alg.to_string(),
                    count: more + 1,
                }),
            }
        }
    }
}

/// Verifies the signature with `jsonwebtoken` on its aws-lc backend (RSASSA-PKCS1-v1_5 with
/// SHA-256 for RS256, ECDSA P-256 with SHA-256 for ES256), with the algorithm of the key that
/// [`choose_key`] picked, never the header's.
fn check_signature(token: &ParsedToken<'_>, key: &VerificationKey) -> Result<(), TokenRejection> {
    let valid = jsonwebtoken::crypto::verify(
        token.signature(),
        token.signing_input().as_bytes(),
        key.decoding_key(),
        key.algorithm().jwt(),
    );
    // An undecodable signature is an error here and `false` for a wrong one: both are bad.
    if matches!(valid, Ok(true)) {
        Ok(())
    } else {
        Err(TokenRejection::BadSignature {
            kid: key.kid().map(str::to_owned),
        })
    }
}

/// Checks iss, aud, exp, nbf, iat and sub; returns `exp`.
fn check_claims(
    token: &ParsedToken<'_>,
    provider: &Provider,
    now: u64,
) -> Result<u64, TokenRejection> {
    let claims = token.claims();
    let iss = string_claim(claims, "iss")?;
    if !provider.accepts_issuer(iss) {
        return Err(TokenRejection::IssuerMismatch {
            expected: provider.issuer().to_owned(),
            found: shown_claim(claims, "iss"),
        });
    }
    if let Some(app) = provider.application_id() {
        let audiences = token.audiences()?;
        if !audiences.iter().any(|a| a == app) {
            return Err(TokenRejection::AudienceMissing {
                expected: app.to_owned(),
                found: audiences.iter().map(|a| shown(a)).collect(),
            });
        }
    }
    let exp = time_claim(claims, "exp")?.ok_or(TokenRejection::MissingClaim("exp"))?;
    if now >= exp {
        return Err(TokenRejection::Expired {
            seconds_ago: now - exp,
        });
    }
    if exp - now > MAX_EXP_AHEAD_SECS {
        return Err(TokenRejection::ExpiresTooLate {
            seconds_ahead: exp - now,
            max: MAX_EXP_AHEAD_SECS,
        });
    }
    if let Some(nbf) = time_claim(claims, "nbf")?
        && nbf > now.saturating_add(CLOCK_SKEW_LEEWAY_SECS)
    {
        return Err(TokenRejection::NotYetValid {
            seconds_until: nbf - now,
            leeway: CLOCK_SKEW_LEEWAY_SECS,
        });
    }
    if let Some(iat) = time_claim(claims, "iat")?
        && iat > now.saturating_add(CLOCK_SKEW_LEEWAY_SECS)
    {
        return Err(TokenRejection::IssuedInFuture {
            seconds_ahead: iat - now,
            leeway: CLOCK_SKEW_LEEWAY_SECS,
        });
    }
    string_claim(claims, "sub")?;
    Ok(exp)
}
