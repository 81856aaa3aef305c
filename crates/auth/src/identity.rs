//! `Identity`: Convex's `UserIdentity`, built from verified claims.
//!
//! Two mappings, as Convex's own backend makes them: OIDC providers (Clerk, the dev issuer) get
//! the standard claims renamed to camelCase and custom claims kept nested; customJwt
//! providers get no renaming and nested objects flattened to dotted keys. Claims that change
//! on every refresh (`exp`, `iat`, `nbf`, `jti`, `fva`, ...) are dropped, so an identity — and
//! its [`Identity::cache_key`], which query caches use — stays the same across token refreshes.

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::provider::ClaimMapping;
use crate::rejection::TokenRejection;
use crate::token::string_claim;

/// The fields every identity has.
pub const SUBJECT: &str = "subject";
/// See [`SUBJECT`].
pub const ISSUER: &str = "issuer";
/// See [`SUBJECT`].
pub const TOKEN_IDENTIFIER: &str = "tokenIdentifier";

/// OIDC standard claims and the camelCase name Convex gives each.
const STANDARD_CLAIMS: [(&str, &str); 18] = [
    ("name", "name"),
    ("given_name", "givenName"),
    ("family_name", "familyName"),
    ("nickname", "nickname"),
    ("preferred_username", "preferredUsername"),
    ("profile", "profileUrl"),
    ("picture", "pictureUrl"),
    ("website", "websiteUrl"),
    ("email", "email"),
    ("email_verified", "emailVerified"),
    ("gender", "gender"),
    ("birthdate", "birthday"),
    ("zoneinfo", "timezone"),
    ("locale", "language"),
    ("phone_number", "phoneNumber"),
    ("phone_number_verified", "phoneNumberVerified"),
    ("address", "address"),
    ("updated_at", "updatedAt"),
];

/// Claims consumed by the OIDC ID-token structure or dropped as per-refresh noise. `birthday`
/// is swallowed by Convex's OIDC library, so it is dropped here too.
const OIDC_DROPPED: [&str; 16] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "azp",
    "at_hash",
    "c_hash",
    "fva",
    "birthday",
];

/// Registered claims a customJwt identity leaves out.
const CUSTOM_JWT_DROPPED: [&str; 8] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "fva"];

/// A verified user's identity, shared cheaply (`Arc`) between sessions and caches.
#[derive(Clone, PartialEq)]
pub struct Identity(Arc<Map<String, Value>>);

/// A stable 256-bit digest of an identity's claims.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityCacheKey(pub [u8; 32]);

/// A JSON object that is not a usable identity (for `--identity` and admin calls).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an identity needs string fields `subject`, `issuer` and `tokenIdentifier`")]
pub struct IdentityShapeError;

impl Identity {
    /// Builds the identity from verified claims with the provider's mapping.
    pub fn from_claims(
        claims: &Map<String, Value>,
        mapping: ClaimMapping,
    ) -> Result<Identity, TokenRejection> {
        let iss = string_claim(claims, "iss")?;
        let sub = string_claim(claims, "sub")?;
        let mut out = Map::new();
        out.insert(
            TOKEN_IDENTIFIER.into(),
            Value::String(format!("{iss}|{sub}")),
        );
        out.insert(ISSUER.into(), Value::String(iss.to_owned()));
        out.insert(SUBJECT.into(), Value::String(sub.to_owned()));
        match mapping {
            ClaimMapping::Oidc => map_oidc(claims, &mut out),
            ClaimMapping::CustomJwt => map_custom_jwt(claims, &mut out),
        }
        Ok(Identity(Arc::new(out)))
    }

    /// Accepts an identity given as JSON (e.g. `pulsebase run --identity`), checking the core fields.
    pub fn from_map(map: Map<String, Value>) -> Result<Identity, IdentityShapeError> {
        for field in [SUBJECT, ISSUER, TOKEN_IDENTIFIER] {
            if !map.get(field).is_some_and(Value::is_string) {
                return Err(IdentityShapeError);
            }
        }
        Ok(Identity(Arc::new(map)))
    }

