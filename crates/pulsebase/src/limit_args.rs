//! The command-line options of `dev` and `serve` that protect the server from hostile
//! clients and bad days (README.md, "Hostile clients and bad days"): time limits, the
//! connection caps, trusted proxies, rate limits, the shutdown deadline and the durability of
//! commits. [`LimitArgs::guard_config`] turns them into the `guard` crate's configuration.

use std::time::Duration;

use clap::Args;
use database::Durability;
use guard::{GuardConfig, LimitName, Rate, TrustedProxies};

#[derive(Args, Clone, Debug, Default)]
pub struct LimitArgs {
    /// Seconds a connection may take to send a complete request header, counted from when it
    /// opened or from its previous response (so also the idle time of a keep-alive
    /// connection).
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub header_timeout: f64,
    /// Most connections open at once [default: the descriptor limit less a reserve for the
    /// database, uploads and outbound requests].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Most connections open at once from one client address (IPv6: one /64) [default: no
    /// limit].
    #[arg(long, value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// Believe `X-Forwarded-For` from these proxies (addresses, networks such as 10.0.0.0/8,
    /// or `loopback`); repeat or separate with commas.
    #[arg(long, value_name = "ADDR", value_delimiter = ',')]
    pub trust_proxy: Vec<String>,
    /// A rate limit, NAME=RATE: calls-per-user, calls-per-ip, failed-auth-per-ip or
    /// connections-per-ip, with RATE like 100/s:1000 (N per s, min or h, :BURST) or off.
    /// Repeat for several.
    #[arg(long, value_name = "NAME=RATE")]
    pub rate_limit: Vec<String>,
    /// Seconds a shutdown (SIGTERM, Ctrl-C) gives requests, mutations and WebSocket sessions
    /// in flight before it drops them.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub shutdown_timeout: f64,
    /// Seconds a WebSocket may stay completely silent, not even answering the server's pings
    /// (every 15 s), before it is closed. A live client's WebSocket stack always answers.
    #[arg(long, value_name = "SECS", default_value_t = 120.0)]
    pub websocket_idle_timeout: f64,
    /// `normal`: a commit survives a crash of the process (SQLite synchronous=NORMAL); `full`:
    /// also a power loss (synchronous=FULL, one fsync per commit).
    #[arg(long, value_name = "MODE", default_value = "normal")]
    pub durability: Durability,
}

impl LimitArgs {
    /// The guard's configuration for a process whose descriptor limit is `fd_limit`; errors
    /// name the option and what it expects.
    pub fn guard_config(&self, fd_limit: u64) -> anyhow::Result<GuardConfig> {
        let mut config = GuardConfig::defaults(fd_limit);
        config.header_timeout = seconds("--header-timeout", self.header_timeout)?;
        config.shutdown_timeout = seconds("--shutdown-timeout", self.shutdown_timeout)?;
        config.ws_idle_timeout = seconds("--websocket-idle-timeout", self.websocket_idle_timeout)?;
        if let Some(max) = self.max_connections {
            anyhow::ensure!(max > 0, "--max-connections must be at least 1");
            config.max_connections = max;
        }
        if let Some(max) = self.max_connections_per_ip {
            anyhow::ensure!(max > 0, "--max-connections-per-ip must be at least 1");
            config.max_connections_per_ip = Some(max);
        }
        config.trusted_proxies = TrustedProxies::parse(self.trust_proxy.iter().map(String::as_str))
            .map_err(|e| anyhow::anyhow!("--trust-proxy: {e}"))?;
        for spec in &self.rate_limit {
            let (name, rate) = spec.split_once('=').ok_or_else(|| {
                anyhow::anyhow!(
                    "--rate-limit {spec:?}: write NAME=RATE, e.g. calls-per-user=100/s:1000"
                )
            })?;
            let limit = LimitName::parse(name.trim()).ok_or_else(|| {
                let names: Vec<_> = LimitName::ALL.iter().map(|l| l.as_str()).collect();
                anyhow::anyhow!(
                    "--rate-limit: unknown limit {name:?} (known: {})",
                    names.join(", ")
                )
            })?;
            let rate =
                Rate::parse(rate).map_err(|e| anyhow::anyhow!("--rate-limit {name}: {e}"))?;
            config.rates.set(limit, rate);
        }
        Ok(config)
    }
}

fn seconds(option: &str, value: f64) -> anyhow::Result<Duration> {
    anyhow::ensure!(
        value.is_finite() && value > 0.0 && value <= 86_400.0,
        "{option} must be a number of seconds above 0 and at most 86400, not {value}"
    );
    Ok(Duration::from_secs_f64(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(rate_limits: &[&str]) -> LimitArgs {
        LimitArgs {
            header_timeout: 10.0,
            shutdown_timeout: 10.0,
            websocket_idle_timeout: 120.0,
            rate_limit: rate_limits.iter().map(|s| s.to_string()).collect(),
            ..LimitArgs::default()
        }
    }

    #[test]
    fn rate_limits_are_read_by_name() {
        let config = args(&["calls-per-user=5/s:10", "connections-per-ip=off"])
            .guard_config(20_000)
            .expect("valid");
        assert_eq!(
            config
                .rates
                .get(LimitName::CallsPerUser)
                .map(|r| r.to_string()),
            Some("5/s:10".to_string())
        );
        assert_eq!(config.rates.get(LimitName::ConnectionsPerIp), None);
        assert_eq!(
            config.max_connections,
            guard::default_max_connections(20_000)
        );
    }

    #[test]
    fn bad_options_say_what_they_expect() {
        let error = args(&["calls=5/s"])
            .guard_config(1024)
            .expect_err("unknown");
        assert!(error.to_string().contains("calls-per-user"), "{error}");
        let error = args(&["calls-per-user"])
            .guard_config(1024)
            .expect_err("no rate");
        assert!(error.to_string().contains("NAME=RATE"), "{error}");
        let mut zero = args(&[]);
        zero.header_timeout = 0.0;
        assert!(zero.guard_config(1024).is_err());
    }
}
