//! Verification throughput and its effect on other async work. Uses the dev issuer as a
//! built-in provider, so no network.
//!
//! Single-threaded: (a) cache hits, (b) cold RS256 verification with the token cache
//! disabled, (c) the pure `auth::verify_with_keys`, (d) the same handed to tokio's blocking
//! pool one at a time (the per-call cost of offloading).
//!
//! Burst, on a 2-worker runtime like the server's on a 2-core machine: 2,000 cold
//! verifications at once, (e) inline on the workers as `Authenticator::verify` does,
//! (f) each moved to `spawn_blocking`, (g) moved to `spawn_blocking` one at a time behind a
//! semaphore; meanwhile a probe hands a new task to the runtime every millisecond (as an
//! incoming request would arrive) and records how long it waited for a worker.
//!
//! Run with `cargo run --release -p authenticator --example verify_bench`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use auth::{DevIssuerKey, Provider, VerifiedToken};
use authenticator::{Authenticator, AuthenticatorOptions};
use serde_json::{Map, json};

const ISSUER: &str = "http://127.0.0.1:3210/dev-issuer";
const BURST: usize = 2_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (key, token, now) = runtime.block_on(single_threaded())?;
    drop(runtime);
    for mode in [Mode::Inline, Mode::Blocking, Mode::GatedBlocking] {
        burst(&key, &token, now, mode)?;
    }
    Ok(())
}

/// Where the burst's verifications run.
#[derive(Clone, Copy)]
enum Mode {
    Inline,
    Blocking,
    GatedBlocking,
}

async fn single_threaded() -> Result<(DevIssuerKey, String, u64), Box<dyn std::error::Error>> {
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
    println!("(a) cache-hit verify:             {hits:>10.0} validations/s");

    let misses = measure(Duration::from_secs(3), || async {
        cold.verify(&token).await
    })
    .await?;
    println!("(b) cold RS256 verify (no cache): {misses:>10.0} validations/s");

    // The pure function alone, to show what the authenticator adds on a miss.
    let provider = key.builtin_provider(ISSUER, auth::DEV_AUDIENCE);
    let keys = key.key_set();
    let pure = measure(Duration::from_secs(2), || async {
        auth::verify_with_keys(&token, &provider, &keys, now)
    })
    .await?;
    println!("(c) auth::verify_with_keys alone: {pure:>10.0} validations/s");

    let offloaded = measure(Duration::from_secs(2), || {
        offload(token.clone(), provider.clone(), Arc::clone(&keys), now)
    })
    .await?;
    println!("(d) (c) via spawn_blocking:       {offloaded:>10.0} validations/s");
    Ok((key, token, now))
}

/// What a cold verification moved to the blocking pool costs: owned inputs, a thread hop.
async fn offload(
    token: String,
    provider: Provider,
    keys: Arc<auth::KeySet>,
    now: u64,
) -> Result<VerifiedToken, auth::TokenRejection> {
    tokio::task::spawn_blocking(move || auth::verify_with_keys(&token, &provider, &keys, now))
        .await
        .map_err(|_| auth::TokenRejection::Malformed {
            reason: "the blocking task panicked",
        })?
}

/// `BURST` cold verifications at once on a 2-worker runtime, with the probe running.
fn burst(
    key: &DevIssuerKey,
    token: &str,
    now: u64,
    mode: Mode,
) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let cold = Arc::new(make(key, 0)?);
    let provider = key.builtin_provider(ISSUER, auth::DEV_AUDIENCE);
    let keys = key.key_set();
    let gate = Arc::new(tokio::sync::Semaphore::new(1));
    let running = Arc::new(AtomicBool::new(true));
    let (waits_tx, waits_rx) = std::sync::mpsc::channel::<Duration>();
    let handle = runtime.handle().clone();
    let probe_running = Arc::clone(&running);
    // Bounded: stops when the burst ends, or after 60 s whatever happens.
    let probe = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while probe_running.load(Ordering::Relaxed) && Instant::now() < deadline {
            let sent = Instant::now();
            let tx = waits_tx.clone();
            handle.spawn(async move {
                let _ = tx.send(sent.elapsed());
            });
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let started = Instant::now();
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..BURST {
            let (cold, gate, token, provider, keys) = (
                Arc::clone(&cold),
                Arc::clone(&gate),
                token.to_owned(),
                provider.clone(),
                Arc::clone(&keys),
            );
            tasks.spawn(async move {
                match mode {
                    Mode::Inline => cold.verify(&token).await,
                    Mode::Blocking => offload(token, provider, keys, now).await,
                    Mode::GatedBlocking => {
                        let _permit = gate.acquire().await;
                        offload(token, provider, keys, now).await
                    }
                }
            });
        }
        while let Some(result) = tasks.join_next().await {
            if !matches!(result, Ok(Ok(_))) {
                return Err("a verification in the burst failed");
            }
        }
        Ok(())
    })?;
    let elapsed = started.elapsed();
    running.store(false, Ordering::Relaxed);
    let _ = probe.join();
    // Let the last probe tasks run before reading what they sent.
    runtime.block_on(async { tokio::time::sleep(Duration::from_millis(20)).await });
    let mut waits: Vec<Duration> = waits_rx.try_iter().collect();
    waits.sort();
    let pick = |q: f64| {
        waits
            .get(((waits.len() as f64 - 1.0) * q) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "({}) burst of {BURST} cold verifies {}: {:>6.0} validations/s; a new task waited p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} probes)",
        match mode {
            Mode::Inline => "e",
            Mode::Blocking => "f",
            Mode::GatedBlocking => "g",
        },
        match mode {
            Mode::Inline => "inline               ",
            Mode::Blocking => "spawn_blocking       ",
            Mode::GatedBlocking => "spawn_blocking, gated",
        },
        BURST as f64 / elapsed.as_secs_f64(),
        pick(0.5),
        pick(0.99),
        pick(1.0),
        waits.len()
    );
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
