//! Files on disk: `auth.config.toml` with `.env.local` / `.env`, and the dev issuer key.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;

use auth::{AuthConfigErrorKind, Provider, TokenRejection};
use authenticator::{DEV_ISSUER_KEY_FILE, DevIssuer, EnvFiles, load_auth_config, watched_paths};
use common::*;
use serde_json::{Map, json};

const ORDINARY: &str =
    "# Clerk\n[[providers]]\ndomain = \"${PB_TEST_ISSUER_DOMAIN}\"\napplicationID = \"convex\"\n";

#[test]
fn missing_config_means_no_providers() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(load_auth_config(tmp.path()).unwrap().providers.is_empty());
    let paths = watched_paths(tmp.path());
    assert_eq!(paths.len(), 3);
    assert!(paths[0].ends_with("auth.config.toml"));
    assert!(paths[1].ends_with(".env.local"));
    assert!(paths[2].ends_with(".env"));
}

#[test]
fn env_files_fill_variables_local_first() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("auth.config.toml"), ORDINARY).unwrap();

    let err = load_auth_config(tmp.path()).unwrap_err();
    assert_eq!(
        err.kind,
        AuthConfigErrorKind::MissingEnvVar {
            name: "PB_TEST_ISSUER_DOMAIN".into()
        }
    );
    assert_eq!((err.line, err.column), (3, 10));
    assert!(err.to_string().ends_with(
        "auth.config.toml:3:10: ${PB_TEST_ISSUER_DOMAIN} is not set: add it to .env.local or the environment"
    ));

    fs::write(
        tmp.path().join(".env"),
        "# shared\nPB_TEST_ISSUER_DOMAIN=https://from-env.example\n",
    )
    .unwrap();
    let config = load_auth_config(tmp.path()).unwrap();
    assert_eq!(config.providers[0].issuer(), "https://from-env.example");

    fs::write(
        tmp.path().join(".env.local"),
        "PB_TEST_ISSUER_DOMAIN=\"verb-noun-00.clerk.accounts.dev\" # quoted, scheme-less\n",
    )
    .unwrap();
    let config = load_auth_config(tmp.path()).unwrap();
    assert_eq!(
        config.providers[0],
        Provider::Oidc {
            domain: "https://verb-noun-00.clerk.accounts.dev".into(),
            application_id: "convex".into()
        }
    );

    // The process environment beats both files.
    fs::write(tmp.path().join(".env.local"), "HOME=/not/the/real/home\n").unwrap();
    let files = EnvFiles::load(tmp.path()).unwrap();
    assert_eq!(files.lookup("HOME"), std::env::var("HOME").ok());
}

#[test]
fn config_errors_name_file_line_and_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("auth.config.toml");
    fs::write(
        &path,
        "[[providers]]\ndomain = \"https://a.example\"\napplicationId = \"convex\"\n",
    )
    .unwrap();
    let err = load_auth_config(tmp.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:3:1: unknown key `applicationId`: did you mean `applicationID`?",
            path.display()
        )
    );

    fs::write(
        &path,
        "[[providers]]\ndomain = \"http://example.com\"\napplicationID = \"convex\"\n",
    )
    .unwrap();
    let err = load_auth_config(tmp.path()).unwrap_err();
    assert_eq!(err.line, 2);
    assert!(err.to_string().contains("use https://"), "{err}");

    fs::write(tmp.path().join(".env"), "NOT A VALID LINE\n").unwrap();
    fs::write(&path, ORDINARY).unwrap();
    let err = load_auth_config(tmp.path()).unwrap_err();
    assert!(err.file.ends_with(".env"), "{err}");
    assert_eq!(err.line, 1, "{err}");
}

#[tokio::test]
async fn dev_issuer_key_persists_and_is_trusted_without_http() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("nested/.pulsebase");
    let issuer = DevIssuer::load_or_create(&data).unwrap();
    let path = data.join(DEV_ISSUER_KEY_FILE);
    assert_eq!(issuer.key_path(), path);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = DevIssuer::load_or_create(&data).unwrap();
    assert_eq!(again.kid(), issuer.kid());

    let url = "http://127.0.0.1:3210/dev-issuer";
    let clock = TestClock::new();
    let auth = authenticator(auth::AuthConfig::empty(), &clock, tmp.path());
    let token = issuer
        .mint(url, "dev-user", Some("Dev"), None, Map::new(), 3600, NOW)
        .unwrap();
    assert_eq!(
        auth.verify(&token).await,
        Err(TokenRejection::NoProvidersConfigured)
    );
    auth.set_builtin(vec![issuer.builtin_provider(url)]);
    let id = auth.verify(&token).await.unwrap().identity;
    assert_eq!(id.token_identifier(), format!("{url}|dev-user"));
    assert_eq!(id.get("name"), Some(&json!("Dev")));
    assert_eq!(
        issuer.openid_configuration(url)["jwks_uri"],
        json!(format!("{url}/.well-known/jwks.json"))
    );

    // A server on another port (`dev --port 0`) takes a token minted with no server running
    // (iss on the default port), and still refuses one signed by another app's dev key.
    let served = "http://127.0.0.1:45678/dev-issuer";
    auth.set_builtin(vec![issuer.builtin_provider(served)]);
    let id = auth.verify(&token).await.unwrap().identity;
    assert_eq!(id.issuer(), url, "the identity keeps the token's iss");
    let stranger = DevIssuer::load_or_create(&tmp.path().join("other")).unwrap();
    let forged = stranger
        .mint(url, "dev-user", None, None, Map::new(), 3600, NOW)
        .unwrap();
    assert!(matches!(
        auth.verify(&forged).await,
        Err(TokenRejection::UnknownKid { .. })
    ));
    let elsewhere = issuer
        .mint(
            "http://10.1.2.3:3210/dev-issuer",
            "dev-user",
            None,
            None,
            Map::new(),
            3600,
            NOW,
        )
        .unwrap();
    assert!(matches!(
        auth.verify(&elsewhere).await,
        Err(TokenRejection::NoMatchingProvider { .. })
    ));

    // set_config keeps the built-in provider.
    auth.set_config(auth::AuthConfig::empty());
    assert!(auth.verify(&token).await.is_ok());

    fs::write(&path, "garbage").unwrap();
    let err = DevIssuer::load_or_create(&data).unwrap_err();
    assert!(err.to_string().contains("delete the file"), "{err}");
}
