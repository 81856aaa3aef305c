//! Reloading `auth.config.toml` keeps what did not change: an identical config is a no-op,
//! unchanged providers keep their key caches (no refetch, even with the issuer down) and
//! their cached tokens, while removed or changed providers are forgotten at once.

#![allow(clippy::unwrap_used)]

mod common;

use auth::{AuthConfig, TokenRejection};
use common::*;
use serde_json::json;

const DISCOVERY: &str = "/.well-known/openid-configuration";

fn oidc(url: &str, app: &str) -> String {
    format!("[[providers]]\ndomain = \"{url}\"\napplicationID = \"{app}\"\n\n")
}

fn fetches(server: &TestServer) -> usize {
    server.hits(DISCOVERY) + server.hits(JWKS_PATH)
}

fn down() -> Reply {
    Reply {
        status: 503,
        content_type: Some("text/plain"),
        cache_control: None,
        body: "down".into(),
    }
}

#[tokio::test]
async fn unchanged_providers_keep_keys_and_tokens_removed_ones_lose_them_at_once() {
    let a = TestServer::start().await;
    let b = TestServer::start().await;
    let key_a = rsa_key("ka");
    let key_b = rsa_key("kb");
    a.serve_oidc(&jwks(&[&key_a.jwk]));
    b.serve_oidc(&jwks(&[&key_b.jwk]));
    let (iss_a, iss_b) = (a.url(""), b.url(""));
    let clock = TestClock::new();
    let tmp = tempfile::tempdir().unwrap();
    let both = oidc(&iss_a, "convex") + &oidc(&iss_b, "convex");
    let auth = authenticator(config(&both), &clock, tmp.path());
    let token_a = key_a.sign(&claims(&iss_a));
    let token_b = key_b.sign(&claims(&iss_b));
    auth.verify(&token_a).await.unwrap();
    auth.verify(&token_b).await.unwrap();
    assert_eq!((fetches(&a), fetches(&b)), (2, 2));
    assert_eq!(auth.cached_tokens(), 2);

    // Saving the file unchanged (or touching .env): nothing is refetched or forgotten.
    auth.set_config(config(&both));
    assert_eq!(auth.cached_tokens(), 2);
    let fresh_a = key_a.sign(&with(claims(&iss_a), "sub", json!("a2")));
    auth.verify(&fresh_a).await.unwrap();
    assert_eq!(
        (fetches(&a), fetches(&b)),
        (2, 2),
        "no refetch after an identical reload"
    );

    // Issuer A goes down while another provider is added: A's users stay signed in,
    // fresh tokens of A verify with the kept keys, and A is not even asked.
    a.set(DISCOVERY, down());
    a.set(JWKS_PATH, down());
    let ec = ec_key("ec");
    let data_uri = format!(
        "data:application/json,{}",
        jwks(&[&ec.jwk]).to_string().replace('"', "%22")
    );
    let with_custom = both.clone()
        + &format!(
            "[[providers]]\ntype = \"customJwt\"\nissuer = \"https://custom.example\"\njwks = \"{data_uri}\"\nalgorithm = \"ES256\"\n"
        );
    auth.set_config(config(&with_custom));
    assert_eq!(
        auth.cached_tokens(),
        3,
        "every cached token of A and B survives"
    );
    auth.verify(&token_a).await.unwrap();
    let fresh_a = key_a.sign(&with(claims(&iss_a), "sub", json!("a3")));
    assert_eq!(
        auth.verify(&fresh_a).await.unwrap().identity.subject(),
        "a3"
    );
    auth.verify(&ec.sign(&claims("https://custom.example")))
        .await
        .unwrap();
    assert_eq!(
        (fetches(&a), fetches(&b)),
        (2, 2),
        "no refetch after adding a provider"
    );

    // Removing B: its cached token is refused by the very next call, A's stays cached.
    let cached_before = auth.cached_tokens();
    auth.set_config(config(&oidc(&iss_a, "convex")));
    assert!(matches!(
        auth.verify(&token_b).await,
        Err(TokenRejection::NoMatchingProvider { .. })
    ));
    assert_eq!(
        auth.cached_tokens(),
        cached_before - 2,
        "B's and the customJwt provider's tokens are swept, A's kept"
    );
    auth.verify(&token_a).await.unwrap();
    assert_eq!(fetches(&a), 2);

    // Changing A (another applicationID) is a new provider: tokens and keys are dropped.
    auth.set_config(config(&oidc(&iss_a, "other-app")));
    assert_eq!(auth.cached_tokens(), 0);
    assert!(auth.verify(&token_a).await.is_err());
    let other_app = key_a.sign(&with(claims(&iss_a), "aud", json!("other-app")));
    let err = auth.verify(&other_app).await.unwrap_err();
    assert!(
        matches!(err, TokenRejection::KeyFetch { .. }),
        "a changed provider starts with an empty key cache (and A is down): {err}"
    );
    assert!(fetches(&a) > 2);
}

#[tokio::test]
async fn a_provider_added_ahead_of_an_unchanged_one_takes_over_its_cached_tokens() {
    let server = TestServer::start().await;
    let key = rsa_key("k1");
    server.serve_oidc(&jwks(&[&key.jwk]));
    let iss = server.url("");
    let clock = TestClock::new();
    let tmp = tempfile::tempdir().unwrap();
    let original = oidc(&iss, "convex");
    let auth = authenticator(config(&original), &clock, tmp.path());
    let token = key.sign(&claims(&iss));
    auth.verify(&token).await.unwrap();
    assert_eq!(auth.cached_tokens(), 1);

    // A customJwt provider for the same issuer, with other keys, now comes first: selection
    // is first-match, so it owns the token, and the cached "yes" of the OIDC provider must
    // not be served.
    let other = rsa_key("k1");
    let other_keys = jwks(&[&other.jwk]).to_string().replace('"', "%22");
    let ahead = format!(
        "[[providers]]\ntype = \"customJwt\"\nissuer = \"{iss}\"\njwks = \"data:application/json,{other_keys}\"\nalgorithm = \"RS256\"\n\n"
    ) + &original;
    auth.set_config(config(&ahead));
    assert!(matches!(
        auth.verify(&token).await,
        Err(TokenRejection::BadSignature { .. })
    ));

    // Back to the original: the OIDC provider's key cache survived both reloads.
    auth.set_config(config(&original));
    auth.verify(&token).await.unwrap();
    assert_eq!(server.hits(JWKS_PATH), 1);
    assert_eq!(server.hits(DISCOVERY), 1);

    // Moving an unchanged provider ahead of it also drops the cached token (conservative:
    // the one now ahead might claim it), but the keys stay, so re-verifying fetches nothing.
    let custom = "[[providers]]\ntype = \"customJwt\"\nissuer = \"https://elsewhere.example\"\njwks = \"k.json\"\nalgorithm = \"ES256\"\n\n";
    auth.set_config(config(&(original.clone() + custom)));
    assert_eq!(auth.cached_tokens(), 1);
    auth.set_config(config(&(custom.to_owned() + &original)));
    assert_eq!(auth.cached_tokens(), 0);
    auth.verify(&token).await.unwrap();
    assert_eq!(auth.cached_tokens(), 1);
    assert_eq!(server.hits(JWKS_PATH), 1);

    auth.set_config(AuthConfig::empty());
    assert_eq!(auth.cached_tokens(), 0);
}
