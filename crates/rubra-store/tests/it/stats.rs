//! RED_STATS: exact counts against brute force, buckets, all-or-nothing batches, the outbox.

use rubra_store::{
    BucketWidth, ClientId, ImageId, ImageRecord, NewEvent, PgStore, Scope, SqliteStore, StatsQuery,
    Store, Timestamp,
};
use std::collections::BTreeMap;
use std::sync::Arc;

crate::both_backends!(
    stored_image_bytes_follow_inserts_and_deletes,
    exact_counts_match_brute_force,
    buckets_are_aligned_clipped_and_complete,
    a_batch_with_a_bad_event_writes_nothing,
    concurrent_batches_all_commit,
    a_ten_thousand_year_range_is_counted_exactly_in_milliseconds,
);

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn ev(client: &ClientId, red: f64, ts: i64) -> NewEvent {
    NewEvent {
        client_id: client.clone(),
        image_id: None,
        red,
        ts,
    }
}

/// The query over `[from, to)` (epoch ms), which must be valid.
fn query(from: i64, to: i64, threshold: f64, bucket: Option<BucketWidth>) -> StatsQuery {
    let ts = |ms| Timestamp::from_ms(ms).unwrap();
    StatsQuery::new(ts(from), ts(to), threshold, bucket).unwrap()
}

fn brute(events: &[NewEvent], client: Option<&ClientId>, q: &StatsQuery) -> (u64, u64) {
    let mut total = 0;
    let mut above = 0;
    let (from, to) = (q.from().as_ms(), q.to().as_ms());
    for e in events {
        if client.is_some_and(|c| *c != e.client_id) || e.ts < from || e.ts >= to {
            continue;
        }
        total += 1;
        if e.red > q.threshold() {
            above += 1;
        }
    }
    (total, above)
}

/// Runs [`assert_counts_match_brute_force`] for 60 random ranges around `[base, base + span)`
/// (an hour wider on each side) and thresholds: round ones (on band and fine edges) and ones
/// inside a fine bin.
async fn assert_random_queries_match(
    store: &Arc<dyn Store>,
    events: &[NewEvent],
    clients: [&ClientId; 2],
    base: i64,
    span: i64,
    rng: &mut Rng,
) {
    for i in 0..60 {
        let threshold = match i % 4 {
            0 => 0.73519 + rng.unit() * 0.00005,
            1 => [0.0, 0.5, 0.8, 0.1234][rng.below(4) as usize],
            _ => rng.unit(),
        };
        let mut pick = || base - HOUR + rng.below((span + 2 * HOUR) as u64) as i64;
        let (x, y) = (pick(), pick());
        assert_counts_match_brute_force(store, events, clients, x.min(y), x.max(y), threshold)
            .await;
    }
}

/// Asserts that `[from, to)` over `threshold` counts exactly what brute force counts, for each
/// of `clients` and for all clients.
async fn assert_counts_match_brute_force(
    store: &Arc<dyn Store>,
    events: &[NewEvent],
    clients: [&ClientId; 2],
    from: i64,
    to: i64,
    threshold: f64,
) {
    let q = query(from, to, threshold, None);
    let scopes = clients
        .map(|c| (Scope::Client(c.clone()), Some(c)))
        .into_iter()
        .chain([(Scope::All, None)]);
    for (scope, client) in scopes {
        let got = store.stats(&scope, &q).await.unwrap();
        assert_eq!(
            (got.total, got.above),
            brute(events, client, &q),
            "{q:?} scope {scope:?}"
        );
    }
}

/// Reds that stress the bins: 0, 1, decimal edges, their neighbours, and arbitrary values.
fn red(rng: &mut Rng) -> f64 {
    match rng.below(8) {
        0 => 0.0,
        1 => 1.0,
        2 => [0.5, 0.8, 0.25, 0.1234, 0.001][rng.below(5) as usize],
        3 => {
            let e = (rng.below(10_001) as f64) / 10_000.0;
            let bits = e.to_bits();
            f64::from_bits(if rng.below(2) == 0 {
                bits + 1
            } else {
                bits.saturating_sub(1)
            })
            .clamp(0.0, 1.0)
        }
        // Many events in one narrow neighbourhood, so thresholds inside a fine bin matter.
        4 => 0.73519 + rng.unit() * 0.00005,
        _ => rng.unit(),
    }
}

