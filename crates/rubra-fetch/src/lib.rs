//! Fetch resources from other sites, safely and cheaply.
//!
//! [`Guard`] is the one egress guard for requests a client can direct: a URL check (scheme,
//! credentials, host and port against the allow-list, IP literals), a resolver that checks
//! addresses at connect time, no redirects followed and no proxy, and [`read_capped`] bodies.
//! Overlays and watches use it through [`Fetcher`]; webhooks (`rubra-notify`) through a
//! client built with [`Guard::client_builder`].
//!
//! [`Fetcher`] GETs a URL only when its host is on the allow-list (`--fetch-allow`), checks
//! every redirect hop again, never connects to loopback/private/link-local addresses unless
//! the host is listed exactly, and enforces a body size limit and timeouts. [`FetchCache`]
//! keeps a *parsed* value per URL (a decoded overlay, a JSON document) and revalidates it with
//! `ETag` / `Last-Modified` on every use, sharing one fetch among concurrent requests.
//!
//! ```no_run
//! use rubra_fetch::{AllowList, CachePolicy, FetchCache, FetchPolicy, Fetcher};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let fetcher = Fetcher::new(FetchPolicy::new(AllowList::new(["images.example.com"])))?;
//! let cache: FetchCache<usize> = FetchCache::new(fetcher, CachePolicy::default());
//! let len = cache
//!     .get("https://images.example.com/beard.png", |b| Ok::<_, String>(b.len()))
//!     .await?;
//! # let _ = len; Ok(()) }
//! ```
#![deny(missing_docs)]

mod allow;
mod cache;
mod error;
mod fetcher;
mod guard;

pub use allow::{AllowList, HostMatch, InvalidEntry, is_public};
pub use cache::{CacheError, CachePolicy, Cached, FetchCache, Outcome};
pub use error::FetchError;
pub use fetcher::{FetchPolicy, Fetched, Fetcher, Response, Validators, request_headers};
pub use guard::{Guard, Reach, read_capped};
