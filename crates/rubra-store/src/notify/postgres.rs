//! The PostgreSQL side of delivery bookkeeping: verdicts are recorded one transaction each
//! (row locks let concurrent recorders and processes proceed side by side), always locking the
//! subscription row before notification rows, as delete and resume do, so none can deadlock.

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
        let row = DeliveryAttempt {
            outcome: super::SUPERSEDED.to_owned(),
            ..row.clone()
        };
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
