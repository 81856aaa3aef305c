//! Reading a compact JWS without trusting it: size cap, the three parts, header and claims.
//!
//! Everything here is untrusted until `verify` checks the signature; it exists so provider
//! selection and `pulsebase auth check` can look at `iss`/`aud`/`kid` first. The size cap is
//! checked before anything else so a megabyte of garbage costs one comparison.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::rejection::{TokenRejection, shown};

/// Largest token we look at. Clerk tokens are ~1 KiB; 16 KiB leaves room for fat custom
/// claims while keeping a flood of huge tokens cheap to refuse.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A token split and decoded, signature not yet checked.
#[derive(Debug, Clone)]
pub struct ParsedToken<'a> {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    signing_input: &'a str,
    signature: &'a str,
}

/// Refuses tokens over [`MAX_TOKEN_BYTES`].
pub fn check_size(token: &str) -> Result<(), TokenRejection> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenRejection::TooLarge {
            size: token.len(),
            max: MAX_TOKEN_BYTES,
        });
    }
    Ok(())
}

impl<'a> ParsedToken<'a> {
    /// Splits and decodes `token` (no signature check).
    pub fn parse(token: &'a str) -> Result<ParsedToken<'a>, TokenRejection> {
        check_size(token)?;
        let malformed = |reason| TokenRejection::Malformed { reason };
        if token.is_empty() {
            return Err(malformed("the token is empty"));
        }
        if !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(malformed(
                "it contains characters other than base64url and dots",
            ));
        }
        let parts: Vec<&str> = token.split('.').collect();
        match parts.len() {
            3 => {}
            5 => return Err(malformed("encrypted tokens (JWE) are not supported")),
            _ => return Err(malformed("a JWT has three dot-separated parts")),
        }
        let header = decode_object(parts[0])
            .ok_or(malformed("the header is not base64url-encoded JSON object"))?;
        let claims = decode_object(parts[1]).ok_or(malformed(
            "the payload is not base64url-encoded JSON object",
        ))?;
        if header.contains_key("crit") {
            return Err(malformed(
                "the header has a `crit` parameter, which we do not implement",
            ));
        }
        let signing_input = &token[..parts[0].len() + 1 + parts[1].len()];
        Ok(ParsedToken {
            header,
            claims,
            signing_input,
            signature: parts[2],
        })
    }

    /// The JOSE header.
    pub fn header(&self) -> &Map<String, Value> {
        &self.header
    }

    /// The claims (payload).
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// The header's `alg`, when it is a string.
    pub fn alg(&self) -> Option<&str> {
        self.header.get("alg").and_then(Value::as_str)
    }

    /// The header's `kid`; a non-string kid is malformed.
    pub fn kid(&self) -> Result<Option<&str>, TokenRejection> {
        match self.header.get("kid") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(kid)) => Ok(Some(kid)),
            Some(_) => Err(TokenRejection::Malformed {
                reason: "the header's kid is not a string",
            }),
        }
    }

    /// The `iss` claim.
    pub fn issuer(&self) -> Result<&str, TokenRejection> {
        string_claim(&self.claims, "iss")
    }

    /// The `aud` claim as a list (a single string counts as one); absent = empty.
    pub fn audiences(&self) -> Result<Vec<String>, TokenRejection> {
        let bad = TokenRejection::InvalidClaim {
            name: "aud",
            reason: "must be a string or an array of strings",
        };
        match self.claims.get("aud") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(a)) => Ok(vec![a.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or(bad.clone()))
                .collect(),
            Some(_) => Err(bad),
        }
    }

    pub(crate) fn signing_input(&self) -> &str {
        self.signing_input
    }

    pub(crate) fn signature(&self) -> &str {
        self.signature
    }
}

/// A required string claim.
pub(crate) fn string_claim<'m>(
    claims: &'m Map<String, Value>,
    name: &'static str,
) -> Result<&'m str, TokenRejection> {
    match claims.get(name) {
        None | Some(Value::Null) => Err(TokenRejection::MissingClaim(name)),
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(TokenRejection::MissingClaim(name)),
        Some(_) => Err(TokenRejection::InvalidClaim {
            name,
            reason: "must be a string",
        }),
    }
}

