//! What every handler can reach: the store, the blobs, the settings, the key cache.

use crate::error::ApiError;
use crate::settings::Settings;
use rubra_store::{ApiKey, BlobStore, KeyHash, Principal, Store};
use rubra_telemetry::Telemetry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
    /// Logs and metrics.
    pub telemetry: Telemetry,
    /// Cancelled when the process begins shutting down; long-running work watches it.
    pub shutdown: CancellationToken,
    /// Decoded stored overlays by (client, name), checked against the blob's ETag.
    pub overlays: Arc<crate::routes::overlays::OverlayCache>,
    /// Overlays fetched from allow-listed sites (`overlay_url=`), revalidated on every use.
    pub remote_overlays: Arc<rubra_fetch::FetchCache<crate::routes::overlays::OverlayEntry>>,
}

/// A short-lived cache of resolved API keys, so that authenticating a request costs no
/// database round trip at high request rates. Entries live [`KeyCache::TTL`]; the map is
/// cleared when it grows past [`KeyCache::MAX_ENTRIES`] so a flood of bad keys cannot grow it.
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<KeyHash, (Principal, Instant)>>,
}

impl KeyCache {
    /// How long a resolved key is trusted without asking the database again.
    pub const TTL: Duration = Duration::from_secs(30);
    /// The most keys held at once.
    pub const MAX_ENTRIES: usize = 10_000;

    /// Resolves `key`, from the cache when fresh, else from the store. Unknown keys are not
    /// cached, so a key created a moment ago works at once.
    pub async fn resolve(
        &self,
        store: &Arc<dyn Store>,
        key: &ApiKey,
    ) -> Result<Option<Principal>, ApiError> {
        let hash = key.hash();
        if let Some(p) = self.lookup(&hash) {
            return Ok(Some(p));
        }
        let found = store.principal_for_key(&hash).await?;
        if let Some(p) = &found {
            let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if map.len() >= Self::MAX_ENTRIES {
                map.clear();
            }
            map.insert(hash, (p.clone(), Instant::now()));
        }
        Ok(found)
    }

    fn lookup(&self, hash: &KeyHash) -> Option<Principal> {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.get(hash)
            .filter(|(_, at)| at.elapsed() < Self::TTL)
            .map(|(p, _)| p.clone())
    }
}
