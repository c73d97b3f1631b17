//! The PostgreSQL write path of events (`UNNEST` array inserts, rollups under an advisory
//! lock) and its read path.

use super::ingest::{
    self, ApplyFailure, ApplyWrites, BandDelta, CommitRecord, RollupDelta, WriteOp, WriteRollups,
};
use super::keys::{KeyCache, client_keys, key_of};
use super::{bins, hist};
use crate::{NewEvent, Result};
use async_trait::async_trait;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Transaction};
use std::collections::HashMap;

/// The advisory lock key that serializes rollup updates across processes ("RUBRASTA").
const ROLLUP_LOCK: i64 = 0x5255_4252_4153_5441;

/// Applies write groups to a PostgreSQL database.
pub(crate) struct PgWrites {
    pool: PgPool,
    keys: KeyCache,
}

impl PgWrites {
    pub(crate) fn new(pool: PgPool) -> Self {
        PgWrites {
            pool,
            keys: KeyCache::default(),
        }
    }
}

#[async_trait]
impl ApplyWrites for PgWrites {
    async fn apply(
        &self,
        ops: &[WriteOp],
        commit: &CommitRecord,
    ) -> std::result::Result<Vec<Vec<bool>>, ApplyFailure> {
        let mut tx = self.pool.begin().await?;
        let (results, image_events, new_images) =
            ingest::insert_images::<Postgres>(&mut tx, ops).await?;
        let events = ingest::group_events(ops, &image_events);
        let (keys, fresh) = client_keys::<Postgres>(&mut tx, &self.keys, &events).await?;
        write_events(&mut tx, &events, &keys).await?;
        ingest::add_image_bytes::<Postgres>(&mut tx, new_images).await?;
        ingest::store_answers::<Postgres>(&mut tx, ops).await?;
        ingest::record_commit::<Postgres>(&mut tx, commit, &results).await?;
        tx.commit().await.map_err(ApplyFailure::at_commit)?;
        self.keys.remember(fresh);
        Ok(results)
    }

    async fn committed(&self, token: &str) -> Result<Option<Vec<Vec<bool>>>> {
        ingest::read_commit::<Postgres>(&self.pool, token).await
    }
}

/// Events, their rollups and their notifications, in an open transaction. `keys` holds the
/// key of every client of `events`.
async fn write_events(
    tx: &mut Transaction<'_, Postgres>,
    events: &[&NewEvent],
    keys: &HashMap<&str, i64>,
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let ckeys = events
        .iter()
        .map(|e| key_of(keys, e.client_id.as_str()))
        .collect::<Result<Vec<i64>>>()?;
    let images: Vec<Option<&str>> = events
        .iter()
        .map(|e| e.image_id.as_ref().map(|i| i.as_str()))
        .collect();
    let reds: Vec<f64> = events.iter().map(|e| e.red).collect();
    let tss: Vec<i64> = events.iter().map(|e| e.ts).collect();
    let bins: Vec<i32> = events
        .iter()
        .map(|e| i32::from(bins::coarse_of_fine(bins::fine_bin(e.red))))
        .collect();
    sqlx::query(
        "INSERT INTO events (ckey, image_id, red, ts, bin) \
         SELECT * FROM UNNEST($1::int8[], $2::text[], $3::float8[], $4::int8[], $5::int4[])",
    )
    .bind(&ckeys)
    .bind(&images)
    .bind(&reds)
    .bind(&tss)
    .bind(&bins)
    .execute(&mut **tx)
    .await?;
    write_rollups(tx, &ingest::rollup_deltas(events.iter().copied())).await?;
    crate::notify::outbox::enqueue_events_pg(tx, events).await
}

#[async_trait]
impl WriteRollups for Postgres {
    async fn write_rollups(
        tx: &mut Transaction<'_, Postgres>,
        deltas: &[RollupDelta],
    ) -> Result<()> {
        write_rollups(tx, deltas).await
    }
}

/// Runs the backfill steps not yet done (see `stats::backfill`).
pub(crate) async fn backfill(pool: &PgPool) -> Result<()> {
    super::backfill::backfill(pool, "BEGIN").await
}

