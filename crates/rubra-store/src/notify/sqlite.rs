//! The SQLite side of delivery bookkeeping: verdicts are recorded many to a transaction, and
//! every notify write waits for the store's write gate first (see `stats::ingest::Writer::gate`).
//!
//! SQLite has one writer at a time. One transaction per verdict, each queueing for the lock
//! in SQLite's sleeping busy handler behind the event writer, was what made deliveries fall
//! behind at 1 000 notifications/s; a batch costs one commit, and the gate turns the waits
//! into an in-order async queue.

use super::{DeliveryVerdict, Recorded, Verdict};
use crate::{Result, SqliteStore};
use sqlx::{Row, Sqlite, Transaction};
use tokio::sync::OwnedMutexGuard;

impl SqliteStore {
    /// The store's write gate, shared with the event writer.
    pub(super) async fn write_gate(&self) -> Option<OwnedMutexGuard<()>> {
        Some(self.writer().gate().await)
    }
}

/// Records verdicts in one transaction (see
/// [`NotifyStore::record_deliveries`](super::NotifyStore::record_deliveries)).
pub(super) async fn record_deliveries(
    store: &SqliteStore,
    owner: &str,
    verdicts: &[DeliveryVerdict],
    pause_after: u32,
) -> Result<Vec<Recorded>> {
    if verdicts.is_empty() {
        return Ok(Vec::new());
    }
    let _gate = store.write_gate().await;
    let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await?;
    let now = crate::now_ms();
    let mut out = Vec::with_capacity(verdicts.len());
    for v in verdicts {
        out.push(record_one(&mut tx, owner, v, pause_after, now).await?);
    }
    tx.commit().await?;
    Ok(out)
}

/// One verdict inside the batch's transaction. The notification row is changed first and the
/// subscription only if that applied, so a verdict whose lease was lost changes nothing
/// without rolling back the rest of the batch (SQLite locks the whole database, so the order
/// of row changes cannot deadlock here).
async fn record_one(
    tx: &mut Transaction<'_, Sqlite>,
    owner: &str,
    v: &DeliveryVerdict,
    pause_after: u32,
    now: i64,
) -> Result<Recorded> {
    let n = &v.notification;
    let sub = n.subscription_id.as_str();
    if v.verdict == Verdict::Delivered {
        let done = sqlx::query(
            "UPDATE notifications \
             SET state = 'delivered', delivered_at = $2, lease_owner = NULL, \
                 lease_until = NULL, last_error = NULL \
             WHERE seq = $1 AND state = 'pending'",
        )
        .bind(n.seq)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if done == 0 {
            return Ok(Recorded::default());
        }
        sqlx::query(
            "UPDATE subscriptions SET consecutive_failures = 0 \
             WHERE id = $1 AND consecutive_failures <> 0",
        )
        .bind(sub)
        .execute(&mut **tx)
        .await?;
        return Ok(Recorded {
            applied: true,
            paused: false,
        });
    }
    let (new_state, at) = match v.verdict {
        Verdict::RetryAt(at) => ("pending", at),
        _ => ("failed", now),
    };
    let done = sqlx::query(
        "UPDATE notifications \
         SET state = $2, next_attempt_at = $3, lease_owner = NULL, lease_until = NULL, \
             last_error = $4 \
         WHERE seq = $1 AND state = 'pending' AND lease_owner = $5",
    )
    .bind(n.seq)
    .bind(new_state)
    .bind(at)
    .bind(v.error.as_deref())
    .bind(owner)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if done == 0 {
        // Our lease ran out and another worker owns the row now.
        return Ok(Recorded::default());
    }
    let row = sqlx::query(
        "UPDATE subscriptions SET consecutive_failures = consecutive_failures + 1 \
         WHERE id = $1 RETURNING consecutive_failures, state",
    )
    .bind(sub)
    .fetch_optional(&mut **tx)
    .await?;
    let (failures, state): (i64, String) = match &row {
        Some(r) => (r.try_get(0)?, r.try_get(1)?),
        None => (0, "active".to_owned()),
    };
    let pause_now = pause_after > 0 && failures >= i64::from(pause_after) && state == "active";
    if pause_now {
        let reason = format!(
            "paused after {failures} consecutive failed deliveries; last error: {}",
            v.error.as_deref().unwrap_or("unknown")
        );
        sqlx::query("UPDATE subscriptions SET state = 'paused', paused_reason = $2 WHERE id = $1")
            .bind(sub)
            .bind(reason)
            .execute(&mut **tx)
            .await?;
    }
    if pause_now || state == "paused" {
        // Hold what is waiting (this row included); rows leased right now finish their
        // attempt and are held when they record it.
        sqlx::query(
            "UPDATE notifications SET state = 'held' \
             WHERE subscription_id = $1 AND state = 'pending' \
               AND (lease_owner IS NULL OR lease_until < $2)",
        )
        .bind(sub)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(Recorded {
        applied: true,
        paused: pause_now,
    })
}
