//! The statistics read path, written once for both backends, generic over the sqlx database
//! (the SQL is portable; only the statement opening the read transaction differs).

use crate::stats::{Fetched, Plan, StatsQuery, StatsReport, scope_keys};
use crate::{Result, Scope};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};

/// Counts raw events of one client per bucket: `(k, total, above)`.
pub(crate) const RAW_ONE_SQL: &str = "\
    SELECT (ts - $1) / $2 AS k, COUNT(*), SUM(CASE WHEN red > $3 THEN 1 ELSE 0 END) \
    FROM events WHERE ckey = (SELECT ckey FROM client_keys WHERE client_id = $4) AND ts >= $5 AND ts < $6 GROUP BY k";

/// [`RAW_ONE_SQL`] over every client (one index range per client).
pub(crate) const RAW_ALL_SQL: &str = "\
    SELECT (ts - $1) / $2 AS k, COUNT(*), SUM(CASE WHEN red > $3 THEN 1 ELSE 0 END) \
    FROM events WHERE ckey IN (SELECT ckey FROM client_keys) AND ts >= $4 AND ts < $5 \
    GROUP BY k";

/// Counts, per bucket, the events of one coarse bin with `$7 < red <= $8`: `(k, above)`.
pub(crate) const SCAN_ONE_SQL: &str = "\
    SELECT (ts - $1) / $2 AS k, COUNT(*) FROM events \
    WHERE ckey = (SELECT ckey FROM client_keys WHERE client_id = $3) AND bin = $4 AND ts >= $5 AND ts < $6 AND red > $7 AND red <= $8 \
    GROUP BY k";

/// [`SCAN_ONE_SQL`] without buckets: one row with `k = 0` and no grouping, so the month-long
/// scan of a threshold's bin does a tenth less work per row. It takes the same parameters
/// (`$1` and `$2` only to keep the binding code shared).
pub(crate) const SCAN_ONE_TOTAL_SQL: &str = "\
    SELECT 0 * $1 * $2, COUNT(*) FROM events \
    WHERE ckey = (SELECT ckey FROM client_keys WHERE client_id = $3) AND bin = $4 \
      AND ts >= $5 AND ts < $6 AND red > $7 AND red <= $8";

/// [`SCAN_ONE_SQL`] over every client.
pub(crate) const SCAN_ALL_SQL: &str = "\
    SELECT (ts - $1) / $2 AS k, COUNT(*) FROM events \
    WHERE ckey IN (SELECT ckey FROM client_keys) AND bin = $3 AND ts >= $4 AND ts < $5 \
      AND red > $6 AND red <= $7 \
    GROUP BY k";

/// One run of period rows: `(period_start, total, counts per band)`.
pub(crate) const PERIOD_RUN_SQL: &str = "\
    SELECT period_start, total, bands FROM stats_periods \
    WHERE client_id = $1 AND level = $2 AND period_start >= $3 AND period_start < $4";

/// One band's rows over a run of periods: `(period_start, fine-bin histogram)`.
pub(crate) const BAND_RUN_SQL: &str = "\
    SELECT period_start, hist FROM stats_bands \
    WHERE client_id = $1 AND level = $2 AND band = $3 AND period_start >= $4 AND period_start < $5";

/// Answers a statistics query in one read transaction opened with `begin` (the statement
/// differs per backend): the reads run on the async side (they wait on the database), and
/// the rows are then added up on the blocking pool ([`Plan::fold`]).
pub(crate) async fn stats<DB>(
    pool: &Pool<DB>,
    begin: &'static str,
    scope: &Scope,
    q: &StatsQuery,
) -> Result<StatsReport>
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    i16: for<'t> Encode<'t, DB> + Type<DB>,
    i32: for<'t> Encode<'t, DB> + Type<DB>,
    f64: for<'t> Encode<'t, DB> + Type<DB>,
    i64: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Vec<u8>: for<'r> Decode<'r, DB> + Type<DB>,
{
    let plan = Plan::new(q);
    let (key, client) = scope_keys(scope);
    let mut rows = Fetched::default();
    let mut tx = pool.begin_with(begin).await?;
    for run in &plan.runs {
        let periods: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(PERIOD_RUN_SQL)
            .bind(key)
            .bind(run.level)
            .bind(run.lo)
            .bind(run.hi)
            .fetch_all(&mut *tx)
            .await?;
        rows.periods.extend(periods);
        if let Some(band) = plan.band() {
            let bands: Vec<(i64, Vec<u8>)> = sqlx::query_as(BAND_RUN_SQL)
                .bind(key)
                .bind(run.level)
                .bind(band)
                .bind(run.lo)
                .bind(run.hi)
                .fetch_all(&mut *tx)
                .await?;
            rows.bands.extend(bands);
        }
    }
    for &(lo, hi) in &plan.raw {
        let query = match client {
            Some(c) => sqlx::query_as(RAW_ONE_SQL)
                .bind(plan.origin)
                .bind(plan.size)
                .bind(q.threshold())
                .bind(c),
            None => sqlx::query_as(RAW_ALL_SQL)
                .bind(plan.origin)
                .bind(plan.size)
                .bind(q.threshold()),
        };
        let raw: Vec<(i64, i64, i64)> = query.bind(lo).bind(hi).fetch_all(&mut *tx).await?;
        rows.raw.extend(raw);
    }
    if let Some((lo, hi, coarse, upper)) = plan.scan {
        let one = if q.bucket().is_some() {
            SCAN_ONE_SQL
        } else {
            SCAN_ONE_TOTAL_SQL
        };
        let query = match client {
            Some(c) => sqlx::query_as(one)
                .bind(plan.origin)
                .bind(plan.size)
                .bind(c),
            None => sqlx::query_as(SCAN_ALL_SQL)
                .bind(plan.origin)
                .bind(plan.size),
        };
        rows.scanned = query
            .bind(coarse)
            .bind(lo)
            .bind(hi)
            .bind(q.threshold())
            .bind(upper)
            .fetch_all(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    plan.fold(rows).await
}
