//! Provider key sets: a JWKS document turned into the public keys we will verify with.
//!
//! The one thing to know: **a key decides its own algorithm**. An RSA key verifies RS256
//! and nothing else, a P-256 key verifies ES256 and nothing else, and keys we cannot use
//! safely (symmetric `oct` keys, encryption keys, RSA under 2048 bits, other curves or
//! algorithms) are skipped with a reason instead of failing the whole set, because real
//! issuers publish mixed sets. The token's header never chooses how a key is used.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use jsonwebtoken::DecodingKey;
use serde_json::Value;

/// Smallest RSA modulus we accept, in bits (NIST's floor for RSA signatures).
pub const MIN_RSA_BITS: usize = 2048;

/// The signature algorithms Pulsebase accepts: one per key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256, for RSA keys.
    Rs256,
    /// ECDSA on P-256 with SHA-256, for EC keys.
    Es256,
}

impl KeyAlgorithm {
    /// The JOSE name (`"RS256"` / `"ES256"`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Rs256 => "RS256",
            KeyAlgorithm::Es256 => "ES256",
        }
    }

    /// Parses a JOSE `alg` name; anything but RS256/ES256 is `None`.
    pub fn from_jose(name: &str) -> Option<KeyAlgorithm> {
        match name {
            "RS256" => Some(KeyAlgorithm::Rs256),
            "ES256" => Some(KeyAlgorithm::Es256),
            _ => None,
        }
    }

    pub(crate) fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            KeyAlgorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
            KeyAlgorithm::Es256 => jsonwebtoken::Algorithm::ES256,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One usable public key from a JWKS.
#[derive(Clone)]
pub struct VerificationKey {
    kid: Option<String>,
    algorithm: KeyAlgorithm,
    /// The key as `jsonwebtoken` verifies with it, built once when the set is loaded.
    decoding: DecodingKey,
    jwk: Value,
}

impl VerificationKey {
    /// The key id (`kid`), when the JWK has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The only algorithm this key verifies.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The JWK as published (public parameters only).
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

impl PartialEq for VerificationKey {
    fn eq(&self, other: &Self) -> bool {
        self.jwk == other.jwk
    }
}

/// A JWK we did not take, and why (shown by `pulsebase auth check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// The key's `kid`, if any.
    pub kid: Option<String>,
    /// Why it cannot be used.
    pub reason: String,
}

/// The usable keys of one provider.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
    skipped: Vec<SkippedKey>,
}

/// A document that is not a JWKS at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    /// The bytes are not JSON.
    #[error("the JWKS is not valid JSON: {0}")]
    NotJson(String),
    /// JSON, but without a `keys` array.
    #[error("the JWKS must be a JSON object with a \"keys\" array")]
    NotAJwks,
}

impl KeySet {
    /// Parses JWKS bytes (`{"keys": [...]}`).
    pub fn from_jwks_bytes(bytes: &[u8]) -> Result<KeySet, KeySetError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| KeySetError::NotJson(e.to_string()))?;
        KeySet::from_jwks_json(&value)
    }

    /// Builds the key set from a parsed JWKS document; unusable keys land in [`KeySet::skipped`].
    pub fn from_jwks_json(jwks: &Value) -> Result<KeySet, KeySetError> {
        let list = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(KeySetError::NotAJwks)?;
        let mut set = KeySet::default();
        for jwk in list {
            let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
            match parse_jwk(jwk) {
                Ok((algorithm, decoding)) => set.keys.push(VerificationKey {
                    kid,
                    algorithm,
                    decoding,
                    jwk: public_part(jwk),
                }),
                Err(reason) => set.skipped.push(SkippedKey { kid, reason }),
            }
        }
        Ok(set)
    }

    /// The usable keys, in publication order.
    pub fn keys(&self) -> &[VerificationKey] {
        &self.keys
    }

    /// The keys we skipped and why.
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }

    /// True when no key is usable.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The key with this `kid`, if any.
    pub fn find(&self, kid: &str) -> Option<&VerificationKey> {
        self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
    }

    /// The `kid`s of the usable keys (for error messages).
    pub fn kids(&self) -> Vec<String> {
        self.keys.iter().filter_map(|k| k.kid.clone()).collect()
    }
}

