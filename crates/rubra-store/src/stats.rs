//! RED_STATS storage: events, and the structures that keep `GET /stats` exact and fast.
//!
//! # What is stored
//!
//! - **Raw events** (`events`): one row per measurement with its client's integer key
//!   (`ckey`, from `client_keys`; see `keys`), `red`, `ts` (epoch ms) and a *coarse bin*
//!   (`bin`, 0–1000: 0 is `red == 0`, `c` is `((c-1)/1000, c/1000]`). Two covering indexes:
//!   `(ckey, ts, red)` for the ragged edges of a range, and `(ckey, bin, ts, red)` for exact
//!   counting next to a threshold. Integer keys keep index entries about a third of the size
//!   they had with the text client id, which is what ingest speed depends on.
//! - **Rollups**: per client — and once more for all clients, under the client key `*` — and
//!   per whole minute, hour and day (epoch-aligned UTC), the counts of `red` over 10 001
//!   *fine bins* (0 is `red == 0`, `k` is `((k-1)/10⁴, k/10⁴]`), split in two tables by
//!   *band* (100 fine bins: band 0 is `red == 0`, band `b` is `((b-1)/100, b/100]`):
//!   - `stats_periods`: one row per period with its total and its counts per band (≤ 101
//!     varint pairs, a few hundred bytes);
//!   - `stats_bands`: one row per period and band with that band's fine-bin counts, keyed
//!     band first, so one band over a run of periods is one index range.
//!
//!   Both BLOBs are sparse varint histograms (see `hist`), updated in the same transaction as
//!   the events they count, so they are never out of step with the raw rows. The split keeps
//!   every row small: a query reads ~300 bytes per period instead of a 20 KB histogram (720
//!   hourly buckets over a month read ~0.4 MB, not 14 MB of overflow pages), and a write
//!   rewrites only the bands its events fall in.
//!
//! Bin edges are the correctly rounded doubles of decimal fractions, so a threshold with at
//! most four decimals (`0.8`, `0.25`, `0.1234`) sits exactly on a fine edge, and every fine bin
//! lies inside one coarse bin (fine `k` is in coarse `⌈k/10⌉`).
//!
//! # How a query is answered
//!
//! `total` and `above` (`red > threshold`) over `[from, to)`:
//!
//! 1. The raw edges `[from, a)` and `[b, to)` — `a`, `b` the first and last whole minute —
//!    are counted from raw events (at most two minutes of rows, via `(ckey, ts, red)`).
//! 2. `[a, b)` is covered greedily by the fewest whole days, hours and minutes (at most ~30
//!    days + 46 hours + 118 minutes for a month), read as at most five runs of period rows.
//!    A period's "above" is the sum of its bands past the band of the threshold's fine bin;
//!    unless that fine bin is the last of its band (as for any threshold of at most two
//!    decimals), the run's rows of that band are read too (one index range) and their fine
//!    bins past the threshold's are added.
//! 3. If the threshold lies strictly inside a fine bin `k` (more than four decimals), the
//!    events of that bin are compared one by one: those in `[a, b)` with coarse bin `⌈k/10⌉`
//!    and `threshold < red <= k/10⁴`, found via `(ckey, bin, ts, red)`. That reads about
//!    1/1000 of the range's events (uniform data) — zero for round thresholds.
//!
//! All reads run in one read transaction (one snapshot), so counts are exact and consistent
//! with concurrent writes. Buckets (`1m`, `5m`, `1h`, `1d`) are the same computation with the
//! bucket boundaries as extra cut points, grouping each part by bucket.
//!
//! # How events are written
//!
//! Every write goes through one batching writer per store (see `ingest`): concurrent requests
//! are joined into one transaction that inserts the events (multi-row `VALUES` on SQLite,
//! `UNNEST` arrays on PostgreSQL), read-modify-writes the touched rollup rows, and writes the
//! outbox rows (one notification per event and live subscription it exceeds, only for events
//! whose client has a subscription below their red). Callers are answered after the commit.
//! On PostgreSQL, the rollup update is serialized across processes by a transaction-scoped
//! advisory lock.
//!
//! On SQLite a group costs a handful of statements whatever its size — the event inserts
//! (1 000 rows each, `INSERT OR ROLLBACK` so no statement journal is kept), one read and one
//! multi-row upsert of the period rows, the same for the band rows, one outbox query and one
//! outbox insert — because each statement is a round trip to the connection's thread. Events
//! are inserted sorted by `(ckey, bin, ts)`, so a group dirties the tail of each coarse bin
//! once. The writer has its own connection with a 64 MiB page cache; the WAL is checkpointed
//! by a background task, not by the commits.

