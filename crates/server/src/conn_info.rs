//! [`ConnInfo`]: what the accept loop knows about a connection, attached to each of its
//! requests as an extension: the peer address, the connection-cap permits it holds (a
//! WebSocket session keeps them for as long as it lives) and how many requests it started.
//!
//! [`client_ip`] is the address limits count against: the peer, or behind a trusted proxy the
//! address in `X-Forwarded-For`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderMap;
use guard::{AddressPermit, ConnPermit, TrustedProxies};

/// One accepted connection.
pub(crate) struct ConnInfo {
    pub peer: SocketAddr,
    /// Requests this connection started (0: it never sent a complete header).
    started: AtomicU64,
    _total: Option<ConnPermit>,
    _address: Option<AddressPermit>,
}

impl ConnInfo {
    pub(crate) fn new(
        peer: SocketAddr,
        total: Option<ConnPermit>,
        address: Option<AddressPermit>,
    ) -> Arc<ConnInfo> {
        Arc::new(ConnInfo {
            peer,
            started: AtomicU64::new(0),
            _total: total,
            _address: address,
        })
    }

    pub(crate) fn request_started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn requests_started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }
}

/// The client's address for a request: the TCP peer, or the forwarded address when the peer
/// is a trusted proxy; `None` for a request that did not come through the accept loop.
pub(crate) fn client_ip(
    info: Option<&ConnInfo>,
    headers: &HeaderMap,
    proxies: &TrustedProxies,
) -> Option<IpAddr> {
    let peer = info?.peer.ip();
    if proxies.is_empty() {
        return Some(peer);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok());
    Some(proxies.client_ip(peer, forwarded))
}
