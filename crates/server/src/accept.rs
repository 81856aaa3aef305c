//! The accept loop and the life of one HTTP connection, in place of `axum::serve`, whose
//! loop hides hyper's knobs. What it adds:
//!
//! - a **header timeout** (hyper's `header_read_timeout`): a connection must deliver a
//!   complete request header within the limit of opening, and of its previous response when
//!   kept alive, or it is closed; an idle or half-sent connection cannot hold a descriptor;
//! - the **connection cap** and **per-address caps** and the **new-connection rate** of the
//!   [`Guard`]: a connection over a limit gets a short 503 or 429 (`refuse.rs`) and a
//!   throttled warning in the log, and the connections already open are not disturbed;
//! - a **lingering close** (`linger.rs`): a request body dropped before its end is read and
//!   discarded for a few seconds, so a client still sending reads the refusal;
//! - a **graceful shutdown with a deadline**: the listener closes at once, connections that
//!   never sent a complete request are dropped, requests in flight finish (hyper closes each
//!   connection after its response) until the deadline, and WebSocket sessions drain
//!   (`ws.rs`) under the same deadline.
//!
//! HTTP/1.1 only (WebSockets upgrade from it); put a TLS proxy in front for HTTP/2.
//! WebSocket connections leave hyper after the upgrade, so the header timeout never applies
//! to them; their liveness is checked with pings (`ws.rs`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use guard::{CapRefusal, Guard, LogThrottle, RateLimited};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt as _;

use crate::conn_info::ConnInfo;
use crate::lifecycle::Lifecycle;
use crate::linger::Lingering;
use crate::refuse::{Refusal, refuse};

/// Pause after an accept error that is not about one connection (out of descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// How often stale rate-limit buckets are forgotten.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);

/// The router as a cloneable service.
pub(crate) trait AppService:
    tower::Service<Request<Body>, Response = Response, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static
{
}

impl<S> AppService for S where
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible, Future: Send>
        + Clone
        + Send
        + 'static
{
}

/// Accepts and serves connections until `shutdown` resolves, then shuts down gracefully.
pub(crate) async fn run(
    listener: TcpListener,
    guard: Arc<Guard>,
    lifecycle: Lifecycle,
    service: impl AppService,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let refusals = LogThrottle::new(guard::WARN_EVERY);
    let housekeeping = tokio::spawn({
        let guard = guard.clone();
        async move {
            let mut every = tokio::time::interval(HOUSEKEEPING_EVERY);
            loop {
                every.tick().await;
                guard.rates.housekeep();
            }
        }
    });
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    guard.stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!("accept error: {e}; pausing {} s", ACCEPT_BACKOFF.as_secs());
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        // Small frames go out at once: a MutationResponse followed by its Transition would
        // otherwise wait ~40 ms for a delayed ACK (Nagle's algorithm).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
        }
        match admit(&guard, peer) {
            Ok(info) => {
                let serving = serve_connection(
                    stream,
                    info,
                    service.clone(),
                    guard.clone(),
                    lifecycle.clone(),
                );
                lifecycle.spawn(serving);
            }
            Err(refusal) => {
                if let Some(count) = refusals.hit() {
                    tracing::warn!(
                        %peer,
                        "refused {count} connection(s) since the last report: {}",
                        refusal.message
                    );
                }
                refuse(stream, refusal);
            }
        }
    }
    drop(listener);
    housekeeping.abort();
    let grace = guard.config().shutdown_timeout;
    tracing::info!(
        "shutting down: no longer accepting connections; {} connection(s) and session(s) have up to {} s to finish",
        lifecycle.running(),
        grace.as_secs_f64()
    );
    lifecycle.begin_shutdown(grace);
    if !lifecycle.drained().await {
        tracing::warn!(
            "{} connection(s) were still busy at the shutdown deadline and were dropped",
            lifecycle.running()
        );
    }
    Ok(())
}

/// Checks a new connection against the limits; the error is the answer it gets.
#[allow(clippy::result_large_err)] // a refusal is built once per refused connection
fn admit(guard: &Guard, peer: SocketAddr) -> Result<Arc<ConnInfo>, Refusal> {
    let ip = peer.ip();
    // A trusted proxy speaks for many clients: its connections count only in the total,
    // and per-address limits apply to the forwarded address of each request instead.
    let proxy = guard.config().trusted_proxies.trusts(ip);
    if !proxy {
        guard.rates.check_connection(ip).map_err(rate_refusal)?;
    }
    let total = guard.cap.admit().map_err(cap_refusal)?;
    let address = if proxy {
        None
    } else {
        guard.cap.admit_address(ip).map_err(cap_refusal)?
    };
    Ok(ConnInfo::new(peer, Some(total), address))
}

pub(crate) fn cap_refusal(refusal: CapRefusal) -> Refusal {
    let code = match refusal {
        CapRefusal::Full { .. } => "TooManyConnections",
        CapRefusal::PerAddress { .. } => "TooManyConnectionsFromAddress",
    };
    Refusal {
        status: 503,
        code,
        message: refusal.to_string(),
        retry_after_secs: 1,
        extra: None,
    }
}

pub(crate) fn rate_refusal(limited: RateLimited) -> Refusal {
    Refusal {
        status: 429,
        code: "RateLimited",
        message: limited.to_string(),
        retry_after_secs: limited.retry_after_secs(),
        extra: Some(limited.error_data()),
    }
}

/// Serves one connection until it closes, the header timeout closes it, or the shutdown
/// deadline passes.
async fn serve_connection(
    stream: TcpStream,
    info: Arc<ConnInfo>,
    service: impl AppService,
    guard: Arc<Guard>,
    lifecycle: Lifecycle,
) {
    let per_request = info.clone();
    let hyper_service =
        hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
            per_request.request_started();
            request.extensions_mut().insert(per_request.clone());
            service
                .clone()
                .oneshot(request.map(|body| Body::new(Lingering::new(body))))
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(guard.config().header_timeout)
        .keep_alive(true);
    let connection = builder
        .serve_connection(TokioIo::new(stream), hyper_service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = lifecycle.stopping() => {
            // Idle connections close at once; one that never sent a complete header has
            // nothing to finish; one with a request in flight gets until the deadline.
            connection.as_mut().graceful_shutdown();
            if info.requests_started() == 0 {
                return;
            }
            match tokio::time::timeout_at(lifecycle.deadline(), connection.as_mut()).await {
                Ok(result) => result,
                Err(_) => {
                    guard.stats.aborted_at_shutdown.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    };
    if let Err(e) = result {
        if e.is_timeout() {
            guard.stats.header_timeouts.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(peer = %info.peer, "closed a connection whose request header did not arrive within {} s", guard.config().header_timeout.as_secs_f64());
        } else {
            tracing::debug!(peer = %info.peer, error = %e, "connection ended with an error");
        }
    }
}

/// Errors that concern one connection only (it was reset before we took it).
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
