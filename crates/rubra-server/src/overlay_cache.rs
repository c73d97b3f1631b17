//! The cache of decoded overlays (`/overlays` stores them; `/watermark` uses them).
//!
//! The cache is keyed by (client, name) and remembers the blob's ETag. A PUT or DELETE in this
//! process updates or drops the entry at once. Other processes sharing the storage are noticed
//! by a HEAD of the blob at most once per [`OverlayCache::RECHECK`]: if its ETag changed the
//! new PNG is downloaded and decoded, otherwise the decoded overlay is kept. So a change made
//! through another process is seen within a second, at the cost of one HEAD per overlay per
//! second — never one per request, which at 1000 watermarks/s would be the bottleneck.

use crate::admission::Admission;
use crate::error::{ApiError, ApiResult, ErrorCode};
use rubra_store::{BlobStore, ClientId, Principal};
use rubra_watermark::{Overlay, WatermarkError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest overlay accepted, in pixels (width × height, read from the PNG header).
pub const MAX_OVERLAY_PIXELS: u64 = 4096 * 4096;

/// A validated overlay name: 1–64 of `A–Z a–z 0–9 . _ -`, not starting with a dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OverlayName(pub(crate) String);

impl OverlayName {
    /// Validates `s`.
    pub fn parse(s: &str) -> ApiResult<OverlayName> {
        let ok = (1..=64).contains(&s.len())
            && !s.starts_with('.')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(OverlayName(s.to_owned()))
        } else {
            Err(ApiError::new(
                ErrorCode::InvalidOverlayName,
                format!(
                    "overlay names are 1-64 characters of A-Z a-z 0-9 . _ - and do not start \
                     with a dot; got {s:?}"
                ),
            ))
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub(crate) fn blob_key(client: &ClientId, name: &OverlayName) -> String {
    format!("overlays/{client}/{}.png", name.0)
}

/// How an overlay is sized for one request (`scale=` or `width=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sizing {
    /// As stored.
    Native,
    /// Multiplied by a factor (the f32's bits, so the key is hashable).
    Scale(u32),
    /// Resized to this width, keeping the aspect ratio.
    Width(u32),
}

/// A decoded overlay and the resized variants requests asked for, so a `scale=` or
/// `width=` costs one resize per overlay version, not one per request.
#[derive(Debug)]
pub struct OverlayEntry {
    pub(crate) base: Arc<Overlay>,
    sized: Mutex<Vec<(Sizing, Arc<Overlay>)>>,
}

impl OverlayEntry {
    /// The most resized variants kept per overlay.
    const MAX_VARIANTS: usize = 8;

    /// Wraps a decoded overlay.
    pub fn new(base: Overlay) -> Self {
        OverlayEntry {
            base: Arc::new(base),
            sized: Mutex::new(Vec::new()),
        }
    }

    /// Decodes a PNG into an entry (CPU work: call on the blocking pool).
    pub fn from_png(bytes: &[u8]) -> Result<Self, WatermarkError> {
        check_png_header(bytes)?;
        Overlay::from_png(bytes).map(OverlayEntry::new)
    }

    /// The overlay at `sizing`, resized once and kept (CPU work: call on the blocking pool).
    pub fn sized(&self, sizing: Sizing) -> Result<Arc<Overlay>, WatermarkError> {
        if sizing == Sizing::Native {
            return Ok(Arc::clone(&self.base));
        }
        let lock = || self.sized.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, o)) = lock().iter().find(|(s, _)| *s == sizing) {
            return Ok(Arc::clone(o));
        }
        let resized = Arc::new(match sizing {
            Sizing::Native => unreachable!("handled above"),
            Sizing::Scale(bits) => self.base.scaled(f32::from_bits(bits))?,
            Sizing::Width(w) => self.base.resized_to_width(w)?,
        });
        let mut variants = lock();
        if variants.len() >= Self::MAX_VARIANTS {
            variants.remove(0);
        }
        variants.push((sizing, Arc::clone(&resized)));
        Ok(resized)
    }

    fn weight(&self) -> u64 {
        u64::from(self.base.width()) * u64::from(self.base.height()) * 4
    }
}

/// Width and height from a PNG's IHDR, checked against [`MAX_OVERLAY_PIXELS`] before
/// anything is decoded.
pub(crate) fn check_png_header(bytes: &[u8]) -> Result<(u32, u32), WatermarkError> {
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err(WatermarkError::Unsupported(
            "an overlay must be a PNG".into(),
        ));
    }
    if bytes.len() < 24 || &bytes[12..16] != b"IHDR" {
        return Err(WatermarkError::Corrupt("PNG without an IHDR header".into()));
    }
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let (w, h) = (be(16), be(20));
    if u64::from(w) * u64::from(h) > MAX_OVERLAY_PIXELS {
        return Err(WatermarkError::TooLarge {
            width: w,
            height: h,
            limit: MAX_OVERLAY_PIXELS,
        });
    }
    Ok((w, h))
}

