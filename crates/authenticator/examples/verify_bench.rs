//! Single-threaded verification throughput: (a) cache hits, (b) cold RS256 verification with
//! the token cache disabled. Uses the dev issuer as a built-in provider, so no network.
//!
//! Run with `cargo run --release -p authenticator --example verify_bench`.

use std::time::{Duration, Instant};

use auth::{DevIssuerKey, VerifiedToken};
use authenticator::{Authenticator, AuthenticatorOptions};
use serde_json::{Map, json};

const ISSUER: &str = "http://127.0.0.1:3210/dev-issuer";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (key, _pem) = DevIssuerKey::generate()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    // A Clerk-sized token: the template claims plus some metadata.
    let mut extra = Map::new();
    extra.insert(
        "picture".into(),
        json!("https://img.clerk.com/eyJ0eXBlIjoicHJveHkifQ"),
    );
    extra.insert("given_name".into(), json!("Maria"));
    extra.insert("family_name".into(), json!("Doe"));
    extra.insert("email_verified".into(), json!(true));
    extra.insert(
        "public_metadata".into(),
        json!({"role": "admin", "plan": "pro"}),
    );
    let token = key.mint(
        ISSUER,
        "user_2abcDEFghiJKLmnoPQRstu",
        Some("Maria Doe"),
        Some("maria@example.com"),
        extra,
        3600,
        now,
    )?;
    println!("token: {} bytes", token.len());

    let cached = make(&key, authenticator::DEFAULT_TOKEN_CACHE_CAPACITY)?;
    let cold = make(&key, 0)?;
    cached.verify(&token).await?;

    let hits = measure(Duration::from_secs(2), || async {
        cached.verify(&token).await
    })
    .await?;
    println!("(a) cache-hit verify:           {hits:>10.0} validations/s");

    let misses = measure(Duration::from_secs(3), || async {
        cold.verify(&token).await
    })
    .await?;
    println!("(b) cold RS256 verify (no cache): {misses:>8.0} validations/s");

    // The pure function alone, to show what the authenticator adds on a miss.
    let provider = key.builtin_provider(ISSUER, auth::DEV_AUDIENCE);
    let keys = key.key_set();
    let pure = measure(Duration::from_secs(2), || async {
        auth::verify_with_keys(&token, &provider, &keys, now)
    })
    .await?;
    println!("(c) auth::verify_with_keys alone: {pure:>8.0} validations/s");
    Ok(())
}

fn make(key: &DevIssuerKey, capacity: usize) -> Result<Authenticator, Box<dyn std::error::Error>> {
    let options = AuthenticatorOptions::new(".").with_token_cache_capacity(capacity);
    let auth = Authenticator::new(auth::AuthConfig::empty(), options)?;
    auth.set_builtin(vec![key.builtin_provider(ISSUER, auth::DEV_AUDIENCE)]);
    Ok(auth)
}

/// Runs `f` repeatedly for about `budget`; returns calls per second.
async fn measure<F, Fut>(budget: Duration, f: F) -> Result<f64, Box<dyn std::error::Error>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<VerifiedToken, auth::TokenRejection>>,
{
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < budget {
        for _ in 0..100 {
            f().await?;
        }
        count += 100;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}