mod backfill;
pub(crate) mod ingest;
mod keys;
mod plan;
mod postgres;
mod query;
mod sqlite;

pub(crate) use ingest::{ADD_IMAGE_BYTES_SQL, WriteOp, Writer};
pub(crate) use postgres::{PgWrites, backfill as pg_backfill};
pub use rubra_instant::{Timestamp, TimestampOutOfRange};
pub(crate) use sqlite::push_tuples;
pub(crate) use sqlite::{SqliteWrites, backfill as sqlite_backfill};
// The blob codec and the bins live in `rubra-hist`, buildable without sqlx (fuzz target
// `stats_hist`).
use crate::IdempotentAnswer;
use rubra_hist::{bins, hist};

use crate::{NewEvent, PgStore, Result, Scope, SqliteStore};
use async_trait::async_trait;
use bins::Split;
use plan::{MINUTE, Run, ceil_to, floor_to};

/// The most buckets one query may ask for (a month of minutes fits): the answer lists every
/// bucket, so its size grows with their number.
pub const MAX_BUCKETS: u64 = 50_000;

/// The width of the buckets of a statistics query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketWidth {
    /// One minute.
    Minute,
    /// Five minutes.
    FiveMinutes,
    /// One hour.
    Hour,
    /// One day (UTC).
    Day,
}

impl BucketWidth {
    /// Parses `1m`, `5m`, `1h` or `1d`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "1m" => Some(BucketWidth::Minute),
            "5m" => Some(BucketWidth::FiveMinutes),
            "1h" => Some(BucketWidth::Hour),
            "1d" => Some(BucketWidth::Day),
            _ => None,
        }
    }

    /// The width in milliseconds.
    pub fn ms(self) -> i64 {
        match self {
            BucketWidth::Minute => plan::MINUTE,
            BucketWidth::FiveMinutes => 5 * plan::MINUTE,
            BucketWidth::Hour => plan::HOUR,
            BucketWidth::Day => plan::DAY,
        }
    }

    /// How it is written in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            BucketWidth::Minute => "1m",
            BucketWidth::FiveMinutes => "5m",
            BucketWidth::Hour => "1h",
            BucketWidth::Day => "1d",
        }
    }

    /// How many buckets cover `[from, to)`.
    pub fn count(self, from: Timestamp, to: Timestamp) -> u64 {
        let (from, to) = (from.as_ms(), to.as_ms());
        if to <= from {
            return 0;
        }
        // No overflow: both instants are below 2.6e14 and a width is at most a day.
        let origin = floor_to(from, self.ms());
        u64::try_from((to - origin + self.ms() - 1) / self.ms()).unwrap_or(0)
    }
}

/// A statistics query, checked when it is made ([`StatsQuery::new`]): `from <= to`, a finite
/// threshold, and at most [`MAX_BUCKETS`] buckets. The store plans and answers any such query
/// at a cost that grows with the events it counts and the buckets it lists, never with the
/// length of the range alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatsQuery {
    from: Timestamp,
    to: Timestamp,
    threshold: f64,
    bucket: Option<BucketWidth>,
}

