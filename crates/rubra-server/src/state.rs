//! What every handler can reach: the store, the blobs, the settings, the key cache and the
//! rate limiters.

use crate::error::ApiError;
use crate::settings::Settings;
use rubra_store::{BlobStore, ClientId, KeyHash, KeyHolder, Principal, Store};
use rubra_telemetry::Telemetry;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Shared state of the HTTP application. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Arc<dyn Store>,
    /// Blob storage.
    pub blobs: BlobStore,
    /// Validated settings.
    pub settings: Arc<Settings>,
    /// Bearer key → principal, cached briefly.
    pub keys: Arc<KeyCache>,
    /// Token buckets of the clients (and admin keys) calling this process.
    pub limiter: Arc<crate::ratelimit::RateLimiter>,
    /// Token buckets of the addresses sending requests without a valid key.
    pub anonymous: Arc<crate::ratelimit::RateLimiter>,
    /// Messages per client through `POST /messages`.
    pub messages: Arc<crate::ratelimit::RateLimiter>,
    /// Request body bytes per client (see `throttle`).
    pub uploads: Arc<crate::ratelimit::RateLimiter>,
    /// Token buckets of events recorded through `POST /events`, per client.
    pub events: Arc<crate::ratelimit::RateLimiter>,
    /// Logs and metrics.
    pub telemetry: Telemetry,
    /// Cancelled when the process begins shutting down; long-running work watches it.
    pub shutdown: CancellationToken,
    /// Decoded stored overlays by (client, name), checked against the blob's ETag.
    pub overlays: Arc<crate::overlay_cache::OverlayCache>,
    /// Overlays fetched from allow-listed sites (`overlay_url=`), revalidated on every use.
    pub remote_overlays: Arc<rubra_fetch::FetchCache<crate::overlay_cache::OverlayEntry>>,
    /// The gate in front of image decoding and compositing (slots, queue, pixel budget).
    pub admission: crate::admission::Admission,
    /// Open Server-Sent Event streams per client.
    pub streams: crate::admission::StreamCaps,
    /// Wake-ups of this process's workers (a job queued or canceled here, a watch created).
    pub wakeups: crate::wake::Wakeups,
}

/// A short-lived cache of API keys, so that authenticating a request costs no database round
/// trip at high request rates.
///
/// A known key is kept [`KeyCache::TTL`] (1 s) together with its expiry, whether its client is
/// disabled, and its client's own rate limit. That is how every process learns of a change
/// made through another: a key revoked, a client disabled or a limit changed in one process is
/// refused (or applied) by every other within 1 s of the change's commit, because an entry
/// counts its age from the moment its database read *started* — a read that began before the
/// commit expires at most 1 s after it. The process that made the change forgets the client's
/// keys at once ([`KeyCache::forget_client`]). One read per key per second per process is
/// what the hot path costs (1000 requests a second on one key: one query). An unknown key is
/// remembered as unknown for [`KeyCache::UNKNOWN_TTL`], so a caller repeating a bad key costs
/// one database query per that time instead of one per request; a key stored by another
/// process after it was presented here works at the latest that long after (keys are made
/// random, so only a key presented before it existed can wait at all). Each map holds at most
/// [`KeyCache::MAX_ENTRIES`] (expired entries go first, then all), so a flood of random keys
/// cannot grow memory.
///
/// Lookups take a shared read lock only; the write lock is taken to insert after a database
/// answer.
#[derive(Debug, Default)]
pub struct KeyCache {
    known: RwLock<HashMap<KeyHash, (KeyHolder, Instant)>>,
    unknown: RwLock<HashMap<KeyHash, Instant>>,
    /// Known keys being read again ahead of their expiry (see [`KeyCache::refresh_due`]).
    refreshing: std::sync::Mutex<std::collections::HashSet<KeyHash>>,
}

