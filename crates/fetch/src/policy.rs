//! [`NetworkPolicy`]: which addresses `fetch()` may connect to.
//!
//! By default only public addresses: a URL a user typed must not reach the server's own admin
//! endpoint on loopback, a database on the private network, or a cloud metadata service. The
//! policy judges IP addresses, never URL text: the resolver (`resolver.rs`) applies it to every
//! address a name resolves to, the client applies it to IP literals and to every redirect, so
//! the address actually connected to is always one the policy allowed.
//!
//! An app may allow private addresses: all of them (what `pulsebase dev` does by default) or
//! listed ranges. Cloud metadata addresses stay refused under "all" and are reachable only when
//! a listed range names them, because a leaked instance credential is worse than a refused
//! call.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Why an address is not public.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressKind {
    Loopback,
    Private,
    LinkLocal,
    /// A cloud provider's instance metadata service (credentials live there).
    CloudMetadata,
    /// `0.0.0.0/8`, `::`: on Linux, connecting there reaches the machine itself.
    Unspecified,
    /// `100.64.0.0/10`, the carrier-grade NAT range, private to a provider's network.
    SharedAddressSpace,
    Multicast,
    Documentation,
    /// Reserved or special-purpose ranges that are not reachable public hosts.
    Reserved,
}

impl AddressKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AddressKind::Loopback => "loopback",
            AddressKind::Private => "private",
            AddressKind::LinkLocal => "link-local",
            AddressKind::CloudMetadata => "cloud metadata",
            AddressKind::Unspecified => "unspecified",
            AddressKind::SharedAddressSpace => "shared (carrier-grade NAT)",
            AddressKind::Multicast => "multicast",
            AddressKind::Documentation => "documentation",
            AddressKind::Reserved => "reserved",
        }
    }
}

impl fmt::Display for AddressKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An address the policy refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{ip} is a {kind} address")]
pub struct Refused {
    pub ip: IpAddr,
    pub kind: AddressKind,
}

/// A setting that is not a policy; the message names the bad part.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid private network allowance {entry:?}: expected true, false, or a comma-separated list of addresses and CIDR ranges such as 10.1.0.0/16,127.0.0.1"
)]
pub struct PolicyError {
    pub entry: String,
}

/// Which non-public addresses `fetch()` may reach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// Every non-public address except cloud metadata.
    allow_private: bool,
    /// Ranges allowed even though they are not public (metadata addresses included).
    allowed: Vec<IpNet>,
}

const V4: &[(Ipv4Addr, u8, AddressKind)] = &[
    // Specific addresses first: they sit inside wider ranges below.
    (
        Ipv4Addr::new(169, 254, 169, 254),
        32,
        AddressKind::CloudMetadata,
    ),
    (
        Ipv4Addr::new(100, 100, 100, 200),
        32,
        AddressKind::CloudMetadata,
    ),
    (Ipv4Addr::new(0, 0, 0, 0), 8, AddressKind::Unspecified),
    (Ipv4Addr::new(10, 0, 0, 0), 8, AddressKind::Private),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        AddressKind::SharedAddressSpace,
    ),
    (Ipv4Addr::new(127, 0, 0, 0), 8, AddressKind::Loopback),
    (Ipv4Addr::new(169, 254, 0, 0), 16, AddressKind::LinkLocal),
    (Ipv4Addr::new(172, 16, 0, 0), 12, AddressKind::Private),
    (Ipv4Addr::new(192, 0, 0, 0), 24, AddressKind::Reserved),
    (Ipv4Addr::new(192, 0, 2, 0), 24, AddressKind::Documentation),
    (Ipv4Addr::new(192, 88, 99, 0), 24, AddressKind::Reserved),
    (Ipv4Addr::new(192, 168, 0, 0), 16, AddressKind::Private),
    (Ipv4Addr::new(198, 18, 0, 0), 15, AddressKind::Reserved),
    (
        Ipv4Addr::new(198, 51, 100, 0),
        24,
        AddressKind::Documentation,
    ),
    (
        Ipv4Addr::new(203, 0, 113, 0),
        24,
        AddressKind::Documentation,
    ),
    (Ipv4Addr::new(224, 0, 0, 0), 4, AddressKind::Multicast),
    // 240.0.0.0/4 includes the broadcast address 255.255.255.255.
    (Ipv4Addr::new(240, 0, 0, 0), 4, AddressKind::Reserved),
];

