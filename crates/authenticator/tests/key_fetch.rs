//! The live verifier's provider keys against a local issuer: one fetch shared by concurrent
//! cold verifications, rotation picked up after the refetch window, a rate limit on unknown
//! `kid`s, `data:` and file JWKS sources, Cache-Control lifetimes with stale keys kept through
//! an outage, and precise errors from broken issuers.

#![allow(clippy::unwrap_used)]

mod common;

use auth::TokenRejection;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use jsonwebtoken::Algorithm;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_verifies_share_one_fetch() {
    let server = TestServer::start().await;
    let key = rsa_key("k1");
    server.serve_oidc(&jwks(&[&key.jwk]));
    let clock = TestClock::new();
    let tmp = dir();
    let auth = authenticator(oidc_config(&server), &clock, tmp.path());
    let iss = server.url("");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let token = key.sign(&with(claims(&iss), "sub", json!(format!("user_{i}"))));
        let auth = auth.clone();
        tasks.spawn(async move { auth.verify(&token).await });
    }
    while let Some(result) = tasks.join_next().await {
        assert!(result.unwrap().is_ok());
    }
    assert_eq!(server.hits("/.well-known/openid-configuration"), 1);
    assert_eq!(server.hits(JWKS_PATH), 1);
    assert_eq!(auth.cached_tokens(), 50);
}

#[tokio::test]
async fn key_rotation_is_picked_up_after_the_refetch_window() {
    let server = TestServer::start().await;
    let old = rsa_key("old");
    let new = rsa_key("new");
    server.serve_oidc(&jwks(&[&old.jwk]));
    let clock = TestClock::new();
    let tmp = dir();
    let auth = authenticator(oidc_config(&server), &clock, tmp.path());
    let iss = server.url("");

    auth.verify(&old.sign(&claims(&iss))).await.unwrap();
    assert_eq!(server.hits(JWKS_PATH), 1);

    // The issuer rotates. Right after our fetch, the new kid is refused without a refetch.
    server.serve_oidc(&jwks(&[&old.jwk, &new.jwk]));
    let token = new.sign(&claims(&iss));
    let err = auth.verify(&token).await.unwrap_err();
    assert!(
        matches!(&err, TokenRejection::UnknownKid { kid, .. } if kid == "new"),
        "{err}"
    );
    assert_eq!(
        server.hits(JWKS_PATH),
        1,
        "rate-limited: no refetch inside the window"
    );

    clock.advance(authenticator::MIN_REFETCH_INTERVAL_SECS);
    auth.verify(&token).await.unwrap();
    assert_eq!(server.hits(JWKS_PATH), 2);
    assert_eq!(server.hits("/.well-known/openid-configuration"), 1);
}

#[tokio::test]
async fn a_flood_of_bogus_kids_costs_at_most_one_refetch() {
    let server = TestServer::start().await;
    let key = rsa_key("real");
    server.serve_oidc(&jwks(&[&key.jwk]));
    let clock = TestClock::new();
    let tmp = dir();
    let auth = authenticator(oidc_config(&server), &clock, tmp.path());
    let iss = server.url("");
    auth.verify(&key.sign(&claims(&iss))).await.unwrap();
    clock.advance(11);

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let token = sign(
            Algorithm::RS256,
            Some(&format!("bogus-{i}")),
            &claims(&iss),
            &key.encoding,
        );
        let auth = auth.clone();
        tasks.spawn(async move { auth.verify(&token).await });
    }
    while let Some(result) = tasks.join_next().await {
        assert!(matches!(
            result.unwrap(),
            Err(TokenRejection::UnknownKid { .. })
        ));
    }
    assert!(
        server.hits(JWKS_PATH) <= 2,
        "{} JWKS fetches",
        server.hits(JWKS_PATH)
    );
    // And sequential bogus kids inside the window fetch nothing more.
    let before = server.hits(JWKS_PATH);
    for i in 0..20 {
        let token = sign(
            Algorithm::RS256,
            Some(&format!("x{i}")),
            &claims(&iss),
            &key.encoding,
        );
        assert!(auth.verify(&token).await.is_err());
    }
    assert_eq!(server.hits(JWKS_PATH), before);
}