/// The last second of year 9999 (9999-12-31T23:59:59Z): the largest NumericDate we read.
/// Anything later cannot be printed as a date, and arithmetic on it elsewhere (adding a
/// lifetime, converting to `i64` milliseconds or an `Instant`) would overflow.
pub const MAX_NUMERIC_DATE: u64 = 253_402_300_799;

/// An optional NumericDate claim (seconds; fractions are floored), at most [`MAX_NUMERIC_DATE`].
pub(crate) fn time_claim(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<u64>, TokenRejection> {
    let invalid = TokenRejection::InvalidClaim {
        name,
        reason: "must be a non-negative number of seconds",
    };
    let secs = match claims.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(secs), _) => secs,
            // `as` saturates, so 1e300 becomes u64::MAX and is refused by the bound below.
            (None, Some(f)) if f.is_finite() && f >= 0.0 => f.floor() as u64,
            _ => return Err(invalid),
        },
        Some(_) => return Err(invalid),
    };
    if secs > MAX_NUMERIC_DATE {
        return Err(TokenRejection::InvalidClaim {
            name,
            reason: "must be seconds since 1970 up to the year 9999; this is later (milliseconds by mistake?)",
        });
    }
    Ok(Some(secs))
}

/// Escaped, length-capped copy of an untrusted string claim for messages.
pub(crate) fn shown_claim(claims: &Map<String, Value>, name: &str) -> String {
    match claims.get(name) {
        Some(Value::String(s)) => shown(s),
        Some(other) => shown(&other.to_string()),
        None => String::new(),
    }
}

fn decode_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn parses_three_parts() {
        let token = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"RS256","kid":"k"}"#),
            b64(r#"{"iss":"https://a","aud":["x","y"]}"#)
        );
        let parsed = ParsedToken::parse(&token).unwrap();
        assert_eq!(parsed.alg(), Some("RS256"));
        assert_eq!(parsed.kid().unwrap(), Some("k"));
        assert_eq!(parsed.issuer().unwrap(), "https://a");
        assert_eq!(parsed.audiences().unwrap(), vec!["x", "y"]);
        assert!(
            parsed
                .signing_input()
                .ends_with(&b64(r#"{"iss":"https://a","aud":["x","y"]}"#))
        );
    }

    #[test]
    fn malformed_shapes() {
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "a.b.c.d.e",
            "a b.c.d",
            "e30.bm90anNvbg.x",
        ] {
            assert!(
                matches!(
                    ParsedToken::parse(bad),
                    Err(TokenRejection::Malformed { .. })
                ),
                "{bad}"
            );
        }
        let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert!(matches!(
            ParsedToken::parse(&huge),
            Err(TokenRejection::TooLarge { .. })
        ));
    }

    #[test]
    fn time_claims() {
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"a":10,"b":10.7,"c":-1,"d":"x"}"#).unwrap();
        assert_eq!(time_claim(&claims, "a").unwrap(), Some(10));
        assert_eq!(time_claim(&claims, "b").unwrap(), Some(10));
        assert!(time_claim(&claims, "c").is_err());
        assert!(time_claim(&claims, "d").is_err());
        assert_eq!(time_claim(&claims, "e").unwrap(), None);
    }

    #[test]
    fn absurd_times_are_invalid_not_wrapped() {
        let claims: Map<String, Value> = serde_json::from_str(
            r#"{"max":253402300799,"over":253402300800,"u64":18446744073709551615,
                "huge":1.8e19,"float_over":253402300800.5,"inf":1e308,"ms":1700000000000000}"#,
        )
        .unwrap();
        assert_eq!(time_claim(&claims, "max").unwrap(), Some(MAX_NUMERIC_DATE));
        for name in ["over", "u64", "huge", "float_over", "inf", "ms"] {
            assert!(
                matches!(
                    time_claim(&claims, name),
                    Err(TokenRejection::InvalidClaim { reason, .. }) if reason.contains("year 9999")
                ),
                "{name}"
            );
        }
    }
}
