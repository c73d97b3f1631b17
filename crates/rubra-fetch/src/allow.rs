//! Which hosts may be reached, on which ports, and which resolved addresses may be connected to.
//!
//! Entries are exact host names or IP literals (`images.example.com`, `127.0.0.1`, `::1`), or
//! wildcards (`*.example.com` for every subdomain, `*` for any host), each optionally with a
//! port (`127.0.0.1:8080`, `[::1]:8080`, `*.example.com:443`): an entry with a port allows that
//! port only, one without allows any port. An exact entry is trusted fully: it may resolve to a
//! loopback or private address (the tests allow-list `127.0.0.1`). A host that only matches a
//! wildcard may reach public addresses only, so `*.example.com` cannot be turned into a probe of
//! the internal network by a DNS record pointing at 10.0.0.1.
//!
//! A host named by exact entries *with ports* is refused on every other port, even where a
//! wildcard or "any public host" would otherwise admit it: the address check at connect time
//! sees the host name but not the port, so the name must not be trusted on a port that was not
//! checked.

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

/// An allow-list entry that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry:?} is not an allow-list entry: {reason}")]
pub struct InvalidEntry {
    /// The entry as given.
    pub entry: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// A host name or IP literal, normalised.
    Exact(String),
    /// `*.example.com`, held as `.example.com`.
    Suffix(String),
    /// `*`.
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    pattern: Pattern,
    port: Option<u16>,
}

impl Entry {
    fn port_allows(&self, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
    }
}

/// The configured hosts (`--fetch-allow`), normalised to lower case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<Entry>,
}

