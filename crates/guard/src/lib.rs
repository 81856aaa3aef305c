//! Protection against hostile clients, without I/O of its own: what the server checks before
//! it does work for a connection or a call.
//!
//! - `conn_cap.rs`: [`ConnectionCap`], connections open at once, in total and per address;
//! - `rate.rs`: [`RateLimits`], token buckets per user and per client address for function
//!   calls, failed authentications and new connections, and [`RateLimited`], the refusal;
//! - `rate_spec.rs`: [`Rate`], a bucket as written on the command line (`100/s:1000`);
//! - `client_addr.rs`: [`TrustedProxies`], the client address behind a reverse proxy, and
//!   [`client_key`] (IPv6 clients count by /64);
//! - `fd_limit.rs`: the descriptor limit and the default connection cap below it;
//! - `throttle.rs`: [`LogThrottle`], one warning per interval for repeated refusals.
//!
//! [`Guard`] bundles them with the time limits ([`GuardConfig`]) and the counters that show
//! what was refused. The server crate enforces connection limits in its accept loop; rate
//! limits are checked by the HTTP API and by the sync session, which both hold the `Guard`.

mod client_addr;
mod conn_cap;
mod fd_limit;
mod rate;
mod rate_spec;
mod throttle;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use client_addr::{ProxySpecError, TrustedProxies, client_key};
pub use conn_cap::{AddressPermit, CapRefusal, ConnPermit, ConnectionCap};
pub use fd_limit::{default_max_connections, raise_fd_limit, reserve};
pub use rate::{LimitName, RateConfig, RateLimited, RateLimits, WARN_EVERY};
pub use rate_spec::{Rate, RateSpecError};
pub use throttle::LogThrottle;

/// Default time for a request's header to arrive (also the idle time of a keep-alive
/// connection between two requests).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a shutdown gives requests and WebSocket sessions in flight.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// A WebSocket that has sent nothing, not even the answer to a ping, for this long is
/// closed (the server pings every 15 s, and every WebSocket stack answers pings by itself).
pub const WS_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The limits of a server (README.md, "Hostile clients and bad days").
#[derive(Clone, Debug)]
pub struct GuardConfig {
    /// A connection must deliver a complete request header this long after it opened or
    /// after its previous response, else it is closed.
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: Option<usize>,
    pub trusted_proxies: TrustedProxies,
    pub rates: RateConfig,
    /// How long a shutdown waits for requests, mutations and sessions in flight.
    pub shutdown_timeout: Duration,
    pub ws_idle_timeout: Duration,
}

impl GuardConfig {
    /// The defaults for a process whose descriptor limit is `fd_limit`.
    pub fn defaults(fd_limit: u64) -> GuardConfig {
        GuardConfig {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_connections: default_max_connections(fd_limit),
            max_connections_per_ip: None,
            trusted_proxies: TrustedProxies::default(),
            rates: RateConfig::default(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            ws_idle_timeout: WS_IDLE_TIMEOUT,
        }
    }

    /// No connection cap and no rate limit (the time limits stay): for tests and embedders.
    pub fn unlimited() -> GuardConfig {
        GuardConfig {
            max_connections: usize::MAX,
            rates: RateConfig::off(),
            ..GuardConfig::defaults(u64::MAX)
        }
    }
}

/// Connection events counted for `/api/health` and the logs.
#[derive(Default)]
pub struct ConnStats {
    /// Connections closed because a request header did not arrive in time (or a keep-alive
    /// connection stayed idle past that time).
    pub header_timeouts: AtomicU64,
    /// WebSockets closed because their peer stopped answering pings.
    pub ws_idle_closed: AtomicU64,
    /// Failed `accept` calls (e.g. out of descriptors).
    pub accept_errors: AtomicU64,
    /// Connections still busy when the shutdown deadline passed, dropped then.
    pub aborted_at_shutdown: AtomicU64,
}

/// Everything the server checks about clients, shared by the accept loop, the HTTP API and
/// the sync sessions.
pub struct Guard {
    config: GuardConfig,
    pub cap: ConnectionCap,
    pub rates: RateLimits,
    pub stats: ConnStats,
}

impl Guard {
    pub fn new(config: GuardConfig) -> Guard {
        Guard {
            cap: ConnectionCap::new(config.max_connections, config.max_connections_per_ip),
            rates: RateLimits::new(config.rates),
            stats: ConnStats::default(),
            config,
        }
    }

    pub fn config(&self) -> &GuardConfig {
        &self.config
    }

    /// The counters, as JSON for `/api/health`.
    pub fn stats_json(&self) -> serde_json::Value {
        let (refused_full, refused_per_ip) = self.cap.refused();
        let count = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut rate_limited = serde_json::Map::new();
        for name in LimitName::ALL {
            rate_limited.insert(name.as_str().into(), self.rates.refused(name).into());
        }
        serde_json::json!({
            "connections": self.cap.open(),
            "maxConnections": self.cap.max(),
            "refusedAtMaxConnections": refused_full,
            "refusedAtMaxConnectionsPerIp": refused_per_ip,
            "headerTimeouts": count(&self.stats.header_timeouts),
            "webSocketsClosedIdle": count(&self.stats.ws_idle_closed),
            "acceptErrors": count(&self.stats.accept_errors),
            "rateLimited": rate_limited,
        })
    }
}