/// Keeps only the public members of a JWK, so a JWKS that (wrongly) includes private
/// parameters never has them copied around or printed.
fn public_part(jwk: &Value) -> Value {
    const PUBLIC: [&str; 9] = ["kty", "kid", "alg", "use", "n", "e", "crv", "x", "y"];
    let mut out = serde_json::Map::new();
    if let Some(obj) = jwk.as_object() {
        for (k, v) in obj {
            if PUBLIC.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

fn parse_jwk(jwk: &Value) -> Result<(KeyAlgorithm, DecodingKey), String> {
    let field = |name: &str| jwk.get(name).and_then(Value::as_str);
    if !jwk.is_object() {
        return Err("not a JSON object".into());
    }
    if let Some(usage) = field("use")
        && usage != "sig"
    {
        return Err(format!("\"use\" is \"{usage}\", not \"sig\""));
    }
    let declared = field("alg");
    match field("kty") {
        Some("RSA") => {
            if let Some(alg) = declared
                && alg != "RS256"
            {
                return Err(format!("RSA key for \"{alg}\"; only RS256 is supported"));
            }
            let (Some(n), Some(e)) = (field("n"), field("e")) else {
                return Err("RSA key without \"n\"/\"e\"".into());
            };
            let modulus = URL_SAFE_NO_PAD
                .decode(n)
                .map_err(|_| "RSA \"n\" is not base64url".to_string())?;
            let bits = significant_bits(&modulus);
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "RSA key of {bits} bits; at least {MIN_RSA_BITS} are required"
                ));
            }
            let exponent = URL_SAFE_NO_PAD
                .decode(e)
                .map_err(|_| "RSA \"e\" is not base64url".to_string())?;
            Ok((
                KeyAlgorithm::Rs256,
                DecodingKey::from_rsa_raw_components(&modulus, &exponent),
            ))
        }
        Some("EC") => {
            if let Some(alg) = declared
                && alg != "ES256"
            {
                return Err(format!("EC key for \"{alg}\"; only ES256 is supported"));
            }
            if field("crv") != Some("P-256") {
                return Err("EC key not on curve P-256".into());
            }
            let (Some(x), Some(y)) = (field("x"), field("y")) else {
                return Err("EC key without \"x\"/\"y\"".into());
            };
            check_p256_point(x, y)?;
            let decoding = DecodingKey::from_ec_components(x, y)
                .map_err(|_| "EC coordinates are not base64url".to_string())?;
            Ok((KeyAlgorithm::Es256, decoding))
        }
        Some("oct") => Err("symmetric (oct) keys are never accepted".into()),
        Some(other) => Err(format!("key type \"{other}\" is not supported")),
        None => Err("no \"kty\"".into()),
    }
}

/// Rejects coordinates that are not a point on P-256 now, instead of at every verification.
fn check_p256_point(x: &str, y: &str) -> Result<(), String> {
    let bad = || "EC coordinates are not a P-256 point".to_string();
    let x = URL_SAFE_NO_PAD.decode(x).map_err(|_| bad())?;
    let y = URL_SAFE_NO_PAD.decode(y).map_err(|_| bad())?;
    if x.len() != 32 || y.len() != 32 {
        return Err(bad());
    }
    let mut sec1 = Vec::with_capacity(65);
    sec1.push(0x04);
    sec1.extend_from_slice(&x);
    sec1.extend_from_slice(&y);
    // aws-lc (jsonwebtoken's backend) parses the point, which checks that it is on the curve.
    aws_lc_rs::signature::ParsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        &sec1,
    )
    .map_err(|_| bad())?;
    Ok(())
}

fn significant_bits(big_endian: &[u8]) -> usize {
    let mut bytes = big_endian.iter().skip_while(|b| **b == 0);
    match bytes.next() {
        Some(first) => (8 - first.leading_zeros() as usize) + 8 * bytes.count(),
        None => 0,
    }
}