/// The touched period rows, then band rows: each kind read in one statement, merged, and
/// written back in one `UNNEST` upsert.
async fn write_rollups(tx: &mut Transaction<'_, Postgres>, deltas: &[RollupDelta]) -> Result<()> {
    if deltas.is_empty() {
        return Ok(());
    }
    // Read-modify-write of shared rows: one process at a time, until this commit.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(ROLLUP_LOCK)
        .execute(&mut **tx)
        .await?;
    let clients: Vec<&str> = deltas.iter().map(|d| d.client.as_str()).collect();
    let levels: Vec<i16> = deltas.iter().map(|d| d.level).collect();
    let starts: Vec<i64> = deltas.iter().map(|d| d.start).collect();
    let rows: Vec<(String, i16, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT r.client_id, r.level, r.period_start, r.bands FROM stats_periods r \
         JOIN UNNEST($1::text[], $2::int2[], $3::int8[]) AS u(c, l, s) \
           ON r.client_id = u.c AND r.level = u.l AND r.period_start = u.s",
    )
    .bind(&clients)
    .bind(&levels)
    .bind(&starts)
    .fetch_all(&mut **tx)
    .await?;
    let current: HashMap<(String, i16, i64), Vec<u8>> = rows
        .into_iter()
        .map(|(c, l, s, h)| ((c, l, s), h))
        .collect();
    let mut totals = Vec::with_capacity(deltas.len());
    let mut blobs = Vec::with_capacity(deltas.len());
    for d in deltas {
        let now = current
            .get(&(d.client.clone(), d.level, d.start))
            .map_or(&[][..], Vec::as_slice);
        let (total, blob) = hist::add(now, &d.bands());
        totals.push(total);
        blobs.push(blob);
    }
    sqlx::query(
        "INSERT INTO stats_periods (client_id, level, period_start, total, bands) \
         SELECT * FROM UNNEST($1::text[], $2::int2[], $3::int8[], $4::int8[], $5::bytea[]) \
         ON CONFLICT (client_id, level, period_start) \
         DO UPDATE SET total = EXCLUDED.total, bands = EXCLUDED.bands",
    )
    .bind(&clients)
    .bind(&levels)
    .bind(&starts)
    .bind(&totals)
    .bind(&blobs)
    .execute(&mut **tx)
    .await?;

    let bands: Vec<BandDelta> = deltas.iter().flat_map(BandDelta::of).collect();
    let clients: Vec<&str> = bands.iter().map(|d| d.client).collect();
    let levels: Vec<i16> = bands.iter().map(|d| d.level).collect();
    let numbers: Vec<i16> = bands.iter().map(|d| d.band).collect();
    let starts: Vec<i64> = bands.iter().map(|d| d.start).collect();
    let rows: Vec<(String, i16, i16, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT r.client_id, r.level, r.band, r.period_start, r.hist FROM stats_bands r \
         JOIN UNNEST($1::text[], $2::int2[], $3::int2[], $4::int8[]) AS u(c, l, b, s) \
           ON r.client_id = u.c AND r.level = u.l AND r.band = u.b AND r.period_start = u.s",
    )
    .bind(&clients)
    .bind(&levels)
    .bind(&numbers)
    .bind(&starts)
    .fetch_all(&mut **tx)
    .await?;
    let current: HashMap<(String, i16, i16, i64), Vec<u8>> = rows
        .into_iter()
        .map(|(c, l, b, s, h)| ((c, l, b, s), h))
        .collect();
    let blobs: Vec<Vec<u8>> = bands
        .iter()
        .map(|d| {
            let now = current
                .get(&(d.client.to_owned(), d.level, d.band, d.start))
                .map_or(&[][..], Vec::as_slice);
            hist::add(now, d.bins).1
        })
        .collect();
    sqlx::query(
        "INSERT INTO stats_bands (client_id, level, band, period_start, hist) \
         SELECT * FROM UNNEST($1::text[], $2::int2[], $3::int2[], $4::int8[], $5::bytea[]) \
         ON CONFLICT (client_id, level, band, period_start) DO UPDATE SET hist = EXCLUDED.hist",
    )
    .bind(&clients)
    .bind(&levels)
    .bind(&numbers)
    .bind(&starts)
    .bind(&blobs)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
