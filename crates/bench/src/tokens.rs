//! Tokens from the server's own dev issuer, minted here with its key (read from the app's
//! `.pulsebase/dev_issuer_key.pem`), so minting thousands of tokens costs the server
//! nothing. Each token can carry a distinct `jti`, which makes it a different string (a
//! token-cache miss on the server) without changing the identity the functions see.
//!
//! Signing uses `aws-lc-rs`, the crypto under the server's own minter, producing the same
//! claims as `DevIssuerKey::mint`: `iss`, `sub`, `aud: "convex"`, `iat`, `nbf`, `exp`, and
//! `jti` when asked. The first token of every minter is checked
//! against the server's own minter's format by the server itself (sessions authenticate).

use std::path::Path;

use anyhow::{Context as _, anyhow};
use authenticator::DevIssuer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;

pub struct Minter {
    issuer: DevIssuer,
    issuer_url: String,
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl Minter {
    /// The dev issuer of the app in `app_dir`, as served on `port`.
    pub fn load(app_dir: &Path, port: u16) -> anyhow::Result<Minter> {
        let data = app_dir.join(".pulsebase");
        let issuer = DevIssuer::load_or_create(&data)
            .map_err(|e| anyhow!("{e}"))
            .context("loading the dev issuer key")?;
        let pem = std::fs::read_to_string(issuer.key_path())?;
        let body: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .concat();
        let der = STANDARD.decode(body).context("decoding the key PEM")?;
        let key = RsaKeyPair::from_pkcs8(&der)
            .or_else(|_| RsaKeyPair::from_der(&der))
            .map_err(|e| anyhow!("the dev issuer key is not a usable RSA key: {e}"))?;
        Ok(Minter {
            issuer,
            issuer_url: format!("http://127.0.0.1:{port}/dev-issuer"),
            key,
            rng: SystemRandom::new(),
        })
    }

    /// A token for `sub` valid `ttl` seconds; `jti` makes it unique.
    pub fn mint(&self, sub: &str, ttl: u64, jti: Option<u64>) -> anyhow::Result<String> {
        let now = crate::stats::wall_ns() / 1_000_000_000;
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.issuer.kid()});
        let mut claims = json!({
            "iss": self.issuer_url,
            "sub": sub,
            "aud": "convex",
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
        });
        if let (Some(jti), Some(obj)) = (jti, claims.as_object_mut()) {
            obj.insert("jti".into(), json!(format!("{jti:x}")));
        }
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| anyhow!("signing a token failed"))?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }

    /// Mints one token per `(sub, jti)` on `threads` threads, in order.
    pub fn mint_many(
        &self,
        items: &[(String, Option<u64>)],
        ttl: u64,
        threads: usize,
    ) -> anyhow::Result<Vec<String>> {
        let threads = threads.clamp(1, 8);
        let chunk = items.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = items
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|(sub, jti)| self.mint(sub, ttl, *jti))
                            .collect::<anyhow::Result<Vec<String>>>()
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(items.len());
            for h in handles {
                out.extend(
                    h.join()
                        .map_err(|_| anyhow!("a minting thread panicked"))??,
                );
            }
            Ok(out)
        })
    }

    /// The issuer's public keys as a JWKS document.
    pub fn jwks_json(&self) -> serde_json::Value {
        self.issuer.jwks_json()
    }

    /// One token per user, minted in parallel.
    pub fn for_users(&self, users: &[String], ttl: u64) -> anyhow::Result<Vec<String>> {
        let items: Vec<(String, Option<u64>)> = users.iter().map(|u| (u.clone(), None)).collect();
        self.mint_many(&items, ttl, 2)
    }
}