/// Why a [`StatsQuery`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum StatsQueryError {
    /// `from` is after `to`.
    #[error("from ({}) is after to ({})", from.as_ms(), to.as_ms())]
    Reversed {
        /// The start asked for.
        from: Timestamp,
        /// The end asked for.
        to: Timestamp,
    },
    /// The threshold is NaN or infinite.
    #[error("threshold {0} is not a finite number")]
    Threshold(f64),
    /// The answer would list more than [`MAX_BUCKETS`] buckets.
    #[error("{count} buckets of {} asked, at most {max}", width.as_str())]
    TooManyBuckets {
        /// Buckets the range covers.
        count: u64,
        /// Their width.
        width: BucketWidth,
        /// [`MAX_BUCKETS`].
        max: u64,
    },
}

impl StatsQuery {
    /// Counts over `[from, to)` events with `red > threshold` as above, per bucket of `bucket`
    /// (on the epoch-aligned UTC grid) if given.
    pub fn new(
        from: Timestamp,
        to: Timestamp,
        threshold: f64,
        bucket: Option<BucketWidth>,
    ) -> Result<StatsQuery, StatsQueryError> {
        if from > to {
            return Err(StatsQueryError::Reversed { from, to });
        }
        if !threshold.is_finite() {
            return Err(StatsQueryError::Threshold(threshold));
        }
        if let Some(width) = bucket {
            let count = width.count(from, to);
            if count > MAX_BUCKETS {
                return Err(StatsQueryError::TooManyBuckets {
                    count,
                    width,
                    max: MAX_BUCKETS,
                });
            }
        }
        Ok(StatsQuery {
            from,
            to,
            threshold,
            bucket,
        })
    }

    /// Start of the range, inclusive.
    pub fn from(&self) -> Timestamp {
        self.from
    }

    /// End of the range, exclusive.
    pub fn to(&self) -> Timestamp {
        self.to
    }

    /// Events with `red > threshold` (strictly) are counted as above.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// The width of the buckets, if counted per bucket.
    pub fn bucket(&self) -> Option<BucketWidth> {
        self.bucket
    }
}

/// Counts of one bucket. Only the part of the bucket inside `[from, to)` is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketCount {
    /// The bucket's start (epoch ms, aligned to its width).
    pub start: i64,
    /// Events in the bucket.
    pub total: u64,
    /// Events in the bucket with `red > threshold`.
    pub above: u64,
}

/// The answer to a [`StatsQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsReport {
    /// Events in `[from, to)`.
    pub total: u64,
    /// Of those, the ones with `red > threshold`.
    pub above: u64,
    /// Per bucket, every bucket from the one holding `from` to the one holding `to - 1`
    /// (empty ones included); empty without a bucket width.
    pub buckets: Vec<BucketCount>,
}

/// Event ingestion and statistics queries (DESIGN §5).
#[async_trait]
pub trait StatsStore: Send + Sync {
    /// Records `events` all or nothing, with their rollups and notifications, in one
    /// transaction (possibly shared with other callers' writes). Returns once committed.
    ///
    /// Callers validate first: `red` finite in `[0, 1]`, the clients existing.
    async fn insert_events(&self, events: Vec<NewEvent>) -> Result<()> {
        self.insert_events_answered(events, None).await
    }

    /// [`insert_events`](Self::insert_events), keeping `answer` (the request's answer under its
    /// `Idempotency-Key`) in the same transaction: a retry after a crash that came between
    /// the commit and the answer is answered from the key, not counted twice.
    async fn insert_events_answered(
        &self,
        events: Vec<NewEvent>,
        answer: Option<IdempotentAnswer>,
    ) -> Result<()>;

    /// Counts events of `scope` (one client, or all for [`Scope::All`]) over `[from, to)`.
    async fn stats(&self, scope: &Scope, query: &StatsQuery) -> Result<StatsReport>;
}

#[async_trait]
impl StatsStore for SqliteStore {
    #[tracing::instrument(name = "store.insert_events", skip_all, fields(events = events.len()))]
    async fn insert_events_answered(
        &self,
        events: Vec<NewEvent>,
        answer: Option<IdempotentAnswer>,
    ) -> Result<()> {
        self.writer().insert_events(events, answer).await
    }

