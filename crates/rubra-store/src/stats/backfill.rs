//! Filling in what rows recorded before a statistics migration lack, once per database, written
//! once for both backends, generic over the sqlx database (the SQL is portable; only the
//! rollup writes differ, see [`WriteRollups`]).
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

use crate::sql::RowsAffected;
use crate::stats::ingest::{self, WriteRollups};
use crate::stats::{bins, hist};
use crate::{ClientId, NewEvent, Result};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};

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

/// Runs the backfill steps not yet done, in one transaction opened with `begin` (see the
/// module docs); the rollup rows are written by the backend's [`WriteRollups`].
pub(crate) async fn backfill<DB>(pool: &Pool<DB>, begin: &'static str) -> Result<()>
where
    DB: WriteRollups,
    DB::Arguments: IntoArguments<DB>,
    DB::QueryResult: RowsAffected,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    i16: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i32: for<'t> Encode<'t, DB> + Type<DB>,
    i64: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    f64: for<'r> Decode<'r, DB> + Type<DB>,
    String: for<'r> Decode<'r, DB> + Type<DB>,
    Vec<u8>: for<'r> Decode<'r, DB> + Type<DB>,
{
    let mut tx = pool.begin_with(begin).await?;
    let fill_bins = claim::<DB>(&mut tx, "stats_rollups").await?;
    let split_bands = claim::<DB>(&mut tx, "stats_bands").await?;
    if split_bands {
        // Converted rows are added to what is there: start from nothing.
        sqlx::query::<DB>("DELETE FROM stats_periods")
            .execute(&mut *tx)
            .await?;
        sqlx::query::<DB>("DELETE FROM stats_bands")
            .execute(&mut *tx)
            .await?;
    }
    if fill_bins {
        // A database from before any rollup: bins and rollups from the events.
        let rows: Vec<(i64, String, f64, i64)> =
            sqlx::query_as(EVENT_ROWS_SQL).fetch_all(&mut *tx).await?;
        let mut events = Vec::with_capacity(rows.len());
        for (id, client, red, ts) in rows {
            sqlx::query::<DB>("UPDATE events SET bin = $1 WHERE id = $2")
                .bind(i32::from(bins::coarse_of_fine(bins::fine_bin(red))))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            events.push(NewEvent {
                client_id: ClientId::from_db(client),
                image_id: None,
                red,
                ts,
            });
        }
        DB::write_rollups(&mut tx, &ingest::rollup_deltas(events.iter())).await?;
    } else if split_bands {
        let mut after = (String::new(), i16::MIN, i64::MIN);
        loop {
            let rows: Vec<(String, i16, i64, Vec<u8>)> = sqlx::query_as(OLD_ROLLUPS_PAGE_SQL)
                .bind(after.0.as_str())
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
            DB::write_rollups(&mut tx, &deltas).await?;
        }
    }
    if split_bands {
        sqlx::query::<DB>("DROP TABLE stats_rollups_old")
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Claims backfill `step` ([`CLAIM_SQL`]): `true` when this transaction does it.
async fn claim<DB>(conn: &mut DB::Connection, step: &str) -> Result<bool>
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    DB::QueryResult: RowsAffected,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
{
    let done = sqlx::query::<DB>(CLAIM_SQL)
        .bind(step)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}
