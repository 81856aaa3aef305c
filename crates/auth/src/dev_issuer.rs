//! The built-in dev issuer's key: mint RS256 tokens and publish the matching JWKS and
//! openid-configuration, so apps and tests authenticate end to end with no network.
//!
//! Pure: the key comes in as PEM (the `authenticator` crate stores it on disk) and the clock
//! is a parameter. `kid` is the RFC 7638 thumbprint, so the same key always has the same kid.
//! `aws-lc-rs` generates and checks the key; `jsonwebtoken` (on the same aws-lc backend)
//! reads the PEM and signs.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::keys::{KeyAlgorithm, KeySet};
use crate::provider::Provider;

/// RSA modulus size for generated dev keys ([`KeySize::Rsa2048`]).
pub const DEV_KEY_BITS: usize = 2048;

/// The audience dev tokens carry: Convex's Clerk template uses `convex`.
pub const DEV_AUDIENCE: &str = "convex";

/// Claims a dev token always sets itself: `claims` given to [`DevIssuerKey::mint`] may not
/// name them, so a dev token always has the dev issuer, the `convex` audience, the subject
/// asked for and a lifetime within the caller's bounds.
pub const RESERVED_CLAIMS: [&str; 6] = ["iss", "sub", "aud", "exp", "iat", "nbf"];

/// Why a dev key could not be loaded, made or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DevIssuerError {
    /// The PEM is not an RSA private key.
    #[error("the dev issuer key is not an RSA private key in PEM (PKCS#8): {0}")]
    BadKey(String),
    /// Key generation failed.
    #[error("could not generate the dev issuer key: {0}")]
    Generate(String),
    /// Signing failed.
    #[error("could not sign a dev token: {0}")]
    Sign(String),
    /// Extra claims tried to set a claim the issuer sets itself.
    #[error(
        "claims may not set `{0}`: the dev issuer sets iss, sub, aud, exp, iat and nbf itself (use sub and ttl)"
    )]
    ReservedClaim(String),
}

/// The dev issuer's RSA key and everything derived from it.
#[derive(Clone)]
pub struct DevIssuerKey {
    encoding: EncodingKey,
    kid: String,
    jwk: Value,
    key_set: Arc<KeySet>,
}

impl fmt::Debug for DevIssuerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevIssuerKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl DevIssuerKey {
    /// Loads a PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`) PEM.
    pub fn from_pem(pem: &str) -> Result<DevIssuerKey, DevIssuerError> {
        // jsonwebtoken reads both forms and keeps the PKCS#1 key inside; parsing that as a
        // private key refuses public keys and checks that the key is consistent.
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| DevIssuerError::BadKey(e.to_string()))?;
        let key = KeyPair::from_der(encoding.as_bytes())
            .map_err(|e| DevIssuerError::BadKey(e.to_string()))?;
        let public = key.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        // RFC 7638: SHA-256 over the required members in lexicographic order, no spaces.
        let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        let jwk = json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e});
        let key_set = KeySet::from_jwks_json(&json!({ "keys": [jwk.clone()] }))
            .map_err(|e| DevIssuerError::BadKey(e.to_string()))?;
        if key_set.len() != 1 {
            return Err(DevIssuerError::BadKey(
                "the key is not a usable RS256 key (too short?)".into(),
            ));
        }
        Ok(DevIssuerKey {
            encoding,
            kid,
            jwk,
            key_set: Arc::new(key_set),
        })
    }

    /// Generates a fresh 2048-bit key; returns it and its PKCS#8 PEM for storage.
    pub fn generate() -> Result<(DevIssuerKey, String), DevIssuerError> {
        let key = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|e| DevIssuerError::Generate(e.to_string()))?;
        let der = key
            .as_der()
            .map_err(|e| DevIssuerError::Generate(e.to_string()))?;
        let pem = pem::encode_config(
            &pem::Pem::new("PRIVATE KEY", der.as_ref()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        Ok((DevIssuerKey::from_pem(&pem)?, pem))
    }

    /// The RFC 7638 thumbprint used as `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Mints an RS256 token: `iss`, `sub`, `aud: "convex"`, `iat = nbf = now`,
    /// `exp = now + ttl_secs`, `name`/`email` when given; `extra_claims` are merged last (so
    /// they may replace `name` or `email`) but may not name a [`RESERVED_CLAIMS`] entry.
    #[allow(clippy::too_many_arguments)]
    pub fn mint(
        &self,
        issuer: &str,
        sub: &str,
        name: Option<&str>,
        email: Option<&str>,
        extra_claims: Map<String, Value>,
        ttl_secs: u64,
        now: u64,
    ) -> Result<String, DevIssuerError> {
        if let Some(reserved) = RESERVED_CLAIMS
            .iter()
            .find(|c| extra_claims.contains_key(**c))
        {
            return Err(DevIssuerError::ReservedClaim((*reserved).to_owned()));
        }
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(issuer));
        claims.insert("sub".into(), json!(sub));
        claims.insert("aud".into(), json!(DEV_AUDIENCE));
        claims.insert("iat".into(), json!(now));
        claims.insert("nbf".into(), json!(now));
        claims.insert("exp".into(), json!(now.saturating_add(ttl_secs)));
        if let Some(name) = name {
            claims.insert("name".into(), json!(name));
        }
        if let Some(email) = email {
            claims.insert("email".into(), json!(email));
        }
        claims.extend(extra_claims);
        let mut header = Header::new(KeyAlgorithm::Rs256.jwt());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| DevIssuerError::Sign(e.to_string()))
    }

    /// `{"keys": [<public JWK>]}`, served at `<issuer>/.well-known/jwks.json`.
    pub fn jwks_json(&self) -> Value {
        json!({ "keys": [self.jwk.clone()] })
    }

    /// The public keys, for a [`Provider::Builtin`].
    pub fn key_set(&self) -> Arc<KeySet> {
        Arc::clone(&self.key_set)
    }

    /// The discovery document served at `<issuer>/.well-known/openid-configuration`.
    pub fn openid_configuration(&self, issuer_url: &str) -> Value {
        openid_configuration(issuer_url)
    }

    /// A provider that trusts this key for `issuer_url` without fetching anything, and for
    /// the same path on any loopback port.
    ///
    /// Why any port: a token's `iss` is fixed when it is minted, but `pulsebase token` can
    /// run before any server (it then assumes the default port), and `dev --port 0` picks a
    /// new port on every start. The key, not the port, is what identifies this issuer, so
    /// every server holding the key accepts its tokens. The issuer served for discovery
    /// stays the real URL (`openid_configuration(issuer_url)`), so a token minted by a
    /// running server has an `iss` that OIDC clients can resolve to its JWKS.
    pub fn builtin_provider(&self, issuer_url: &str, application_id: &str) -> Provider {
        Provider::Builtin {
            issuer: issuer_url.to_owned(),
            application_id: application_id.to_owned(),
            jwks: self.key_set(),
            any_loopback_port: true,
        }
    }
}

