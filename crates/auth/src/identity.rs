//! [`Identity`]: the one type for a user's identity, from a verified token (or an admin's
//! acting-as object) to the function that reads `ctx.auth.getUserIdentity()`.
//!
//! Two ways in: [`Identity::from_claims`] maps a verified token's claims (see `claims.rs`),
//! [`Identity::acting_as`] accepts the object an admin acts as (`Authorization: Convex
//! <key>:<identity>` or `Authenticate{impersonating}`) under Convex's rule: `tokenIdentifier`
//! given, or made of `issuer` and `subject`. Both build the fields once, the document form the
//! functions see ([`Identity::value`]) and the [`IdentityCacheKey`] that decides which cached
//! query results the identity may share; clones share them through an `Arc`.

mod claims;

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::provider::ClaimMapping;
use crate::rejection::TokenRejection;
use crate::token::string_claim;

pub use claims::{ISSUER, SUBJECT, TOKEN_IDENTIFIER, rfc3339};

/// A user's identity, shared cheaply (`Arc`) between sessions, caches and function calls.
#[derive(Clone)]
pub struct Identity(Arc<Fields>);

struct Fields {
    /// The UserIdentity object as JSON.
    claims: Map<String, Value>,
    /// The same object as a document value, as `ctx.auth.getUserIdentity()` returns it.
    value: value::Value,
    key: IdentityCacheKey,
}

/// A stable 256-bit digest of an identity's fields: same fields, same key, whatever their
/// order; time claims never enter (they are not fields), so a token refresh keeps the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityCacheKey(pub [u8; 32]);

/// Why an object is not an identity an admin may act as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityShapeError {
    #[error(
        "the identity to act as must be a JSON object, like {{\"subject\":\"user_1\",\"issuer\":\"https://example.com\"}}"
    )]
    NotAnObject,
    #[error("the identity's `{0}` must be a string")]
    NotAString(&'static str),
    #[error(
        "the identity to act as needs `tokenIdentifier`, or `issuer` and `subject` to make it from"
    )]
    NoTokenIdentifier,
}

impl Identity {
    /// Builds the identity of a verified token from its claims with the provider's mapping.
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
        claims::map_claims(claims, mapping, &mut out);
        Ok(Identity::new(out))
    }

    /// The identity an admin acts as, from its UserIdentity object. As in Convex, a missing
    /// `tokenIdentifier` is made of `issuer` and `subject` (`issuer|subject`, a verified
    /// token's form); without either, the object is refused.
    pub fn acting_as(object: &Value) -> Result<Identity, IdentityShapeError> {
        let mut fields = object
            .as_object()
            .cloned()
            .ok_or(IdentityShapeError::NotAnObject)?;
        for name in [TOKEN_IDENTIFIER, ISSUER, SUBJECT] {
            if fields.get(name).is_some_and(|v| !v.is_string()) {
                return Err(IdentityShapeError::NotAString(name));
            }
        }
        if !fields.contains_key(TOKEN_IDENTIFIER) {
            let made = match (fields.get(ISSUER), fields.get(SUBJECT)) {
                (Some(Value::String(iss)), Some(Value::String(sub))) => format!("{iss}|{sub}"),
                _ => return Err(IdentityShapeError::NoTokenIdentifier),
            };
            fields.insert(TOKEN_IDENTIFIER.into(), Value::String(made));
        }
        Ok(Identity::new(fields))
    }

    /// Keeps the fields a client can decode (a field name must be printable ASCII and must not
    /// start with `$`; a value must be convex JSON) and computes the value and key once.
    fn new(fields: Map<String, Value>) -> Identity {
        let mut claims = Map::with_capacity(fields.len());
        let mut object = value::Object::new();
        for (name, json) in fields {
            let one = serde_json::json!({ name.clone(): json });
            // Leaving such a field out serves the user; failing the identity would not.
            if let Ok(value::Value::Object(mut decoded)) = value::Value::from_json(&one) {
                object.append(&mut decoded);
                claims.insert(name, json);
            }
        }
        let mut canonical = Vec::with_capacity(256);
        write_canonical(&Value::Object(claims.clone()), &mut canonical);
        let key = IdentityCacheKey(Sha256::digest(&canonical).into());
        Identity(Arc::new(Fields {
            claims,
            value: value::Value::Object(object),
            key,
        }))
    }

    /// `sub` (empty only for an acting-as identity given without one).
    pub fn subject(&self) -> &str {
        self.str_field(SUBJECT)
    }

    /// `iss`, verbatim from the token (empty only for an acting-as identity given without one).
    pub fn issuer(&self) -> &str {
        self.str_field(ISSUER)
    }

    /// `iss + "|" + sub`: the stable user key apps index on.
    pub fn token_identifier(&self) -> &str {
        self.str_field(TOKEN_IDENTIFIER)
    }

    /// Any field (`email`, `pictureUrl`, a custom claim...).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.claims.get(key)
    }

    /// All fields as JSON.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0.claims
    }

    /// The identity as a JSON object.
    pub fn to_json(&self) -> Value {
        Value::Object(self.0.claims.clone())
    }

    /// The identity as a document value: what `ctx.auth.getUserIdentity()` returns.
    pub fn value(&self) -> &value::Value {
        &self.0.value
    }

    /// Which cached results this identity may share (computed once).
    pub fn cache_key(&self) -> IdentityCacheKey {
        self.0.key
    }

    fn str_field(&self, key: &str) -> &str {
        self.0
            .claims
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

impl PartialEq for Identity {
    fn eq(&self, other: &Identity) -> bool {
        self.0.claims == other.0.claims
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Identity").field(&self.0.claims).finish()
    }
}

impl Serialize for Identity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.claims.serialize(serializer)
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
    fn acting_as_follows_convex_rules() {
        let shape = |v: Value| Identity::acting_as(&v);
        // issuer and subject make the tokenIdentifier, as a verified token's.
        let made = shape(json!({"subject": "s", "issuer": "i", "name": "Bo"})).unwrap();
        assert_eq!(made.token_identifier(), "i|s");
        assert_eq!(made.get("name"), Some(&json!("Bo")));
        // A given tokenIdentifier is kept, even without issuer and subject.
        let given = shape(json!({"tokenIdentifier": "t"})).unwrap();
        assert_eq!(given.token_identifier(), "t");
        assert_eq!(given.subject(), "");
        assert_eq!(
            shape(json!({"subject": "s"})).unwrap_err(),
            IdentityShapeError::NoTokenIdentifier
        );
        assert_eq!(
            shape(json!("s")).unwrap_err(),
            IdentityShapeError::NotAnObject
        );
        assert_eq!(
            shape(json!({"subject": 1, "issuer": "i"})).unwrap_err(),
            IdentityShapeError::NotAString("subject")
        );
    }

    #[test]
    fn claims_a_client_cannot_decode_are_left_out() {
        let id =
            Identity::acting_as(&json!({"subject": "s", "issuer": "i", "é": 1, "$x": 2})).unwrap();
        assert_eq!(id.as_map().len(), 3, "{id:?}");
        assert_eq!(id.value().as_object().map(|o| o.len()), Some(3));
        assert_eq!(
            id.value()
                .as_object()
                .and_then(|o| o.get("subject"))
                .and_then(|v| v.as_str()),
            Some("s")
        );
    }
}