struct Cached {
    entry: Arc<OverlayEntry>,
    version: String,
    checked_at: Instant,
}

/// Decoded stored overlays by (client, name); see the module docs for how it stays current.
#[derive(Default)]
pub struct OverlayCache {
    map: Mutex<HashMap<(ClientId, OverlayName), Cached>>,
    /// Held while an upload checks the overlay quotas and stores its blob.
    quota: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for OverlayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverlayCache").finish_non_exhaustive()
    }
}

/// The version of a stored overlay: its ETag, size and time.
pub(crate) fn version_of(meta: &rubra_store::BlobMeta) -> String {
    // ETag where the storage gives one; size and time are a fallback, not a substitute.
    format!(
        "{}:{}:{}",
        meta.e_tag.as_deref().unwrap_or(""),
        meta.size,
        meta.last_modified_ms
    )
}

impl OverlayCache {
    /// How long an entry is used without asking the storage whether the blob changed.
    pub const RECHECK: Duration = Duration::from_secs(1);
    /// Decoded bytes held at most (premultiplied RGBA); the map is cleared beyond it.
    pub const MAX_BYTES: u64 = 512 * 1024 * 1024;

    /// The lock an upload holds from its quota check until its blob is stored (uploads of
    /// overlays are rare, so one lock for all clients costs nothing).
    pub async fn quota_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.quota.lock().await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(ClientId, OverlayName), Cached>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The decoded overlay `name` of `client`; 404 when there is none. Decoding is admitted
    /// like any image work and charged to `who` (the caller, which may be an admin acting for
    /// `client`).
    #[tracing::instrument(name = "overlays.cache.get", skip_all, fields(name = %name.as_str(), hit))]
    pub async fn get(
        &self,
        blobs: &BlobStore,
        admission: &Admission,
        who: &Principal,
        client: &ClientId,
        name: &OverlayName,
    ) -> ApiResult<Arc<OverlayEntry>> {
        let key = (client.clone(), name.clone());
        let known = {
            let map = self.lock();
            match map.get(&key) {
                Some(c) if c.checked_at.elapsed() < Self::RECHECK => {
                    tracing::Span::current().record("hit", "fresh");
                    return Ok(Arc::clone(&c.entry));
                }
                Some(c) => Some((Arc::clone(&c.entry), c.version.clone())),
                None => None,
            }
        };
        let blob = blob_key(client, name);
        let Some(meta) = blobs.head(&blob).await? else {
            self.lock().remove(&key);
            return Err(ApiError::not_found("overlay"));
        };
        let version = version_of(&meta);
        if let Some((entry, v)) = known
            && v == version
        {
            tracing::Span::current().record("hit", "revalidated");
            self.insert(key, Arc::clone(&entry), version);
            return Ok(entry);
        }
        tracing::Span::current().record("hit", "miss");
        let bytes = blobs
            .get(&blob)
            .await?
            .ok_or_else(|| ApiError::not_found("overlay"))?;
        let unusable = |e: &dyn std::fmt::Display| {
            ApiError::internal(&format!("stored overlay {blob} unusable: {e}"))
        };
        let (w, h) = check_png_header(&bytes).map_err(|e| unusable(&e))?;
        let admitted = admission.admit(who, u64::from(w) * u64::from(h)).await?;
        let entry = tokio::task::spawn_blocking(move || {
            let _admitted = admitted;
            OverlayEntry::from_png(&bytes)
        })
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| unusable(&e))?;
        let entry = Arc::new(entry);
        self.insert(key, Arc::clone(&entry), version);
        Ok(entry)
    }

    /// Keeps `entry` as version `version` of (client, name).
    pub(crate) fn insert(
        &self,
        key: (ClientId, OverlayName),
        entry: Arc<OverlayEntry>,
        version: String,
    ) {
        let mut map = self.lock();
        let held: u64 = map.values().map(|c| c.entry.weight()).sum();
        if held + entry.weight() > Self::MAX_BYTES {
            map.clear();
        }
        map.insert(
            key,
            Cached {
                entry,
                version,
                checked_at: Instant::now(),
            },
        );
    }

    /// Forgets (client, name): after a DELETE.
    pub fn remove(&self, client: &ClientId, name: &OverlayName) {
        self.lock().remove(&(client.clone(), name.clone()));
    }
}