/// The discovery document of an issuer with the usual endpoints; only `issuer` and
/// `jwks_uri` are used by verifiers, the rest keeps strict OIDC clients happy.
pub fn openid_configuration(issuer_url: &str) -> Value {
    let base = issuer_url.trim_end_matches('/');
    json!({
        "issuer": issuer_url,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "name", "email"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::verify_with_keys;

    #[test]
    fn generated_key_round_trips_and_mints_verifiable_tokens() {
        let (key, pem) = DevIssuerKey::generate().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let again = DevIssuerKey::from_pem(&pem).unwrap();
        assert_eq!(again.kid(), key.kid());
        assert_eq!(key.kid().len(), 43);

        let issuer = "http://127.0.0.1:3210/dev-issuer";
        let mut extra = Map::new();
        extra.insert("role".into(), json!("admin"));
        let token = key
            .mint(
                issuer,
                "user_1",
                Some("Ada"),
                Some("ada@example.com"),
                extra,
                60,
                1_000,
            )
            .unwrap();
        let provider = key.builtin_provider(issuer, DEV_AUDIENCE);
        let verified = verify_with_keys(&token, &provider, &key.key_set(), 1_010).unwrap();
        assert_eq!(verified.expires_at, 1_060);
        assert_eq!(
            verified.identity.token_identifier(),
            format!("{issuer}|user_1")
        );
        assert_eq!(
            verified.identity.get("email"),
            Some(&json!("ada@example.com"))
        );
        assert_eq!(verified.identity.get("role"), Some(&json!("admin")));

        // Minted for another loopback port (no server was running): still this issuer's.
        let offline = key
            .mint(
                "http://localhost:4000/dev-issuer",
                "user_2",
                None,
                None,
                Map::new(),
                60,
                1_000,
            )
            .unwrap();
        let verified = verify_with_keys(&offline, &provider, &key.key_set(), 1_010).unwrap();
        assert_eq!(
            verified.identity.token_identifier(),
            "http://localhost:4000/dev-issuer|user_2"
        );

        let doc = key.openid_configuration(issuer);
        assert_eq!(doc["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
        assert_eq!(key.jwks_json()["keys"][0]["kid"], key.kid());
    }

    #[test]
    fn extra_claims_cannot_replace_reserved_ones() {
        let (key, _) = DevIssuerKey::generate().unwrap();
        for reserved in RESERVED_CLAIMS {
            let mut extra = Map::new();
            extra.insert(reserved.into(), json!(1));
            let err = key
                .mint(
                    "http://127.0.0.1/dev-issuer",
                    "u",
                    None,
                    None,
                    extra,
                    60,
                    1_000,
                )
                .unwrap_err();
            assert_eq!(err, DevIssuerError::ReservedClaim(reserved.into()));
            assert!(err.to_string().contains(&format!("`{reserved}`")), "{err}");
        }
        let mut extra = Map::new();
        extra.insert("name".into(), json!("Renamed"));
        assert!(
            key.mint(
                "http://127.0.0.1/dev-issuer",
                "u",
                Some("A"),
                None,
                extra,
                60,
                1_000
            )
            .is_ok()
        );
    }

    #[test]
    fn generated_keys_have_the_documented_size() {
        let (key, _) = DevIssuerKey::generate().unwrap();
        let n = key.jwks_json()["keys"][0]["n"].as_str().unwrap().to_owned();
        assert_eq!(URL_SAFE_NO_PAD.decode(n).unwrap().len() * 8, DEV_KEY_BITS);
    }

    #[test]
    fn garbage_pem_is_an_error() {
        assert!(matches!(
            DevIssuerKey::from_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            ),
            Err(DevIssuerError::BadKey(_))
        ));
        // A public key is not a private key, even in a PEM jsonwebtoken reads as RSA.
        let key = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let public = pem::encode(&pem::Pem::new(
            "PUBLIC KEY",
            key.public_key().as_der().unwrap().as_ref(),
        ));
        assert!(matches!(
            DevIssuerKey::from_pem(&public),
            Err(DevIssuerError::BadKey(_))
        ));
    }
}
