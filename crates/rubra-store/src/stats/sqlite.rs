//! The SQLite write path of events (one writer, multi-row inserts) and its read path.

use super::ingest::{
    self, ApplyFailure, ApplyWrites, BandDelta, CommitRecord, RollupDelta, WriteOp, WriteRollups,
};
use super::keys::{KeyCache, client_keys, key_of};
use super::{bins, hist};
use crate::{NewEvent, Result};
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Sqlite, Transaction};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Rows per multi-row `INSERT` (5 parameters each, well under SQLite's 32 766).
const CHUNK: usize = 1000;

/// Page cache of the writer's connection (KiB, as `cache_size` takes it negative): the leaf
/// pages that event groups touch — the tail of each coarse bin in `(client_id, bin, ts, red)`,
/// a thousand per client — stay in memory from one group to the next instead of being read
/// back through the OS (the default cache is 2 MiB).
const WRITER_CACHE_KIB: u32 = 64 * 1024;

/// Applies write groups to a SQLite database, on a connection of its own (outside the pool)
/// whose page cache stays warm between groups.
pub(crate) struct SqliteWrites {
    pool: SqlitePool,
    conn: tokio::sync::Mutex<Option<SqliteConnection>>,
    keys: KeyCache,
}

impl SqliteWrites {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        SqliteWrites {
            pool,
            conn: tokio::sync::Mutex::new(None),
            keys: KeyCache::default(),
        }
    }

    async fn connect(&self) -> Result<SqliteConnection> {
        let opts = (*self.pool.connect_options())
            .clone()
            .pragma("cache_size", format!("-{WRITER_CACHE_KIB}"))
            // Statement journals (multi-row statements that may have to undo themselves
            // alone) and temporary b-trees stay in memory instead of a temporary file.
            .pragma("temp_store", "MEMORY");
        Ok(opts.connect().await?)
    }
}

#[async_trait]
impl ApplyWrites for SqliteWrites {
    async fn apply(
        &self,
        ops: &[WriteOp],
        commit: &CommitRecord,
    ) -> std::result::Result<Vec<Vec<bool>>, ApplyFailure> {
        // Only the writer task calls this, so the lock is never contended; it is there to
        // keep the connection between calls.
        let mut slot = self.conn.lock().await;
        if slot.is_none() {
            *slot = Some(self.connect().await?);
        }
        let Some(conn) = slot.as_mut() else {
            return Err(crate::StoreError::Database(sqlx::Error::PoolClosed).into());
        };
        let result = apply_on(conn, &self.keys, ops, commit).await;
        if result.is_err() {
            // A broken connection is replaced at the next group (the transaction, if any, was
            // rolled back when it was dropped).
            *slot = None;
        }
        result
    }

    async fn committed(&self, token: &str) -> Result<Option<Vec<Vec<bool>>>> {
        ingest::read_commit::<Sqlite>(&self.pool, token).await
    }
}

async fn apply_on(
    conn: &mut SqliteConnection,
    cache: &KeyCache,
    ops: &[WriteOp],
    commit: &CommitRecord,
) -> std::result::Result<Vec<Vec<bool>>, ApplyFailure> {
    // IMMEDIATE: take the write lock up front (waiting out other writers with the busy
    // timeout) rather than failing when a read would have to become a write.
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let (results, image_events, new_images) = ingest::insert_images::<Sqlite>(&mut tx, ops).await?;
    let events = ingest::group_events(ops, &image_events);
    let (keys, fresh) = client_keys::<Sqlite>(&mut tx, cache, &events).await?;
    write_events(&mut tx, &events, &keys).await?;
    ingest::add_image_bytes::<Sqlite>(&mut tx, new_images).await?;
    ingest::store_answers::<Sqlite>(&mut tx, ops).await?;
    ingest::record_commit::<Sqlite>(&mut tx, commit, &results).await?;
    tx.commit().await.map_err(ApplyFailure::at_commit)?;
    cache.remember(fresh);
    Ok(results)
}

/// Inserts a new image record unless the client already has it.
pub(crate) const INSERT_IMAGE_SQL: &str = "\
    INSERT INTO images (client_id, id, format, width, height, bytes, red, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (client_id, id) DO NOTHING";

/// A multi-row insert of `rows` events. `OR ROLLBACK`: should a row ever fail a constraint,
/// the whole group's transaction is undone (it is then retried op by op). With the default
/// `ABORT`, SQLite would keep a statement journal of every page the statement touches, to
/// undo that one statement alone — about a tenth of the writer's time, for nothing, since a
/// failed group is abandoned whole anyway.
fn insert_sql(rows: usize) -> String {
    let mut sql =
        String::from("INSERT OR ROLLBACK INTO events (ckey, image_id, red, ts, bin) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?)");
    }
    sql
}

