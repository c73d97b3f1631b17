//! One guarded HTTP GET: allow-listed hosts only (every redirect hop checked again, the
//! caller's headers kept to the first origin), no internal addresses unless listed exactly, a
//! body size limit, timeouts, conditional requests.

use crate::allow::AllowList;
use crate::error::FetchError;
use crate::guard::{Guard, Reach, read_capped};
use bytes::Bytes;
use reqwest::header::{
    CACHE_CONTROL, ETAG, HeaderMap, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, LOCATION,
};
use reqwest::{StatusCode, Url};
use std::sync::Arc;
use std::time::Duration;

/// Limits and the allow-list of a [`Fetcher`].
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// Hosts that may be fetched from.
    pub allow: AllowList,
    /// Largest accepted response body.
    pub max_bytes: usize,
    /// Time limit for establishing a connection.
    pub connect_timeout: Duration,
    /// Time limit for a whole request, body included (per redirect hop).
    pub timeout: Duration,
    /// How many redirects are followed.
    pub max_redirects: u8,
}

impl FetchPolicy {
    /// A policy for `allow` with default limits: 8 MiB, 3 s to connect, 10 s per request,
    /// 5 redirects.
    pub fn new(allow: AllowList) -> FetchPolicy {
        FetchPolicy {
            allow,
            max_bytes: 8 * 1024 * 1024,
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
            max_redirects: 5,
        }
    }
}

/// The validators of a cached copy, sent as `If-None-Match` / `If-Modified-Since`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    /// The `ETag` the copy came with.
    pub etag: Option<String>,
    /// The `Last-Modified` the copy came with.
    pub last_modified: Option<String>,
}

impl Validators {
    /// Whether there is anything to revalidate with.
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// A complete 200 response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The body (at most [`FetchPolicy::max_bytes`]).
    pub body: Bytes,
    /// Its validators, for the next conditional request.
    pub validators: Validators,
    /// `Cache-Control: max-age`, when given (and no `no-cache`/`no-store`).
    pub max_age: Option<Duration>,
    /// The URL finally answered, after redirects.
    pub url: Url,
}

/// The answer to a (possibly conditional) fetch.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// New content.
    Modified(Response),
    /// 304: the cached copy is still current.
    NotModified {
        /// `Cache-Control: max-age` of the 304, when given.
        max_age: Option<Duration>,
    },
}

/// An HTTP client that only reaches allow-listed hosts. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    guard: Guard,
    policy: Arc<FetchPolicy>,
}

