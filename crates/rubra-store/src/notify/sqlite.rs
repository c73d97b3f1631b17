//! The SQLite side of notifications: claiming under the write gate, and delivery bookkeeping —
//! verdicts are recorded many to a transaction, and every notify write waits for the store's
//! write gate first (see `stats::ingest::Writer::gate`).
//!
//! SQLite has one writer at a time. One transaction per verdict, each queueing for the lock
//! in SQLite's sleeping busy handler behind the event writer, was what made deliveries fall
//! behind at 1 000 notifications/s; a batch costs one commit, and the gate turns the waits
//! into an in-order async queue.

use super::backend::{notification_columns, subscription_columns};
use super::{ClaimLimits, ClaimedNotification, OutboxListener, fair};
use super::{DeliveryAttempt, DeliveryVerdict, Notification, Recorded, Verdict};
use crate::{Result, SqliteStore};
use sqlx::{AssertSqlSafe, Row, Sqlite, Transaction};
use std::collections::HashMap;
use tokio::sync::OwnedMutexGuard;

impl SqliteStore {
    /// The store's write gate, shared with the event writer.
    pub(crate) async fn write_gate(&self) -> Option<OwnedMutexGuard<()>> {
        Some(self.writer().gate().await)
    }
}

/// Records verdicts in one transaction (see
/// [`NotifyStore::record_deliveries`](super::NotifyStore::record_deliveries)).
pub(super) async fn record_deliveries(
    store: &SqliteStore,
    owner: &str,
    verdicts: &[DeliveryVerdict],
    log: &[DeliveryAttempt],
    pause_after: u32,
) -> Result<Vec<Recorded>> {
    if verdicts.is_empty() {
        return Ok(Vec::new());
    }
    let _gate = store.write_gate().await;
    let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await?;
    let now = crate::now_ms();
    let mut out = Vec::with_capacity(verdicts.len());
    for step in super::verdict_steps(verdicts) {
        match step {
            super::VerdictStep::Delivered(run) => {
                out.extend(record_delivered(&mut tx, owner, run, now).await?);
            }
            super::VerdictStep::One(v) => {
                out.push(record_one(&mut tx, owner, v, pause_after, now).await?);
            }
        }
    }
    let log = super::log_as_recorded(verdicts, &out, log);
    for chunk in log.chunks(LOG_CHUNK) {
        super::insert_log_rows::<Sqlite>(chunk)
            .build()
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(out)
}

/// Delivery log rows per statement (9 parameters each).
const LOG_CHUNK: usize = 500;

/// Successful deliveries per statement (one parameter each).
const DELIVERED_CHUNK: usize = 1000;

/// Records successful deliveries: the pending ones still leased by `owner` become delivered,
/// and their subscriptions' failure counts go back to zero — two statements per
/// [`DELIVERED_CHUNK`].
async fn record_delivered(
    tx: &mut Transaction<'_, Sqlite>,
    owner: &str,
    verdicts: &[DeliveryVerdict],
    now: i64,
) -> Result<Vec<Recorded>> {
    let mut out = Vec::with_capacity(verdicts.len());
    for chunk in verdicts.chunks(DELIVERED_CHUNK) {
        let marks = vec!["(?)"; chunk.len()].join(",");
        let sql = format!(
            "WITH d(seq) AS (VALUES {marks}) \
             UPDATE notifications \
             SET state = 'delivered', delivered_at = ?, lease_owner = NULL, \
                 lease_until = NULL, last_error = NULL \
             WHERE seq IN (SELECT seq FROM d) AND state = 'pending' AND lease_owner = ? \
             RETURNING seq, subscription_id"
        );
        let mut q = sqlx::query_as::<_, (i64, String)>(AssertSqlSafe(sql));
        for v in chunk {
            q = q.bind(v.notification.seq);
        }
        let done: HashMap<i64, String> = q
            .bind(now)
            .bind(owner)
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .collect();
        if !done.is_empty() {
            let mut subs: Vec<&str> = done.values().map(String::as_str).collect();
            subs.sort_unstable();
            subs.dedup();
            let marks = vec!["(?)"; subs.len()].join(",");
            let sql = format!(
                "WITH s(id) AS (VALUES {marks}) \
                 UPDATE subscriptions SET consecutive_failures = 0 \
                 WHERE id IN (SELECT id FROM s) AND consecutive_failures <> 0"
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for sub in subs {
                q = q.bind(sub);
            }
            q.execute(&mut **tx).await?;
        }
        out.extend(chunk.iter().map(|v| Recorded {
            applied: done.contains_key(&v.notification.seq),
            paused: false,
        }));
    }
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
             WHERE seq = $1 AND state = 'pending' AND lease_owner = $3",
        )
        .bind(n.seq)
        .bind(now)
        .bind(owner)
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

/// This backend's own [`NotifyStore`](super::NotifyStore) methods (the shared ones are in
/// `notify/backend.rs`).
impl super::backend::Notify<'_, SqliteStore> {
    pub(crate) fn replay_settle_ms(&self) -> i64 {
        0
    }

    pub(crate) async fn listen_outbox(&self) -> Result<Option<OutboxListener>> {
        Ok(None)
    }

    #[tracing::instrument(name = "store.record_delivery", skip_all,
                          fields(seq = claimed.seq, verdict = ?verdict))]
    pub(crate) async fn record_delivery(
        &self,
        owner: &str,
        claimed: &Notification,
        verdict: Verdict,
        error: Option<&str>,
        pause_after: u32,
    ) -> Result<Recorded> {
        let one = [DeliveryVerdict {
            notification: claimed.clone(),
            verdict,
            error: error.map(str::to_owned),
        }];
        let recorded = record_deliveries(self.0, owner, &one, &[], pause_after).await?;
        Ok(recorded.first().copied().unwrap_or_default())
    }

    #[tracing::instrument(name = "store.record_deliveries", skip_all,
                          fields(verdicts = verdicts.len()))]
    pub(crate) async fn record_deliveries(
        &self,
        owner: &str,
        verdicts: &[DeliveryVerdict],
        pause_after: u32,
    ) -> Result<Vec<Recorded>> {
        record_deliveries(self.0, owner, verdicts, &[], pause_after).await
    }

    #[tracing::instrument(name = "store.record_deliveries_logged", skip_all,
                          fields(verdicts = verdicts.len()))]
    pub(crate) async fn record_deliveries_logged(
        &self,
        owner: &str,
        verdicts: &[DeliveryVerdict],
        log: &[DeliveryAttempt],
        pause_after: u32,
    ) -> Result<Vec<Recorded>> {
        record_deliveries(self.0, owner, verdicts, log, pause_after).await
    }

    #[tracing::instrument(name = "store.claim_notifications", skip_all,
                          fields(limit = limits.total))]
    pub(crate) async fn claim_notifications(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limits: &ClaimLimits,
    ) -> Result<Vec<ClaimedNotification>> {
        let until = now.saturating_add(lease_ms);
        let candidates = self.read_candidates(now, limits.total).await?;
        let picks = fair::plan(&candidates, limits);
        if picks.is_empty() {
            return Ok(Vec::new());
        }
        let gate = self.0.write_gate().await;
        // Under the write gate, in one transaction: nobody else leases in between.
        let mut tx = self.0.pool().begin_with("BEGIN IMMEDIATE").await?;
        let mut rows = Vec::new();
        for (sub, n) in &picks {
            rows.extend(
                sqlx::query(concat!(
                    "UPDATE notifications \
                     SET lease_owner = $1, lease_until = $2, next_attempt_at = $2, \
                         attempts = attempts + 1 \
                     WHERE seq IN (SELECT seq FROM notifications \
                                   WHERE subscription_id = $3 AND state = 'pending' \
                                     AND next_attempt_at <= $4 \
                                   ORDER BY next_attempt_at LIMIT $5) \
                     RETURNING ",
                    notification_columns!()
                ))
                .bind(owner)
                .bind(until)
                .bind(sub)
                .bind(now)
                .bind(i64::from(*n))
                .fetch_all(&mut *tx)
                .await?,
            );
        }
        tx.commit().await?;
        drop(gate);
        let mut notes = rows
            .iter()
            .map(Self::notification_from_row)
            .collect::<Result<Vec<_>>>()?;
        notes.sort_by_key(|n| n.seq);
        let ids: Vec<&str> = picks.iter().map(|(s, _)| s.as_str()).collect();
        let ids = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".to_owned());
        let subs = sqlx::query(concat!(
            "SELECT ",
            subscription_columns!(),
            " FROM subscriptions WHERE id IN (SELECT value FROM json_each($1))"
        ))
        .bind(ids)
        .fetch_all(self.0.pool())
        .await?;
        Self::join_subscriptions(notes, &subs, self.0.secrets())
    }
}