/// Events, their rollups and their notifications, in an open transaction. `keys` holds the
/// key of every client of `events`.
async fn write_events(
    tx: &mut Transaction<'_, Sqlite>,
    events: &[&NewEvent],
    keys: &HashMap<&str, i64>,
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    // Inserted in the order of `(ckey, bin, ts, red)`: consecutive rows then land on the
    // same leaf of that index instead of jumping between a thousand bins (the rowid order
    // carries no meaning: every read goes through the indexes by client, time and value).
    let mut sorted = events
        .iter()
        .map(|e| {
            let key = key_of(keys, e.client_id.as_str())?;
            Ok((key, bins::coarse_of_fine(bins::fine_bin(e.red)), *e))
        })
        .collect::<Result<Vec<(i64, u16, &NewEvent)>>>()?;
    sorted.sort_unstable_by(|(k, a, x), (l, b, y)| {
        (k, a, x.ts)
            .cmp(&(l, b, y.ts))
            .then(x.red.total_cmp(&y.red))
    });
    static FULL: OnceLock<String> = OnceLock::new();
    for chunk in sorted.chunks(CHUNK) {
        let sql = if chunk.len() == CHUNK {
            FULL.get_or_init(|| insert_sql(CHUNK)).clone()
        } else {
            insert_sql(chunk.len())
        };
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for &(key, bin, e) in chunk {
            q = q
                .bind(key)
                .bind(e.image_id.as_ref().map(|i| i.as_str()))
                .bind(e.red)
                .bind(e.ts)
                .bind(i32::from(bin));
        }
        q.execute(&mut **tx).await?;
    }
    write_rollups(tx, &ingest::rollup_deltas(events.iter().copied())).await?;
    crate::notify::outbox::enqueue_events_sqlite(tx, events).await
}

/// Rollup rows per statement (at most 5 parameters each).
const ROLLUP_CHUNK: usize = 1000;

#[async_trait]
impl WriteRollups for Sqlite {
    async fn write_rollups(tx: &mut Transaction<'_, Sqlite>, deltas: &[RollupDelta]) -> Result<()> {
        write_rollups(tx, deltas).await
    }
}

/// Runs the backfill steps not yet done (see `stats::backfill`).
pub(crate) async fn backfill(pool: &SqlitePool) -> Result<()> {
    super::backfill::backfill(pool, "BEGIN IMMEDIATE").await
}

/// The touched rollup rows — period rows, then band rows —, each kind read in one statement,
/// merged, and written back in one multi-row upsert (per [`ROLLUP_CHUNK`] rows). Every
/// statement is a round trip to SQLite's thread, so a group costs a few of them whatever the
/// number of rows.
async fn write_rollups(tx: &mut Transaction<'_, Sqlite>, deltas: &[RollupDelta]) -> Result<()> {
    for chunk in deltas.chunks(ROLLUP_CHUNK) {
        let mut sql = String::from("WITH k(c, l, s) AS (VALUES ");
        push_tuples(&mut sql, chunk.len(), 3);
        sql.push_str(
            ") SELECT r.client_id, r.level, r.period_start, r.bands FROM k \
             JOIN stats_periods r ON r.client_id = k.c AND r.level = k.l AND r.period_start = k.s",
        );
        let mut q = sqlx::query_as::<_, (String, i16, i64, Vec<u8>)>(AssertSqlSafe(sql));
        for d in chunk {
            q = q.bind(&d.client).bind(d.level).bind(d.start);
        }
        let current: HashMap<(String, i16, i64), Vec<u8>> = q
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .map(|(c, l, s, h)| ((c, l, s), h))
            .collect();
        let mut sql = String::from(
            "INSERT INTO stats_periods (client_id, level, period_start, total, bands) VALUES ",
        );
        push_tuples(&mut sql, chunk.len(), 5);
        sql.push_str(
            " ON CONFLICT (client_id, level, period_start) \
             DO UPDATE SET total = excluded.total, bands = excluded.bands",
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for d in chunk {
            let now = current
                .get(&(d.client.clone(), d.level, d.start))
                .map_or(&[][..], Vec::as_slice);
            let (total, blob) = hist::add(now, &d.bands());
            q = q
                .bind(&d.client)
                .bind(d.level)
                .bind(d.start)
                .bind(total)
                .bind(blob);
        }
        q.execute(&mut **tx).await?;
    }
    let bands: Vec<BandDelta> = deltas.iter().flat_map(BandDelta::of).collect();
    for chunk in bands.chunks(ROLLUP_CHUNK) {
        let mut sql = String::from("WITH k(c, l, b, s) AS (VALUES ");
        push_tuples(&mut sql, chunk.len(), 4);
        sql.push_str(
            ") SELECT r.client_id, r.level, r.band, r.period_start, r.hist FROM k \
             JOIN stats_bands r ON r.client_id = k.c AND r.level = k.l AND r.band = k.b \
               AND r.period_start = k.s",
        );
        let mut q = sqlx::query_as::<_, (String, i16, i16, i64, Vec<u8>)>(AssertSqlSafe(sql));
        for d in chunk {
            q = q.bind(d.client).bind(d.level).bind(d.band).bind(d.start);
        }
        let current: HashMap<(String, i16, i16, i64), Vec<u8>> = q
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .map(|(c, l, b, s, h)| ((c, l, b, s), h))
            .collect();
        let mut sql = String::from(
            "INSERT INTO stats_bands (client_id, level, band, period_start, hist) VALUES ",
        );
        push_tuples(&mut sql, chunk.len(), 5);
        sql.push_str(
            " ON CONFLICT (client_id, level, band, period_start) \
             DO UPDATE SET hist = excluded.hist",
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for d in chunk {
            let now = current
                .get(&(d.client.to_owned(), d.level, d.band, d.start))
                .map_or(&[][..], Vec::as_slice);
            let (_, blob) = hist::add(now, d.bins);
            q = q
                .bind(d.client)
                .bind(d.level)
                .bind(d.band)
                .bind(d.start)
                .bind(blob);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Appends `rows` placeholder tuples of `width` (`(?,?),(?,?)`).
pub(crate) fn push_tuples(sql: &mut String, rows: usize, width: usize) {
    for i in 0..rows {
        sql.push_str(if i == 0 { "(" } else { ",(" });
        for j in 0..width {
            sql.push_str(if j == 0 { "?" } else { ",?" });
        }
        sql.push(')');
    }
}
