//! Rubra's persistence layer.
//!
//! One [`Store`] trait holds every query the service needs, with two implementations:
//! [`SqliteStore`] (the embedded default, WAL mode) and [`PgStore`] (scale-out). The server
//! only ever sees `Arc<dyn Store>`, so the same integration tests run against both.
//!
//! Client isolation lives here, not in handlers: every query on client-owned data takes a
//! [`Scope`], and a client scope can only ever match that client's rows. A row of another client
//! is indistinguishable from a missing one (`Ok(None)`), so handlers answer 404, never leak data.
//!
//! Blobs (image bytes, overlays) live in a [`BlobStore`] on a local folder or S3.
#![deny(missing_docs)]

mod audit;
pub mod bells;
mod blob;
mod domain;
mod error;
mod idempotency;
mod images;
mod jobs;
mod keys;
mod messages;
mod notify;
mod open;
mod postgres;
mod retention;
mod secrets;
mod shared;
mod sql;
mod sqlite;
mod stats;
mod watches;

pub use audit::{Action, Actor, ActorKind, AuditPage, AuditRecord, AuditStore, Change};
pub use bells::{Bells, Doorbell};
pub use blob::{BlobMeta, BlobStore, BlobUrl, s3_builder};
pub use domain::{
    ApiKey, Client, ClientId, KeyHash, KeyHolder, KeyId, KeyInfo, NewKey, Principal,
    QuotaOverrides, QuotaPatch, RateLimitOverride, RateLimitPatch, Scope, now_ms, random_id,
};
pub use error::StoreError;
pub use idempotency::{Claim, IdempotencyStore, IdempotentAnswer, StoredResponse};
pub use images::{ImageId, ImagePage, ImageRecord, NewEvent, image_blob_key};
pub use jobs::{
    ActiveJobs, CancelOutcome, ClaimRequest, ClaimedJob, DEFAULT_MAX_ATTEMPTS, JobColumn,
    JobFailure, JobId, JobPage, JobProgress, JobQueue, JobRecord, JobResult, JobSpec, JobState,
    Lease, LeaseStatus, NewJob,
};
pub use keys::{KeyStore, LAST_USED_EVERY_MS, Revoked};
pub use messages::{
    MAX_MESSAGE_ID_BYTES, MAX_MESSAGE_PAYLOAD_BYTES, MAX_MESSAGE_RECEIVER_BYTES,
    MAX_MESSAGE_TEXT_BYTES, MAX_SUBSCRIPTION_TYPES, MessageContent, MessageId, MessageStore,
    MessageType, NewMessage, TypePattern, compact_json,
};
pub use notify::NotifyStore;
pub use notify::{
    Channel, ClaimLimits, ClaimedNotification, DeliveryAttempt, DeliveryVerdict, LogPage,
    NewSubscription, Notification, OutboxListener, PAUSED_BY_CLIENT, Recorded, SUPERSEDED,
    Subscription, SubscriptionId, SubscriptionState, Verdict,
};
pub use open::{DatabaseUrl, open};
pub use postgres::PgStore;
pub use retention::{Retained, RetentionStore, SweepPlan, sweep};
pub use secrets::{Place, Sealed, SecretBox, SecretStore, split_sealed};
pub use sqlite::SqliteStore;
pub use stats::{
    BucketCount, BucketWidth, MAX_BUCKETS, StatsQuery, StatsQueryError, StatsReport, StatsStore,
    Timestamp, TimestampOutOfRange,
};
pub use watches::{
    Baseline, ChangeOp, ClaimedWatch, NewChange, NewWatch, PollOutcome, Watch, WatchChange,
    WatchId, WatchLease, WatchSpec, WatchStore,
};

use async_trait::async_trait;

/// Result type of every store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How busy this process's database connection pool is, for `/metrics` and the readiness
/// log: when every connection is open and none idle, requests wait for one (and time out
/// after 10 s with "pool timed out").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Connections open, in use or idle (connections being opened count too).
    pub open: u32,
    /// Open connections waiting in the pool for a request.
    pub idle: u32,
    /// The most connections the pool opens.
    pub max: u32,
}