const V6: &[(Ipv6Addr, u8, AddressKind)] = &[
    (
        Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
        128,
        AddressKind::CloudMetadata,
    ),
    (Ipv6Addr::UNSPECIFIED, 128, AddressKind::Unspecified),
    (Ipv6Addr::LOCALHOST, 128, AddressKind::Loopback),
    // IPv4-compatible addresses (deprecated); mapped ones are judged by their IPv4 part first.
    (
        Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0),
        96,
        AddressKind::Reserved,
    ),
    (
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        AddressKind::Private,
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        AddressKind::Reserved,
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        AddressKind::Documentation,
    ),
    // IETF protocol assignments, Teredo (2001::/32) among them.
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        AddressKind::Reserved,
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        AddressKind::Documentation,
    ),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        AddressKind::Private,
    ),
    (
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
        10,
        AddressKind::LinkLocal,
    ),
    // Site-local (deprecated), private in practice.
    (
        Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
        10,
        AddressKind::Private,
    ),
    (
        Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
        8,
        AddressKind::Multicast,
    ),
];

/// The IPv4 address an IPv6 address carries and routes to: IPv4-mapped (`::ffff:a.b.c.d`),
/// NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::/48`).
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let from = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(from(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(from(hi, lo)),
        [0x2002, hi, lo, ..] => Some(from(hi, lo)),
        _ => None,
    }
}

/// Why `ip` is not a public address, or `None` when it is.
pub fn classify(ip: IpAddr) -> Option<AddressKind> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_ipv4(v6) {
                return classify_v4(v4);
            }
            let listed = V6
                .iter()
                .find(|(net, len, _)| Ipv6Net::new(*net, *len).is_ok_and(|net| net.contains(&v6)));
            if let Some((_, _, kind)) = listed {
                return Some(*kind);
            }
            // Public unicast is allocated from 2000::/3 only.
            let global = Ipv6Net::new(Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3)
                .is_ok_and(|net| net.contains(&v6));
            (!global).then_some(AddressKind::Reserved)
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressKind> {
    V4.iter()
        .find(|(net, len, _)| Ipv4Net::new(*net, *len).is_ok_and(|net| net.contains(&ip)))
        .map(|(_, _, kind)| *kind)
}

impl NetworkPolicy {
    /// Public addresses only (what `pulsebase serve` does by default).
    pub fn public_only() -> NetworkPolicy {
        NetworkPolicy::default()
    }

    /// Every address except cloud metadata (what `pulsebase dev` does by default).
    pub fn allow_private() -> NetworkPolicy {
        NetworkPolicy {
            allow_private: true,
            allowed: Vec::new(),
        }
    }

    /// Public addresses plus `ranges`.
    pub fn allow_ranges(ranges: Vec<IpNet>) -> NetworkPolicy {
        NetworkPolicy {
            allow_private: false,
            allowed: ranges,
        }
    }

    /// Parses the setting: `true` / `all`, `false` / `none`, or a comma-separated list of
    /// addresses and CIDR ranges.
    pub fn parse(text: &str) -> Result<NetworkPolicy, PolicyError> {
        let text = text.trim();
        match text.to_ascii_lowercase().as_str() {
            "true" | "all" | "yes" | "1" => return Ok(NetworkPolicy::allow_private()),
            "false" | "none" | "no" | "0" | "" => return Ok(NetworkPolicy::public_only()),
            _ => {}
        }
        let mut ranges = Vec::new();
        for entry in text.split(',').map(str::trim) {
            let range = IpNet::from_str(entry)
                .ok()
                .or_else(|| IpAddr::from_str(entry).ok().map(IpNet::from))
                .ok_or_else(|| PolicyError {
                    entry: entry.to_string(),
                })?;
            ranges.push(range);
        }
        Ok(NetworkPolicy::allow_ranges(ranges))
    }

