//! Per-client quotas: the server's defaults (`--max-subscriptions-per-client` and the like)
//! unless an admin set the client's own (`PATCH /clients/{id}` with `{"quotas": {...}}`).
//!
//! Counted quotas (subscriptions, jobs, watches) are checked by the store in the transaction
//! that creates the row, so concurrent creates cannot pass them together. Overlays live in the
//! blob store, which has no transactions: their quotas are checked against a listing of the
//! client's overlays under a lock held for the whole check-and-store, in this process; two
//! processes storing overlays of one client at the same instant may pass the quota by one.
//! Stored image bytes are kept per client with every image insert and delete, and an upload
//! is checked against them before its bytes are stored; uploads running at the same moment
//! may together pass the quota by their own sizes (each at most `--max-body-bytes`).

use crate::error::{ApiError, ApiResult};
use crate::settings::Settings;
use crate::state::AppState;
use rubra_store::{ClientId, QuotaOverrides, Scope};

/// A quota one client has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// Live subscriptions.
    Subscriptions,
    /// Queued and running jobs.
    Jobs,
    /// Watches.
    Watches,
    /// Stored overlays.
    Overlays,
    /// Bytes of all stored overlays together.
    OverlayBytes,
    /// Bytes of all stored images together.
    ImageBytes,
}

impl Quota {
    /// The server's default for this quota (`u64::MAX`: unlimited).
    pub fn default_in(self, settings: &Settings) -> u64 {
        match self {
            Quota::Subscriptions => u64::from(settings.max_subscriptions_per_client),
            Quota::Jobs => u64::from(settings.max_jobs_per_client),
            Quota::Watches => u64::from(settings.max_watches_per_client),
            Quota::Overlays => u64::from(settings.max_overlays_per_client),
            Quota::OverlayBytes => settings.max_overlay_bytes_per_client,
            Quota::ImageBytes => settings.max_image_bytes_per_client.unwrap_or(u64::MAX),
        }
    }

    /// The client's own value of this quota, if an admin set one.
    pub fn overridden_in(self, own: &QuotaOverrides) -> Option<u64> {
        match self {
            Quota::Subscriptions => own.subscriptions,
            Quota::Jobs => own.jobs,
            Quota::Watches => own.watches,
            Quota::Overlays => own.overlays,
            Quota::OverlayBytes => own.overlay_bytes,
            Quota::ImageBytes => own.image_bytes,
        }
    }

    /// The setting's name, as error messages name the quota.
    pub fn setting(self) -> &'static str {
        match self {
            Quota::Subscriptions => "max-subscriptions-per-client",
            Quota::Jobs => "max-jobs-per-client",
            Quota::Watches => "max-watches-per-client",
            Quota::Overlays => "max-overlays-per-client",
            Quota::OverlayBytes => "max-overlay-bytes-per-client",
            Quota::ImageBytes => "max-image-bytes-per-client",
        }
    }
}

/// The quotas an admin set for `client` (none for an unknown one). One query; read it once
/// when several quotas are checked together.
pub async fn own(state: &AppState, client: &ClientId) -> ApiResult<QuotaOverrides> {
    Ok(state
        .store
        .get_client(&Scope::All, client)
        .await?
        .map(|c| c.quotas)
        .unwrap_or_default())
}

impl Quota {
    /// What this quota allows a client with these own quotas: its own value if an admin set
    /// one, else the default.
    pub fn allowed(self, own: &QuotaOverrides, settings: &Settings) -> u64 {
        self.overridden_in(own)
            .unwrap_or_else(|| self.default_in(settings))
    }
}

/// What `quota` allows `client`: its own value if an admin set one, else the default. One
/// query (creates are rare next to reads).
pub async fn limit(state: &AppState, client: &ClientId, quota: Quota) -> ApiResult<u64> {
    Ok(quota.allowed(&own(state, client).await?, &state.settings))
}

/// [`limit`] for the store's counted quotas, which take a `u32`.
pub async fn limit_u32(state: &AppState, client: &ClientId, quota: Quota) -> ApiResult<u32> {
    Ok(u32::try_from(limit(state, client, quota).await?).unwrap_or(u32::MAX))
}

/// The 409 of a quota that an upload would pass.
pub fn exceeded(quota: Quota, limit: u64, detail: &str) -> ApiError {
    ApiError::from(rubra_store::StoreError::QuotaExceeded(format!(
        "quota {}: {detail}, the limit is {limit}",
        quota.setting()
    )))
}