    #[tracing::instrument(name = "store.stats", skip_all, fields(from = query.from.as_ms(), to = query.to.as_ms()))]
    async fn stats(&self, scope: &Scope, query: &StatsQuery) -> Result<StatsReport> {
        query::stats(self.pool(), "BEGIN", scope, query).await
    }
}

#[async_trait]
impl StatsStore for PgStore {
    #[tracing::instrument(name = "store.insert_events", skip_all, fields(events = events.len()))]
    async fn insert_events_answered(
        &self,
        events: Vec<NewEvent>,
        answer: Option<IdempotentAnswer>,
    ) -> Result<()> {
        self.writer().insert_events(events, answer).await
    }

    #[tracing::instrument(name = "store.stats", skip_all, fields(from = query.from.as_ms(), to = query.to.as_ms()))]
    async fn stats(&self, scope: &Scope, query: &StatsQuery) -> Result<StatsReport> {
        // One snapshot for every read of the query.
        let begin = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";
        query::stats(self.pool(), begin, scope, query).await
    }
}

/// The rows a query read, in the order the store fetched them (see [`Plan::fold`]).
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    /// Period rows: `(period_start, total, counts per band)`.
    pub periods: Vec<(i64, i64, Vec<u8>)>,
    /// The threshold's band rows: `(period_start, fine-bin histogram)`.
    pub bands: Vec<(i64, Vec<u8>)>,
    /// Raw counts per bucket: `(k, total, above)`.
    pub raw: Vec<(i64, i64, i64)>,
    /// Events of the threshold's own fine bin found above it, per bucket: `(k, above)`.
    pub scanned: Vec<(i64, i64)>,
}

/// The reads a query needs, computed before touching the database.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Grid origin: bucket `k` starts at `origin + k * size`.
    origin: i64,
    size: i64,
    /// Raw ranges counted row by row.
    raw: Vec<(i64, i64)>,
    /// Rollup runs.
    runs: Vec<Run>,
    /// The range whose events in the threshold's fine bin are compared one by one:
    /// `(lo, hi, coarse bin, red upper edge)`.
    scan: Option<(i64, i64, i32, f64)>,
    split: Split,
    report: StatsReport,
}

impl Plan {
    /// Plans `q`: the bucket grid, the raw edges and the rollup runs. The runs are found by
    /// arithmetic, a few per level (see [`plan::cover`]), so planning costs the same for a
    /// minute and for 10 000 years; only the list of buckets grows with the range, and a
    /// [`StatsQuery`] holds at most [`MAX_BUCKETS`] of them.
    pub(crate) fn new(q: &StatsQuery) -> Plan {
        // No overflow below: both ends lie in `Timestamp`'s range (under 2.6e14), `from <= to`,
        // and a bucket is at most a day wide.
        let (from, to) = (q.from.as_ms(), q.to.as_ms());
        let (origin, size, n) = match q.bucket {
            Some(w) => (floor_to(from, w.ms()), w.ms(), w.count(q.from, q.to)),
            None => (from, (to - from).max(1), 1),
        };
        let buckets = match q.bucket {
            Some(_) => (0..n)
                .map(|k| BucketCount {
                    start: origin + i64::try_from(k).unwrap_or(i64::MAX) * size,
                    total: 0,
                    above: 0,
                })
                .collect(),
            None => Vec::new(),
        };
        let split = bins::split(q.threshold);
        let (a, b) = (ceil_to(from, MINUTE), floor_to(to, MINUTE));
        let mut plan = Plan {
            origin,
            size,
            raw: Vec::new(),
            runs: Vec::new(),
            scan: None,
            split,
            report: StatsReport {
                total: 0,
                above: 0,
                buckets,
            },
        };
        if from >= to {
            return plan;
        }
        if a >= b {
            plan.raw.push((from, to));
            return plan;
        }
        plan.raw = [(from, a), (b, to)]
            .into_iter()
            .filter(|(lo, hi)| lo < hi)
            .collect();
        match q.bucket {
            Some(w) => plan::cover_buckets(a, b, w.ms(), &mut plan.runs),
            None => plan::cover(a, b, &mut plan.runs),
        }
        if let Split::At { bin, exact: false } = split {
            plan.scan = Some((
                a,
                b,
                i32::from(bins::coarse_of_fine(bin)),
                bins::fine_edge(bin),
            ));
        }
        plan
    }