impl KeyCache {
    /// How long a resolved key (its expiry, its client's state and rate limit) is trusted
    /// without asking the database again: the bound on how long another process may still
    /// accept a revoked key or a disabled client (issue #19 asks for at most 2 s).
    pub const TTL: Duration = Duration::from_secs(1);
    /// How long an unknown key is answered 401 without asking the database again.
    pub const UNKNOWN_TTL: Duration = Duration::from_secs(5);
    /// The most keys held in each of the known and unknown maps.
    pub const MAX_ENTRIES: usize = 10_000;

    /// The cache's answer for a key, without asking the database: `Some(Some(_))` a known
    /// key, `Some(None)` a key recently found unknown, `None` not cached (or no longer fresh).
    pub fn cached(&self, hash: &KeyHash) -> Option<Option<KeyHolder>> {
        {
            let known = self.known.read().unwrap_or_else(|e| e.into_inner());
            if let Some((holder, at)) = known.get(hash)
                && at.elapsed() < Self::TTL
            {
                return Some(Some(holder.clone()));
            }
        }
        let unknown = self.unknown.read().unwrap_or_else(|e| e.into_inner());
        unknown
            .get(hash)
            .is_some_and(|at| at.elapsed() < Self::UNKNOWN_TTL)
            .then_some(None)
    }

    /// Whether a known key should be read again now, ahead of its expiry: `true` (once, until
    /// [`refresh_done`](Self::refresh_done)) when its entry is past half of [`KeyCache::TTL`]
    /// and no refresh of it is running. A busy key is so read again in the background about
    /// twice a second, by one task, and its requests never find it expired and all go to the
    /// database at once; the entry itself still expires at `TTL`, so the bound holds.
    pub fn refresh_due(&self, hash: &KeyHash) -> bool {
        let aging = {
            let known = self.known.read().unwrap_or_else(|e| e.into_inner());
            known
                .get(hash)
                .is_some_and(|(_, at)| at.elapsed() >= Self::TTL / 2)
        };
        aging
            && self
                .refreshing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(hash.clone())
    }

    /// Ends a refresh started after [`refresh_due`](Self::refresh_due) answered `true`.
    pub fn refresh_done(&self, hash: &KeyHash) {
        self.refreshing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(hash);
    }

    /// Asks the store about a key (whether or not it is cached) and caches the answer. A key
    /// in use whose `last_used_at` is a minute old or more gets it written, in the background
    /// (so a busy key costs one write a minute, and the request does not wait for it).
    pub async fn look_up(
        &self,
        store: &Arc<dyn Store>,
        hash: &KeyHash,
    ) -> Result<Option<KeyHolder>, ApiError> {
        let found = self
            .look_up_with(hash, |h| async move { store.key_holder(&h).await })
            .await?;
        if let Some(holder) = &found {
            let now = rubra_store::now_ms();
            let usable = !holder.client_disabled && !holder.expired(now);
            let stale = holder
                .last_used_at
                .is_none_or(|at| now.saturating_sub(at) >= rubra_store::LAST_USED_EVERY_MS);
            if usable && stale {
                let store = Arc::clone(store);
                let hash = hash.clone();
                tokio::spawn(async move {
                    if let Err(e) = store.touch_key(&hash, now).await {
                        tracing::warn!(error = %e, "recording a key's last use failed");
                    }
                });
            }
        }
        Ok(found)
    }

    /// Resolves a key by its hash, from the cache when fresh, else from the store.
    pub async fn resolve(
        &self,
        store: &Arc<dyn Store>,
        hash: &KeyHash,
    ) -> Result<Option<KeyHolder>, ApiError> {
        self.resolve_with(hash, |h| async move { store.key_holder(&h).await })
            .await
    }

    /// [`resolve`](Self::resolve) with the database lookup given as a function (tests count
    /// the calls).
    async fn resolve_with<F, Fut>(
        &self,
        hash: &KeyHash,
        lookup: F,
    ) -> Result<Option<KeyHolder>, ApiError>
    where
        F: FnOnce(KeyHash) -> Fut,
        Fut: std::future::Future<Output = rubra_store::Result<Option<KeyHolder>>>,
    {
        match self.cached(hash) {
            Some(answer) => Ok(answer),
            None => self.look_up_with(hash, lookup).await,
        }
    }

