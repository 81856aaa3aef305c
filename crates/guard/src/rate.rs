//! [`RateLimits`]: the token buckets, keyed by user or by client address, and
//! [`RateLimited`], the refusal every transport turns into its own error.
//!
//! | limit | key | what takes a token |
//! |---|---|---|
//! | `calls-per-user` | the identity's `tokenIdentifier` | a query subscription, mutation or action over the WebSocket, a call of the HTTP API or of an HTTP action |
//! | `calls-per-ip` | the client address | the same calls, from anyone at that address |
//! | `failed-auth-per-ip` | the client address | an access token or admin key that was refused |
//! | `connections-per-ip` | the client address | a new TCP connection |
//!
//! A failed authentication costs a token only when it fails, but once the bucket is empty
//! the address is refused before its next token is even looked at, until a token is back:
//! checking a forged token is the work an attacker wants us to do.
//!
//! Refusals are counted per limit and logged at most once per [`WARN_EVERY`] per limit, with
//! how many were refused since the last line, so a flood does not become a flood of logs.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::DefaultKeyedRateLimiter;
use governor::clock::{Clock, DefaultClock};
use parking_lot::Mutex;

use crate::client_addr::client_key;
use crate::rate_spec::Rate;
use crate::throttle::LogThrottle;

/// Shortest interval between two warnings about the same limit.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// The four limits, by the name the command line and the errors use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimitName {
    CallsPerUser,
    CallsPerIp,
    FailedAuthPerIp,
    ConnectionsPerIp,
}

impl LimitName {
    pub const ALL: [LimitName; 4] = [
        LimitName::CallsPerUser,
        LimitName::CallsPerIp,
        LimitName::FailedAuthPerIp,
        LimitName::ConnectionsPerIp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LimitName::CallsPerUser => "calls-per-user",
            LimitName::CallsPerIp => "calls-per-ip",
            LimitName::FailedAuthPerIp => "failed-auth-per-ip",
            LimitName::ConnectionsPerIp => "connections-per-ip",
        }
    }

    pub fn parse(name: &str) -> Option<LimitName> {
        LimitName::ALL.into_iter().find(|l| l.as_str() == name)
    }

    /// What the bucket counts, for messages.
    fn counts(self) -> &'static str {
        match self {
            LimitName::CallsPerUser => "function calls per user",
            LimitName::CallsPerIp => "function calls per client address",
            LimitName::FailedAuthPerIp => "failed authentications per client address",
            LimitName::ConnectionsPerIp => "new connections per client address",
        }
    }

    fn index(self) -> usize {
        match self {
            LimitName::CallsPerUser => 0,
            LimitName::CallsPerIp => 1,
            LimitName::FailedAuthPerIp => 2,
            LimitName::ConnectionsPerIp => 3,
        }
    }
}

impl fmt::Display for LimitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The configured limits; `None` is off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateConfig {
    rates: [Option<Rate>; 4],
}

impl Default for RateConfig {
    /// Limits a normal app never reaches (README.md, "Hostile clients and bad days").
    fn default() -> Self {
        let rate = |text: &str| Rate::parse(text).ok().flatten();
        RateConfig {
            rates: [
                rate("100/s:1000"),
                rate("1000/s:5000"),
                rate("10/min:60"),
                rate("100/s:1000"),
            ],
        }
    }
}

impl RateConfig {
    /// No limit at all (tests and embedders that want none).
    pub fn off() -> RateConfig {
        RateConfig { rates: [None; 4] }
    }

    pub fn get(&self, name: LimitName) -> Option<Rate> {
        self.rates[name.index()]
    }

    pub fn set(&mut self, name: LimitName, rate: Option<Rate>) {
        self.rates[name.index()] = rate;
    }
}

/// A refused call, connection or authentication: which limit, and when to try again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimited {
    pub limit: LimitName,
    pub rate: Rate,
    pub retry_after: Duration,
}

impl RateLimited {
    /// Milliseconds until a retry can succeed, rounded up (never 0).
    pub fn retry_after_ms(&self) -> u64 {
        (self.retry_after.as_micros().div_ceil(1000) as u64).max(1)
    }

    /// Whole seconds for an HTTP `Retry-After` header, rounded up (never 0).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after_ms().div_ceil(1000)
    }

    /// The error's `data`, in the shape of Convex's rate limiter component
    /// (`{kind: "RateLimited", name, retryAfter}`, milliseconds), so apps that already
    /// check `isRateLimitError(e)` recognise it.
    pub fn error_data(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "RateLimited",
            "name": self.limit.as_str(),
            "retryAfter": self.retry_after_ms(),
        })
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Rate limit {} exceeded: this server allows {} {} (bursts of {}); retry in {:.1} s",
            self.limit,
            per_period(&self.rate),
            self.limit.counts(),
            self.rate.burst,
            self.retry_after_ms() as f64 / 1000.0,
        )
    }
}

