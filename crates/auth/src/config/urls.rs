//! The two kinds of location a provider names, from the text as written to a checked value:
//! the issuer URL (Convex's normalisation: a scheme added when missing, no query, fragment or
//! credentials) and the JWKS source (a URL, a file path, or a `data:` URI decoded here).
//! Both obey the fetch policy (https, or plain http on loopback only).

use std::path::PathBuf;

use serde_json::Value;
use url::Url;

use super::error::AuthConfigErrorKind;
use crate::keys::{KeySet, decode_data_uri};
use crate::provider::{JwksSource, check_fetch_url};

/// Convex's issuer normalisation: trim, add `https://` when there is no scheme, then check.
/// The returned string is the value as written (plus scheme): no trailing-slash rewriting,
/// because tokens are compared against it.
pub(super) fn issuer_url(key: &'static str, raw: &str) -> Result<String, AuthConfigErrorKind> {
    let value = raw.trim();
    let invalid = |reason: &str, fix: &'static str| AuthConfigErrorKind::InvalidUrl {
        key,
        value: value.to_owned(),
        reason: reason.to_owned(),
        fix,
    };
    if value.is_empty() {
        return Err(invalid(
            "it is empty",
            "give the issuer URL, like https://verb-noun-00.clerk.accounts.dev",
        ));
    }
    if value.starts_with('"') || value.starts_with('\'') {
        return Err(invalid(
            "it is wrapped in extra quotes",
            "remove the inner quotes",
        ));
    }
    let with_scheme = if value.contains("://") {
        value.to_owned()
    } else {
        let host = value.split(['/', ':']).next().unwrap_or_default();
        if !host.contains('.') && !host.eq_ignore_ascii_case("localhost") {
            return Err(invalid(
                "it does not look like a URL (no scheme, and the host has no dot)",
                "write it as https://your-issuer.example",
            ));
        }
        format!("https://{value}")
    };
    let url = Url::parse(&with_scheme).map_err(|e| invalid(&e.to_string(), url_fix(e)))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "an issuer URL has no ?query or #fragment",
            "remove everything from the ? or # on",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "an issuer URL carries no user:password@",
            "remove the user:password@ part",
        ));
    }
    check_fetch_url(&url).map_err(|reason| AuthConfigErrorKind::InsecureUrl {
        key,
        value: value.to_owned(),
        reason,
    })?;
    Ok(with_scheme)
}

pub(super) fn jwks_source(raw: &str) -> Result<JwksSource, AuthConfigErrorKind> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(AuthConfigErrorKind::EmptyValue("jwks"));
    }
    if value.starts_with("data:") {
        const ENCODE: &str =
            "write data:application/json;base64, followed by the base64 of the JWKS JSON";
        let bad = |reason: &str, fix: &str| {
            AuthConfigErrorKind::InvalidJwksDataUri(format!("{reason}: {fix}"))
        };
        let bytes = decode_data_uri(value).map_err(|e| bad(e, ENCODE))?;
        let json: Value = serde_json::from_slice(&bytes)
            .map_err(|e| bad(&format!("the payload is not JSON ({e})"), ENCODE))?;
        let set = KeySet::from_jwks_json(&json)
            .map_err(|e| bad(&e.to_string(), "encode a document like {\"keys\": [...]}"))?;
        if set.is_empty() {
            let reasons: Vec<String> = set.skipped().iter().map(|s| s.reason.clone()).collect();
            let reason = format!(
                "it holds no usable RS256/ES256 key ({})",
                if reasons.is_empty() {
                    "the key list is empty".to_owned()
                } else {
                    reasons.join("; ")
                }
            );
            return Err(bad(
                &reason,
                "include the issuer's public RSA (2048 bits or more) or P-256 key",
            ));
        }
        return Ok(JwksSource::DataUri(json));
    }
    if value.contains("://") {
        let url = Url::parse(value).map_err(|e| AuthConfigErrorKind::InvalidUrl {
            key: "jwks",
            value: value.to_owned(),
            reason: e.to_string(),
            fix: url_fix(e),
        })?;
        check_fetch_url(&url).map_err(|reason| AuthConfigErrorKind::InsecureUrl {
            key: "jwks",
            value: value.to_owned(),
            reason,
        })?;
        return Ok(JwksSource::Url(url));
    }
    Ok(JwksSource::File(PathBuf::from(value)))
}

/// How to repair a URL the parser refused; the parser's own message says only what is wrong.
fn url_fix(error: url::ParseError) -> &'static str {
    use url::ParseError as E;
    match error {
        E::InvalidPort => {
            "the port after the host must be a number from 1 to 65535, like https://your-issuer.example:8443, or left out"
        }
        E::EmptyHost => {
            "put the host name right after the scheme, like https://your-issuer.example"
        }
        E::InvalidDomainCharacter | E::IdnaError => {
            "the host name may hold only letters, digits, '-' and '.': remove spaces and other characters"
        }
        E::InvalidIpv4Address => {
            "write the IP address as four numbers 0-255, like http://127.0.0.1:3210"
        }
        E::InvalidIpv6Address => "write an IPv6 address in brackets, like http://[::1]:3210",
        _ => "write the full URL, like https://your-issuer.example/optional/path",
    }
}
