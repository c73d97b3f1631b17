//! Filling in what rows recorded before a statistics migration lack, once per database, written
//! once for both backends (`backfill_fn!`; the SQL is portable).
//!
//! Each step is claimed by a row in `meta`, in the same transaction as its work, so a crash
//! leaves it to the next start and a second process starting at once waits for the first:
//!
//! - `stats_rollups` (migration 0005): events recorded before it get their coarse bin, and
//!   their rollup rows are computed from them (such databases predate any rollup).
//! - `stats_bands` (migration 0009): the one-histogram rollup rows of migrations 0005–0008,
//!   kept aside as `stats_rollups_old`, become period and band rows, converted a page of
//!   periods at a time — the work and the memory go with the number of periods, not events.
//!   The old table is then dropped.

/// Marks a backfill step as done; a row affected means this process does it now.
pub(crate) const CLAIM_SQL: &str =
    "INSERT INTO meta (key, value) VALUES ($1, '1') ON CONFLICT (key) DO NOTHING";

/// The events a bin backfill reads, with their clients' text ids.
pub(crate) const EVENT_ROWS_SQL: &str = "\
    SELECT e.id, k.client_id, e.red, e.ts FROM events e JOIN client_keys k ON k.ckey = e.ckey";

/// One page of old rollup rows after the key `($1, $2, $3)`, in key order.
pub(crate) const OLD_ROLLUPS_PAGE_SQL: &str = "\
    SELECT client_id, level, period_start, hist FROM stats_rollups_old \
    WHERE (client_id, level, period_start) > ($1, $2, $3) \
    ORDER BY client_id, level, period_start LIMIT $4";

/// Old rollup rows converted per statement round.
pub(crate) const OLD_ROLLUPS_PAGE: i64 = 500;

/// Expands to `async fn backfill(pool)` for one backend; `write_rollups(tx, deltas)` must be in
/// scope where it is used.
macro_rules! backfill_fn {
    ($pool:ty, $begin:expr) => {
        /// Runs the backfill steps not yet done (see `stats::backfill`).
        pub(crate) async fn backfill(pool: &$pool) -> $crate::Result<()> {
            use $crate::stats::backfill::*;
            use $crate::stats::{bins, hist, ingest};
            let mut tx = pool.begin_with($begin).await?;
            let mut claim = async |step: &str| -> $crate::Result<bool> {
                let done = sqlx::query(CLAIM_SQL).bind(step).execute(&mut *tx).await?;
                Ok(done.rows_affected() == 1)
            };
            let fill_bins = claim("stats_rollups").await?;
            let split_bands = claim("stats_bands").await?;
            if split_bands {
                // Converted rows are added to what is there: start from nothing.
                sqlx::query("DELETE FROM stats_periods")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM stats_bands")
                    .execute(&mut *tx)
                    .await?;
            }
            if fill_bins {
                // A database from before any rollup: bins and rollups from the events.
                let rows: Vec<(i64, String, f64, i64)> =
                    sqlx::query_as(EVENT_ROWS_SQL).fetch_all(&mut *tx).await?;
                let mut events = Vec::with_capacity(rows.len());
                for (id, client, red, ts) in rows {
                    sqlx::query("UPDATE events SET bin = $1 WHERE id = $2")
                        .bind(i32::from(bins::coarse_of_fine(bins::fine_bin(red))))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    events.push($crate::NewEvent {
                        client_id: $crate::ClientId::from_db(client),
                        image_id: None,
                        red,
                        ts,
                    });
                }
                write_rollups(&mut tx, &ingest::rollup_deltas(events.iter())).await?;
            } else if split_bands {
                let mut after = (String::new(), i16::MIN, i64::MIN);
                loop {
                    let rows: Vec<(String, i16, i64, Vec<u8>)> =
                        sqlx::query_as(OLD_ROLLUPS_PAGE_SQL)
                            .bind(&after.0)
                            .bind(after.1)
                            .bind(after.2)
                            .bind(OLD_ROLLUPS_PAGE)
                            .fetch_all(&mut *tx)
                            .await?;
                    let Some(last) = rows.last() else { break };
                    after = (last.0.clone(), last.1, last.2);
                    let deltas: Vec<ingest::RollupDelta> = rows
                        .iter()
                        .map(|(client, level, start, blob)| {
                            ingest::RollupDelta::new(client, *level, *start, hist::decode(blob))
                        })
                        .collect();
                    write_rollups(&mut tx, &deltas).await?;
                }
            }
            if split_bands {
                sqlx::query("DROP TABLE stats_rollups_old")
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        }
    };
}

pub(crate) use backfill_fn;