    /// `sub`.
    pub fn subject(&self) -> &str {
        self.str_field(SUBJECT)
    }

    /// `iss`, verbatim from the token.
    pub fn issuer(&self) -> &str {
        self.str_field(ISSUER)
    }

    /// `iss + "|" + sub`: the stable user key apps index on.
    pub fn token_identifier(&self) -> &str {
        self.str_field(TOKEN_IDENTIFIER)
    }

    /// Any field (`email`, `pictureUrl`, a custom claim...).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// All fields, as `ctx.auth.getUserIdentity()` returns them.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The identity as a JSON object.
    pub fn to_json(&self) -> Value {
        Value::Object((*self.0).clone())
    }

    /// Same claims → same key, whatever their order; times never enter (they are not fields).
    pub fn cache_key(&self) -> IdentityCacheKey {
        let mut canonical = Vec::with_capacity(256);
        write_canonical(&Value::Object((*self.0).clone()), &mut canonical);
        IdentityCacheKey(Sha256::digest(&canonical).into())
    }

    fn str_field(&self, key: &str) -> &str {
        self.0.get(key).and_then(Value::as_str).unwrap_or_default()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Identity").field(&*self.0).finish()
    }
}

impl Serialize for Identity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl fmt::Display for IdentityCacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for IdentityCacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityCacheKey({self})")
    }
}

fn is_reserved(key: &str) -> bool {
    // A token must never be able to set its own tokenIdentifier through a custom claim.
    matches!(key, SUBJECT | ISSUER | TOKEN_IDENTIFIER)
}

fn map_oidc(claims: &Map<String, Value>, out: &mut Map<String, Value>) {
    for (claim, field) in STANDARD_CLAIMS {
        if let Some(value) = claims.get(claim).and_then(|v| standard_value(claim, v)) {
            out.insert(field.into(), value);
        }
    }
    for (key, value) in claims {
        let base = key.split('#').next().unwrap_or(key);
        let is_standard = STANDARD_CLAIMS.iter().any(|(c, _)| *c == base);
        if is_standard || OIDC_DROPPED.contains(&key.as_str()) || is_reserved(key) {
            continue;
        }
        if !out.contains_key(key) {
            out.insert(key.clone(), value.clone());
        }
    }
}

/// Converts a standard claim to Convex's type; `None` (omitted) for null or unusable values.
fn standard_value(claim: &str, value: &Value) -> Option<Value> {
    match (claim, value) {
        (_, Value::Null) => None,
        ("email_verified" | "phone_number_verified", Value::Bool(b)) => Some(Value::Bool(*b)),
        ("email_verified" | "phone_number_verified", Value::String(s)) => match s.as_str() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        ("email_verified" | "phone_number_verified", _) => None,
        ("address", Value::Object(addr)) => addr
            .get("formatted")
            .and_then(Value::as_str)
            .map(|s| Value::String(s.to_owned())),
        ("address", Value::String(s)) => Some(Value::String(s.clone())),
        ("updated_at", Value::Number(n)) => {
            let secs = n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f.floor() as i64))?;
            Some(Value::String(rfc3339(secs)))
        }
        ("updated_at", Value::String(s)) => Some(Value::String(s.clone())),
        (_, Value::String(s)) => Some(Value::String(s.clone())),
        _ => None,
    }
}

fn map_custom_jwt(claims: &Map<String, Value>, out: &mut Map<String, Value>) {
    for (key, value) in claims {
        if CUSTOM_JWT_DROPPED.contains(&key.as_str()) {
            continue;
        }
        flatten_into(key, value, out);
    }
}

fn flatten_into(prefix: &str, value: &Value, out: &mut Map<String, Value>) {
    match value {
        Value::Object(inner) => {
            for (k, v) in inner {
                flatten_into(&format!("{prefix}.{k}"), v, out);
            }
        }
        _ => {
            if !is_reserved(prefix) {
                out.insert(prefix.to_owned(), value.clone());
            }
        }
    }
}