    /// [`look_up`](Self::look_up) with the database lookup given as a function.
    async fn look_up_with<F, Fut>(
        &self,
        hash: &KeyHash,
        lookup: F,
    ) -> Result<Option<KeyHolder>, ApiError>
    where
        F: FnOnce(KeyHash) -> Fut,
        Fut: std::future::Future<Output = rubra_store::Result<Option<KeyHolder>>>,
    {
        // The entry's age counts from before the read: whatever the read saw was true then,
        // so the entry expires at most TTL after any change it missed.
        let now = Instant::now();
        rubra_telemetry::metrics::counter!("rubra_key_lookups_total").increment(1);
        let found = lookup(hash.clone()).await?;
        match &found {
            Some(holder) => bounded_insert(&self.known, hash, (holder.clone(), now), |(_, at)| {
                at.elapsed() < Self::TTL
            }),
            None => bounded_insert(&self.unknown, hash, now, |at| {
                at.elapsed() < Self::UNKNOWN_TTL
            }),
        }
        Ok(found)
    }

    /// Drops the cached keys of `client`, so that the next request reads its changed rate
    /// limit, its disabled state or its revoked key from the database.
    pub fn forget_client(&self, client: &ClientId) {
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        known.retain(
            |_, (holder, _)| !matches!(&holder.principal, Principal::Client(c) if c == client),
        );
    }

    /// Forgets key `id` (revoked): this process refuses it from its next request.
    pub fn forget_key(&self, id: &rubra_store::KeyId) {
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        known.retain(|_, (holder, _)| holder.key_id != *id);
    }

    /// Forgets that `hash` was unknown (it has just been stored).
    pub fn forget_unknown(&self, hash: &KeyHash) {
        let mut unknown = self.unknown.write().unwrap_or_else(|e| e.into_inner());
        unknown.remove(hash);
    }
}