/// Every query Rubra makes, implemented once per database.
///
/// The queries of each feature live in their own trait and module ([`JobQueue`],
/// [`StatsStore`], [`NotifyStore`], [`MessageStore`], [`WatchStore`], [`RetentionStore`]); `Store` joins them so the server holds one `Arc<dyn Store>`.
#[async_trait]
pub trait Store:
    JobQueue
    + StatsStore
    + NotifyStore
    + MessageStore
    + WatchStore
    + RetentionStore
    + KeyStore
    + SecretStore
    + AuditStore
    + IdempotencyStore
    + Send
    + Sync
    + std::fmt::Debug
{
    /// A short name of the backend (`"sqlite"` or `"postgres"`), for logs and `/readyz`.
    fn backend(&self) -> &'static str;

    /// The doorbells this store rings after its writes: listen to them to learn of new
    /// notifications or watch changes at once (see [`Bells`]).
    fn bells(&self) -> &Bells;

    /// Applies the pending schema migrations. Safe to call from many processes at once.
    async fn migrate(&self) -> Result<()>;

    /// Checks that the database answers (used by `/readyz`).
    async fn ping(&self) -> Result<()>;

    /// How many of the connection pool's connections are open and idle now (no I/O).
    fn pool_usage(&self) -> PoolUsage;

    /// Creates a client, recorded in the audit log as done by `actor`. Fails with
    /// [`StoreError::Conflict`] when the name is taken.
    async fn create_client(&self, name: &str, actor: &Actor) -> Result<Client>;

    /// Lists clients visible in `scope` (all for an admin, itself for a client), oldest first.
    async fn list_clients(&self, scope: &Scope) -> Result<Vec<Client>>;

    /// Looks a client up by id within `scope`.
    async fn get_client(&self, scope: &Scope, id: &ClientId) -> Result<Option<Client>>;

    /// Stores the hash of a new API key, under a fresh [`KeyId`], recorded in the audit log
    /// as made by `actor`; answers what may be shown about it.
    async fn insert_key(&self, key: &NewKey, actor: &Actor) -> Result<KeyInfo>;

    /// Changes a client's own rate limit (audited as done by `actor`); `None` when there is
    /// no such client.
    async fn set_client_rate_limit(
        &self,
        id: &ClientId,
        patch: &RateLimitPatch,
        actor: &Actor,
    ) -> Result<Option<Client>>;

    /// Changes a client's own quotas (audited as done by `actor`); `None` when there is no
    /// such client.
    async fn set_client_quotas(
        &self,
        id: &ClientId,
        patch: &QuotaPatch,
        actor: &Actor,
    ) -> Result<Option<Client>>;

    /// Resolves the hash of a presented bearer token to whoever holds it, with the client's
    /// own rate limit, the key's expiry and whether the client is disabled, in one query.
    async fn key_holder(&self, hash: &KeyHash) -> Result<Option<KeyHolder>>;

    /// Resolves the hash of a presented bearer token to whoever holds it.
    async fn principal_for_key(&self, hash: &KeyHash) -> Result<Option<Principal>> {
        Ok(self.key_holder(hash).await?.map(|h| h.principal))
    }

    /// Stores the first admin key exactly once per installation.
    ///
    /// Returns `true` when this call stored it, `false` when an earlier start (of this or
    /// another process sharing the database) already had; the key is then not stored.
    async fn bootstrap_admin_key(&self, hash: &KeyHash) -> Result<bool>;

    /// Looks an image up within `scope`.
    async fn find_image(&self, scope: &Scope, id: &ImageId) -> Result<Option<ImageRecord>>;

    /// Records a newly stored image and its red-measurement event in one transaction.
    ///
    /// When the client already has this image (a concurrent upload won), nothing is written
    /// and the existing record is returned with `false`: one image, one event.
    async fn insert_image(&self, image: &ImageRecord) -> Result<(ImageRecord, bool)> {
        let mut one = self.insert_images(std::slice::from_ref(image)).await?;
        // The writer answers one result per image; an empty answer would be a bug there.
        one.pop().ok_or_else(|| {
            StoreError::Database(sqlx::Error::Protocol("the writer answered no image".into()))
        })
    }

    /// Records several newly stored images and their events in one transaction: all or none
    /// (a multipart upload). Each is answered as by [`insert_image`](Self::insert_image), in
    /// order.
    async fn insert_images(&self, images: &[ImageRecord]) -> Result<Vec<(ImageRecord, bool)>>;

    /// Deletes an image record within `scope`; `false` when there was none.
    async fn delete_image(&self, scope: &Scope, id: &ImageId) -> Result<bool>;

    /// The bytes of the images a client stores (kept with every insert and delete).
    async fn stored_image_bytes(&self, client: &ClientId) -> Result<u64>;

    /// A page of images within `scope`, newest first.
    async fn list_images(&self, scope: &Scope, page: &ImagePage) -> Result<Vec<ImageRecord>>;

    /// Records a red measurement that stored no image (`POST /red`).
    async fn insert_event(&self, event: &NewEvent) -> Result<()>;
}