/// Unix seconds → RFC 3339 with `+00:00`, as chrono's `to_rfc3339()` prints it.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+00:00",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days → (year, month, day) for the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// JSON with object keys sorted at every level, so equal claim sets hash equally.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(&Value::String((*key).clone()), out);
                out.push(b':');
                if let Some(v) = map.get(*key) {
                    write_canonical(v, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn oidc_mapping_matches_convex() {
        let c = claims(json!({
            "iss": "https://verb-noun-00.clerk.accounts.dev", "sub": "user_2abc",
            "aud": "convex", "exp": 2, "iat": 1, "nbf": 1, "jti": "j", "azp": "x", "fva": [1, -1],
            "name": "Maria Doe", "given_name": "Maria", "family_name": "Doe", "nickname": "maria",
            "picture": "https://img/x.png", "email": "maria@example.com", "email_verified": true,
            "phone_number_verified": "false", "updated_at": 1_700_000_000,
            "address": {"formatted": "1 Main St"}, "birthdate": "2000-01-01", "zoneinfo": "Europe/Paris",
            "locale": "fr", "name#fr": "Marie", "birthday": "x", "phone_number": null,
            "public_metadata": {"role": "admin"}, "sid": "sess_1",
            "tokenIdentifier": "forged|x"
        }));
        let id = Identity::from_claims(&c, ClaimMapping::Oidc).unwrap();
        let expected = json!({
            "tokenIdentifier": "https://verb-noun-00.clerk.accounts.dev|user_2abc",
            "issuer": "https://verb-noun-00.clerk.accounts.dev",
            "subject": "user_2abc",
            "name": "Maria Doe", "givenName": "Maria", "familyName": "Doe", "nickname": "maria",
            "pictureUrl": "https://img/x.png", "email": "maria@example.com", "emailVerified": true,
            "birthday": "2000-01-01", "timezone": "Europe/Paris", "language": "fr",
            "phoneNumberVerified": false, "address": "1 Main St",
            "updatedAt": "2023-11-14T22:13:20+00:00",
            "public_metadata": {"role": "admin"}, "sid": "sess_1"
        });
        assert_eq!(id.to_json(), expected);
        assert_eq!(
            id.token_identifier(),
            "https://verb-noun-00.clerk.accounts.dev|user_2abc"
        );
    }

    #[test]
    fn custom_jwt_flattens_and_keeps_names() {
        let c = claims(json!({
            "iss": "https://i.example", "sub": "u1", "aud": ["a"], "exp": 2, "iat": 1, "jti": "j",
            "given_name": "Ann", "azp": "web", "properties": {"id": "123", "deep": {"x": [1]}},
            "nothing": null
        }));
        let id = Identity::from_claims(&c, ClaimMapping::CustomJwt).unwrap();
        assert_eq!(
            id.to_json(),
            json!({
                "tokenIdentifier": "https://i.example|u1", "issuer": "https://i.example",
                "subject": "u1", "given_name": "Ann", "azp": "web", "properties.id": "123",
                "properties.deep.x": [1], "nothing": null
            })
        );
    }

    #[test]
    fn cache_key_ignores_order_and_times() {
        let a = claims(
            json!({"iss": "i", "sub": "s", "exp": 10, "iat": 1, "x": {"b": 1, "a": 2}, "y": 1}),
        );
        let b = claims(
            json!({"y": 1, "exp": 99, "iat": 50, "x": {"a": 2, "b": 1}, "sub": "s", "iss": "i"}),
        );
        let c = claims(json!({"iss": "i", "sub": "s", "exp": 10, "x": {"a": 2, "b": 1}, "y": 2}));
        let key = |c| {
            Identity::from_claims(c, ClaimMapping::Oidc)
                .unwrap()
                .cache_key()
        };
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
        assert_eq!(key(&a).to_string().len(), 64);
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20+00:00");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00+00:00");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59+00:00");
    }

    #[test]
    fn identity_from_map_requires_core_fields() {
        assert!(Identity::from_map(claims(json!({"subject": "s"}))).is_err());
        let ok = Identity::from_map(claims(
            json!({"subject": "s", "issuer": "i", "tokenIdentifier": "i|s"}),
        ))
        .unwrap();
        assert_eq!(ok.subject(), "s");
    }
}