fn per_period(rate: &Rate) -> String {
    let unit = match rate.period.as_secs() {
        1 => "second",
        60 => "minute",
        _ => "hour",
    };
    format!("{} a {unit}", rate.count)
}

struct Bucket<K: std::hash::Hash + Eq + Clone> {
    rate: Rate,
    limiter: DefaultKeyedRateLimiter<K>,
}

impl<K: std::hash::Hash + Eq + Clone> Bucket<K> {
    fn new(rate: Option<Rate>) -> Option<Bucket<K>> {
        rate.map(|rate| Bucket {
            rate,
            limiter: DefaultKeyedRateLimiter::keyed(rate.quota()),
        })
    }

    /// Takes a token for `key`; the error is how long until one is back.
    fn take(&self, key: &K) -> Result<(), Duration> {
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// Every rate limit of a server.
pub struct RateLimits {
    config: RateConfig,
    calls_per_user: Option<Bucket<String>>,
    calls_per_ip: Option<Bucket<IpAddr>>,
    failed_auth: Option<Bucket<IpAddr>>,
    connections: Option<Bucket<IpAddr>>,
    /// Addresses whose failed-authentication bucket ran dry, until when they are refused.
    auth_blocked: Mutex<HashMap<IpAddr, Instant>>,
    refused: [AtomicU64; 4],
    warned: [LogThrottle; 4],
}

impl RateLimits {
    pub fn new(config: RateConfig) -> RateLimits {
        RateLimits {
            config,
            calls_per_user: Bucket::new(config.get(LimitName::CallsPerUser)),
            calls_per_ip: Bucket::new(config.get(LimitName::CallsPerIp)),
            failed_auth: Bucket::new(config.get(LimitName::FailedAuthPerIp)),
            connections: Bucket::new(config.get(LimitName::ConnectionsPerIp)),
            auth_blocked: Mutex::new(HashMap::new()),
            refused: Default::default(),
            warned: std::array::from_fn(|_| LogThrottle::new(WARN_EVERY)),
        }
    }

    pub fn config(&self) -> &RateConfig {
        &self.config
    }

    /// A function call by `user` (its `tokenIdentifier`, `None` when anonymous) from `addr`.
    /// The address's bucket is checked first, so a refused call from a busy address does
    /// not also use up the user's tokens.
    pub fn check_call(&self, user: Option<&str>, addr: Option<IpAddr>) -> Result<(), RateLimited> {
        self.check_call_addr(addr)?;
        self.check_call_user(user)
    }

    /// The address half of [`RateLimits::check_call`], for transports that learn the user
    /// only later (the HTTP API checks the address before it verifies the token).
    pub fn check_call_addr(&self, addr: Option<IpAddr>) -> Result<(), RateLimited> {
        let (Some(bucket), Some(addr)) = (&self.calls_per_ip, addr) else {
            return Ok(());
        };
        let key = client_key(addr);
        bucket
            .take(&key)
            .map_err(|wait| self.refuse(LimitName::CallsPerIp, bucket.rate, wait, &key))
    }

    /// The user half of [`RateLimits::check_call`].
    pub fn check_call_user(&self, user: Option<&str>) -> Result<(), RateLimited> {
        let (Some(bucket), Some(user)) = (&self.calls_per_user, user) else {
            return Ok(());
        };
        // Owned only for the map lookup; the limiter clones it when it inserts.
        let key = user.to_string();
        bucket
            .take(&key)
            .map_err(|wait| self.refuse(LimitName::CallsPerUser, bucket.rate, wait, &user))
    }

    /// A new connection from `addr`.
    pub fn check_connection(&self, addr: IpAddr) -> Result<(), RateLimited> {
        let Some(bucket) = &self.connections else {
            return Ok(());
        };
        let key = client_key(addr);
        bucket
            .take(&key)
            .map_err(|wait| self.refuse(LimitName::ConnectionsPerIp, bucket.rate, wait, &key))
    }

    /// Whether `addr` may try to authenticate now (refused while its failures are over the
    /// limit). Call before checking a token; report the outcome with
    /// [`RateLimits::auth_failed`].
    pub fn check_auth_attempt(&self, addr: Option<IpAddr>) -> Result<(), RateLimited> {
        let (Some(bucket), Some(addr)) = (&self.failed_auth, addr) else {
            return Ok(());
        };
        let key = client_key(addr);
        let until = self.auth_blocked.lock().get(&key).copied();
        match until {
            Some(until) if until > Instant::now() => {
                let wait = until - Instant::now();
                Err(self.refuse(LimitName::FailedAuthPerIp, bucket.rate, wait, &key))
            }
            _ => Ok(()),
        }
    }

    /// A token or admin key from `addr` was refused.
    pub fn auth_failed(&self, addr: Option<IpAddr>) {
        let (Some(bucket), Some(addr)) = (&self.failed_auth, addr) else {
            return;
        };
        let key = client_key(addr);
        if let Err(wait) = bucket.take(&key) {
            let until = Instant::now() + wait.max(Duration::from_millis(1));
            self.auth_blocked.lock().insert(key, until);
        }
    }

    /// Refusals so far, per limit.
    pub fn refused(&self, name: LimitName) -> u64 {
        self.refused[name.index()].load(Ordering::Relaxed)
    }

    /// Forgets buckets that are full again and blocks that are over (call every minute or
    /// so: each key seen holds a few bytes until then).
    pub fn housekeep(&self) {
        if let Some(b) = &self.calls_per_user {
            b.limiter.retain_recent();
            b.limiter.shrink_to_fit();
        }
        for b in [&self.calls_per_ip, &self.failed_auth, &self.connections]
            .into_iter()
            .flatten()
        {
            b.limiter.retain_recent();
            b.limiter.shrink_to_fit();
        }
        let now = Instant::now();
        self.auth_blocked.lock().retain(|_, until| *until > now);
    }

    fn refuse(
        &self,
        limit: LimitName,
        rate: Rate,
        wait: Duration,
        key: &dyn fmt::Display,
    ) -> RateLimited {
        let refused = RateLimited {
            limit,
            rate,
            retry_after: wait,
        };
        self.refused[limit.index()].fetch_add(1, Ordering::Relaxed);
        if let Some(count) = self.warned[limit.index()].hit() {
            tracing::warn!(
                limit = limit.as_str(),
                last_key = %key,
                "rate limit {limit} ({rate}) refused {count} request(s) since the last report"
            );
        }
        refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: LimitName, rate: &str) -> RateConfig {
        let mut config = RateConfig::off();
        config.set(name, Rate::parse(rate).expect("rate"));
        config
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn a_user_over_the_limit_is_refused_and_others_are_not() {
        let limits = RateLimits::new(config(LimitName::CallsPerUser, "1/min:3"));
        for _ in 0..3 {
            limits
                .check_call(Some("iss|alice"), None)
                .expect("within the burst");
        }
        let refused = limits
            .check_call(Some("iss|alice"), None)
            .expect_err("over");
        assert_eq!(refused.limit, LimitName::CallsPerUser);
        assert!(refused.retry_after > Duration::from_secs(10), "{refused:?}");
        assert!(refused.to_string().contains("calls-per-user"), "{refused}");
        assert!(refused.to_string().contains("retry in"), "{refused}");
        assert_eq!(refused.error_data()["kind"], "RateLimited");
        limits
            .check_call(Some("iss|bob"), None)
            .expect("another user");
        limits
            .check_call(None, None)
            .expect("anonymous callers have no user bucket");
        assert_eq!(limits.refused(LimitName::CallsPerUser), 1);
    }

    #[test]
    fn addresses_count_ipv6_by_network() {
        let limits = RateLimits::new(config(LimitName::CallsPerIp, "1/min:2"));
        limits.check_call(None, Some(ip("2001:db8::1"))).expect("1");
        limits.check_call(None, Some(ip("2001:db8::2"))).expect("2");
        assert!(limits.check_call(None, Some(ip("2001:db8::3"))).is_err());
        limits
            .check_call(None, Some(ip("2001:db8:0:1::1")))
            .expect("another /64");
    }

    #[test]
    fn failed_authentications_block_the_address_until_a_token_is_back() {
        let limits = RateLimits::new(config(LimitName::FailedAuthPerIp, "1/min:2"));
        let addr = Some(ip("198.51.100.1"));
        for _ in 0..3 {
            limits.check_auth_attempt(addr).expect("not blocked yet");
            limits.auth_failed(addr);
        }
        let refused = limits.check_auth_attempt(addr).expect_err("blocked");
        assert_eq!(refused.limit, LimitName::FailedAuthPerIp);
        limits
            .check_auth_attempt(Some(ip("198.51.100.2")))
            .expect("another address");
        limits.housekeep();
        assert!(
            limits.check_auth_attempt(addr).is_err(),
            "still blocked after housekeeping"
        );
    }

    #[test]
    fn off_means_never_refused() {
        let limits = RateLimits::new(RateConfig::off());
        for _ in 0..10_000 {
            limits
                .check_call(Some("u"), Some(ip("10.0.0.1")))
                .expect("off");
            limits.check_connection(ip("10.0.0.1")).expect("off");
        }
    }

    #[test]
    fn retry_times_round_up() {
        let refused = RateLimited {
            limit: LimitName::CallsPerIp,
            rate: Rate::parse("1/s").ok().flatten().expect("rate"),
            retry_after: Duration::from_micros(1),
        };
        assert_eq!(refused.retry_after_ms(), 1);
        assert_eq!(refused.retry_after_secs(), 1);
    }
}
