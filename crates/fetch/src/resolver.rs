//! [`GuardedResolver`]: the DNS resolver of the `fetch()` client. It resolves a name with the
//! system resolver and hands the connector only the addresses the [`NetworkPolicy`] allows, so a
//! public name that resolves to a private address (by mistake, or by DNS rebinding between two
//! lookups) is never connected to: the connector can only use what this returns.
//!
//! IP literals in URLs never reach a resolver (the connector parses them itself); the client
//! checks those (`client.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::policy::{NetworkPolicy, Refused};

/// Every address `host` resolved to was refused; the first refusal says why.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to non-public addresses only: {refused}")]
pub(crate) struct NameRefused {
    pub host: String,
    pub refused: Refused,
}

/// Resolves names, keeping the allowed addresses only.
pub(crate) struct GuardedResolver {
    policy: Arc<NetworkPolicy>,
}

impl GuardedResolver {
    pub(crate) fn new(policy: Arc<NetworkPolicy>) -> GuardedResolver {
        GuardedResolver { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            // getaddrinfo on the fetch runtime's blocking threads, never on an action's.
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut first_refusal = None;
            let mut allowed = Vec::with_capacity(resolved.len());
            for addr in resolved {
                match policy.check(addr.ip()) {
                    Ok(()) => allowed.push(addr),
                    Err(refused) => {
                        first_refusal.get_or_insert(refused);
                    }
                }
            }
            if allowed.is_empty()
                && let Some(refused) = first_refusal
            {
                return Err(Box::new(NameRefused { host, refused }) as _);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}