    /// Adds the rows a query read and returns the answer. This is the CPU part of a query
    /// (decoding a histogram per period row: 50 000 of them for a month of minute buckets),
    /// so it runs on the blocking pool, not on an async worker.
    pub(crate) async fn fold(self, rows: Fetched) -> Result<StatsReport> {
        match tokio::task::spawn_blocking(move || self.fold_now(rows)).await {
            Ok(report) => Ok(report),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(crate::StoreError::Io(std::io::Error::other(e))),
        }
    }

    fn fold_now(mut self, rows: Fetched) -> StatsReport {
        for (start, total, bands) in rows.periods {
            self.add_period(start, total, &bands);
        }
        for (start, hist) in rows.bands {
            self.add_band(start, &hist);
        }
        for (k, total, above) in rows.raw {
            self.add_raw(k, total, above);
        }
        for (k, above) in rows.scanned {
            self.add_scanned(k, above);
        }
        self.report
    }

    fn slot(&mut self, k: i64) -> Option<&mut BucketCount> {
        usize::try_from(k)
            .ok()
            .and_then(|k| self.report.buckets.get_mut(k))
    }

    fn add(&mut self, k: i64, total: u64, above: u64) {
        self.report.total += total;
        self.report.above += above;
        if let Some(b) = self.slot(k) {
            b.total += total;
            b.above += above;
        }
    }

    /// Adds one period row holding `total` events with counts per band `bands`: "above"
    /// counts the bands past the threshold's band (see [`Plan::band`] for the rest).
    fn add_period(&mut self, start: i64, total: i64, bands: &[u8]) {
        let total = to_u64(total);
        let above = match self.split {
            Split::All => total,
            Split::None => 0,
            Split::At { bin, .. } => hist::above(bands, bins::band_of_fine(bin)),
        };
        self.add((start - self.origin) / self.size, total, above);
    }

    /// The band whose rows must be read as well: the threshold's band, unless the threshold's
    /// fine bin ends it (as it does for every threshold of at most two decimals).
    pub(crate) fn band(&self) -> Option<i16> {
        match self.split {
            Split::At { bin, .. } if !bins::ends_band(bin) => {
                i16::try_from(bins::band_of_fine(bin)).ok()
            }
            _ => None,
        }
    }

    /// Adds the events of the threshold's band row `hist` (of the period at `start`) that lie
    /// in fine bins past the threshold's.
    fn add_band(&mut self, start: i64, hist: &[u8]) {
        if let Split::At { bin, .. } = self.split {
            let above = hist::above(hist, bin);
            self.add((start - self.origin) / self.size, 0, above);
        }
    }

    /// Adds raw counts of bucket `k`.
    fn add_raw(&mut self, k: i64, total: i64, above: i64) {
        self.add(k, to_u64(total), to_u64(above));
    }

    /// Adds events of the threshold's own bin found above it, in bucket `k`.
    fn add_scanned(&mut self, k: i64, above: i64) {
        self.add(k, 0, to_u64(above));
    }
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The rollup key and the raw-row client filter of a scope.
pub(crate) fn scope_keys(scope: &Scope) -> (&str, Option<&str>) {
    match scope {
        Scope::All => (ingest::ALL_CLIENTS, None),
        Scope::Client(id) => (id.as_str(), Some(id.as_str())),
    }
}
