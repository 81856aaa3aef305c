//! The official Rust client (`convex` on crates.io, also the core of the Python, Swift and
//! Android clients), unmodified, against the real `pulsebase` binary serving
//! `tests/client_app`.
//!
//! What this client does differently from the npm client, each pinned by a test here:
//! - it opens its socket at `/api/sync` (no version segment) with a `Convex-Client:
//!   rust-<version>` header and replaces the deployment URL's whole path (`calls.rs`);
//! - it sends a Rust `i64` as an int64 where the npm client sends a float; a `number`
//!   validator takes it when a float holds it exactly (Convex refuses it) (`calls.rs`);
//! - it resolves a mutation that failed with a `ConvexError` only on the next Transition,
//!   which the server therefore sends after every mutation response (`calls.rs`);
//! - it refreshes a token only by reconnecting: a new socket asks its token callback again
//!   with `force_refresh` (`live.rs`), and so does `AuthError`, also the one a token's expiry
//!   causes, after which the server closes the socket as Convex does (`auth.rs`);
//! - after a reconnect it re-subscribes with the module path canonicalised to `module.js`
//!   (`live.rs`).

mod auth;
mod calls;
mod live;
mod server;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use convex::{ConvexClient, FunctionResult, QuerySubscription, Value};
use futures::StreamExt;

/// The bound on any single wait for the server or the client.
const WAIT: Duration = Duration::from_secs(15);

/// Runs a test's body on a runtime of its own and shuts that runtime down before returning,
/// so the clients' tasks end while the server (owned by the caller, dropped after this) still
/// runs. The order matters: in convex 0.10.4 a socket task whose client is dropped while it
/// waits to reconnect (as after the server stops under it) loops without yielding, and a
/// runtime waiting for it would never finish; the shutdown is bounded for the same reason.
fn on_runtime(body: impl Future<Output = ()>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(body)));
    runtime.shutdown_timeout(Duration::from_secs(5));
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Awaits `future` for at most `limit`; panics naming `what` when it takes longer.
async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// A client connected to `url`.
async fn connect(url: &str) -> ConvexClient {
    within(WAIT, "the client to start", ConvexClient::new(url))
        .await
        .expect("the client accepts the deployment URL")
}

/// Function arguments from `(name, value)` pairs.
fn args<const N: usize>(pairs: [(&str, Value); N]) -> BTreeMap<String, Value> {
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
}

/// The value of a successful call; panics with the error otherwise.
fn value(result: FunctionResult) -> Value {
    match result {
        FunctionResult::Value(value) => value,
        other => panic!("expected a value, got {other:?}"),
    }
}

/// The message of a call that failed with a plain error.
fn error_message(result: FunctionResult) -> String {
    match result {
        FunctionResult::ErrorMessage(message) => message,
        other => panic!("expected an error message, got {other:?}"),
    }
}

/// The convex JSON of a value (int64 as `{"$integer": ...}`), to compare with `json!`.
fn json(value: Value) -> serde_json::Value {
    serde_json::Value::from(value)
}

async fn query(
    client: &mut ConvexClient,
    name: &str,
    a: BTreeMap<String, Value>,
) -> FunctionResult {
    within(WAIT, name, client.query(name, a))
        .await
        .expect("the query reaches the server")
}

async fn mutation(
    client: &mut ConvexClient,
    name: &str,
    a: BTreeMap<String, Value>,
) -> FunctionResult {
    within(WAIT, name, client.mutation(name, a))
        .await
        .expect("the mutation reaches the server")
}

async fn subscribe(
    client: &mut ConvexClient,
    name: &str,
    a: BTreeMap<String, Value>,
) -> QuerySubscription {
    within(WAIT, name, client.subscribe(name, a))
        .await
        .expect("the subscription reaches the server")
}

/// Reads `subscription` until a result satisfies `accept`, for at most `limit`; returns it.
async fn until(
    subscription: &mut QuerySubscription,
    limit: Duration,
    what: &str,
    accept: impl Fn(&FunctionResult) -> bool,
) -> FunctionResult {
    until_or_explain(subscription, limit, what, accept, String::new).await
}

/// [`until`], adding `explain()` (say, the server's log) to the panic when it gives up.
async fn until_or_explain(
    subscription: &mut QuerySubscription,
    limit: Duration,
    what: &str,
    accept: impl Fn(&FunctionResult) -> bool,
    explain: impl Fn() -> String,
) -> FunctionResult {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(limit, async {
        while let Some(result) = subscription.next().await {
            if accept(&result) {
                return Some(result);
            }
            seen.push(format!("{result:?}"));
        }
        None
    })
    .await;
    match found {
        Ok(Some(result)) => result,
        Ok(None) => panic!(
            "the subscription ended while waiting for {what}; saw {seen:?}{}",
            explain()
        ),
        Err(_) => panic!(
            "timed out after {limit:?} waiting for {what}; saw {seen:?}{}",
            explain()
        ),
    }
}

/// Whether `result` is a value whose convex JSON has `expected` at `pointer`.
fn has(result: &FunctionResult, pointer: &str, expected: serde_json::Value) -> bool {
    match result {
        FunctionResult::Value(value) => json(value.clone()).pointer(pointer) == Some(&expected),
        _ => false,
    }
}
