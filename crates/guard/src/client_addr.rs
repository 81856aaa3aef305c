//! Which client a connection or request comes from: [`client_key`] (the address a limit counts
//! against) and [`TrustedProxies`] (whose `X-Forwarded-For` is believed).
//!
//! IPv6 clients are counted by their /64 network: one host usually holds a whole /64, so
//! counting single IPv6 addresses would let one machine take as many slots as it likes.
//! An IPv4 address mapped into IPv6 counts as the IPv4 address.
//!
//! A forwarded address is only believed when the TCP peer is a trusted proxy. The header is
//! read from the right: each proxy appends the address it received the request from, so the
//! right-most entry that is not itself a trusted proxy is the client (entries further left
//! were written by the client and prove nothing).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// The key a per-address limit counts against: IPv4 as is, IPv6 by its /64 network.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The proxies whose forwarded-address header is believed (`--trust-proxy`).
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

/// A `--trust-proxy` entry that is neither an address nor a network.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid proxy address {0:?}: write an IP address (127.0.0.1) or a network (10.0.0.0/8, fd00::/8)"
)]
pub struct ProxySpecError(pub String);

impl TrustedProxies {
    /// Reads addresses and networks (`127.0.0.1`, `10.0.0.0/8`, `::1`); `loopback` stands
    /// for 127.0.0.0/8 and ::1.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, ProxySpecError> {
        let mut nets = Vec::new();
        for entry in entries {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            if entry == "loopback" {
                nets.extend(
                    ["127.0.0.0/8", "::1/128"]
                        .iter()
                        .filter_map(|n| n.parse::<IpNet>().ok()),
                );
                continue;
            }
            let net = entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| ProxySpecError(entry.to_string()))?;
            nets.push(net);
        }
        Ok(TrustedProxies { nets })
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the TCP peer, or, when the peer is a trusted proxy, the
    /// right-most address in `forwarded_for` (the `X-Forwarded-For` values, in order) that is
    /// not a trusted proxy. A peer that is a proxy but sent no usable header is the client.
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let entries: Vec<IpAddr> = forwarded_for
            .into_iter()
            .flat_map(|value| value.split(','))
            .filter_map(parse_forwarded_entry)
            .collect();
        entries
            .iter()
            .rev()
            .find(|ip| !self.trusts(**ip))
            // Every hop is a trusted proxy: the left-most one is as near the client as we know.
            .or_else(|| entries.first())
            .copied()
            .unwrap_or(peer)
    }
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:80`.
fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(socket) = entry.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(ip, _)| ip.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    #[test]
    fn ipv6_counts_by_network_and_mapped_ipv4_as_ipv4() {
        assert_eq!(client_key(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(client_key(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(client_key(ip("10.1.2.3")), ip("10.1.2.3"));
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let proxies = TrustedProxies::parse(["10.0.0.0/8"]).expect("parse");
        assert_eq!(
            proxies.client_ip(ip("203.0.113.9"), ["1.1.1.1"]),
            ip("203.0.113.9")
        );
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(ip("127.0.0.1"), ["1.1.1.1"]),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn a_trusted_proxy_forwards_the_right_most_untrusted_address() {
        let proxies = TrustedProxies::parse(["loopback", "10.0.0.0/8"]).expect("parse");
        // The client forged "6.6.6.6"; the proxy chain appended the real client and itself.
        let header = ["6.6.6.6, 198.51.100.7, 10.0.0.2"];
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), header),
            ip("198.51.100.7")
        );
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), ["198.51.100.7:4321"]),
            ip("198.51.100.7")
        );
        assert_eq!(
            proxies.client_ip(ip("::1"), ["[2001:db8::5]:80"]),
            ip("2001:db8::5")
        );
        // Several header lines count as one list.
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), ["198.51.100.7", "10.0.0.3"]),
            ip("198.51.100.7")
        );
        // No usable header: the proxy itself.
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), ["garbage"]),
            ip("127.0.0.1")
        );
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), ["10.0.0.9"]),
            ip("10.0.0.9")
        );
    }

    #[test]
    fn bad_proxy_entries_are_refused_with_the_form_expected() {
        let error = TrustedProxies::parse(["10.0.0.0/33"]).expect_err("bad net");
        assert!(error.to_string().contains("10.0.0.0/8"), "{error}");
        assert!(TrustedProxies::parse(["proxy.local"]).is_err());
    }

    proptest! {
        #[test]
        fn any_header_yields_the_peer_or_an_address_from_it(header in ".{0,80}") {
            let proxies = TrustedProxies::parse(["loopback"]).expect("parse");
            let peer = ip("127.0.0.1");
            let got = proxies.client_ip(peer, [header.as_str()]);
            let from_header = header.split(',').filter_map(parse_forwarded_entry).any(|e| e == got);
            prop_assert!(got == peer || from_header);
        }
    }
}
