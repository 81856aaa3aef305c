//! `Authenticator::trusts_issuer`: what live sessions ask after `auth.config.toml` changes.

#![allow(clippy::unwrap_used)]

use auth::AuthConfig;
use authenticator::{Authenticator, AuthenticatorOptions};

const CONFIG: &str = "[[providers]]\ntype = \"customJwt\"\nissuer = \"https://a.example\"\njwks = \"jwks.json\"\nalgorithm = \"ES256\"\napplicationID = \"app\"\n";

#[test]
fn follows_the_configured_and_builtin_providers() {
    let tmp = tempfile::tempdir().unwrap();
    let config = AuthConfig::parse(CONFIG, "auth.config.toml", &|_| None).unwrap();
    let auth = Authenticator::new(config, AuthenticatorOptions::new(tmp.path())).unwrap();
    assert!(auth.trusts_issuer("https://a.example"));
    // Compared as provider selection compares issuers: a trailing slash aside.
    assert!(auth.trusts_issuer("https://a.example/"));
    assert!(!auth.trusts_issuer("https://b.example"));

    let (key, _) = auth::DevIssuerKey::generate().unwrap();
    let dev = "http://127.0.0.1:3210/dev-issuer";
    auth.set_builtin(vec![key.builtin_provider(dev, auth::DEV_AUDIENCE)]);
    auth.set_config(AuthConfig::empty());
    assert!(!auth.trusts_issuer("https://a.example"), "removed provider");
    assert!(
        auth.trusts_issuer(dev),
        "built-in providers survive set_config"
    );
}
