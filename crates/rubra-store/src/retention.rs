//! Retention: deleting old delivery log rows, finished notifications, watch changes,
//! finished jobs and the ids of old messages, in small batches, under a lease so that one process of a cluster sweeps.
//!
//! Events are never deleted here: `GET /stats` counts the ragged edges of a range and
//! thresholds of more than four decimals from raw events (see `stats`), so deleting them would
//! make old ranges inexact.

use crate::{PgStore, Result, SqliteStore};
use async_trait::async_trait;
use std::time::Duration;

/// What the sweeper deletes, one kind per table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Retained {
    /// Delivery log rows (`delivery_attempts`) attempted before the cutoff.
    DeliveryAttempts,
    /// Notifications created before the cutoff that are finished: delivered, failed,
    /// canceled, or shown on a stream. Pending and held ones stay, however old.
    Notifications,
    /// Changes of watched documents (`watch_changes`) seen before the cutoff.
    WatchChanges,
    /// Jobs that finished (succeeded, failed, canceled) before the cutoff. Queued and running
    /// jobs stay, however old.
    Jobs,
    /// The ids of messages received before the cutoff (`messages`): a message sent again
    /// with one of them is new again.
    Messages,
    /// Audit log rows written before the cutoff.
    AuditLog,
    /// Idempotency keys (and the answers kept with them) claimed before the cutoff.
    IdempotencyKeys,
}

impl Retained {
    /// Every kind, in the order a sweep deletes them.
    pub const ALL: [Retained; 7] = [
        Retained::DeliveryAttempts,
        Retained::Notifications,
        Retained::WatchChanges,
        Retained::Jobs,
        Retained::Messages,
        Retained::AuditLog,
        Retained::IdempotencyKeys,
    ];

    /// The table's name, as the `table` label of metrics and in logs.
    pub fn table(self) -> &'static str {
        match self {
            Retained::DeliveryAttempts => "delivery_attempts",
            Retained::Notifications => "notifications",
            Retained::WatchChanges => "watch_changes",
            Retained::Jobs => "jobs",
            Retained::Messages => "messages",
            Retained::AuditLog => "audit_log",
            Retained::IdempotencyKeys => "idempotency_keys",
        }
    }

    /// One batch: `$1` the cutoff (epoch ms), `$2` the batch size. The same SQL on both
    /// databases; each inner `SELECT` walks an index of the cutoff column (migrations 0011,
    /// 0017, 0018, 0019).
    fn delete_sql(self) -> &'static str {
        match self {
            Retained::DeliveryAttempts => {
                "DELETE FROM delivery_attempts WHERE id IN \
                 (SELECT id FROM delivery_attempts WHERE at < $1 LIMIT $2)"
            }
            Retained::Notifications => {
                "DELETE FROM notifications WHERE seq IN \
                 (SELECT seq FROM notifications WHERE created_at < $1 \
                  AND state IN ('delivered', 'failed', 'canceled', 'stream') LIMIT $2)"
            }
            Retained::WatchChanges => {
                "DELETE FROM watch_changes WHERE (watch_id, seq) IN \
                 (SELECT watch_id, seq FROM watch_changes WHERE ts < $1 LIMIT $2)"
            }
            Retained::Jobs => {
                "DELETE FROM jobs WHERE id IN \
                 (SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < $1 \
                  AND state IN ('succeeded', 'failed', 'canceled') LIMIT $2)"
            }
            Retained::Messages => {
                "DELETE FROM messages WHERE (client_id, id) IN \
                 (SELECT client_id, id FROM messages WHERE received_at < $1 LIMIT $2)"
            }
            Retained::AuditLog => {
                "DELETE FROM audit_log WHERE seq IN \
                 (SELECT seq FROM audit_log WHERE at < $1 LIMIT $2)"
            }
            Retained::IdempotencyKeys => {
                "DELETE FROM idempotency_keys WHERE (subject, key) IN \
                 (SELECT subject, key FROM idempotency_keys WHERE created_at < $1 LIMIT $2)"
            }
        }
    }
}

/// Takes the lease `$1` for owner `$2` until `$3` when it is free, expired (`lease_until < $4`,
/// now) or already this owner's; one row is written exactly when the lease is taken.
const TAKE_LEASE: &str = "\
    INSERT INTO chore_leases (name, owner, lease_until) VALUES ($1, $2, $3) \
    ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until \
    WHERE chore_leases.owner = excluded.owner OR chore_leases.lease_until < $4";

