//! [`Identity`]: a verified user as functions see it (Convex's UserIdentity object), with the
//! key that decides which cached query results it may share.
//!
//! The key is a hash of the whole identity object, so two sessions of the same user with the
//! same claims share results, and anything that differs (another user, another role claim)
//! does not. Time-varying claims (`exp`, `iat`, `nbf`, `jti`) never reach the object, so a
//! token refresh keeps the key.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use value::{Object, Value};

/// A verified identity.
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    object: Arc<Value>,
    key: Arc<str>,
    /// Seconds since the epoch when the token that proved this identity expires.
    pub expires_at: Option<u64>,
}

impl Identity {
    /// Builds an identity from the UserIdentity JSON object. Claims whose names the client
    /// could not decode (non-ASCII, `$`-prefixed) are left out rather than failing the user.
    pub fn from_json(
        claims: &serde_json::Map<String, serde_json::Value>,
        expires_at: Option<u64>,
    ) -> Identity {
        let mut object = Object::new();
        for (name, json) in claims {
            if let Ok(Value::Object(mut one)) =
                Value::from_json(&serde_json::json!({ name.clone(): json }))
            {
                object.append(&mut one);
            }
        }
        Identity::from_object(object, expires_at)
    }

    pub fn from_object(object: Object, expires_at: Option<u64>) -> Identity {
        let value = Value::Object(object);
        let digest = Sha256::digest(value.to_json_string().as_bytes());
        let key: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        Identity {
            object: Arc::new(value),
            key: key.into(),
            expires_at,
        }
    }

    pub fn value(&self) -> &Value {
        &self.object
    }

    /// Stable across token refreshes; differs between users and between claim sets.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn subject(&self) -> Option<&str> {
        self.object.as_object()?.get("subject")?.as_str()
    }

    pub fn token_identifier(&self) -> Option<&str> {
        self.object.as_object()?.get("tokenIdentifier")?.as_str()
    }

    /// Whether the proving token has expired at `now` (seconds since the epoch).
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|exp| now >= exp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_claims() {
        let claims = |sub: &str| {
            serde_json::json!({"subject": sub, "issuer": "i"})
                .as_object()
                .cloned()
                .unwrap_or_default()
        };
        let a = Identity::from_json(&claims("a"), Some(1));
        let a_refreshed = Identity::from_json(&claims("a"), Some(99));
        let b = Identity::from_json(&claims("b"), Some(1));
        assert_eq!(a.key(), a_refreshed.key());
        assert_ne!(a.key(), b.key());
        assert_eq!(a.subject(), Some("a"));
        let odd = serde_json::json!({"subject": "a", "é": 1})
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            Identity::from_json(&odd, None)
                .value()
                .as_object()
                .map(|o| o.len()),
            Some(1)
        );
    }
}
