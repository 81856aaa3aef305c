//! The command-line options of actions for `dev` and `serve`: how many run at once, and which
//! non-public addresses `fetch()` may reach (`--allow-private-network`, or the environment
//! variable `PULSEBASE_ALLOW_PRIVATE_NETWORK`; on by default in `dev` only).

use anyhow::Context as _;
use application::{ActionLimits, ActionOptions};
use clap::Args;
use fetch::NetworkPolicy;

/// The environment variable read when `--allow-private-network` is not given.
const ALLOW_PRIVATE_NETWORK_ENV: &str = "PULSEBASE_ALLOW_PRIVATE_NETWORK";

#[derive(Args, Clone, Debug)]
pub struct ActionArgs {
    /// Which non-public addresses (loopback, private, link-local) fetch() in actions may
    /// reach: true (all but cloud metadata), false, or a comma-separated list of addresses and
    /// CIDR ranges such as 10.1.0.0/16,127.0.0.1 [env: PULSEBASE_ALLOW_PRIVATE_NETWORK]
    /// [default: true for dev, false for serve]
    #[arg(long, value_name = "true|false|LIST", num_args = 0..=1, default_missing_value = "true")]
    pub allow_private_network: Option<String>,
    /// Actions (and HTTP actions) running at once; ten times as many more may wait, beyond
    /// that they are refused with "too many actions in flight".
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_actions: u32,
}

impl ActionArgs {
    /// The app's action options; `dev` allows private addresses unless told otherwise.
    pub fn options(&self, dev: bool) -> anyhow::Result<ActionOptions> {
        let setting = self
            .allow_private_network
            .clone()
            .or_else(|| std::env::var(ALLOW_PRIVATE_NETWORK_ENV).ok());
        let network = match setting {
            Some(text) => NetworkPolicy::parse(&text).with_context(|| {
                format!("--allow-private-network (or {ALLOW_PRIVATE_NETWORK_ENV})")
            })?,
            None if dev => NetworkPolicy::allow_private(),
            None => NetworkPolicy::public_only(),
        };
        Ok(ActionOptions {
            limits: ActionLimits {
                max_running: self.max_actions as usize,
                max_queued: 10 * self.max_actions as usize,
                ..ActionLimits::default()
            },
            network,
            ..ActionOptions::default()
        })
    }
}
