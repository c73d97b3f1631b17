//! The PostgreSQL side of notifications: claiming with `SKIP LOCKED`, `LISTEN`, and delivery
//! bookkeeping: verdicts are recorded many to a transaction with set-based statements (one
//! transaction per verdict, 16 at a time, was what made a relay that fell behind at 2 000
//! messages/s collapse to ~240/s, issue #22), always locking the subscription rows before
//! notification rows, as delete and resume do, so none can deadlock.

use super::backend::subscription_columns;
use super::{ClaimLimits, ClaimedNotification, OutboxListener, fair};
use super::{DeliveryAttempt, DeliveryVerdict, Notification, Recorded, Verdict};
use crate::{PgStore, Result};
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Row, Transaction};
use std::collections::HashMap;
use tokio::sync::OwnedMutexGuard;

impl PgStore {
    /// PostgreSQL locks rows, not the database: delivery bookkeeping needs no gate.
    pub(crate) async fn write_gate(&self) -> Option<OwnedMutexGuard<()>> {
        None
    }
}

/// Records verdicts and their log rows in one transaction (see
/// [`NotifyStore::record_deliveries_logged`](super::NotifyStore::record_deliveries_logged)),
/// as SQLite's `record_deliveries` does: each run of successes in two set-based statements,
/// each failure alone and in order. The subscription rows of the batch are locked first, in id
/// order, before any notification row (delete and resume lock a subscription before its
/// notifications too), so concurrent recorders, deletes and resumes cannot deadlock. A verdict
/// whose lease was lost changes nothing and its attempt is logged
/// [`SUPERSEDED`](super::SUPERSEDED); the rest of the batch is recorded.
pub(super) async fn record_batch(
    pool: &PgPool,
    owner: &str,
    verdicts: &[DeliveryVerdict],
    log: &[DeliveryAttempt],
    pause_after: u32,
) -> Result<Vec<Recorded>> {
    if verdicts.is_empty() {
        return Ok(Vec::new());
    }
    let now = crate::now_ms();
    let mut subs: Vec<&str> = verdicts
        .iter()
        .map(|v| v.notification.subscription_id.as_str())
        .collect();
    subs.sort_unstable();
    subs.dedup();
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT id FROM subscriptions WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
        .bind(&subs)
        .execute(&mut *tx)
        .await?;
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
        super::insert_log_rows::<Postgres>(chunk)
            .build()
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(out)
}

/// Delivery log rows per statement (9 parameters each; PostgreSQL takes at most 65 535).
const LOG_CHUNK: usize = 1000;

/// Records successful deliveries: the pending ones still leased by `owner` become delivered,
/// and their subscriptions' failure counts go back to zero — two statements.
async fn record_delivered(
    tx: &mut Transaction<'_, Postgres>,
    owner: &str,
    verdicts: &[DeliveryVerdict],
    now: i64,
) -> Result<Vec<Recorded>> {
    let seqs: Vec<i64> = verdicts.iter().map(|v| v.notification.seq).collect();
    let done: HashMap<i64, String> = sqlx::query_as::<_, (i64, String)>(
        "UPDATE notifications \
         SET state = 'delivered', delivered_at = $2, lease_owner = NULL, \
             lease_until = NULL, last_error = NULL \
         WHERE seq = ANY($1) AND state = 'pending' AND lease_owner = $3 \
         RETURNING seq, subscription_id",
    )
    .bind(&seqs)
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
        sqlx::query(
            "UPDATE subscriptions SET consecutive_failures = 0 \
             WHERE id = ANY($1) AND consecutive_failures <> 0",
        )
        .bind(&subs)
        .execute(&mut **tx)
        .await?;
    }
    Ok(verdicts
        .iter()
        .map(|v| Recorded {
            applied: done.contains_key(&v.notification.seq),
            paused: false,
        })
        .collect())
}