const RELEASE_LEASE: &str = "DELETE FROM chore_leases WHERE name = $1 AND owner = $2";

/// The name of the retention sweeper's lease.
const SWEEP_LEASE: &str = "retention_sweeper";

/// The queries of retention.
#[async_trait]
pub trait RetentionStore {
    /// Deletes at most `limit` rows of `what` older than `before_ms` (epoch ms), as described
    /// on [`Retained`]; answers how many were deleted.
    async fn delete_expired(&self, what: Retained, before_ms: i64, limit: u32) -> Result<u64>;

    /// Takes or renews the sweeper's lease for `owner` until `now_ms + ttl`; `false` when
    /// another owner holds an unexpired lease.
    async fn take_sweep_lease(&self, owner: &str, now_ms: i64, ttl: Duration) -> Result<bool>;

    /// Gives the sweeper's lease up if `owner` holds it, so another process may sweep at once.
    async fn release_sweep_lease(&self, owner: &str) -> Result<()>;
}

fn until(now_ms: i64, ttl: Duration) -> i64 {
    now_ms.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

#[async_trait]
impl RetentionStore for SqliteStore {
    async fn delete_expired(&self, what: Retained, before_ms: i64, limit: u32) -> Result<u64> {
        // SQLite has one writer: wait in the store's write gate like every other write, so a
        // batch queues in order with the event writer instead of in SQLite's busy handler.
        let _gate = self.writer().gate().await;
        let done = sqlx::query(what.delete_sql())
            .bind(before_ms)
            .bind(i64::from(limit))
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    async fn take_sweep_lease(&self, owner: &str, now_ms: i64, ttl: Duration) -> Result<bool> {
        let _gate = self.writer().gate().await;
        let done = sqlx::query(TAKE_LEASE)
            .bind(SWEEP_LEASE)
            .bind(owner)
            .bind(until(now_ms, ttl))
            .bind(now_ms)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_sweep_lease(&self, owner: &str) -> Result<()> {
        let _gate = self.writer().gate().await;
        sqlx::query(RELEASE_LEASE)
            .bind(SWEEP_LEASE)
            .bind(owner)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

#[async_trait]
impl RetentionStore for PgStore {
    async fn delete_expired(&self, what: Retained, before_ms: i64, limit: u32) -> Result<u64> {
        let done = sqlx::query(what.delete_sql())
            .bind(before_ms)
            .bind(i64::from(limit))
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    async fn take_sweep_lease(&self, owner: &str, now_ms: i64, ttl: Duration) -> Result<bool> {
        let done = sqlx::query(TAKE_LEASE)
            .bind(SWEEP_LEASE)
            .bind(owner)
            .bind(until(now_ms, ttl))
            .bind(now_ms)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_sweep_lease(&self, owner: &str) -> Result<()> {
        sqlx::query(RELEASE_LEASE)
            .bind(SWEEP_LEASE)
            .bind(owner)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

/// What one sweep deletes: a cutoff (epoch ms) per kind; a kind without one is kept forever.
#[derive(Debug, Clone, Default)]
pub struct SweepPlan {
    /// `(kind, cutoff)`: rows of the kind older than the cutoff are deleted.
    pub cutoffs: Vec<(Retained, i64)>,
    /// Rows per statement.
    pub batch: u32,
    /// Pause between batches, so that other writers get the database in between.
    pub pause: Duration,
}

/// Runs `plan`: deletes each kind in batches until a batch comes back short, pausing between
/// batches; answers the rows deleted per kind, in the plan's order. `still_ours` is asked
/// before every batch and stops the sweep when it answers `false` (the lease was lost or the
/// process is stopping); what was deleted until then is answered.
pub async fn sweep<S: RetentionStore + Sync + ?Sized>(
    store: &S,
    plan: &SweepPlan,
    mut still_ours: impl FnMut() -> bool + Send,
) -> Result<Vec<(Retained, u64)>> {
    let batch = plan.batch.max(1);
    let mut counts = Vec::with_capacity(plan.cutoffs.len());
    for &(what, cutoff) in &plan.cutoffs {
        let mut total = 0;
        while still_ours() {
            let n = store.delete_expired(what, cutoff, batch).await?;
            total += n;
            if n < u64::from(batch) {
                break;
            }
            tokio::time::sleep(plan.pause).await;
        }
        counts.push((what, total));
    }
    Ok(counts)
}