impl Fetcher {
    /// A fetcher with its own connection pool, built on the [`Guard`] for the policy's
    /// allow-list (addresses checked at connect time, no proxy, redirects by hand).
    pub fn new(policy: FetchPolicy) -> Result<Fetcher, FetchError> {
        let guard = Guard::new(policy.allow.clone(), Reach::AllowListed);
        let client = guard
            .client_builder()
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.timeout)
            .user_agent(concat!("rubra/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Network(e.to_string()))?;
        Ok(Fetcher {
            client,
            guard,
            policy: Arc::new(policy),
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// Parses `url` and checks it against the allow-list without any network traffic.
    pub fn check_url(&self, url: &str) -> Result<Url, FetchError> {
        self.guard.parse_url(url)
    }

    /// GETs `url`; with `validators`, conditionally (`If-None-Match`, `If-Modified-Since`).
    /// Redirects are followed by hand so that every hop is checked against the allow-list.
    pub async fn fetch(
        &self,
        url: &str,
        validators: Option<&Validators>,
    ) -> Result<Fetched, FetchError> {
        self.fetch_with(url, validators, &[]).await
    }

    /// [`Fetcher::fetch`] with extra request `headers` (name, value) — for example a source's
    /// API token — sent to the first URL's origin (scheme, host and port) only: once a
    /// redirect leaves it they are dropped for the rest of the chain, so a source cannot hand
    /// its caller's token to another host. A name or value that is not a valid HTTP header is
    /// [`FetchError::InvalidHeader`].
    #[tracing::instrument(name = "fetch.get", skip_all, fields(url = %url, conditional = validators.is_some()))]
    pub async fn fetch_with(
        &self,
        url: &str,
        validators: Option<&Validators>,
        headers: &[(String, String)],
    ) -> Result<Fetched, FetchError> {
        let extra = request_headers(headers)?;
        let mut url = self.check_url(url)?;
        let origin = url.origin();
        let mut same_origin = true;
        for _ in 0..=self.policy.max_redirects {
            same_origin = same_origin && url.origin() == origin;
            let mut req = self.client.get(url.clone());
            if same_origin {
                req = req.headers(extra.clone());
            }
            if let Some(v) = validators {
                if let Some(etag) = &v.etag {
                    req = req.header(IF_NONE_MATCH, etag.as_str());
                }
                if let Some(lm) = &v.last_modified {
                    req = req.header(IF_MODIFIED_SINCE, lm.as_str());
                }
            }
            let mut resp = req.send().await?;
            let status = resp.status();
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                let next = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or(FetchError::Status(status.as_u16()))?;
                url = url
                    .join(next)
                    .map_err(|e| FetchError::InvalidUrl(format!("redirect to {next:?}: {e}")))?;
                self.guard.check_url(&url)?;
                continue;
            }
            let max_age = max_age(resp.headers());
            if status == StatusCode::NOT_MODIFIED {
                return Ok(Fetched::NotModified { max_age });
            }
            if status != StatusCode::OK {
                return Err(FetchError::Status(status.as_u16()));
            }
            let validators = Validators {
                etag: header(resp.headers(), ETAG),
                last_modified: header(resp.headers(), LAST_MODIFIED),
            };
            let body = self.read_body(&mut resp).await?;
            return Ok(Fetched::Modified(Response {
                body,
                validators,
                max_age,
                url,
            }));
        }
        Err(FetchError::TooManyRedirects)
    }

    /// An unconditional [`Fetcher::fetch`].
    pub async fn get(&self, url: &str) -> Result<Response, FetchError> {
        match self.fetch(url, None).await? {
            Fetched::Modified(r) => Ok(r),
            Fetched::NotModified { .. } => Err(FetchError::Status(304)),
        }
    }

    async fn read_body(&self, resp: &mut reqwest::Response) -> Result<Bytes, FetchError> {
        let limit = self.policy.max_bytes;
        read_capped(resp, limit)
            .await?
            .ok_or(FetchError::TooLarge { limit })
    }
}

/// Checks and converts caller-given request headers.
pub fn request_headers(headers: &[(String, String)]) -> Result<HeaderMap, FetchError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let n = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| FetchError::InvalidHeader(format!("{name:?} is not a header name")))?;
        let v = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
            FetchError::InvalidHeader(format!("the value of {name:?} is not a header value"))
        })?;
        map.append(n, v);
    }
    Ok(map)
}

fn header(h: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// `max-age` from `Cache-Control`, unless `no-cache` or `no-store` is also there.
fn max_age(h: &HeaderMap) -> Option<Duration> {
    let mut age = None;
    for value in h.get_all(CACHE_CONTROL) {
        for directive in value.to_str().ok()?.split(',') {
            let d = directive.trim().to_ascii_lowercase();
            if d == "no-cache" || d == "no-store" {
                return None;
            }
            if let Some(n) = d.strip_prefix("max-age=") {
                age = n
                    .trim_matches('"')
                    .parse::<u64>()
                    .ok()
                    .map(Duration::from_secs);
            }
        }
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn cache_control_max_age() {
        let mut h = HeaderMap::new();
        assert_eq!(max_age(&h), None);
        h.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=30"),
        );
        assert_eq!(max_age(&h), Some(Duration::from_secs(30)));
        h.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("max-age=30, no-cache"),
        );
        assert_eq!(max_age(&h), None);
    }
}
