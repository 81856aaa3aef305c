//! The verification rules of the crate docs, one test each, with keys generated here.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use auth::{
    ClaimMapping, JwksSource, KeyAlgorithm, KeySet, ParsedToken, Provider, TokenRejection,
    diagnose_with_keys, select_provider, verify_with_keys,
};
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const NOW: u64 = 1_700_000_000;
const ISS: &str = "https://issuer.example";

struct Rsa {
    encoding: EncodingKey,
    jwk: Value,
    public_pem: String,
}

fn pem_text(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

fn rsa_key(kid: &str) -> Rsa {
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let public = key.public_key();
    let jwk = json!({
        "kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
        "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
        "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
    });
    let private_pem = pem_text("PRIVATE KEY", key.as_der().unwrap().as_ref());
    Rsa {
        encoding: EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
        jwk,
        public_pem: pem_text("PUBLIC KEY", public.as_der().unwrap().as_ref()),
    }
}

fn ec_key(kid: &str) -> (EncodingKey, Value) {
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let point = key.public_key().as_ref();
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    });
    let der = key.to_pkcs8v1().unwrap();
    (EncodingKey::from_ec_der(der.as_ref()), jwk)
}

fn keyset(jwks: &[&Value]) -> KeySet {
    KeySet::from_jwks_json(&json!({ "keys": jwks })).unwrap()
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn claims() -> Value {
    json!({"iss": ISS, "sub": "user_1", "aud": "convex", "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 3600})
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

fn without(mut base: Value, key: &str) -> Value {
    base.as_object_mut().unwrap().remove(key);
    base
}

fn oidc() -> Provider {
    Provider::Oidc {
        domain: ISS.into(),
        application_id: "convex".into(),
    }
}

fn hand_made(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

struct Fixture {
    rsa: Rsa,
    keys: KeySet,
}

fn fixture() -> Fixture {
    let rsa = rsa_key("k1");
    let keys = keyset(&[&rsa.jwk]);
    Fixture { rsa, keys }
}

fn check(f: &Fixture, token: &str) -> Result<auth::VerifiedToken, TokenRejection> {
    let result = verify_with_keys(token, &oidc(), &f.keys, NOW);
    if let Err(e) = &result {
        // The raw token must never leak into messages.
        let text = format!("{e} {e:?}");
        assert!(!text.contains(token), "{text}");
        if let Some(sig) = token.rsplit('.').next().filter(|s| s.len() > 8) {
            assert!(!text.contains(sig), "{text}");
        }
    }
    result
}

#[test]
fn valid_rs256_token_yields_identity() {
    let f = fixture();
    let token = sign(Algorithm::RS256, Some("k1"), &claims(), &f.rsa.encoding);
    let v = check(&f, &token).unwrap();
    assert_eq!(v.expires_at, NOW + 3600);
    assert_eq!(v.identity.token_identifier(), format!("{ISS}|user_1"));
}

#[test]
fn expiry_has_no_leeway() {
    let f = fixture();
    let at = |exp| {
        sign(
            Algorithm::RS256,
            Some("k1"),
            &with(claims(), "exp", json!(exp)),
            &f.rsa.encoding,
        )
    };
    assert!(check(&f, &at(NOW + 1)).is_ok());
    assert_eq!(
        check(&f, &at(NOW)),
        Err(TokenRejection::Expired { seconds_ago: 0 })
    );
    assert_eq!(
        check(&f, &at(NOW - 60)),
        Err(TokenRejection::Expired { seconds_ago: 60 })
    );
    let missing = sign(
        Algorithm::RS256,
        Some("k1"),
        &without(claims(), "exp"),
        &f.rsa.encoding,
    );
    assert_eq!(
        check(&f, &missing),
        Err(TokenRejection::MissingClaim("exp"))
    );
}

#[test]
fn absurd_times_are_refused_with_a_reason() {
    let f = fixture();
    let tok = |k: &str, v: Value| {
        sign(
            Algorithm::RS256,
            Some("k1"),
            &with(claims(), k, v),
            &f.rsa.encoding,
        )
    };
    // Exactly at the bound is fine; one second beyond is not.
    let at_bound = check(&f, &tok("exp", json!(NOW + auth::MAX_EXP_AHEAD_SECS))).unwrap();
    assert_eq!(at_bound.expires_at, NOW + auth::MAX_EXP_AHEAD_SECS);
    assert_eq!(
        check(&f, &tok("exp", json!(NOW + auth::MAX_EXP_AHEAD_SECS + 1))),
        Err(TokenRejection::ExpiresTooLate {
            seconds_ahead: auth::MAX_EXP_AHEAD_SECS + 1,
            max: auth::MAX_EXP_AHEAD_SECS,
        })
    );
    let century = check(&f, &tok("exp", json!(NOW + 100 * 31_557_600))).unwrap_err();
    assert_eq!(
        century.to_string(),
        "the token's exp is 100 years from now, beyond the 10-year limit on token lifetimes: \
         check the lifetime the issuer gives its tokens"
    );
    assert_eq!(century.code(), "Unauthenticated");
    // exp in milliseconds lands after the year 9999, and the message suggests why.
    let millis = check(&f, &tok("exp", json!((NOW + 3600) * 1000))).unwrap_err();
    assert!(
        millis.to_string().contains("milliseconds by mistake?"),
        "{millis}"
    );
    // Not representable as a date at all: 1.8e19 (the value that crashed a session), u64::MAX.
    for (claim, value) in [
        ("exp", json!(1.8e19)),
        ("exp", json!(u64::MAX)),
        ("exp", json!(1e300)),
        ("nbf", json!(u64::MAX)),
        ("iat", json!(1.8e19)),
    ] {
        let err = check(&f, &tok(claim, value.clone())).unwrap_err();
        assert!(
            matches!(&err, TokenRejection::InvalidClaim { name, .. } if *name == claim),
            "{claim}={value}: {err:?}"
        );
        assert!(err.to_string().contains("up to the year 9999"), "{err}");
    }
    // `auth check` shows the reason under Times and in the verdict.
    let token = tok("exp", json!(1.8e19));
    let provider = oidc();
    let report = diagnose_with_keys(&token, &[(&provider, Ok(&f.keys))], NOW).to_string();
    assert!(
        report.contains("exp       the token's `exp` claim is invalid: must be seconds since 1970 up to the year 9999"),
        "{report}"
    );
    assert!(report.contains("Result: REJECTED"), "{report}");
    let token = tok("exp", json!(NOW + 20 * 31_557_600));
    let report = diagnose_with_keys(&token, &[(&provider, Ok(&f.keys))], NOW).to_string();
    assert!(
        report.contains("rejected: the token's exp is 20 years from now, beyond the 10-year limit"),
        "{report}"
    );
}

#[test]
fn nbf_and_iat_have_five_seconds_of_leeway() {
    let f = fixture();
    let tok = |k: &str, v: u64| {
        sign(
            Algorithm::RS256,
            Some("k1"),
            &with(claims(), k, json!(v)),
            &f.rsa.encoding,
        )
    };
    assert!(check(&f, &tok("nbf", NOW + 5)).is_ok());
    assert!(matches!(
        check(&f, &tok("nbf", NOW + 6)),
        Err(TokenRejection::NotYetValid {
            seconds_until: 6,
            ..
        })
    ));
    assert!(check(&f, &tok("iat", NOW + 5)).is_ok());
    assert!(matches!(
        check(&f, &tok("iat", NOW + 60)),
        Err(TokenRejection::IssuedInFuture {
            seconds_ahead: 60,
            ..
        })
    ));
}

#[test]
fn issuer_and_audience() {
    let f = fixture();
    let tok = |c: Value| sign(Algorithm::RS256, Some("k1"), &c, &f.rsa.encoding);
    assert!(check(&f, &tok(with(claims(), "iss", json!(format!("{ISS}/"))))).is_ok());
    assert!(check(&f, &tok(with(claims(), "aud", json!(["other", "convex"])))).is_ok());
    assert!(matches!(
        check(
            &f,
            &tok(with(claims(), "iss", json!("https://evil.example")))
        ),
        Err(TokenRejection::IssuerMismatch { .. })
    ));
    let wrong_aud = check(&f, &tok(with(claims(), "aud", json!("other")))).unwrap_err();
    assert!(wrong_aud.to_string().contains("`convex` JWT template"));
    assert!(matches!(
        check(&f, &tok(without(claims(), "aud"))),
        Err(TokenRejection::AudienceMissing { .. })
    ));
    assert_eq!(
        check(&f, &tok(without(claims(), "sub"))),
        Err(TokenRejection::MissingClaim("sub"))
    );
}

#[test]
fn algorithm_comes_from_the_key() {
    let f = fixture();
    let none = hand_made(&json!({"alg": "none", "kid": "k1"}), &claims(), b"");
    assert!(matches!(
        check(&f, &none),
        Err(TokenRejection::UnsupportedAlgorithm { alg }) if alg == "none"
    ));
    // The classic confusion attack: HMAC keyed with the RSA public key PEM.
    let hs = sign(
        Algorithm::HS256,
        Some("k1"),
        &claims(),
        &EncodingKey::from_secret(f.rsa.public_pem.as_bytes()),
    );
    assert!(matches!(
        check(&f, &hs),
        Err(TokenRejection::UnsupportedAlgorithm { .. })
    ));
    // An ES256 header pointing at an RSA key.
    let (ec, _) = ec_key("e1");
    let confused = sign(Algorithm::ES256, Some("k1"), &claims(), &ec);
    assert!(matches!(
        check(&f, &confused),
        Err(TokenRejection::AlgorithmMismatch { .. })
    ));
    let ps = sign(Algorithm::PS256, Some("k1"), &claims(), &f.rsa.encoding);
    assert!(matches!(
        check(&f, &ps),
        Err(TokenRejection::UnsupportedAlgorithm { .. })
    ));
}

#[test]
fn tampered_payload_fails_the_signature() {
    let f = fixture();
    let token = sign(Algorithm::RS256, Some("k1"), &claims(), &f.rsa.encoding);
    let parts: Vec<&str> = token.split('.').collect();
    let forged = with(claims(), "sub", json!("admin"));
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(forged.to_string()),
        parts[2]
    );
    assert!(matches!(
        check(&f, &tampered),
        Err(TokenRejection::BadSignature { .. })
    ));
}

#[test]
fn kid_rules() {
    let f = fixture();
    let unknown = sign(Algorithm::RS256, Some("nope"), &claims(), &f.rsa.encoding);
    assert!(matches!(
        check(&f, &unknown),
        Err(TokenRejection::UnknownKid { kid, known }) if kid == "nope" && known == ["k1"]
    ));
    let kidless = sign(Algorithm::RS256, None, &claims(), &f.rsa.encoding);
    assert!(check(&f, &kidless).is_ok(), "one RSA key: no kid needed");
    let other = rsa_key("k2");
    let (_, ec_jwk) = ec_key("e1");
    let two = keyset(&[&f.rsa.jwk, &other.jwk, &ec_jwk]);
    assert!(matches!(
        verify_with_keys(&kidless, &oidc(), &two, NOW),
        Err(TokenRejection::AmbiguousKey { count: 2, .. })
    ));
    let ec_only = keyset(&[&ec_jwk]);
    assert!(matches!(
        verify_with_keys(&kidless, &oidc(), &ec_only, NOW),
        Err(TokenRejection::NoCompatibleKey { .. })
    ));
}

#[test]
fn es256_custom_jwt_flattens_claims() {
    let (ec, jwk) = ec_key("e1");
    let keys = keyset(&[&jwk]);
    let provider = Provider::CustomJwt {
        issuer: ISS.into(),
        jwks: JwksSource::File("unused.json".into()),
        algorithm: KeyAlgorithm::Es256,
        application_id: None,
    };
    let c = with(claims(), "public_metadata", json!({"role": "admin"}));
    let token = sign(Algorithm::ES256, Some("e1"), &c, &ec);
    let v = verify_with_keys(&token, &provider, &keys, NOW).unwrap();
    assert_eq!(
        v.identity.get("public_metadata.role"),
        Some(&json!("admin"))
    );
    assert_eq!(provider.claim_mapping(), ClaimMapping::CustomJwt);

    // A customJwt provider configured for ES256 refuses RS256 tokens even with a valid RSA key.
    let rsa = rsa_key("r1");
    let mixed = keyset(&[&jwk, &rsa.jwk]);
    let rs = sign(Algorithm::RS256, Some("r1"), &claims(), &rsa.encoding);
    assert!(matches!(
        verify_with_keys(&rs, &provider, &mixed, NOW),
        Err(TokenRejection::AlgorithmMismatch { .. })
    ));
}

#[test]
fn huge_tokens_are_refused_before_parsing() {
    let f = fixture();
    let huge = "a".repeat(1 << 20);
    let started = Instant::now();
    for _ in 0..1000 {
        assert!(matches!(
            check(&f, &huge),
            Err(TokenRejection::TooLarge { .. })
        ));
    }
    assert!(
        started.elapsed().as_millis() < 500,
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn provider_selection_explains_every_miss() {
    let f = fixture();
    let providers = vec![
        oidc(),
        Provider::Builtin {
            issuer: "http://127.0.0.1:3210/dev-issuer".into(),
            application_id: "convex".into(),
            jwks: Arc::new(f.keys.clone()),
            any_loopback_port: true,
        },
    ];
    let token = sign(
        Algorithm::RS256,
        Some("k1"),
        &with(claims(), "aud", json!("web")),
        &f.rsa.encoding,
    );
    let parsed = ParsedToken::parse(&token).unwrap();
    let err = select_provider(&parsed, &providers).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.code(), "NoAuthProvider");
    assert!(text.contains("audience mismatch"), "{text}");
    assert!(text.contains("issuer mismatch"), "{text}");
    assert!(
        text.contains("Builtin(issuer=http://127.0.0.1:3210/dev-issuer"),
        "{text}"
    );
    assert_eq!(
        select_provider(&parsed, &[]),
        Err(TokenRejection::NoProvidersConfigured)
    );
    let good = sign(Algorithm::RS256, Some("k1"), &claims(), &f.rsa.encoding);
    assert_eq!(
        select_provider(&ParsedToken::parse(&good).unwrap(), &providers),
        Ok(0)
    );
}

#[test]
fn diagnosis_report_names_reasons() {
    let f = fixture();
    let expired = sign(
        Algorithm::RS256,
        Some("k1"),
        &with(claims(), "exp", json!(NOW - 180)),
        &f.rsa.encoding,
    );
    let other = Provider::Oidc {
        domain: "https://other.example".into(),
        application_id: "convex".into(),
    };
    let p = oidc();
    let report = diagnose_with_keys(&expired, &[(&p, Ok(&f.keys)), (&other, Ok(&f.keys))], NOW);
    let text = report.to_string();
    assert!(text.contains("\"sub\": \"user_1\""), "{text}");
    assert!(text.contains("expired 3 min ago"), "{text}");
    assert!(
        text.contains("[1] OIDC(domain=https://issuer.example, app_id=convex)"),
        "{text}"
    );
    assert!(
        text.contains("rejected: the token expired 3 min ago"),
        "{text}"
    );
    assert!(text.contains("rejected: issuer mismatch"), "{text}");
    assert!(text.contains("Result: REJECTED"), "{text}");

    let good = sign(Algorithm::RS256, Some("k1"), &claims(), &f.rsa.encoding);
    let report = diagnose_with_keys(&good, &[(&p, Ok(&f.keys))], NOW);
    assert!(report.accepted_by().is_some());
    assert!(report.to_string().contains("expires in 60 min"), "{report}");
    assert!(
        report
            .to_string()
            .contains("Result: ACCEPTED by provider [1]")
    );
}