impl AllowList {
    /// Builds the list from configured entries; blank entries are ignored, and so are entries
    /// that cannot be understood (nothing is allowed by them: [`AllowList::parse`] refuses
    /// them instead, for settings validation).
    pub fn new<I, S>(hosts: I) -> AllowList
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let entries = hosts
            .into_iter()
            .filter_map(|h| parse_entry(h.as_ref()).ok().flatten())
            .collect();
        AllowList { entries }
    }

    /// Builds the list from configured entries, refusing a blank or malformed entry (a path,
    /// a bad port, a `*` anywhere but at the start).
    pub fn parse<I, S>(hosts: I) -> Result<AllowList, InvalidEntry>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut entries = Vec::new();
        for h in hosts {
            let h = h.as_ref();
            match parse_entry(h) {
                Ok(Some(e)) => entries.push(e),
                Ok(None) => {
                    return Err(InvalidEntry {
                        entry: h.to_owned(),
                        reason: "an entry may not be blank",
                    });
                }
                Err(reason) => {
                    return Err(InvalidEntry {
                        entry: h.to_owned(),
                        reason,
                    });
                }
            }
        }
        Ok(AllowList { entries })
    }

    /// Whether nothing at all may be fetched.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How `host` (a name or an IP literal, IPv6 with or without brackets) matches on *some*
    /// port: what the connect-time address check uses, which does not know the port. Callers
    /// must also check the URL's port with [`AllowList::check_authority`].
    pub fn check(&self, host: &str) -> HostMatch {
        let host = normalise(host);
        if self.names(&host) {
            return HostMatch::Exact;
        }
        if self
            .entries
            .iter()
            .any(|e| wildcard_covers(&e.pattern, &host))
        {
            return HostMatch::Wildcard;
        }
        HostMatch::Refused
    }

    /// How `host` on `port` matches. A host that exact entries name is [`HostMatch::Exact`]
    /// on their ports and [`HostMatch::Refused`] on any other, whatever the wildcards say.
    pub fn check_authority(&self, host: &str, port: u16) -> HostMatch {
        let host = normalise(host);
        let mut named = false;
        for e in &self.entries {
            if matches!(&e.pattern, Pattern::Exact(h) if *h == host) {
                if e.port_allows(port) {
                    return HostMatch::Exact;
                }
                named = true;
            }
        }
        if named {
            return HostMatch::Refused;
        }
        if self
            .entries
            .iter()
            .any(|e| e.port_allows(port) && wildcard_covers(&e.pattern, &host))
        {
            return HostMatch::Wildcard;
        }
        HostMatch::Refused
    }

    /// Whether an exact entry names `host`, on any port.
    pub fn names(&self, host: &str) -> bool {
        let host = normalise(host);
        self.entries
            .iter()
            .any(|e| matches!(&e.pattern, Pattern::Exact(h) if *h == host))
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

/// Wildcards name DNS subdomains; they never cover IP literals, except `*`.
fn wildcard_covers(pattern: &Pattern, host: &str) -> bool {
    match pattern {
        Pattern::Any => true,
        Pattern::Suffix(s) => host.parse::<IpAddr>().is_err() && host.ends_with(s.as_str()),
        Pattern::Exact(_) => false,
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`, a bare IPv6 literal, `*.domain[:port]`, `*[:port]`.
/// `Ok(None)` for a blank entry.
fn parse_entry(raw: &str) -> Result<Option<Entry>, &'static str> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.contains(['/', '@', '?', '#', ' ', '\t']) {
        return Err("give a host, host:port, *.domain or *, not a URL or path");
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or("an opening [ without a closing ]")?;
        if inside.parse::<Ipv6Addr>().is_err() {
            return Err("only an IPv6 address goes in brackets");
        }
        match after {
            "" => (inside, None),
            _ => (inside, Some(after.strip_prefix(':').ok_or("text after ]")?)),
        }
    } else if s.matches(':').count() > 1 {
        if s.parse::<Ipv6Addr>().is_err() {
            return Err("not an IPv6 address (write [v6]:port for one with a port)");
        }
        (s, None)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err("the port must be a number from 1 to 65535"),
        },
    };
    let pattern = if host == "*" {
        Pattern::Any
    } else if let Some(suffix) = host.strip_prefix("*.") {
        let suffix = normalise(suffix);
        if suffix.is_empty() || suffix.contains('*') {
            return Err("a wildcard is * or *.domain");
        }
        Pattern::Suffix(format!(".{suffix}"))
    } else if normalise(host).is_empty() {
        return Err("no host");
    } else if host.contains('*') {
        return Err("a wildcard is * or *.domain");
    } else {
        Pattern::Exact(normalise(host))
    };
    Ok(Some(Entry { pattern, port }))
}

fn normalise(host: &str) -> String {
    let host = host
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    // An IP literal in its one canonical spelling, so `fd00:0::1` in the list matches a URL's
    // `fd00::1`.
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => host,
    }
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
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast (deprecated)
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
        || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 (and 64:ff9b:1::/48): may embed an internal IPv4
        || (s[0] == 0x2001 && s[1] == 0) // Teredo: tunnels to an address chosen by its relay
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard-only
        || (s[0] == 0x2002 && !is_public_v4(six_to_four(s))) // 6to4 of an internal IPv4
        || (s[..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0) // IPv4-translated (SIIT)
        || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0)) // IPv4-compatible
}

/// The IPv4 address a 6to4 address (`2002:AABB:CCDD::/48`) embeds.
fn six_to_four(s: [u16; 8]) -> Ipv4Addr {
    let [a, b] = s[1].to_be_bytes();
    let [c, d] = s[2].to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
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
    fn an_entry_with_a_port_allows_that_port_only() {
        let l = AllowList::parse([
            "127.0.0.1:8080",
            "[::1]:9090",
            "hooks.internal:8443",
            "Hooks.Internal.:9443",
            "*.example.com:443",
            "open.example.net",
            "fd00::1",
        ])
        .unwrap();
        assert_eq!(l.check_authority("127.0.0.1", 8080), HostMatch::Exact);
        assert_eq!(l.check_authority("127.0.0.1", 8081), HostMatch::Refused);
        assert_eq!(l.check_authority("[::1]", 9090), HostMatch::Exact);
        assert_eq!(l.check_authority("::1", 8080), HostMatch::Refused);
        assert_eq!(l.check_authority("hooks.internal", 8443), HostMatch::Exact);
        assert_eq!(l.check_authority("hooks.internal", 9443), HostMatch::Exact);
        assert_eq!(l.check_authority("hooks.internal", 443), HostMatch::Refused);
        assert_eq!(l.check_authority("a.example.com", 443), HostMatch::Wildcard);
        assert_eq!(l.check_authority("a.example.com", 80), HostMatch::Refused);
        assert_eq!(l.check_authority("open.example.net", 1), HostMatch::Exact);
        assert_eq!(l.check_authority("fd00::1", 80), HostMatch::Exact);
        // The connect-time check knows no port: a named host is exact there.
        assert_eq!(l.check("hooks.internal"), HostMatch::Exact);
        assert_eq!(l.check("a.example.com"), HostMatch::Wildcard);
        assert!(l.names("127.0.0.1") && !l.names("a.example.com"));
        // An exact entry with ports fixes its host's ports even under `*`.
        let l = AllowList::new(["*", "hooks.internal:8443"]);
        assert_eq!(l.check_authority("hooks.internal", 443), HostMatch::Refused);
        assert_eq!(l.check_authority("other.example", 443), HostMatch::Wildcard);
    }

    #[test]
    fn malformed_entries_are_refused_by_parse_and_ignored_by_new() {
        for bad in [
            "",
            " ",
            "http://example.com",
            "example.com/path",
            "user@example.com",
            "example.com:",
            "example.com:0",
            "example.com:65536",
            "example.com:+80",
            "example.com:http",
            "[::1",
            "[example.com]:80",
            "[::1]x",
            "::1:80:zz",
            "a.*.example.com",
            "*example.com",
            "*.",
            ":80",
        ] {
            let err = AllowList::parse([bad]).unwrap_err();
            assert_eq!(err.entry, bad);
        }
        let l = AllowList::new(["example.com:0", "", "ok.example"]);
        assert_eq!(l.check_authority("example.com", 0), HostMatch::Refused);
        assert_eq!(l.check_authority("ok.example", 80), HostMatch::Exact);
        assert!(AllowList::parse(["*", "*:8080", "[::1]", "::1", "a.b:1"]).is_ok());
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
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "255.255.255.255",
            "2002:7f00:1::1",
            "2001:0:4136:e378::1",
            "::127.0.0.1",
            "::ffff:0:127.0.0.1",
            "::ffff:0:10.0.0.1",
            "192.88.99.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!AllowList::address_allowed(how, ip), "{ip} must be refused");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2002:808:808::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(AllowList::address_allowed(how, ip), "{ip} must be allowed");
        }
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(AllowList::address_allowed(HostMatch::Exact, ip));
    }

    #[test]
    fn an_ip_entry_matches_however_either_side_spells_the_address() {
        let l = AllowList::new(["fd00:0:0::1", "[FE80::0001]"]);
        assert_eq!(l.check("fd00::1"), HostMatch::Exact);
        assert_eq!(l.check("[fd00:0::1]"), HostMatch::Exact);
        assert_eq!(l.check("fe80::1"), HostMatch::Exact);
        assert_eq!(l.check("fd00::2"), HostMatch::Refused);
    }
}