/// One failed attempt inside the batch's transaction (its subscription row is locked
/// already). The notification row is changed first and the subscription only if that applied,
/// so a verdict whose lease was lost changes nothing without rolling back the rest.
async fn record_one(
    tx: &mut Transaction<'_, Postgres>,
    owner: &str,
    v: &DeliveryVerdict,
    pause_after: u32,
    now: i64,
) -> Result<Recorded> {
    let n = &v.notification;
    let sub = n.subscription_id.as_str();
    let (new_state, at) = match v.verdict {
        Verdict::Delivered => {
            let one = record_delivered(tx, owner, std::slice::from_ref(v), now).await?;
            return Ok(one.first().copied().unwrap_or_default());
        }
        Verdict::RetryAt(at) => ("pending", at),
        Verdict::Failed => ("failed", now),
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
impl super::backend::Notify<'_, PgStore> {
    /// Identity values are handed out before commit; a transaction holding one this long is
    /// far outside normal operation (the event inserts take milliseconds).
    pub(crate) fn replay_settle_ms(&self) -> i64 {
        5_000
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
        let recorded = record_batch(self.0.pool(), owner, &one, &[], pause_after).await?;
        Ok(recorded.first().copied().unwrap_or_default())
    }

    /// One transaction for the batch ([`record_batch`]).
    #[tracing::instrument(name = "store.record_deliveries", skip_all,
                          fields(verdicts = verdicts.len()))]
    pub(crate) async fn record_deliveries(
        &self,
        owner: &str,
        verdicts: &[DeliveryVerdict],
        pause_after: u32,
    ) -> Result<Vec<Recorded>> {
        record_batch(self.0.pool(), owner, verdicts, &[], pause_after).await
    }

    /// One transaction for the verdicts and their log rows ([`record_batch`]).
    #[tracing::instrument(name = "store.record_deliveries_logged", skip_all,
                          fields(verdicts = verdicts.len()))]
    pub(crate) async fn record_deliveries_logged(
        &self,
        owner: &str,
        verdicts: &[DeliveryVerdict],
        log: &[DeliveryAttempt],
        pause_after: u32,
    ) -> Result<Vec<Recorded>> {
        record_batch(self.0.pool(), owner, verdicts, log, pause_after).await
    }

    pub(crate) async fn listen_outbox(&self) -> Result<Option<OutboxListener>> {
        let mut listener = sqlx::postgres::PgListener::connect_with(self.0.pool()).await?;
        listener.listen("rubra_notifications").await?;
        Ok(Some(OutboxListener(listener)))
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
        let (subs, counts): (Vec<String>, Vec<i64>) =
            picks.into_iter().map(|(s, n)| (s, i64::from(n))).unzip();
        // SKIP LOCKED: concurrent claimers in other processes pass over each other's rows
        // instead of waiting for them.
        let rows = sqlx::query(
            "WITH pick AS (SELECT p.sub, p.n FROM unnest($4::text[], $5::bigint[]) AS p(sub, n)), \
             due AS (SELECT d.seq FROM pick CROSS JOIN LATERAL ( \
                 SELECT seq FROM notifications \
                 WHERE subscription_id = pick.sub AND state = 'pending' \
                   AND next_attempt_at <= $3 \
                 ORDER BY next_attempt_at LIMIT pick.n FOR UPDATE SKIP LOCKED) d) \
             UPDATE notifications n \
             SET lease_owner = $1, lease_until = $2, next_attempt_at = $2, \
                 attempts = n.attempts + 1 \
             FROM due WHERE n.seq = due.seq \
             RETURNING n.seq, n.client_id, n.subscription_id, n.channel_type, n.image_id, \
                       n.red, n.threshold, n.event_ts, n.created_at, n.state, n.attempts, \
                       n.watch_id, n.changes, n.message_id, n.message_type, n.payload, \
                       n.text, n.receiver",
        )
        .bind(owner)
        .bind(until)
        .bind(now)
        .bind(&subs)
        .bind(&counts)
        .fetch_all(self.0.pool())
        .await?;
        let mut notes = rows
            .iter()
            .map(Self::notification_from_row)
            .collect::<Result<Vec<_>>>()?;
        notes.sort_by_key(|n| n.seq);
        let rows = sqlx::query(concat!(
            "SELECT ",
            subscription_columns!(),
            " FROM subscriptions WHERE id = ANY($1)"
        ))
        .bind(&subs)
        .fetch_all(self.0.pool())
        .await?;
        Self::join_subscriptions(notes, &rows, self.0.secrets())
    }
}
