//! A cache of parsed remote resources that revalidates on every use, single-flight per URL.
//!
//! Each use sends a conditional GET (`If-None-Match` / `If-Modified-Since`) unless the remote
//! gave a `Cache-Control: max-age` that has not run out (capped by [`CachePolicy::max_fresh`]).
//! A 304 keeps the parsed value, so it costs one small round trip and no download or parse; a
//! 200 replaces it, so a changed remote is used by the very next request. Requests for one
//! URL queue on that URL's lock: whoever arrives while a fetch is in flight takes its result
//! instead of fetching again, so a burst of N requests costs one fetch, not N.

use crate::error::FetchError;
use crate::fetcher::{Fetched, Fetcher, Validators};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Limits of a [`FetchCache`].
#[derive(Debug, Clone, Copy)]
pub struct CachePolicy {
    /// The most URLs kept; the least recently used is dropped beyond it.
    pub max_entries: usize,
    /// The longest a `max-age` is trusted without revalidating.
    pub max_fresh: Duration,
    /// Serve the cached value when the remote is unreachable or answers 5xx.
    pub stale_if_error: bool,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            max_entries: 256,
            max_fresh: Duration::from_secs(60),
            stale_if_error: true,
        }
    }
}

/// How a value was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Downloaded and parsed (first use, or the remote changed).
    Fetched,
    /// The remote answered 304: the cached value is current.
    Revalidated,
    /// Taken from a fetch that completed while this request waited for it (single-flight),
    /// or still fresh by the remote's `max-age`.
    Shared,
    /// The remote failed transiently; the last good value was served.
    Stale,
}

/// A value from the cache and how it was obtained.
#[derive(Debug)]
pub struct Cached<T> {
    /// The parsed value.
    pub value: Arc<T>,
    /// Fetched, revalidated, shared or stale.
    pub outcome: Outcome,
}

/// Why [`FetchCache::get`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError<E> {
    /// The fetch itself failed (forbidden host, network, size, status).
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The body arrived but `parse` refused it.
    #[error("the remote content is not usable: {0}")]
    Parse(E),
    /// The body arrived but the `admit` hook of [`FetchCache::get_admitted`] refused to have
    /// it parsed (too large, or no room now); nothing was parsed or kept.
    #[error("the remote content was not admitted for parsing: {0}")]
    Refused(E),
}

struct Entry<T> {
    value: Arc<T>,
    validators: Validators,
    fresh_until: Option<Instant>,
    /// When the last fetch or revalidation completed.
    checked_at: Instant,
}

struct Slot<T> {
    entry: tokio::sync::Mutex<Option<Entry<T>>>,
    last_used: AtomicU64,
}

/// Remote resources, parsed once per change. `T` is what is kept (e.g. a decoded overlay,
/// not its bytes). Cheap to share behind an `Arc`.
pub struct FetchCache<T> {
    fetcher: Fetcher,
    policy: CachePolicy,
    slots: Mutex<HashMap<String, Arc<Slot<T>>>>,
    epoch: Instant,
}

