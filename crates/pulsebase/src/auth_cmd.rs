//! `pulsebase token` (mint a dev-issuer token, with or without a running server) and
//! `pulsebase auth check` (diagnose a token against the app's providers).

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use authenticator::{Authenticator, AuthenticatorOptions, DevIssuer};

use crate::cli::{CheckArgs, TokenArgs};
use crate::paths::AppPaths;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn token(args: TokenArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.ttl <= auth::MAX_EXP_AHEAD_SECS,
        "--ttl {} is longer than any server accepts: at most {} seconds (10 years)",
        args.ttl,
        auth::MAX_EXP_AHEAD_SECS
    );
    let paths = AppPaths::new(&args.dir);
    let issuer = DevIssuer::load_or_create(&paths.state).map_err(|e| anyhow::anyhow!("{e}"))?;
    // The `iss` is the URL of the server running from this directory, so OIDC clients can
    // discover the issuer from it. With no server running we assume the default port; a
    // later `dev` on another port (`--port 0`) still accepts the token, because the dev
    // issuer's provider trusts its key under any loopback port (see
    // `auth::DevIssuerKey::builtin_provider`).
    let issuer_url = format!("{}/dev-issuer", paths.server_url(args.url.as_deref()));
    let claims = match &args.claims {
        Some(text) => {
            let value: serde_json::Value = serde_json::from_str(text)
                .with_context(|| format!("--claims is not JSON: {text}"))?;
            value.as_object().cloned().ok_or_else(|| {
                anyhow::anyhow!("--claims must be a JSON object, like '{{\"role\":\"admin\"}}'")
            })?
        }
        None => serde_json::Map::new(),
    };
    let token = issuer
        .mint(
            &issuer_url,
            &args.sub,
            args.name.as_deref(),
            args.email.as_deref(),
            claims,
            args.ttl,
            now(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

pub async fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let paths = AppPaths::new(&args.dir);
    let config = authenticator::load_auth_config(&paths.dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let auth = Authenticator::new(config, AuthenticatorOptions::new(&paths.dir))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // The dev issuer is trusted by `pulsebase dev`; check against it too when this app has
    // one. Its provider takes any loopback port, so the URL only names it in the report.
    if paths
        .state
        .join(authenticator::DEV_ISSUER_KEY_FILE)
        .exists()
        && let Ok(issuer) = DevIssuer::load_or_create(&paths.state)
    {
        let url = format!("{}/dev-issuer", paths.server_url(None));
        auth.set_builtin(vec![issuer.builtin_provider(&url)]);
    }
    let diagnosis = auth.diagnose(args.token.trim()).await;
    println!("{diagnosis}");
    Ok(if diagnosis.accepted_by().is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
