//! The PostgreSQL side of notifications: claiming with `SKIP LOCKED`, `LISTEN`, and delivery
//! bookkeeping: verdicts are recorded one transaction each
//! (row locks let concurrent recorders and processes proceed side by side), always locking the
//! subscription row before notification rows, as delete and resume do, so none can deadlock.

use super::backend::subscription_columns;
use super::{ClaimLimits, ClaimedNotification, OutboxListener, fair};
use super::{DeliveryAttempt, DeliveryVerdict, Notification, Recorded, Verdict};
use crate::{PgStore, Result};
use sqlx::Row;
use sqlx::postgres::PgPool;
use tokio::sync::OwnedMutexGuard;

impl PgStore {
    /// PostgreSQL locks rows, not the database: delivery bookkeeping needs no gate.
    pub(crate) async fn write_gate(&self) -> Option<OwnedMutexGuard<()>> {
        None
    }
}

/// Records one verdict (see [`NotifyStore::record_delivery`](super::NotifyStore::record_delivery)).
pub(super) async fn record_delivery(
    pool: &PgPool,
    owner: &str,
    claimed: &Notification,
    verdict: Verdict,
    error: Option<&str>,
    log: Option<&DeliveryAttempt>,
    pause_after: u32,
) -> Result<Recorded> {
    let now = crate::now_ms();
    let sub = claimed.subscription_id.as_str();
    let mut tx = pool.begin().await?;
    // The attempt happened whatever becomes of the verdict: its log row commits with the
    // verdict, or, when the lease was lost, alone and marked superseded (`finish_unapplied`).
    if let Some(row) = log {
        super::insert_log_rows::<sqlx::Postgres>(std::slice::from_ref(row))
            .build()
            .execute(&mut *tx)
            .await?;
    }
    // The subscription row is always locked before notification rows (here, in
    // delete and in resume), so these transactions cannot deadlock.
    if verdict == Verdict::Delivered {
        sqlx::query(
            "UPDATE subscriptions SET consecutive_failures = 0 \
             WHERE id = $1 AND consecutive_failures <> 0",
        )
        .bind(sub)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(
            "UPDATE notifications \
             SET state = 'delivered', delivered_at = $2, lease_owner = NULL, \
                 lease_until = NULL, last_error = NULL \
             WHERE seq = $1 AND state = 'pending' AND lease_owner = $3",
        )
        .bind(claimed.seq)
        .bind(now)
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done == 0 {
            finish_unapplied(pool, tx, log).await?;
            return Ok(Recorded::default());
        }
        tx.commit().await?;
        return Ok(Recorded {
            applied: true,
            paused: false,
        });
    }
    let row = sqlx::query(
        "UPDATE subscriptions SET consecutive_failures = consecutive_failures + 1 \
         WHERE id = $1 RETURNING consecutive_failures, state",
    )
    .bind(sub)
    .fetch_optional(&mut *tx)
    .await?;
    let (failures, state): (i64, String) = match &row {
        Some(r) => (r.try_get(0)?, r.try_get(1)?),
        None => (0, "active".to_owned()),
    };
    let (new_state, at) = match verdict {
        Verdict::RetryAt(at) => ("pending", at),
        _ => ("failed", now),
    };
    let done = sqlx::query(
        "UPDATE notifications \
         SET state = $2, next_attempt_at = $3, lease_owner = NULL, \
             lease_until = NULL, last_error = $4 \
         WHERE seq = $1 AND state = 'pending' AND lease_owner = $5",
    )
    .bind(claimed.seq)
    .bind(new_state)
    .bind(at)
    .bind(error)
    .bind(owner)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if done == 0 {
        // Our lease ran out and another worker owns the row now.
        finish_unapplied(pool, tx, log).await?;
        return Ok(Recorded::default());
    }
    let pause_now = pause_after > 0 && failures >= i64::from(pause_after) && state == "active";
    if pause_now {
        let reason = format!(
            "paused after {failures} consecutive failed deliveries; last error: {}",
            error.unwrap_or("unknown")
        );
        sqlx::query(
            "UPDATE subscriptions SET state = 'paused', paused_reason = $2 \
             WHERE id = $1",
        )
        .bind(sub)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
    }
    if pause_now || state == "paused" {
        // Hold what is waiting (this row included); rows leased right now
        // finish their attempt and are held when they record it.
        sqlx::query(
            "UPDATE notifications SET state = 'held' \
             WHERE subscription_id = $1 AND state = 'pending' \
               AND (lease_owner IS NULL OR lease_until < $2)",
        )
        .bind(sub)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Recorded {
        applied: true,
        paused: pause_now,
    })
}

/// Ends the transaction of a verdict that applied nothing (its lease was lost): everything it
/// wrote is rolled back (a success's reset of the failure count included), and the attempt, if
/// logged, is logged alone as [`SUPERSEDED`](super::SUPERSEDED).
async fn finish_unapplied(
    pool: &PgPool,
    tx: sqlx::Transaction<'_, sqlx::Postgres>,
    log: Option<&DeliveryAttempt>,
) -> Result<()> {
    tx.rollback().await?;
    if let Some(row) = log {
        let row = super::superseded(row);
        super::insert_log_rows::<sqlx::Postgres>(std::slice::from_ref(&row))
            .build()
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Verdicts recorded at once by [`record_logged`].
const PG_RECORDERS: usize = 16;

/// Records `verdicts[i]` with its log row `log[i]`, one transaction each, up to
/// [`PG_RECORDERS`] at once; answers in order.
pub(super) async fn record_logged(
    pool: &PgPool,
    owner: &str,
    verdicts: &[DeliveryVerdict],
    log: &[DeliveryAttempt],
    pause_after: u32,
) -> Result<Vec<Recorded>> {
    let mut out = Vec::with_capacity(verdicts.len());
    for (k, vs) in verdicts.chunks(PG_RECORDERS).enumerate() {
        let runs = vs.iter().enumerate().map(|(i, v)| {
            record_delivery(
                pool,
                owner,
                &v.notification,
                v.verdict,
                v.error.as_deref(),
                log.get(k * PG_RECORDERS + i),
                pause_after,
            )
        });
        for r in futures::future::join_all(runs).await {
            out.push(r?);
        }
    }
    Ok(out)
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
        record_delivery(
            self.0.pool(),
            owner,
            claimed,
            verdict,
            error,
            None,
            pause_after,
        )
        .await
    }

    /// One transaction per verdict: row locks let them run side by side here.
    pub(crate) async fn record_deliveries(
        &self,
        owner: &str,
        verdicts: &[DeliveryVerdict],
        pause_after: u32,
    ) -> Result<Vec<Recorded>> {
        let mut out = Vec::with_capacity(verdicts.len());
        for v in verdicts {
            out.push(
                record_delivery(
                    self.0.pool(),
                    owner,
                    &v.notification,
                    v.verdict,
                    v.error.as_deref(),
                    None,
                    pause_after,
                )
                .await?,
            );
        }
        Ok(out)
    }

    /// One transaction per verdict and its log row, up to [`PG_RECORDERS`] at once (row
    /// locks let them run side by side; each locks its subscription row first).
    #[tracing::instrument(name = "store.record_deliveries_logged", skip_all,
                          fields(verdicts = verdicts.len()))]
    pub(crate) async fn record_deliveries_logged(
        &self,
        owner: &str,
        verdicts: &[DeliveryVerdict],
        log: &[DeliveryAttempt],
        pause_after: u32,
    ) -> Result<Vec<Recorded>> {
        record_logged(self.0.pool(), owner, verdicts, log, pause_after).await
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