#[tokio::test]
async fn data_uri_and_file_jwks_sources() {
    let key = ec_key("e1");
    let rsa = rsa_key("r1");
    let tmp = dir();
    std::fs::create_dir_all(tmp.path().join("keys")).unwrap();
    std::fs::write(
        tmp.path().join("keys/jwks.json"),
        jwks(&[&rsa.jwk]).to_string(),
    )
    .unwrap();
    let data_uri = format!(
        "data:text/plain;charset=utf-8;base64,{}",
        STANDARD.encode(jwks(&[&key.jwk]).to_string())
    );
    let config = config(&format!(
        "[[providers]]\ntype = \"customJwt\"\nissuer = \"https://data.example\"\njwks = \"{data_uri}\"\nalgorithm = \"ES256\"\n\n\
         [[providers]]\ntype = \"customJwt\"\nissuer = \"https://file.example\"\njwks = \"keys/jwks.json\"\nalgorithm = \"RS256\"\n"
    ));
    let clock = TestClock::new();
    let auth = authenticator(config, &clock, tmp.path());
    let a = auth
        .verify(&key.sign(&claims("https://data.example")))
        .await
        .unwrap();
    assert_eq!(a.identity.issuer(), "https://data.example");
    let b = auth
        .verify(&rsa.sign(&claims("https://file.example")))
        .await
        .unwrap();
    assert_eq!(b.identity.issuer(), "https://file.example");

    // A missing file is a key-fetch failure that names the path. (Reloading the same
    // config keeps the keys already read, so a fresh verifier is needed to see it.)
    std::fs::remove_file(tmp.path().join("keys/jwks.json")).unwrap();
    auth.set_config(auth.config());
    auth.verify(&rsa.sign(&with(claims("https://file.example"), "sub", json!("u1"))))
        .await
        .unwrap();
    let auth = authenticator(auth.config(), &clock, tmp.path());
    let err = auth
        .verify(&rsa.sign(&with(claims("https://file.example"), "sub", json!("u2"))))
        .await
        .unwrap_err();
    assert!(matches!(err, TokenRejection::KeyFetch { .. }), "{err}");
    assert!(err.to_string().contains("keys/jwks.json"), "{err}");
    assert_eq!(err.code(), "AuthProviderDiscoveryFailed");
}

#[tokio::test]
async fn cache_control_ttl_and_stale_keys_on_outage() {
    let server = TestServer::start().await;
    let key = rsa_key("k1");
    server.serve_oidc(&jwks(&[&key.jwk]));
    server.set(
        JWKS_PATH,
        Reply {
            cache_control: Some("public, max-age=120"),
            ..Reply::json(&jwks(&[&key.jwk]))
        },
    );
    let clock = TestClock::new();
    let tmp = dir();
    let auth = authenticator(oidc_config(&server), &clock, tmp.path());
    let iss = server.url("");
    auth.verify(&key.sign(&claims(&iss))).await.unwrap();
    clock.advance(119);
    auth.verify(&key.sign(&with(claims(&iss), "sub", json!("b"))))
        .await
        .unwrap();
    assert_eq!(server.hits(JWKS_PATH), 1);
    clock.advance(2);
    auth.verify(&key.sign(&with(claims(&iss), "sub", json!("c"))))
        .await
        .unwrap();
    assert_eq!(server.hits(JWKS_PATH), 2, "refetched after max-age");

    // The issuer goes down: the keys we have keep working.
    server.set(
        JWKS_PATH,
        Reply {
            status: 503,
            content_type: Some("text/plain"),
            cache_control: None,
            body: "down".into(),
        },
    );
    clock.advance(121);
    auth.verify(&key.sign(&with(claims(&iss), "sub", json!("d"))))
        .await
        .unwrap();
    assert_eq!(server.hits(JWKS_PATH), 3);
}

#[tokio::test]
async fn broken_issuers_give_precise_key_fetch_errors() {
    let server = TestServer::start().await;
    let key = rsa_key("k1");
    let clock = TestClock::new();
    let tmp = dir();
    let iss = server.url("");
    let token = key.sign(&claims(&iss));

    // Discovery names another issuer.
    server.set_json(
        "/.well-known/openid-configuration",
        &json!({"issuer": "https://elsewhere.example", "jwks_uri": server.url(JWKS_PATH)}),
    );
    let auth = authenticator(oidc_config(&server), &clock, tmp.path());
    let err = auth.verify(&token).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("says issuer \"https://elsewhere.example\""),
        "{err}"
    );
    assert!(err.is_transient());

    // The JWKS URL serves an HTML page.
    server.serve_oidc(&jwks(&[&key.jwk]));
    server.set(
        JWKS_PATH,
        Reply {
            status: 200,
            content_type: Some("text/html"),
            cache_control: None,
            body: "<html>".into(),
        },
    );
    let auth = authenticator(oidc_config(&server), &clock, tmp.path());
    let err = auth.verify(&token).await.unwrap_err();
    assert!(
        err.to_string().contains("Content-Type \"text/html\""),
        "{err}"
    );
    let report = auth.diagnose(&token).await.to_string();
    assert!(report.contains("Content-Type \"text/html\""), "{report}");

    // The jwks_uri points to plain http off loopback.
    server.set_json(
        "/.well-known/openid-configuration",
        &json!({"issuer": iss, "jwks_uri": "http://keys.example/jwks.json"}),
    );
    let auth = authenticator(oidc_config(&server), &clock, tmp.path());
    let err = auth.verify(&token).await.unwrap_err();
    assert!(err.to_string().contains("http:// is only allowed"), "{err}");
}