    /// Whether `fetch()` may connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        let Some(kind) = classify(ip) else {
            return Ok(());
        };
        let embedded = match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        let listed = self
            .allowed
            .iter()
            .any(|net| net.contains(&ip) || embedded.is_some_and(|v4| net.contains(&v4)));
        if listed || (self.allow_private && kind != AddressKind::CloudMetadata) {
            return Ok(());
        }
        Err(Refused { ip, kind })
    }

    /// One line for the startup log.
    pub fn describe(&self) -> String {
        let listed = || {
            self.allowed
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (self.allow_private, self.allowed.is_empty()) {
            (true, true) => "public and private addresses (cloud metadata refused)".to_string(),
            (true, false) => format!(
                "public and private addresses (cloud metadata refused unless listed: {})",
                listed()
            ),
            (false, true) => "public addresses only".to_string(),
            (false, false) => format!("public addresses and {}", listed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an IP address")
    }

    fn kind(text: &str) -> Option<AddressKind> {
        classify(ip(text))
    }

    #[test]
    fn public_addresses_pass() {
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(kind(public), None, "{public}");
            assert_eq!(NetworkPolicy::public_only().check(ip(public)), Ok(()));
        }
    }

    #[test]
    fn ipv4_ranges_that_are_not_public() {
        use AddressKind::*;
        for (addr, expected) in [
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("10.0.0.1", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("169.254.1.1", LinkLocal),
            ("169.254.169.254", CloudMetadata),
            ("100.100.100.200", CloudMetadata),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("100.64.0.1", SharedAddressSpace),
            ("224.0.0.1", Multicast),
            ("255.255.255.255", Reserved),
            ("240.0.0.1", Reserved),
            ("192.0.2.1", Documentation),
            ("198.18.0.1", Reserved),
        ] {
            assert_eq!(kind(addr), Some(expected), "{addr}");
        }
    }

    #[test]
    fn ipv6_ranges_that_are_not_public() {
        use AddressKind::*;
        for (addr, expected) in [
            ("::1", Loopback),
            ("::", Unspecified),
            ("fe80::1", LinkLocal),
            ("fc00::1", Private),
            ("fd12:3456::1", Private),
            ("fd00:ec2::254", CloudMetadata),
            ("fec0::1", Private),
            ("ff02::1", Multicast),
            ("2001:db8::1", Documentation),
            ("2001::1", Reserved),
            ("100::1", Reserved),
            ("::7f00:1", Reserved),
            ("4000::1", Reserved),
            ("64:ff9b:1::1", Private),
        ] {
            assert_eq!(kind(addr), Some(expected), "{addr}");
        }
    }

    #[test]
    fn addresses_embedding_ipv4_are_judged_by_it() {
        use AddressKind::*;
        for (addr, expected) in [
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:7f00:1", Loopback),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:169.254.169.254", CloudMetadata),
            ("64:ff9b::a9fe:a9fe", CloudMetadata),
            ("64:ff9b::127.0.0.1", Loopback),
            ("2002:7f00:1::1", Loopback),
            ("2002:c0a8:101::", Private),
        ] {
            assert_eq!(kind(addr), Some(expected), "{addr}");
        }
    }

    #[test]
    fn the_default_refuses_with_the_reason() {
        let refused = NetworkPolicy::public_only().check(ip("10.0.0.1"));
        assert_eq!(
            refused.map_err(|e| e.to_string()),
            Err("10.0.0.1 is a private address".to_string())
        );
        let metadata = NetworkPolicy::public_only().check(ip("169.254.169.254"));
        assert_eq!(
            metadata.map_err(|e| e.to_string()),
            Err("169.254.169.254 is a cloud metadata address".to_string())
        );
    }

    #[test]
    fn allowing_private_still_refuses_metadata_unless_listed() {
        let all = NetworkPolicy::allow_private();
        assert_eq!(all.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(all.check(ip("192.168.0.10")), Ok(()));
        assert_eq!(all.check(ip("::1")), Ok(()));
        assert!(all.check(ip("169.254.169.254")).is_err());
        assert!(all.check(ip("::ffff:169.254.169.254")).is_err());
        assert!(all.check(ip("fd00:ec2::254")).is_err());
        let listed = NetworkPolicy::parse("169.254.169.254").expect("a policy");
        assert_eq!(listed.check(ip("169.254.169.254")), Ok(()));
    }

    #[test]
    fn listed_ranges_allow_only_themselves() {
        let policy = NetworkPolicy::parse("10.1.0.0/16, 127.0.0.1").expect("a policy");
        assert_eq!(policy.check(ip("10.1.2.3")), Ok(()));
        assert_eq!(policy.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(policy.check(ip("::ffff:127.0.0.1")), Ok(()));
        assert_eq!(policy.check(ip("8.8.8.8")), Ok(()));
        assert!(policy.check(ip("10.2.0.1")).is_err());
        assert!(policy.check(ip("127.0.0.2")).is_err());
        assert!(policy.check(ip("::1")).is_err());
    }

    #[test]
    fn settings_parse_or_name_the_bad_entry() {
        assert_eq!(
            NetworkPolicy::parse("true"),
            Ok(NetworkPolicy::allow_private())
        );
        assert_eq!(
            NetworkPolicy::parse("ALL"),
            Ok(NetworkPolicy::allow_private())
        );
        assert_eq!(
            NetworkPolicy::parse("false"),
            Ok(NetworkPolicy::public_only())
        );
        assert_eq!(NetworkPolicy::parse(" "), Ok(NetworkPolicy::public_only()));
        let error = NetworkPolicy::parse("10.0.0.0/8,localhost").expect_err("refused");
        assert_eq!(error.entry, "localhost");
        assert!(error.to_string().contains("CIDR"), "{error}");
        assert!(NetworkPolicy::parse("10.0.0.0/33").is_err());
    }
}
