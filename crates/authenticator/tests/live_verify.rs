//! The live verifier against a local issuer: the identity a good token yields, the token
//! cache, time/issuer/audience and hostile-token rejections, and what `diagnose` says about
//! each. How keys are fetched and cached is in `key_fetch.rs`.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use auth::{AuthConfig, TokenRejection};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;

#[tokio::test]
async fn oidc_rs256_token_yields_the_convex_identity_and_is_cached() {
    let server = TestServer::start().await;
    let key = rsa_key("ins_1");
    server.serve_oidc(&jwks(&[&key.jwk]));
    let clock = TestClock::new();
    let tmp = dir();
    let auth = authenticator(oidc_config(&server), &clock, tmp.path());
    let iss = server.url("");
    let mut c = claims(&iss);
    c["name"] = json!("Maria Doe");
    c["given_name"] = json!("Maria");
    c["picture"] = json!("https://img.example/x.png");
    c["email"] = json!("maria@example.com");
    c["email_verified"] = json!(true);
    c["updated_at"] = json!(1_700_000_000);
    c["role"] = json!("admin");
    c["public_metadata"] = json!({"role": "editor"});
    let token = key.sign(&c);

    let verified = auth.verify(&token).await.unwrap();
    let id = &verified.identity;
    assert_eq!(id.token_identifier(), format!("{iss}|user_2abc"));
    assert_eq!(id.issuer(), iss);
    assert_eq!(id.subject(), "user_2abc");
    assert_eq!(id.get("givenName"), Some(&json!("Maria")));
    assert_eq!(
        id.get("pictureUrl"),
        Some(&json!("https://img.example/x.png"))
    );
    assert_eq!(id.get("emailVerified"), Some(&json!(true)));
    assert_eq!(
        id.get("updatedAt"),
        Some(&json!("2023-11-14T22:13:20+00:00"))
    );
    assert_eq!(id.get("role"), Some(&json!("admin")));
    assert_eq!(id.get("public_metadata"), Some(&json!({"role": "editor"})));
    assert!(id.get("exp").is_none() && id.get("iat").is_none());
    assert_eq!(verified.expires_at, NOW + 3600);

    for _ in 0..100 {
        assert_eq!(auth.verify(&token).await.unwrap(), verified);
    }
    assert_eq!(server.hits("/.well-known/openid-configuration"), 1);
    assert_eq!(server.hits(JWKS_PATH), 1);
    assert_eq!(auth.cached_tokens(), 1);

    // A cached token still dies at exp.
    clock.advance(3600);
    assert_eq!(
        auth.verify(&token).await,
        Err(TokenRejection::Expired { seconds_ago: 0 })
    );
}

#[tokio::test]
async fn custom_jwt_es256_from_url_flattens_claims() {
    let server = TestServer::start().await;
    let key = ec_key("ec-1");
    server.set_json("/custom/jwks.json", &jwks(&[&key.jwk]));
    let issuer = "https://issuer.example";
    let config = config(&format!(
        "[[providers]]\ntype = \"customJwt\"\nissuer = \"{issuer}\"\njwks = \"{}\"\nalgorithm = \"ES256\"\napplicationID = \"my-app\"\n",
        server.url("/custom/jwks.json")
    ));
    let clock = TestClock::new();
    let tmp = dir();
    let auth = authenticator(config, &clock, tmp.path());
    let mut c = claims(issuer);
    c["aud"] = json!(["my-app", "other"]);
    c["given_name"] = json!("Ann");
    c["role"] = json!("admin");
    c["public_metadata"] = json!({"role": "editor"});
    let id = auth.verify(&key.sign(&c)).await.unwrap().identity;
    assert_eq!(id.token_identifier(), format!("{issuer}|user_2abc"));
    assert_eq!(
        id.get("given_name"),
        Some(&json!("Ann")),
        "no camelCase on customJwt"
    );
    assert_eq!(id.get("role"), Some(&json!("admin")));
    assert_eq!(id.get("public_metadata.role"), Some(&json!("editor")));
    assert!(id.get("givenName").is_none());
}