/// Decodes a `data:` URI (RFC 2397) to its bytes; the MIME type is ignored, as Convex does.
pub fn decode_data_uri(uri: &str) -> Result<Vec<u8>, &'static str> {
    let rest = uri
        .strip_prefix("data:")
        .ok_or("a data URI starts with \"data:\"")?;
    let (meta, payload) = rest
        .split_once(',')
        .ok_or("a data URI needs a comma before its payload")?;
    if meta.split(';').any(|p| p.eq_ignore_ascii_case("base64")) {
        let compact: String = payload.chars().filter(|c| !c.is_whitespace()).collect();
        STANDARD
            .decode(&compact)
            .or_else(|_| URL_SAFE.decode(&compact))
            .or_else(|_| URL_SAFE_NO_PAD.decode(compact.trim_end_matches('=')))
            .map_err(|_| "the data URI payload is not valid base64")
    } else {
        percent_decode(payload).ok_or("the data URI payload has a bad %-escape")
    }
}

/// `%XX` escapes decoded. `percent-encoding` passes a malformed escape through as text; a
/// key set with one is more likely a broken URI than JSON that means it, so it is refused.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let well_formed = bytes.iter().enumerate().all(|(i, b)| {
        *b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    well_formed.then(|| percent_encoding::percent_decode(bytes).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn skips_unusable_keys_with_reasons() {
        let jwks = json!({"keys": [
            {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "small", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "AA"},
        ]});
        let set = KeySet::from_jwks_json(&jwks).unwrap();
        assert!(set.is_empty());
        assert_eq!(set.skipped().len(), 5);
        assert!(set.skipped()[0].reason.contains("symmetric"));
        assert!(set.skipped()[1].reason.contains("2048"));
    }

    #[test]
    fn ec_points_off_the_curve_are_skipped() {
        let coordinate = |byte: u8| URL_SAFE_NO_PAD.encode([byte; 32]);
        let jwks = json!({"keys": [
            {"kty": "EC", "kid": "off", "crv": "P-256", "x": coordinate(1), "y": coordinate(2)},
            {"kty": "EC", "kid": "short", "crv": "P-256", "x": "AQ", "y": "Ag"},
        ]});
        let set = KeySet::from_jwks_json(&jwks).unwrap();
        assert!(set.is_empty());
        for skipped in set.skipped() {
            assert_eq!(skipped.reason, "EC coordinates are not a P-256 point");
        }
    }

    #[test]
    fn rejects_non_jwks() {
        assert_eq!(
            KeySet::from_jwks_json(&json!({"foo": 1})),
            Err(KeySetError::NotAJwks)
        );
        assert!(matches!(
            KeySet::from_jwks_bytes(b"<html>"),
            Err(KeySetError::NotJson(_))
        ));
    }

    #[test]
    fn data_uri_forms() {
        assert_eq!(
            decode_data_uri("data:text/plain;charset=utf-8;base64,eyJrZXlzIjpbXX0=").unwrap(),
            br#"{"keys":[]}"#
        );
        assert_eq!(
            decode_data_uri("data:application/json,%7B%22keys%22%3A%5B%5D%7D").unwrap(),
            br#"{"keys":[]}"#
        );
        assert!(decode_data_uri("data:;base64,!!!").is_err());
        assert_eq!(
            decode_data_uri("data:,%7Bok%7d").unwrap(),
            b"{ok}",
            "escapes in either case"
        );
        for bad in ["data:,%", "data:,%7", "data:,%zz", "data:,50%off"] {
            assert_eq!(
                decode_data_uri(bad),
                Err("the data URI payload has a bad %-escape"),
                "{bad}"
            );
        }
        assert!(decode_data_uri("data:nocomma").is_err());
    }

    #[test]
    fn bit_count() {
        assert_eq!(significant_bits(&[0, 0x80, 0]), 16);
        assert_eq!(significant_bits(&[1]), 1);
        assert_eq!(significant_bits(&[]), 0);
    }
}
