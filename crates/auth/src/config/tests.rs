//! Parser tests: each error names the line, the column and the fix.

use url::Url;

use super::*;
use crate::provider::JwksSource;

fn env(name: &str) -> Option<String> {
    match name {
        "CLERK_JWT_ISSUER_DOMAIN" => Some("https://verb-noun-00.clerk.accounts.dev".into()),
        "BARE" => Some("verb-noun-00.clerk.accounts.dev".into()),
        "EMPTY" => Some("  ".into()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<AuthConfig, AuthConfigError> {
    AuthConfig::parse(text, "auth.config.toml", &env)
}

fn err(text: &str) -> AuthConfigError {
    match parse(text) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e,
    }
}

#[test]
fn empty_and_providerless_files_mean_no_providers() {
    assert_eq!(parse("").unwrap(), AuthConfig::empty());
    assert_eq!(parse("# nothing here\n").unwrap(), AuthConfig::empty());
    assert_eq!(parse("providers = []").unwrap(), AuthConfig::empty());
}

#[test]
fn full_example_parses() {
    let text = r#"
[[providers]]
domain = "${CLERK_JWT_ISSUER_DOMAIN}"
applicationID = "convex"

[[providers]]
type = "customJwt"
issuer = "https://issuer.example"
jwks = "https://issuer.example/jwks.json"
algorithm = "ES256"

[[providers]]
type = "customJwt"
issuer = "http://127.0.0.1:9999/"
jwks = "keys/jwks.json"
algorithm = "RS256"
applicationID = "my-app"
"#;
    let config = parse(text).unwrap();
    assert_eq!(
        config.providers[0],
        Provider::Oidc {
            domain: "https://verb-noun-00.clerk.accounts.dev".into(),
            application_id: "convex".into()
        }
    );
    assert_eq!(
        config.providers[1],
        Provider::CustomJwt {
            issuer: "https://issuer.example".into(),
            jwks: JwksSource::Url(Url::parse("https://issuer.example/jwks.json").unwrap()),
            algorithm: KeyAlgorithm::Es256,
            application_id: None,
        }
    );
    assert_eq!(
        config.providers[2],
        Provider::CustomJwt {
            issuer: "http://127.0.0.1:9999/".into(),
            jwks: JwksSource::File("keys/jwks.json".into()),
            algorithm: KeyAlgorithm::Rs256,
            application_id: Some("my-app".into()),
        }
    );
}

#[test]
fn scheme_less_domain_gets_https() {
    let c = parse("[[providers]]\ndomain = \"${BARE}\"\napplicationID = \"convex\"\n").unwrap();
    assert_eq!(
        c.providers[0].issuer(),
        "https://verb-noun-00.clerk.accounts.dev"
    );
}

#[test]
fn missing_env_var_names_line_and_fix() {
    let e = err("\n[[providers]]\ndomain = \"${MISSING_VAR}\"\napplicationID = \"convex\"\n");
    assert_eq!((e.line, e.column), (3, 10));
    assert_eq!(
        e.to_string(),
        "auth.config.toml:3:10: ${MISSING_VAR} is not set: add it to .env.local or the environment"
    );
    let e = err("[[providers]]\ndomain = \"${EMPTY}\"\napplicationID = \"convex\"\n");
    assert!(e.to_string().contains("${EMPTY} is empty"), "{e}");
    let e = err("[[providers]]\ndomain = \"${BROKEN\"\napplicationID = \"convex\"\n");
    assert!(matches!(e.kind, AuthConfigErrorKind::BadEnvReference(_)));
}

#[test]
fn misspelt_application_id_gets_a_suggestion() {
    let e = err("[[providers]]\ndomain = \"https://a.example\"\napplicationId = \"convex\"\n");
    assert_eq!((e.line, e.column), (3, 1));
    assert_eq!(
        e.to_string(),
        "auth.config.toml:3:1: unknown key `applicationId`: did you mean `applicationID`?"
    );
    let e = err("[[providers]]\ndomian = \"https://a.example\"\n");
    assert!(e.to_string().contains("did you mean `domain`?"), "{e}");
    let e = err("[[providers]]\nfoo = \"x\"\n");
    assert!(
        e.to_string().contains("expected one of type, domain"),
        "{e}"
    );
    let e = err("[[provider]]\ndomain = \"https://a.example\"\n");
    assert!(e.to_string().contains("did you mean `providers`?"), "{e}");
}

#[test]
fn bad_urls() {
    let e = err("[[providers]]\ndomain = \"https://exa mple.com\"\napplicationID = \"c\"\n");
    assert!(
        matches!(e.kind, AuthConfigErrorKind::InvalidUrl { .. }),
        "{e}"
    );
    assert_eq!(e.line, 2);
    let e = err("[[providers]]\ndomain = \"notaurl\"\napplicationID = \"c\"\n");
    assert!(e.to_string().contains("does not look like a URL"), "{e}");
    let e = err("[[providers]]\ndomain = \"http://example.com\"\napplicationID = \"c\"\n");
    assert!(
        matches!(e.kind, AuthConfigErrorKind::InsecureUrl { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("use https://"), "{e}");
    for ok in [
        "http://127.0.0.1:3210/dev-issuer",
        "http://localhost:8080",
        "http://[::1]:9",
    ] {
        let text = format!("[[providers]]\ndomain = \"{ok}\"\napplicationID = \"c\"\n");
        assert!(parse(&text).is_ok(), "{ok}");
    }
    let e = err(
        "[[providers]]\ntype = \"customJwt\"\nissuer = \"https://i.example\"\njwks = \"http://i.example/jwks\"\nalgorithm = \"RS256\"\n",
    );
    assert_eq!(e.line, 4);
    assert!(matches!(
        e.kind,
        AuthConfigErrorKind::InsecureUrl { key: "jwks", .. }
    ));
}

#[test]
fn algorithm_and_type_errors() {
    let e = err(
        "[[providers]]\ntype = \"customJwt\"\nissuer = \"https://i.example\"\njwks = \"k.json\"\nalgorithm = \"HS256\"\n",
    );
    assert_eq!(e.line, 5);
    assert_eq!(
        e.kind.to_string(),
        "algorithm \"HS256\" is not supported: use \"RS256\" or \"ES256\""
    );
    let e = err("[[providers]]\ntype = \"customJWT\"\n");
    assert!(e.to_string().contains("did you mean \"customJwt\"?"), "{e}");
    let e = err("[[providers]]\ntype = \"saml\"\n");
    assert!(matches!(
        e.kind,
        AuthConfigErrorKind::UnknownType {
            suggestion: None,
            ..
        }
    ));
}

#[test]
fn provider_shape_errors() {
    let e = err(
        "[[providers]]\ntype = \"customJwt\"\ndomain = \"https://i.example\"\njwks = \"k.json\"\nalgorithm = \"RS256\"\n",
    );
    assert_eq!(
        (e.line, e.kind.clone()),
        (3, AuthConfigErrorKind::DomainOnCustomJwt)
    );
    let e = err("[[providers]]\nissuer = \"https://i.example\"\napplicationID = \"c\"\n");
    assert_eq!(e.line, 2);
    assert_eq!(e.kind, AuthConfigErrorKind::CustomJwtKeyOnOidc("issuer"));
    let e = err("# one\n[[providers]]\napplicationID = \"c\"\n");
    assert!(e.to_string().contains("needs `domain`"), "{e}");
    assert_eq!(
        (e.line, e.column),
        (2, 1),
        "points at the provider's header"
    );
    let e = err("[[providers]]\ndomain = \"https://a.example\"\n");
    assert!(e.to_string().contains("needs `applicationID`"), "{e}");
    let e = err("[[providers]]\ndomain = \"https://a.example\"\napplicationID = 3\n");
    assert_eq!(e.line, 3);
    assert!(matches!(e.kind, AuthConfigErrorKind::NotAString { .. }));
    let e = err("providers = \"x\"\n");
    assert_eq!(e.kind, AuthConfigErrorKind::ProvidersNotAList);
}

#[test]
fn syntax_errors_have_positions() {
    let e = err("[[providers]]\ndomain = \"unterminated\n");
    assert!(matches!(e.kind, AuthConfigErrorKind::Syntax(_)));
    assert_eq!(e.line, 2, "{e}");
}

#[test]
fn data_uri_jwks() {
    use base64::Engine as _;
    let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
    let uri = format!(
        "data:text/plain;charset=utf-8;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(jwks)
    );
    let text = format!(
        "[[providers]]\ntype = \"customJwt\"\nissuer = \"https://i.example\"\njwks = \"{uri}\"\nalgorithm = \"ES256\"\n"
    );
    let c = parse(&text).unwrap();
    assert!(matches!(
        &c.providers[0],
        Provider::CustomJwt { jwks: JwksSource::DataUri(v), .. } if v["keys"][0]["kid"] == "k1"
    ));
    let e = err(
        "[[providers]]\ntype = \"customJwt\"\nissuer = \"https://i.example\"\njwks = \"data:;base64,e30=\"\nalgorithm = \"ES256\"\n",
    );
    assert_eq!(e.line, 4);
    assert!(matches!(e.kind, AuthConfigErrorKind::InvalidJwksDataUri(_)));
}

#[test]
fn helpers() {
    assert_eq!(line_column("ab\ncdé\nf", 7), (2, 4));
    assert_eq!(strsim::levenshtein("kitten", "sitting"), 3);
    assert_eq!(
        suggest("APPLICATIONID", &PROVIDER_KEYS),
        Some("applicationID")
    );
    assert_eq!(
        suggest("application_id", &PROVIDER_KEYS),
        Some("applicationID")
    );
    assert_eq!(suggest("zzz", &PROVIDER_KEYS), None);
}

#[test]
fn url_errors_say_where_what_and_how_to_fix() {
    let oidc =
        |domain: &str| format!("[[providers]]\ndomain = \"{domain}\"\napplicationID = \"c\"\n");
    let custom = |jwks: &str| {
        format!(
            "[[providers]]\ntype = \"customJwt\"\nissuer = \"https://i.example\"\njwks = \"{jwks}\"\nalgorithm = \"RS256\"\n"
        )
    };
    // The parser's words, then a fix that names the repair.
    let e = err(&oidc("https://issuer.example:99999"));
    assert_eq!(
        e.to_string(),
        "auth.config.toml:2:10: `domain` = \"https://issuer.example:99999\" is not a valid URL: \
         invalid port number: the port after the host must be a number from 1 to 65535, \
         like https://issuer.example:8443, or left out"
            .replace("issuer.example:8443", "your-issuer.example:8443")
    );
    let e = err(&custom("https://keys.example:http/jwks.json"));
    assert_eq!((e.line, e.column), (4, 8));
    assert!(
        e.to_string()
            .ends_with("invalid port number: the port after the host must be a number from 1 to 65535, like https://your-issuer.example:8443, or left out"),
        "{e}"
    );
    let cases: [(String, usize, &str); 10] = [
        (
            oidc("https://"),
            2,
            "put the host name right after the scheme",
        ),
        (
            oidc("https://exa mple.com"),
            2,
            "remove spaces and other characters",
        ),
        (
            oidc("http://[::1/x"),
            2,
            "write an IPv6 address in brackets",
        ),
        (oidc("http://127.0.0.300:3210"), 2, "four numbers 0-255"),
        (oidc(""), 2, "give the issuer URL, like https://"),
        (oidc("'https://a.example'"), 2, "remove the inner quotes"),
        (
            oidc("notaurl"),
            2,
            "write it as https://your-issuer.example",
        ),
        (
            oidc("https://a.example/?x=1"),
            2,
            "remove everything from the ? or # on",
        ),
        (
            oidc("https://me:pw@a.example"),
            2,
            "remove the user:password@ part",
        ),
        (
            custom("https://"),
            4,
            "put the host name right after the scheme",
        ),
    ];
    for (text, line, fix) in cases {
        let e = err(&text);
        assert_eq!(e.line, line, "{e}");
        let message = e.to_string();
        assert!(
            message.starts_with(&format!("auth.config.toml:{line}:")),
            "{message}"
        );
        assert!(message.contains(fix), "{message} should say {fix}");
    }
    // Data URIs, TOML syntax and unreadable files end with a fix too.
    let e = err(&custom("data:application/json;base64,%%%"));
    assert!(e.to_string().contains("base64 of the JWKS JSON"), "{e}");
    let e = err(&custom("data:application/json,%7B%22keys%22%3A%5B%5D%7D"));
    assert!(
        e.to_string()
            .contains("the key list is empty): include the issuer's public RSA"),
        "{e}"
    );
    let e = err("[[providers]\ndomain = \"https://a.example\"\n");
    assert!(
        e.to_string().contains("check the quotes and brackets here"),
        "{e}"
    );
    let e = AuthConfigError::whole_file(
        "auth.config.toml",
        AuthConfigErrorKind::Unreadable("denied".into()),
    );
    assert!(
        e.to_string()
            .ends_with("check that it exists and that this user may read it"),
        "{e}"
    );
}