#[tokio::test]
async fn time_issuer_and_audience_rejections_with_diagnoses() {
    let server = TestServer::start().await;
    let key = rsa_key("k1");
    server.serve_oidc(&jwks(&[&key.jwk]));
    let clock = TestClock::new();
    let tmp = dir();
    let auth = authenticator(oidc_config(&server), &clock, tmp.path());
    let iss = server.url("");

    let cases = [
        (
            with(claims(&iss), "exp", json!(NOW - 60)),
            "the token expired 60 s ago",
        ),
        (
            with(claims(&iss), "nbf", json!(NOW + 120)),
            "not valid yet: nbf is 2 min from now",
        ),
        (
            with(claims(&iss), "iss", json!("https://evil.example")),
            "issuer mismatch",
        ),
        (
            with(claims(&iss), "aud", json!("not-convex")),
            "did you get the token from the `convex` JWT template?",
        ),
        (without(claims(&iss), "exp"), "the token has no `exp` claim"),
    ];
    for (c, reason) in cases {
        let token = key.sign(&c);
        let err = auth.verify(&token).await.unwrap_err();
        assert!(
            err.to_string().contains(reason),
            "{err} should say {reason}"
        );
        let report = auth.diagnose(&token).await.to_string();
        assert!(
            report.contains(reason),
            "report should say {reason}:\n{report}"
        );
        assert!(report.contains("Result: REJECTED"), "{report}");
        assert!(!report.contains(&token));
    }
    let expired = auth
        .verify(&key.sign(&with(claims(&iss), "exp", json!(NOW - 60))))
        .await
        .unwrap_err();
    assert_eq!(expired.code(), "Unauthenticated");
    assert_eq!(
        expired.client_message(),
        "Could not verify OIDC token claim. Check that the token signature is valid and the token hasn't expired."
    );
    let wrong_iss = auth
        .verify(&key.sign(&with(claims(&iss), "iss", json!("https://evil.example"))))
        .await
        .unwrap_err();
    assert!(matches!(
        wrong_iss,
        TokenRejection::NoMatchingProvider { .. }
    ));
    assert_eq!(wrong_iss.code(), "NoAuthProvider");

    let good = key.sign(&claims(&iss));
    let report = auth.diagnose(&good).await.to_string();
    assert!(report.contains("accepted: tokenIdentifier"), "{report}");
    assert!(report.contains("expires in 60 min"), "{report}");
}

#[tokio::test]
async fn hostile_tokens_are_rejected() {
    let server = TestServer::start().await;
    let key = rsa_key("k1");
    server.serve_oidc(&jwks(&[&key.jwk]));
    let clock = TestClock::new();
    let tmp = dir();
    let auth = authenticator(oidc_config(&server), &clock, tmp.path());
    let iss = server.url("");
    let good = key.sign(&claims(&iss));
    let parts: Vec<&str> = good.split('.').collect();

    let forged_payload =
        URL_SAFE_NO_PAD.encode(with(claims(&iss), "sub", json!("admin")).to_string());
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1","typ":"JWT"}"#);
    let alg_none = format!("{none_header}.{}.", parts[1]);
    let hs256 = sign(
        Algorithm::HS256,
        Some("k1"),
        &claims(&iss),
        &EncodingKey::from_secret(key.public_pem.as_bytes()),
    );

    type IsExpected = fn(&TokenRejection) -> bool;
    let cases: [(&str, &str, IsExpected); 4] = [
        (&tampered, "signature does not verify", |r| {
            matches!(r, TokenRejection::BadSignature { .. })
        }),
        (&alg_none, "algorithm \"none\" is not accepted", |r| {
            matches!(r, TokenRejection::UnsupportedAlgorithm { .. })
        }),
        (&hs256, "algorithm \"HS256\" is not accepted", |r| {
            matches!(r, TokenRejection::UnsupportedAlgorithm { .. })
        }),
        ("not.a.jwt", "not a well-formed JWT", |r| {
            matches!(r, TokenRejection::Malformed { .. })
        }),
    ];
    for (token, reason, is_expected) in cases {
        let err = auth.verify(token).await.unwrap_err();
        assert!(is_expected(&err), "{token}: {err:?}");
        let report = auth.diagnose(token).await.to_string();
        assert!(
            report.contains(reason),
            "report should say {reason}:\n{report}"
        );
    }

    // 1 MiB of garbage: refused on its length, never parsed or fetched for.
    let hits_before = server.hits(JWKS_PATH);
    let huge = "x".repeat(1 << 20);
    let started = Instant::now();
    for _ in 0..100 {
        assert!(matches!(
            auth.verify(&huge).await,
            Err(TokenRejection::TooLarge { .. })
        ));
    }
    assert!(
        started.elapsed().as_millis() < 200,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.hits(JWKS_PATH), hits_before);
    assert!(
        auth.diagnose(&huge)
            .await
            .to_string()
            .contains("over the 16384-byte limit")
    );
}

#[tokio::test]
async fn set_config_drops_a_removed_providers_cached_tokens() {
    let server = TestServer::start().await;
    let key = rsa_key("k1");
    server.serve_oidc(&jwks(&[&key.jwk]));
    let clock = TestClock::new();
    let tmp = dir();
    let auth = authenticator(oidc_config(&server), &clock, tmp.path());
    let token = key.sign(&claims(&server.url("")));
    auth.verify(&token).await.unwrap();
    assert_eq!(auth.cached_tokens(), 1);

    auth.set_config(AuthConfig::empty());
    assert_eq!(auth.cached_tokens(), 0);
    assert_eq!(
        auth.verify(&token).await,
        Err(TokenRejection::NoProvidersConfigured)
    );

    // Re-adding it works again (with fresh key caches).
    auth.set_config(oidc_config(&server));
    auth.verify(&token).await.unwrap();
    assert_eq!(server.hits(JWKS_PATH), 2);
}