/// Inserts into a map of at most [`KeyCache::MAX_ENTRIES`]: when full, the entries no longer
/// `fresh` go, and if that frees less than half, all go (so a full map of fresh entries is not
/// scanned again on every insert).
fn bounded_insert<V>(
    map: &RwLock<HashMap<KeyHash, V>>,
    hash: &KeyHash,
    value: V,
    fresh: impl Fn(&V) -> bool,
) {
    let mut map = map.write().unwrap_or_else(|e| e.into_inner());
    if map.len() >= KeyCache::MAX_ENTRIES {
        map.retain(|_, v| fresh(v));
        if map.len() >= KeyCache::MAX_ENTRIES / 2 {
            map.clear();
        }
    }
    map.insert(hash.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rubra_store::{ApiKey, KeyId, RateLimitOverride};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Resolves `hash` through `cache` with a lookup that counts its calls and answers `found`.
    async fn resolve_counting(
        cache: &KeyCache,
        hash: &KeyHash,
        found: Option<KeyHolder>,
        calls: &AtomicUsize,
    ) -> Option<KeyHolder> {
        cache
            .resolve_with(hash, |_| async move {
                calls.fetch_add(1, Ordering::Relaxed);
                Ok(found)
            })
            .await
            .expect("lookup")
    }

    fn holder(client: &ClientId) -> KeyHolder {
        KeyHolder {
            principal: Principal::Client(client.clone()),
            rate_limit: RateLimitOverride::default(),
            key_id: KeyId::generate(),
            expires_at: None,
            last_used_at: None,
            client_disabled: false,
        }
    }

    /// Moves every entry's time back past its lifetime, as if that time had gone by.
    fn age(cache: &KeyCache) {
        let past = Instant::now() - KeyCache::TTL.max(KeyCache::UNKNOWN_TTL);
        for (_, at) in cache.known.write().expect("lock").values_mut() {
            *at = past;
        }
        for at in cache.unknown.write().expect("lock").values_mut() {
            *at = past;
        }
    }

    #[tokio::test]
    async fn repeated_requests_with_one_unknown_key_cost_one_lookup_per_ttl() {
        let cache = KeyCache::default();
        let calls = AtomicUsize::new(0);
        let hash = ApiKey::generate().hash();
        for _ in 0..1000 {
            assert_eq!(resolve_counting(&cache, &hash, None, &calls).await, None);
        }
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        age(&cache);
        assert_eq!(resolve_counting(&cache, &hash, None, &calls).await, None);
        assert_eq!(calls.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_known_key_and_its_limit_are_read_again_after_the_ttl_or_when_forgotten() {
        let cache = KeyCache::default();
        let calls = AtomicUsize::new(0);
        let client = ClientId::generate();
        let hash = ApiKey::generate().hash();
        let h = Some(holder(&client));
        for _ in 0..100 {
            assert_eq!(resolve_counting(&cache, &hash, h.clone(), &calls).await, h);
        }
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        age(&cache);
        resolve_counting(&cache, &hash, h.clone(), &calls).await;
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        // An admin changed the client's limit in this process: the next request reads it.
        cache.forget_client(&ClientId::generate());
        resolve_counting(&cache, &hash, h.clone(), &calls).await;
        assert_eq!(calls.load(Ordering::Relaxed), 2, "another client's change");
        cache.forget_client(&client);
        resolve_counting(&cache, &hash, h.clone(), &calls).await;
        assert_eq!(calls.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn a_busy_key_is_read_again_by_one_refresh_before_it_expires() {
        let cache = KeyCache::default();
        let calls = AtomicUsize::new(0);
        let hash = ApiKey::generate().hash();
        let h = Some(holder(&ClientId::generate()));
        resolve_counting(&cache, &hash, h.clone(), &calls).await;
        assert!(!cache.refresh_due(&hash), "fresh");
        // Past half its life: one refresh, however many requests ask; still served meanwhile.
        let half = Instant::now() - KeyCache::TTL / 2;
        for (_, at) in cache.known.write().expect("lock").values_mut() {
            *at = half;
        }
        assert!(cache.refresh_due(&hash));
        assert!(!cache.refresh_due(&hash), "one refresh at a time");
        assert_eq!(cache.cached(&hash), Some(h.clone()));
        cache
            .look_up_with(&hash, |_| async { Ok(h.clone()) })
            .await
            .expect("lookup");
        cache.refresh_done(&hash);
        assert!(!cache.refresh_due(&hash), "fresh again");
        assert!(
            !cache.refresh_due(&ApiKey::generate().hash()),
            "unknown keys are not refreshed"
        );
    }

    #[tokio::test]
    async fn a_key_stored_in_this_process_after_being_refused_works_at_once() {
        let cache = KeyCache::default();
        let calls = AtomicUsize::new(0);
        let hash = ApiKey::generate().hash();
        assert_eq!(resolve_counting(&cache, &hash, None, &calls).await, None);
        cache.forget_unknown(&hash);
        let h = Some(holder(&ClientId::generate()));
        assert_eq!(resolve_counting(&cache, &hash, h.clone(), &calls).await, h);
    }

    #[tokio::test]
    async fn a_flood_of_random_keys_does_not_grow_the_cache_past_its_bound() {
        let cache = KeyCache::default();
        let calls = AtomicUsize::new(0);
        for _ in 0..(KeyCache::MAX_ENTRIES * 3) {
            let hash = ApiKey::generate().hash();
            resolve_counting(&cache, &hash, None, &calls).await;
            assert!(cache.unknown.read().expect("lock").len() <= KeyCache::MAX_ENTRIES);
        }
        assert!(cache.known.read().expect("lock").is_empty());
    }
}