impl<T> std::fmt::Debug for FetchCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchCache")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> FetchCache<T> {
    /// An empty cache fetching with `fetcher`.
    pub fn new(fetcher: Fetcher, policy: CachePolicy) -> Self {
        FetchCache {
            fetcher,
            policy,
            slots: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
        }
    }

    /// The fetcher (its allow-list and limits).
    pub fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    /// The value at `url`, revalidated now (or shared with a fetch that completed while this
    /// call waited). `parse` runs on the blocking pool, only when new bytes arrive.
    pub async fn get<E, F>(&self, url: &str, parse: F) -> Result<Cached<T>, CacheError<E>>
    where
        F: FnOnce(Bytes) -> Result<T, E> + Send + 'static,
        E: Send + 'static,
    {
        self.get_admitted(url, |_| std::future::ready(Ok(())), parse)
            .await
    }

    /// Like [`FetchCache::get`], but new bytes are first shown to `admit`, which may refuse
    /// to have them parsed (by their header, or because the machine is busy):
    /// [`CacheError::Refused`], nothing parsed, nothing kept, the cached value (if any) left
    /// as it was. What `admit` returns (e.g. a permit) is held until `parse` has finished.
    /// Nothing is shown to `admit` when the cached value is used.
    #[tracing::instrument(name = "fetch.cache.get", skip_all, fields(url = %url, outcome))]
    pub async fn get_admitted<E, A, Fut, G, F>(
        &self,
        url: &str,
        admit: A,
        parse: F,
    ) -> Result<Cached<T>, CacheError<E>>
    where
        A: FnOnce(&Bytes) -> Fut,
        Fut: std::future::Future<Output = Result<G, E>>,
        G: Send + 'static,
        F: FnOnce(Bytes) -> Result<T, E> + Send + 'static,
        E: Send + 'static,
    {
        let parsed = self.fetcher.check_url(url)?;
        let key = parsed.to_string();
        let arrived = Instant::now();
        let slot = self.slot(&key);
        let mut guard = slot.entry.lock().await;
        if let Some(e) = guard.as_ref() {
            let fresh = e.fresh_until.is_some_and(|t| t > Instant::now());
            if e.checked_at >= arrived || fresh {
                return Ok(done(e, Outcome::Shared));
            }
        }
        let validators = guard
            .as_ref()
            .map(|e| e.validators.clone())
            .filter(|v| !v.is_empty());
        match self.fetcher.fetch(&key, validators.as_ref()).await {
            Ok(Fetched::NotModified { max_age }) => {
                let fresh_until = self.fresh_until(max_age);
                match guard.as_mut() {
                    Some(e) => {
                        e.checked_at = Instant::now();
                        e.fresh_until = fresh_until;
                        Ok(done(e, Outcome::Revalidated))
                    }
                    // A 304 to an unconditional request: nothing to keep.
                    None => Err(CacheError::Fetch(FetchError::Status(304))),
                }
            }
            Ok(Fetched::Modified(resp)) => {
                let admitted = admit(&resp.body).await.map_err(CacheError::Refused)?;
                let value = tokio::task::spawn_blocking(move || {
                    let _admitted = admitted;
                    parse(resp.body)
                })
                .await
                .map_err(|e| FetchError::Network(format!("parser failed: {e}")))?
                .map_err(CacheError::Parse)?;
                let entry = guard.insert(Entry {
                    value: Arc::new(value),
                    validators: resp.validators,
                    fresh_until: self.fresh_until(resp.max_age),
                    checked_at: Instant::now(),
                });
                Ok(done(entry, Outcome::Fetched))
            }
            Err(err) => match guard.as_ref() {
                Some(e) if self.policy.stale_if_error && err.is_transient() => {
                    tracing::warn!(error = %err, "remote failed; serving the cached copy");
                    Ok(done(e, Outcome::Stale))
                }
                _ => Err(CacheError::Fetch(err)),
            },
        }
    }

    /// Forgets `url` (e.g. when its owner knows it changed).
    pub fn invalidate(&self, url: &str) {
        if let Ok(u) = reqwest::Url::parse(url) {
            self.lock().remove(u.as_str());
        }
    }

    /// How many URLs are held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn fresh_until(&self, max_age: Option<Duration>) -> Option<Instant> {
        max_age
            .filter(|a| !a.is_zero())
            .map(|a| Instant::now() + a.min(self.policy.max_fresh))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Slot<T>>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slot(&self, key: &str) -> Arc<Slot<T>> {
        let now = self.epoch.elapsed().as_millis() as u64;
        let mut slots = self.lock();
        if let Some(s) = slots.get(key) {
            s.last_used.store(now, Ordering::Relaxed);
            return Arc::clone(s);
        }
        if slots.len() >= self.policy.max_entries.max(1)
            && let Some(oldest) = slots
                .iter()
                .min_by_key(|(_, s)| s.last_used.load(Ordering::Relaxed))
                .map(|(k, _)| k.clone())
        {
            // A request holding the evicted slot finishes with it; later ones start afresh.
            slots.remove(&oldest);
        }
        let slot = Arc::new(Slot {
            entry: tokio::sync::Mutex::new(None),
            last_used: AtomicU64::new(now),
        });
        slots.insert(key.to_owned(), Arc::clone(&slot));
        slot
    }
}

fn done<T>(e: &Entry<T>, outcome: Outcome) -> Cached<T> {
    tracing::Span::current().record("outcome", tracing::field::debug(outcome));
    Cached {
        value: Arc::clone(&e.value),
        outcome,
    }
}
