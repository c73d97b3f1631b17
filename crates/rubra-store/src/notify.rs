//! Subscriptions and the notification outbox: notifications are written in the same
//! transaction as their event, and delivery workers lease them from the table.

use crate::{PgStore, SqliteStore};
use async_trait::async_trait;

/// Writes one notification per live subscription of client `$1` that an event with red `$3`
/// exceeds. Parameters: `$1` client id, `$2` image id (nullable), `$3` red, `$4` event ts (ms),
/// `$5` now (ms). Runs inside the transaction that inserts the event (the outbox pattern).
pub(crate) const ENQUEUE_NOTIFICATIONS_SQL: &str = "\
    INSERT INTO notifications (client_id, subscription_id, channel_type, image_id, red, \
                               threshold, event_ts, created_at, next_attempt_at) \
    SELECT s.client_id, s.id, s.channel_type, $2, $3, s.threshold, $4, $5, $5 \
    FROM subscriptions s \
    WHERE s.client_id = $1 AND s.deleted_at IS NULL AND $3 > s.threshold";

/// Subscriptions, notifications and the delivery log (DESIGN §5).
#[async_trait]
pub trait NotifyStore: Send + Sync {}

#[async_trait]
impl NotifyStore for SqliteStore {}

#[async_trait]
impl NotifyStore for PgStore {}
