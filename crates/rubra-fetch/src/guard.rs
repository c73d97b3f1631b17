//! The one guard for outbound requests a client can direct (overlay URLs, watches, webhooks):
//! a URL check before each request (scheme, credentials, host and port against the allow-list,
//! IP literals and `localhost` names), a resolver that drops forbidden addresses at connect
//! time, no redirects followed by the HTTP client, no proxy, and bounded body reads.

use crate::allow::{AllowList, HostMatch};
use crate::error::FetchError;
use bytes::{Bytes, BytesMut};
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::CONTENT_LENGTH;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Which hosts a guarded client may reach besides the exact allow-list entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Only hosts on the allow-list (exact entries, or wildcards for public addresses):
    /// overlay URLs and watches.
    AllowListed,
    /// Any host, at public addresses; internal addresses only for exact entries: webhooks.
    Public,
}

/// The checks every guarded request goes through. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Guard {
    allow: Arc<AllowList>,
    reach: Reach,
    https_only: bool,
}

/// The resolver's refusal, found again in reqwest's error chain (see [`FetchError::from`]).
#[derive(Debug)]
pub(crate) struct Blocked(pub(crate) String);

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Blocked {}

impl Guard {
    /// A guard for `allow` with the given reach, plain http allowed.
    pub fn new(allow: AllowList, reach: Reach) -> Guard {
        Guard {
            allow: Arc::new(allow),
            reach,
            https_only: false,
        }
    }

    /// With `yes`, plain `http://` is refused except for hosts listed exactly (with their port,
    /// when the entry has one).
    pub fn https_only(mut self, yes: bool) -> Guard {
        self.https_only = yes;
        self
    }

    /// The allow-list in force.
    pub fn allow(&self) -> &AllowList {
        &self.allow
    }

    /// A client builder that cannot be steered around the guard: it resolves names through
    /// the guard (addresses checked at connect time, so a DNS answer that changes after the
    /// URL check cannot slip an internal address through), follows no redirect (callers
    /// check each hop with [`Guard::check_url`] or refuse it), and ignores proxies from the
    /// environment (a proxy would connect on our behalf, past the address check). Add
    /// timeouts and the user agent, then build.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                allow: Arc::clone(&self.allow),
                reach: self.reach,
            }))
    }

    /// Parses `url` and checks it with [`Guard::check_url`], without any network traffic.
    pub fn parse_url(&self, url: &str) -> Result<Url, FetchError> {
        let parsed =
            Url::parse(url).map_err(|e| FetchError::InvalidUrl(format!("{url:?}: {e}")))?;
        self.check_url(&parsed)?;
        Ok(parsed)
    }

    /// Checks a URL before a request to it: http(s) only, no credentials, the host and port
    /// against the allow-list, https when required, and, because they never reach the
    /// resolver, IP literals and `localhost` names against the address rules. Answers how the
    /// host matched.
    pub fn check_url(&self, url: &Url) -> Result<HostMatch, FetchError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::InvalidUrl(
                "only http and https URLs are accepted".to_owned(),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FetchError::InvalidUrl(
                "credentials (user:password@) in URLs are not accepted".to_owned(),
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| FetchError::InvalidUrl(format!("{url}: no host")))?;
        let port = url.port_or_known_default().unwrap_or(0);
        let how = match self.allow.check_authority(host, port) {
            HostMatch::Refused if self.reach == Reach::Public && !self.allow.names(host) => {
                HostMatch::Wildcard
            }
            how => how,
        };
        if how == HostMatch::Refused {
            return Err(FetchError::Forbidden(if self.allow.names(host) {
                format!("{host} is listed in --fetch-allow for other ports than {port}")
            } else {
                format!("{host} is not on the allow-list (--fetch-allow)")
            }));
        }
        if self.https_only && url.scheme() == "http" && how != HostMatch::Exact {
            return Err(FetchError::Forbidden(format!(
                "https is required (--webhook-https-only): http:// is accepted only for hosts \
                 listed in --fetch-allow, and {host} is not"
            )));
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal
            && !AllowList::address_allowed(how, ip)
        {
            return Err(FetchError::Forbidden(format!(
                "address not allowed: {ip} is not a public address; only a host listed in \
                 --fetch-allow may reach it"
            )));
        }
        if how != HostMatch::Exact && is_localhost_name(host) {
            return Err(FetchError::Forbidden(format!(
                "address not allowed: {host} names this machine; only a host listed in \
                 --fetch-allow may reach it"
            )));
        }
        Ok(how)
    }
}

/// `localhost` and its subdomains, which resolvers answer with loopback (RFC 6761).
fn is_localhost_name(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "localhost" || h.ends_with(".localhost")
}

/// Resolves names, then drops the addresses the allow-list does not permit for that name.
/// This is the check that counts: it runs at connect time, on the addresses actually used.
#[derive(Debug, Clone)]
struct GuardedResolver {
    allow: Arc<AllowList>,
    reach: Reach,
}