async fn exact_counts_match_brute_force(store: Arc<dyn Store>) {
    let a = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let b = store
        .create_client("globex", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let base = 1_763_856_000_000 - 3 * HOUR; // 2025-11-22T21:00Z: ranges cross a UTC day
    let span = 3 * DAY;
    let mut events = Vec::new();
    for batch in 0..12 {
        let mut chunk = Vec::new();
        for _ in 0..250 {
            let client = if rng.below(3) == 0 { &b } else { &a };
            // Clustered on whole minutes/hours/days now and then, to hit the boundaries.
            let ts = match rng.below(6) {
                0 => base + (rng.below(72) as i64) * HOUR,
                1 => base + (rng.below(3 * 1440) as i64) * MIN - (rng.below(2) as i64),
                _ => base + rng.below(span as u64) as i64,
            };
            chunk.push(ev(client, red(&mut rng), ts));
        }
        if batch % 4 == 0 {
            for e in &chunk {
                store.insert_event(e).await.unwrap();
            }
        } else {
            store.insert_events(chunk.clone()).await.unwrap();
        }
        events.extend(chunk);
    }
    let reds: Vec<f64> = events.iter().map(|e| e.red).collect();
    let tss: Vec<i64> = events.iter().map(|e| e.ts).collect();
    for i in 0..400 {
        let threshold = match i % 6 {
            0 => reds[rng.below(reds.len() as u64) as usize], // red == threshold is not above
            1 => [0.0, 0.5, 0.8, 1.0, -0.5, 1.5, 0.7352][rng.below(7) as usize],
            2 => 0.73519 + rng.unit() * 0.00005,
            _ => rng.unit(),
        };
        let pick = |rng: &mut Rng| -> i64 {
            match rng.below(5) {
                0 => tss[rng.below(tss.len() as u64) as usize], // an event exactly at the edge
                1 => base + (rng.below(4) as i64) * DAY - 3 * HOUR,
                2 => base + (rng.below(80) as i64) * HOUR,
                3 => base + (rng.below(5000) as i64) * MIN,
                _ => base - HOUR + rng.below((span + 2 * HOUR) as u64) as i64,
            }
        };
        let (x, y) = (pick(&mut rng), pick(&mut rng));
        assert_counts_match_brute_force(&store, &events, [&a, &b], x.min(y), x.max(y), threshold)
            .await;
    }
    // The whole span at once, every bucket width: per-bucket counts match too.
    for w in [
        BucketWidth::Minute,
        BucketWidth::FiveMinutes,
        BucketWidth::Hour,
        BucketWidth::Day,
    ] {
        let q = query(
            base - 7 * MIN - 1234,
            base + span + 13 * MIN + 77,
            0.73519 + 0.000_021,
            Some(w),
        );
        let got = store.stats(&Scope::Client(a.clone()), &q).await.unwrap();
        assert_eq!((got.total, got.above), brute(&events, Some(&a), &q));
        assert_eq!(got.buckets.len() as u64, w.count(q.from(), q.to()));
        for bk in &got.buckets {
            let part = query(
                bk.start.max(q.from().as_ms()),
                (bk.start + w.ms()).min(q.to().as_ms()),
                q.threshold(),
                None,
            );
            assert_eq!(
                (bk.total, bk.above),
                brute(&events, Some(&a), &part),
                "bucket {} of {w:?}",
                bk.start
            );
        }
    }
}

async fn buckets_are_aligned_clipped_and_complete(store: Arc<dyn Store>) {
    let c = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let day = 20_000 * DAY; // 2024-10-04T00:00Z
    store
        .insert_events(vec![
            ev(&c, 0.9, day + 10 * MIN),             // before `from`: not counted
            ev(&c, 0.9, day + 40 * MIN),             // bucket 00:00, inside
            ev(&c, 0.5, day + 59 * MIN + 59_999),    // bucket 00:00, last ms
            ev(&c, 0.6, day + 2 * HOUR),             // bucket 02:00 (01:00 stays empty)
            ev(&c, 0.95, day + 2 * HOUR + 30 * MIN), // at `to`: outside
        ])
        .await
        .unwrap();
    let q = query(
        day + 30 * MIN,
        day + 2 * HOUR + 30 * MIN,
        0.5,
        Some(BucketWidth::Hour),
    );
    let r = store.stats(&Scope::Client(c.clone()), &q).await.unwrap();
    assert_eq!((r.total, r.above), (3, 2));
    let got: Vec<(i64, u64, u64)> = r
        .buckets
        .iter()
        .map(|b| (b.start, b.total, b.above))
        .collect();
    assert_eq!(
        got,
        vec![(day, 2, 1), (day + HOUR, 0, 0), (day + 2 * HOUR, 1, 1)]
    );
    // An empty range, and a range with no events at all.
    let empty = query(day + 30 * MIN, day + 30 * MIN, 0.5, Some(BucketWidth::Hour));
    let r = store
        .stats(&Scope::Client(c.clone()), &empty)
        .await
        .unwrap();
    assert_eq!((r.total, r.above, r.buckets.len()), (0, 0, 0));
    let other = store
        .create_client("globex", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let r = store.stats(&Scope::Client(other), &q).await.unwrap();
    assert_eq!((r.total, r.above, r.buckets.len()), (0, 0, 3));
}

async fn a_batch_with_a_bad_event_writes_nothing(store: Arc<dyn Store>) {
    let c = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let ghost = ClientId::parse("cl_0123456789abcdef").unwrap();
    let mut batch: Vec<NewEvent> = (0..100).map(|i| ev(&c, 0.9, DAY + i)).collect();
    batch.push(ev(&ghost, 0.9, DAY)); // no such client: the foreign key refuses it
    assert!(store.insert_events(batch).await.is_err());
    let q = query(0, 2 * DAY, 0.0, None);
    let r = store.stats(&Scope::All, &q).await.unwrap();
    assert_eq!((r.total, r.above), (0, 0));
    // The store still works afterwards.
    store.insert_events(vec![ev(&c, 0.9, DAY)]).await.unwrap();
    let r = store.stats(&Scope::All, &q).await.unwrap();
    assert_eq!((r.total, r.above), (1, 1));
}

async fn concurrent_batches_all_commit(store: Arc<dyn Store>) {
    let c = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let mut tasks = Vec::new();
    for t in 0..16i64 {
        let store = Arc::clone(&store);
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let batch = (0..500)
                .map(|i| ev(&c, (i % 100) as f64 / 100.0, t * 1000 + i))
                .collect();
            store.insert_events(batch).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let q = query(0, DAY, 0.5, None);
    let r = store.stats(&Scope::Client(c), &q).await.unwrap();
    assert_eq!((r.total, r.above), (16 * 500, 16 * 5 * 49));
}

/// The latest instant a client may send: 9999-12-31T23:59:59.999Z.
const MAX_TS: i64 = 253_402_300_799_999;

/// The attack: a range of 10 000 years (1970 to the last millisecond of 9999, the widest a
/// client may ask) used to be planned one day at a time (~2.9 million steps on an async
/// worker). It is counted exactly — events at both extremes, on period boundaries and in
/// between — and each query takes milliseconds (100 ms for the three queries of a check is
/// generous for a debug build on a busy box; the day-by-day plan took ~60 ms per query in a
/// debug build on an idle one).
async fn a_ten_thousand_year_range_is_counted_exactly_in_milliseconds(store: Arc<dyn Store>) {
    let a = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let b = store
        .create_client("globex", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let mut rng = Rng(0x5eed_1234_abcd_0002);
    let mut events = Vec::new();
    let stamps = [
        0,
        1,
        MIN - 1,
        MIN,
        HOUR,
        DAY - 1,
        DAY,
        1_763_856_000_000,
        1_763_856_000_000 + 7 * HOUR + 3 * MIN + 5,
        MAX_TS - DAY,
        MAX_TS - HOUR + 1,
        MAX_TS - MIN,
        MAX_TS - 1,
        MAX_TS,
    ];
    for (i, ts) in stamps.into_iter().enumerate() {
        let client = if i % 3 == 0 { &b } else { &a };
        events.push(ev(client, red(&mut rng), ts));
        events.push(ev(&a, red(&mut rng), ts));
    }
    store.insert_events(events.clone()).await.unwrap();
    let ranges = [
        (0, MAX_TS),
        (1, MAX_TS - 1),
        (MIN, MAX_TS - MIN),
        (DAY - 1, MAX_TS - HOUR + 1),
        (0, 1),
        (MAX_TS - DAY, MAX_TS),
    ];
    for (from, to) in ranges {
        for threshold in [0.0, 0.5, 0.1234, 0.73519 + rng.unit() * 0.00005, rng.unit()] {
            let started = std::time::Instant::now();
            assert_counts_match_brute_force(&store, &events, [&a, &b], from, to, threshold).await;
            // Three queries (two clients and all). Not a speed test (that is a benchmark's
            // job): the bound only catches a plan that walks the range minute by minute,
            // which takes minutes; it is loose so that a loaded CI machine does not trip it.
            let took = started.elapsed();
            assert!(
                took < std::time::Duration::from_secs(2),
                "[{from}, {to}) over {threshold}: {took:?}"
            );
        }
    }
    // Buckets at both ends of the range: every bucket matches brute force.
    for (from, to, w) in [
        (0, 3 * DAY + 5, BucketWidth::Day),
        (MAX_TS - 3 * DAY - 5, MAX_TS, BucketWidth::Day),
        (MAX_TS - 2 * HOUR, MAX_TS, BucketWidth::Minute),
        (MAX_TS - 7 * DAY, MAX_TS, BucketWidth::FiveMinutes),
    ] {
        let q = query(from, to, 0.5, Some(w));
        let got = store.stats(&Scope::Client(a.clone()), &q).await.unwrap();
        assert_eq!((got.total, got.above), brute(&events, Some(&a), &q));
        assert_eq!(got.buckets.len() as u64, w.count(q.from(), q.to()));
        for bk in &got.buckets {
            let part = query(bk.start.max(from), (bk.start + w.ms()).min(to), 0.5, None);
            assert_eq!(
                (bk.total, bk.above),
                brute(&events, Some(&a), &part),
                "bucket {} of {w:?}",
                bk.start
            );
        }
    }
}

/// A store together with direct SQL access to its database, for the outbox tests.
enum Db {
    /// The folder is kept alive with the store.
    Sqlite(SqliteStore, #[allow(dead_code)] tempfile::TempDir),
    Pg(PgStore),
}

impl Db {
    fn store(&self) -> Arc<dyn Store> {
        match self {
            Db::Sqlite(s, _) => Arc::new(s.clone()),
            Db::Pg(s) => Arc::new(s.clone()),
        }
    }

    /// A client made with the SQL of the older schema this database is at (which has no
    /// audit log yet for `create_client` to write to).
    async fn old_client(&self, name: &str) -> ClientId {
        let id = ClientId::generate();
        let sql = "INSERT INTO clients (id, name, created_at) VALUES ($1, $2, 0)";
        match self {
            Db::Sqlite(s, _) => sqlx::query(sql)
                .bind(id.as_str())
                .bind(name)
                .execute(s.pool())
                .await
                .map(drop),
            Db::Pg(s) => sqlx::query(sql)
                .bind(id.as_str())
                .bind(name)
                .execute(s.pool())
                .await
                .map(drop),
        }
        .unwrap();
        id
    }

    async fn exec(&self, sql: &'static str, args: (&str, &str, f64, Option<i64>)) {
        let (id, client, threshold, deleted) = args;
        let sql = sqlx::AssertSqlSafe(sql);
        match self {
            Db::Sqlite(s, _) => {
                sqlx::query(sql)
                    .bind(id)
                    .bind(client)
                    .bind(threshold)
                    .bind(deleted)
                    .execute(s.pool())
                    .await
                    .unwrap();
            }
            Db::Pg(s) => {
                sqlx::query(sql)
                    .bind(id)
                    .bind(client)
                    .bind(threshold)
                    .bind(deleted)
                    .execute(s.pool())
                    .await
                    .unwrap();
            }
        }
    }

    /// (subscription id, red, event ts, image id) of every notification, sorted.
    async fn notifications(&self) -> Vec<(String, f64, i64, Option<String>)> {
        let sql = "SELECT subscription_id, red, event_ts, image_id FROM notifications";
        let mut rows: Vec<(String, f64, i64, Option<String>)> = match self {
            Db::Sqlite(s, _) => sqlx::query_as(sql).fetch_all(s.pool()).await.unwrap(),
            Db::Pg(s) => sqlx::query_as(sql).fetch_all(s.pool()).await.unwrap(),
        };
        rows.sort_by(|x, y| x.partial_cmp(y).unwrap());
        rows
    }
}

async fn open_sqlite() -> Db {
    let db = open_sqlite_at(0).await;
    db.store().migrate().await.unwrap();
    db
}

async fn open_pg(test: &str) -> Option<Db> {
    let db = open_pg_at(test, 0).await?;
    db.store().migrate().await.unwrap();
    Some(db)
}

/// A SQLite database migrated up to `version` only (0: none).
async fn open_sqlite_at(version: i64) -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rubra.db").display());
    let s = SqliteStore::connect(&url).await.unwrap();
    sqlx::migrate!("./migrations/sqlite")
        .run_to(version, s.pool())
        .await
        .unwrap();
    Db::Sqlite(s, dir)
}

/// A PostgreSQL database migrated up to `version` only (0: none).
async fn open_pg_at(test: &str, version: i64) -> Option<Db> {
    let url = rubra_testkit::fresh_postgres(test).await?;
    let s = PgStore::connect(&url).await.unwrap();
    sqlx::migrate!("./migrations/postgres")
        .run_to(version, s.pool())
        .await
        .unwrap();
    Some(Db::Pg(s))
}

/// Events written as the first schema had them (text client id, no bin, no rollups).
async fn insert_old_events(db: &Db, events: &[NewEvent]) {
    let sql = "INSERT INTO events (client_id, image_id, red, ts) VALUES ($1, NULL, $2, $3)";
    for e in events {
        match db {
            Db::Sqlite(s, _) => sqlx::query(sql)
                .bind(e.client_id.as_str())
                .bind(e.red)
                .bind(e.ts)
                .execute(s.pool())
                .await
                .map(|_| ()),
            Db::Pg(s) => sqlx::query(sql)
                .bind(e.client_id.as_str())
                .bind(e.red)
                .bind(e.ts)
                .execute(s.pool())
                .await
                .map(|_| ()),
        }
        .unwrap();
    }
}

/// A database that recorded events before the statistics migrations (no bins, no rollups,
/// text client ids) counts them exactly once upgraded — the migrations move the rows, the
/// backfill fills bins and rollups — and keeps counting new events with them.
async fn events_recorded_before_the_stats_migrations_keep_their_counts(db: Db) {
    let store = db.store();
    let a = db.old_client("acme").await;
    let b = db.old_client("globex").await;
    let mut rng = Rng(0x01d0_0008);
    let base = 1_763_856_000_000;
    let mut events: Vec<NewEvent> = (0..400)
        .map(|_| {
            let client = if rng.below(3) == 0 { &b } else { &a };
            ev(
                client,
                red(&mut rng),
                base + rng.below(2 * DAY as u64) as i64,
            )
        })
        .collect();
    insert_old_events(&db, &events).await;
    store.migrate().await.unwrap();
    let later: Vec<NewEvent> = (0..200)
        .map(|_| ev(&a, red(&mut rng), base + rng.below(2 * DAY as u64) as i64))
        .collect();
    store.insert_events(later.clone()).await.unwrap();
    events.extend(later);
    assert_random_queries_match(&store, &events, [&a, &b], base, 2 * DAY, &mut rng).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_events_recorded_before_the_stats_migrations_keep_their_counts() {
    events_recorded_before_the_stats_migrations_keep_their_counts(open_sqlite_at(4).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_events_recorded_before_the_stats_migrations_keep_their_counts() {
    let test = "postgres_events_recorded_before_the_stats_migrations_keep_their_counts";
    let Some(db) = open_pg_at(test, 4).await else {
        return;
    };
    events_recorded_before_the_stats_migrations_keep_their_counts(db).await;
}

/// The coarse bin of `red` by its definition (`c` holds `((c-1)/1000, c/1000]`), for writing
/// events as migration 0008 stored them.
fn coarse_bin(red: f64) -> i64 {
    (0..=1000i64)
        .find(|&c| red <= c as f64 / 1000.0)
        .unwrap_or(1000)
}

/// The fine bin of `red` by its definition (`k` holds `((k-1)/10⁴, k/10⁴]`).
fn fine_bin(red: f64) -> u64 {
    (0..=10_000u64)
        .find(|&k| red <= k as f64 / 10_000.0)
        .unwrap_or(10_000)
}

/// A histogram as migrations 0005–0008 stored it: for each non-empty fine bin in order,
/// LEB128 varints of the bin's distance from the previous one and of its count.
fn old_hist(counts: &BTreeMap<u64, u64>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut put = |mut v: u64| {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    };
    let mut prev = 0;
    for (&bin, &n) in counts {
        put(bin - prev);
        put(n);
        prev = bin;
    }
    out
}

/// Events written as a database at migration 0008 held them — integer client keys, coarse
/// bins, the bins' backfill step marked done — with their rollup rows (per client and `*`,
/// per minute, hour and day) in the one-histogram table that migration 0009 sets aside.
async fn insert_0008_events(db: &Db, events: &[NewEvent]) {
    let keys = "INSERT INTO client_keys (client_id) SELECT id FROM clients";
    let meta = "INSERT INTO meta (key, value) VALUES ('stats_rollups', '1')";
    let event = "INSERT INTO events (ckey, image_id, red, ts, bin) \
        SELECT ckey, NULL, $2, $3, $4 FROM client_keys WHERE client_id = $1";
    let rollup = "INSERT INTO stats_rollups (client_id, level, period_start, total, hist) \
        VALUES ($1, $2, $3, $4, $5)";
    // The same statement on either pool (the query's types differ per backend).
    macro_rules! on_pool {
        ($pool:ident => $query:expr) => {
            match db {
                Db::Sqlite(s, _) => {
                    let $pool = s.pool();
                    $query.await.map(|_| ())
                }
                Db::Pg(s) => {
                    let $pool = s.pool();
                    $query.await.map(|_| ())
                }
            }
            .unwrap()
        };
    }
    for sql in [keys, meta] {
        on_pool!(pool => sqlx::query(sql).execute(pool));
    }
    let mut rollups: BTreeMap<(String, i16, i64), BTreeMap<u64, u64>> = BTreeMap::new();
    for e in events {
        on_pool!(pool => sqlx::query(event)
            .bind(e.client_id.as_str())
            .bind(e.red)
            .bind(e.ts)
            .bind(coarse_bin(e.red))
            .execute(pool));
        for (level, span) in [(0i16, MIN), (1, HOUR), (2, DAY)] {
            for client in [e.client_id.as_str(), "*"] {
                let start = e.ts.div_euclid(span) * span;
                *rollups
                    .entry((client.to_owned(), level, start))
                    .or_default()
                    .entry(fine_bin(e.red))
                    .or_default() += 1;
            }
        }
    }
    for ((client, level, start), counts) in &rollups {
        let total = counts.values().sum::<u64>() as i64;
        on_pool!(pool => sqlx::query(rollup)
            .bind(client)
            .bind(*level)
            .bind(*start)
            .bind(total)
            .bind(old_hist(counts))
            .execute(pool));
    }
}

/// Migration 0009 sets the one-histogram rollups aside; the backfill converts them into period
/// and band rows (without reading the events), and every count stays exact.
async fn rollups_of_a_0008_database_are_converted_into_band_rows(db: Db) {
    let store = db.store();
    let a = db.old_client("acme").await;
    let b = db.old_client("globex").await;
    let mut rng = Rng(0x0009_ba4d);
    let base = 1_763_856_000_000;
    let mut events: Vec<NewEvent> = (0..400)
        .map(|_| {
            let client = if rng.below(3) == 0 { &b } else { &a };
            ev(client, red(&mut rng), base + rng.below(DAY as u64) as i64)
        })
        .collect();
    insert_0008_events(&db, &events).await;
    store.migrate().await.unwrap();
    let later: Vec<NewEvent> = (0..200)
        .map(|_| ev(&b, red(&mut rng), base + rng.below(DAY as u64) as i64))
        .collect();
    store.insert_events(later.clone()).await.unwrap();
    events.extend(later);
    assert_random_queries_match(&store, &events, [&a, &b], base, DAY, &mut rng).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rollups_of_a_0008_database_are_converted_into_band_rows() {
    rollups_of_a_0008_database_are_converted_into_band_rows(open_sqlite_at(8).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rollups_of_a_0008_database_are_converted_into_band_rows() {
    let test = "postgres_rollups_of_a_0008_database_are_converted_into_band_rows";
    let Some(db) = open_pg_at(test, 8).await else {
        return;
    };
    rollups_of_a_0008_database_are_converted_into_band_rows(db).await;
}

const INSERT_SUB: &str = "INSERT INTO subscriptions \
    (id, client_id, threshold, channel_type, channel, created_at, deleted_at) \
    VALUES ($1, $2, $3, 'stream', '{\"type\":\"stream\"}', 0, $4)";

async fn outbox_holds_one_notification_per_event_and_exceeded_subscription(db: Db) {
    let store = db.store();
    let a = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let b = store
        .create_client("globex", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    db.exec(INSERT_SUB, ("sub_a50", a.as_str(), 0.5, None))
        .await;
    db.exec(INSERT_SUB, ("sub_a80", a.as_str(), 0.8, None))
        .await;
    db.exec(INSERT_SUB, ("sub_a10_deleted", a.as_str(), 0.1, Some(5)))
        .await;
    db.exec(INSERT_SUB, ("sub_b00", b.as_str(), 0.0, None))
        .await;

    let mut rng = Rng(42);
    let mut events = Vec::new();
    for i in 0..300i64 {
        let client = if i % 5 == 0 { &b } else { &a };
        let red = match i % 7 {
            0 => 0.5, // equal to a threshold: not above it
            1 => 0.8,
            2 => 0.0,
            _ => rng.unit(),
        };
        events.push(ev(client, red, DAY + i));
    }
    store.insert_events(events[..200].to_vec()).await.unwrap();
    for e in &events[200..250] {
        store.insert_event(e).await.unwrap();
    }
    // Images record their event through the same path.
    let mut images = Vec::new();
    for e in &events[250..] {
        let bytes = format!("image {}", e.ts);
        let rec = ImageRecord {
            client_id: e.client_id.clone(),
            id: ImageId::of(bytes.as_bytes()),
            format: "png".into(),
            width: 1,
            height: 1,
            bytes: 1,
            red: e.red,
            created_at: e.ts,
        };
        let (_, created) = store.insert_image(&rec).await.unwrap();
        assert!(created);
        // The same image again records nothing.
        let (_, again) = store.insert_image(&rec).await.unwrap();
        assert!(!again);
        images.push(rec);
    }
    // A failing batch leaves no notification behind either.
    let ghost = ClientId::parse("cl_0123456789abcdef").unwrap();
    let bad = vec![ev(&a, 0.99, DAY), ev(&ghost, 0.99, DAY)];
    assert!(store.insert_events(bad).await.is_err());

    let mut expected = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let image = (i >= 250).then(|| images[i - 250].id.as_str().to_owned());
        let subs: &[(&str, f64)] = if e.client_id == a {
            &[("sub_a50", 0.5), ("sub_a80", 0.8)]
        } else {
            &[("sub_b00", 0.0)]
        };
        for &(sub, t) in subs {
            if e.red > t {
                expected.push((sub.to_owned(), e.red, e.ts, image.clone()));
            }
        }
    }
    expected.sort_by(|x, y| x.partial_cmp(y).unwrap());
    assert!(expected.len() > 100, "the test data should notify often");
    assert_eq!(db.notifications().await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_outbox() {
    outbox_holds_one_notification_per_event_and_exceeded_subscription(open_sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outbox() {
    let Some(db) = open_pg("postgres_outbox").await else {
        return;
    };
    outbox_holds_one_notification_per_event_and_exceeded_subscription(db).await;
}

async fn stored_image_bytes_follow_inserts_and_deletes(store: Arc<dyn Store>) {
    let a = store
        .create_client("a", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let b = store
        .create_client("b", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let image = |client: &ClientId, name: &str, bytes: u64| ImageRecord {
        client_id: client.clone(),
        id: ImageId::of(name.as_bytes()),
        format: "png".into(),
        width: 1,
        height: 1,
        bytes,
        red: 0.5,
        created_at: 1_000,
    };
    assert_eq!(store.stored_image_bytes(&a).await.unwrap(), 0);
    let first = image(&a, "one", 100);
    store
        .insert_images(&[first.clone(), image(&a, "two", 20), image(&b, "one", 7)])
        .await
        .unwrap();
    // The same image again adds nothing.
    store
        .insert_images(std::slice::from_ref(&first))
        .await
        .unwrap();
    assert_eq!(store.stored_image_bytes(&a).await.unwrap(), 120);
    assert_eq!(store.stored_image_bytes(&b).await.unwrap(), 7);
    assert!(
        store
            .delete_image(&Scope::Client(a.clone()), &first.id)
            .await
            .unwrap()
    );
    // Deleting it again, or through another client's scope, takes nothing off.
    assert!(
        !store
            .delete_image(&Scope::Client(a.clone()), &first.id)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_image(&Scope::Client(b.clone()), &ImageId::of(b"two"))
            .await
            .unwrap()
    );
    assert_eq!(store.stored_image_bytes(&a).await.unwrap(), 20);
    assert_eq!(store.stored_image_bytes(&b).await.unwrap(), 7);
}
