//! Which hosts may be fetched from, and which resolved addresses may be connected to.
//!
//! Entries are exact host names or IP literals (`images.example.com`, `127.0.0.1`, `::1`), or
//! wildcards (`*.example.com` for every subdomain, `*` for any host). An exact entry is trusted
//! fully: it may resolve to a loopback or private address (the tests allow-list `127.0.0.1`).
//! A host that only matches a wildcard may reach public addresses only, so `*.example.com`
//! cannot be turned into a probe of the internal network by a DNS record pointing at 10.0.0.1.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How a host matched the allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostMatch {
    /// Not on the list: refuse.
    Refused,
    /// Matched by a wildcard: public addresses only.
    Wildcard,
    /// Listed exactly: any address it resolves to.
    Exact,
}

/// The configured hosts (`--fetch-allow`), normalised to lower case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    exact: Vec<String>,
    suffixes: Vec<String>,
    any: bool,
}

impl AllowList {
    /// Builds the list from configured entries; blank entries are ignored.
    pub fn new<I, S>(hosts: I) -> AllowList
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = AllowList::default();
        for h in hosts {
            let h = normalise(h.as_ref());
            if h.is_empty() {
                continue;
            }
            if h == "*" {
                list.any = true;
            } else if let Some(suffix) = h.strip_prefix("*.") {
                list.suffixes.push(format!(".{suffix}"));
            } else {
                list.exact.push(h);
            }
        }
        list
    }

    /// Whether nothing at all may be fetched.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.suffixes.is_empty() && !self.any
    }

    /// How `host` (a name or an IP literal, IPv6 with or without brackets) matches.
    pub fn check(&self, host: &str) -> HostMatch {
        let host = normalise(host);
        if self.exact.contains(&host) {
            return HostMatch::Exact;
        }
        let is_ip = host.parse::<IpAddr>().is_ok();
        // Wildcards name DNS subdomains; they never cover IP literals, except `*`.
        if self.any || (!is_ip && self.suffixes.iter().any(|s| host.ends_with(s.as_str()))) {
            return HostMatch::Wildcard;
        }
        HostMatch::Refused
    }

    /// Whether a connection to `ip` is allowed for a host that matched as `how`.
    pub fn address_allowed(how: HostMatch, ip: IpAddr) -> bool {
        match how {
            HostMatch::Exact => true,
            HostMatch::Wildcard => is_public(ip),
            HostMatch::Refused => false,
        }
    }
}

fn normalise(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// Whether `ip` is a globally routed unicast address: not loopback, private, link-local,
/// shared (CGNAT), multicast, documentation, benchmarking or otherwise reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b))
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && c == 0)
        || (a == 192 && b == 0 && c == 2)
        || (a == 198 && (b == 18 || b == 19))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a >= 224)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64: may embed an internal IPv4
        || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0)) // IPv4-compatible
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_wildcard_and_refused() {
        let l = AllowList::new([
            "Images.Example.com",
            "*.cdn.example.org",
            "127.0.0.1",
            "::1",
        ]);
        assert_eq!(l.check("images.example.com"), HostMatch::Exact);
        assert_eq!(l.check("IMAGES.example.com."), HostMatch::Exact);
        assert_eq!(l.check("a.cdn.example.org"), HostMatch::Wildcard);
        assert_eq!(l.check("cdn.example.org"), HostMatch::Refused);
        assert_eq!(l.check("evilcdn.example.org"), HostMatch::Refused);
        assert_eq!(l.check("example.com"), HostMatch::Refused);
        assert_eq!(l.check("127.0.0.1"), HostMatch::Exact);
        assert_eq!(l.check("[::1]"), HostMatch::Exact);
        assert_eq!(l.check("127.0.0.2"), HostMatch::Refused);
        assert_eq!(l.check("localhost"), HostMatch::Refused);
        assert!(AllowList::new(Vec::<String>::new()).is_empty());
    }

    #[test]
    fn star_allows_public_addresses_only() {
        let l = AllowList::new(["*"]);
        let how = l.check("10.1.2.3");
        assert_eq!(how, HostMatch::Wildcard);
        for ip in [
            "10.1.2.3",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!AllowList::address_allowed(how, ip), "{ip} must be refused");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(AllowList::address_allowed(how, ip), "{ip} must be allowed");
        }
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(AllowList::address_allowed(HostMatch::Exact, ip));
    }
}
