//! Test fixtures: a tiny HTTP server on 127.0.0.1:0 serving discovery and JWKS documents
//! (swappable at runtime, counting requests), keys generated per test, token minting, and a
//! hand-driven clock.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use auth::AuthConfig;
use authenticator::{Authenticator, AuthenticatorOptions, Clock};
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub const NOW: u64 = 1_700_000_000;

/// Where [`TestServer::serve_oidc`] publishes the JWKS.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// A fresh directory for the authenticator's files.
pub fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// One canned HTTP answer.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub cache_control: Option<&'static str>,
    pub body: String,
}

impl Reply {
    pub fn json(value: &Value) -> Reply {
        Reply {
            status: 200,
            content_type: Some("application/json"),
            cache_control: None,
            body: value.to_string(),
        }
    }
}

#[derive(Default)]
struct ServerState {
    routes: HashMap<String, Reply>,
    hits: HashMap<String, usize>,
}

/// A minimal HTTP/1.1 responder: one request per connection, `Connection: close`.
pub struct TestServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<ServerState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state: Arc<Mutex<ServerState>> = Arc::default();
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65_536 {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request);
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let reply = {
                        let mut state = state.lock().unwrap();
                        *state.hits.entry(path.clone()).or_default() += 1;
                        state.routes.get(&path).cloned()
                    };
                    let reply = reply.unwrap_or(Reply {
                        status: 404,
                        content_type: Some("text/plain"),
                        cache_control: None,
                        body: "not found".into(),
                    });
                    let mut head = format!(
                        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                        reply.status,
                        reply.body.len()
                    );
                    if let Some(ct) = reply.content_type {
                        head.push_str(&format!("Content-Type: {ct}\r\n"));
                    }
                    if let Some(cc) = reply.cache_control {
                        head.push_str(&format!("Cache-Control: {cc}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(reply.body.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        TestServer { addr, state, task }
    }

    /// `http://127.0.0.1:PORT` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set(&self, path: &str, reply: Reply) {
        self.state.lock().unwrap().routes.insert(path.into(), reply);
    }

    pub fn set_json(&self, path: &str, value: &Value) {
        self.set(path, Reply::json(value));
    }

    pub fn hits(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Serves an OIDC issuer at the server root with this JWKS.
    pub fn serve_oidc(&self, jwks: &Value) {
        let issuer = self.url("");
        self.set_json(
            "/.well-known/openid-configuration",
            &json!({"issuer": issuer, "jwks_uri": self.url("/.well-known/jwks.json")}),
        );
        self.set_json("/.well-known/jwks.json", jwks);
    }
}

/// A test RSA key: signs tokens, publishes its JWK.
pub struct RsaKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub jwk: Value,
    pub public_pem: String,
}

fn pem_text(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

pub fn rsa_key(kid: &str) -> RsaKey {
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let public = key.public_key();
    let private_pem = pem_text("PRIVATE KEY", key.as_der().unwrap().as_ref());
    RsaKey {
        kid: kid.into(),
        encoding: EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
        jwk: json!({
            "kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        }),
        public_pem: pem_text("PUBLIC KEY", public.as_der().unwrap().as_ref()),
    }
}

impl RsaKey {
    pub fn sign(&self, claims: &Value) -> String {
        sign(Algorithm::RS256, Some(&self.kid), claims, &self.encoding)
    }
}

/// A test P-256 key.
pub struct EcKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

pub fn ec_key(kid: &str) -> EcKey {
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let point = key.public_key().as_ref();
    EcKey {
        kid: kid.into(),
        encoding: EncodingKey::from_ec_der(key.to_pkcs8v1().unwrap().as_ref()),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }),
    }
}

impl EcKey {
    pub fn sign(&self, claims: &Value) -> String {
        sign(Algorithm::ES256, Some(&self.kid), claims, &self.encoding)
    }
}

pub fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

pub fn jwks(keys: &[&Value]) -> Value {
    json!({ "keys": keys })
}

/// Standard claims for `iss`, valid at [`NOW`] for an hour.
pub fn claims(iss: &str) -> Value {
    json!({
        "iss": iss, "sub": "user_2abc", "aud": "convex",
        "iat": NOW - 5, "nbf": NOW - 5, "exp": NOW + 3600,
    })
}

pub fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

pub fn without(mut base: Value, key: &str) -> Value {
    base.as_object_mut().unwrap().remove(key);
    base
}

/// A clock the test moves by hand.
#[derive(Clone)]
pub struct TestClock(Arc<AtomicU64>);

impl TestClock {
    pub fn new() -> TestClock {
        TestClock(Arc::new(AtomicU64::new(NOW)))
    }
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
    pub fn clock(&self) -> Clock {
        let inner = Arc::clone(&self.0);
        Arc::new(move || inner.load(Ordering::SeqCst))
    }
}

/// Parses config text with no env lookups.
pub fn config(text: &str) -> AuthConfig {
    AuthConfig::parse(text, "auth.config.toml", &|_| None).unwrap()
}

pub fn oidc_config(server: &TestServer) -> AuthConfig {
    config(&format!(
        "[[providers]]\ndomain = \"{}\"\napplicationID = \"convex\"\n",
        server.url("")
    ))
}

/// An authenticator with a test clock, apps files under `app_dir`.
pub fn authenticator(config: AuthConfig, clock: &TestClock, app_dir: &Path) -> Arc<Authenticator> {
    let options = AuthenticatorOptions::new(app_dir).with_clock(clock.clock());
    Arc::new(Authenticator::new(config, options).unwrap())
}