impl GuardedResolver {
    /// How a name may be connected to, on whatever port the URL check let through.
    fn how(&self, host: &str) -> HostMatch {
        match self.allow.check(host) {
            HostMatch::Refused if self.reach == Reach::Public => HostMatch::Wildcard,
            how => how,
        }
    }

    async fn allowed_addrs(&self, host: &str) -> Result<Vec<SocketAddr>, Blocked> {
        let how = self.how(host);
        if how == HostMatch::Refused {
            return Err(Blocked(format!(
                "{host} is not on the allow-list (--fetch-allow)"
            )));
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| Blocked(format!("cannot resolve {host}: {e}")))?
            .filter(|a| AllowList::address_allowed(how, a.ip()))
            .collect();
        if addrs.is_empty() {
            return Err(Blocked(format!(
                "address not allowed: {host} has no public address; only a host listed in \
                 --fetch-allow may reach internal ones"
            )));
        }
        Ok(addrs)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        Box::pin(async move {
            match this.allowed_addrs(name.as_str()).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as Addrs),
                Err(b) => Err(Box::new(b) as _),
            }
        })
    }
}

/// Reads `resp`'s body up to `limit` bytes. `Ok(None)` when it is longer (declared or
/// found so while reading): reading stops there, and dropping the response then closes the
/// connection rather than draining the rest.
pub async fn read_capped(
    resp: &mut reqwest::Response,
    limit: usize,
) -> Result<Option<Bytes>, FetchError> {
    let declared = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Ok(None);
    }
    let mut body = BytesMut::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(chunk) = resp.chunk().await.map_err(FetchError::from)? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn resolver(allow: &[&str], reach: Reach) -> GuardedResolver {
        GuardedResolver {
            allow: Arc::new(AllowList::new(allow)),
            reach,
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_an_internal_address_is_refused_at_connect_time() {
        // `localhost` stands for any name whose DNS answer is (or turns into) loopback.
        let err = resolver(&["127.0.0.1"], Reach::Public)
            .allowed_addrs("localhost")
            .await
            .unwrap_err();
        assert!(err.0.starts_with("address not allowed"), "{err}");
        let err = resolver(&["*"], Reach::AllowListed)
            .allowed_addrs("localhost")
            .await
            .unwrap_err();
        assert!(err.0.starts_with("address not allowed"), "{err}");
        let err = resolver(&["127.0.0.1"], Reach::AllowListed)
            .allowed_addrs("localhost")
            .await
            .unwrap_err();
        assert!(err.0.contains("not on the allow-list"), "{err}");
        // Listed exactly, the name may resolve to loopback (on whatever port the URL check let
        // through).
        let ok = resolver(&["localhost:8080"], Reach::Public)
            .allowed_addrs("localhost")
            .await
            .unwrap();
        assert!(ok.iter().all(|a| a.ip().is_loopback()), "{ok:?}");

        // Through a guarded client, past the URL check: the connection is never made.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let guard = Guard::new(AllowList::new(["127.0.0.1"]), Reach::Public);
        let client = guard.client_builder().build().unwrap();
        let err = client
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap_err();
        let err = FetchError::from(err);
        assert!(
            matches!(&err, FetchError::Forbidden(m) if m.starts_with("address not allowed")),
            "{err:?}"
        );
        let accepted =
            tokio::time::timeout(std::time::Duration::from_millis(100), listener.accept()).await;
        assert!(accepted.is_err(), "a connection reached the listener");
    }

    #[test]
    fn webhook_urls_reach_public_hosts_and_listed_internal_ones_only() {
        let guard = Guard::new(
            AllowList::new(["127.0.0.1:8080", "hooks.internal"]),
            Reach::Public,
        );
        for ok in [
            "https://hooks.example.com/x",
            "http://8.8.8.8/x",
            "http://127.0.0.1:8080/x",
            "http://hooks.internal:9000/x",
            "https://[2606:4700::1111]/x",
        ] {
            guard.parse_url(ok).unwrap();
        }
        for refused in [
            "http://127.0.0.1:8081/x",
            "http://127.0.0.1/x",
            "http://localhost:8080/x",
            "http://x.localhost/x",
            "http://[::ffff:7f00:1]:8080/x",
            "http://169.254.169.254/x",
            "http://[fd00:ec2::254]/x",
            "http://100.100.100.200/x",
            "http://0/x",
        ] {
            let err = guard.parse_url(refused).unwrap_err();
            assert!(matches!(err, FetchError::Forbidden(_)), "{refused}: {err}");
        }
        let err = guard
            .parse_url("https://u:p@hooks.example.com/")
            .unwrap_err();
        assert!(matches!(err, FetchError::InvalidUrl(_)), "{err}");
        let https = guard.clone().https_only(true);
        assert!(https.parse_url("https://hooks.example.com/").is_ok());
        assert!(https.parse_url("http://hooks.internal/").is_ok());
        assert!(https.parse_url("http://127.0.0.1:8080/").is_ok());
        let err = https.parse_url("http://hooks.example.com/").unwrap_err();
        assert!(err.to_string().contains("https is required"), "{err}");
    }
}
