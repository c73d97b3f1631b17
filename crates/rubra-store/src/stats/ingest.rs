//! The event write path shared by both backends: a batching writer (group commit) and the
//! backend-independent parts of a batch — the rollup deltas and which events may notify.
//!
//! Every event write (`POST /events`, `POST /images`, `POST /red`) becomes a [`WriteOp`] sent
//! to the store's one [`Writer`] task. The task takes the first waiting op, adds every other op
//! already queued (up to [`MAX_GROUP_EVENTS`] events), and applies them all in one
//! transaction: images, events, rollups and outbox rows. Each caller is answered only after
//! that commit, so an acknowledged write survives a kill -9. While one transaction commits
//! the next group queues up, so the batch size grows with the load by itself. If a group
//! fails, each op is retried alone, so one caller's failure is never another's.
//!
//! Fair between clients: waiting ops are kept in one line per client, and a group takes them
//! round robin, one op per client per round, at most [`MAX_CLIENT_GROUP_EVENTS`] of one
//! client. A client flooding the writer with big batches therefore delays another client's
//! write by about one group, not by everything it has queued.
//!
//! Exactly once across a lost commit answer: each group's transaction also inserts a commit
//! record (`write_commits`) under a fresh token, with the results it answers. When the commit
//! itself fails — PostgreSQL restarting, a connection dropped while it committed — the group
//! may or may not be written; the writer then asks the database for the token (for up to
//! [`COMMIT_CHECK_FOR`]) and answers from the record if it is there, and only re-applies ops
//! the database says were not written.

use crate::IdempotentAnswer;
use crate::bells::Doorbell;
use crate::sql::RowsAffected;
use crate::stats::bins;
use crate::stats::hist::{self, Bins};
use crate::stats::plan::{LEVELS, MINUTE, floor_to};
use crate::stats::sqlite::INSERT_IMAGE_SQL;
use crate::{ImageRecord, NewEvent, Result, StoreError};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, OwnedMutexGuard, mpsc, oneshot};

/// The rollup upsert of one backend (the SQL differs: multi-row upserts on SQLite, `UNNEST`
/// under an advisory lock on PostgreSQL), for the code generic over the database.
#[async_trait]
pub(crate) trait WriteRollups: sqlx::Database {
    /// Adds `deltas` to the rollup rows, in the open transaction `tx`.
    async fn write_rollups(
        tx: &mut sqlx::Transaction<'_, Self>,
        deltas: &[RollupDelta],
    ) -> Result<()>;
}

/// The most events one group transaction takes (more stay queued for the next one).
pub(crate) const MAX_GROUP_EVENTS: usize = 50_000;

/// The most events of one client in one group (its first op always fits): what another
/// client's write waits for at most when it arrives behind a flood.
pub(crate) const MAX_CLIENT_GROUP_EVENTS: usize = 20_000;

/// Ops taken out of the channel into the per-client lines at most (the rest wait in the
/// channel, whose bound makes submitters wait).
const MAX_LINED_OPS: usize = 4096;

/// How long the writer keeps asking whether a group whose commit failed was written, while
/// the database does not answer (a restart takes a few seconds); past it the outcome is
/// reported unknown.
pub(crate) const COMMIT_CHECK_FOR: Duration = Duration::from_secs(10);

/// How long commit records are kept: far longer than [`COMMIT_CHECK_FOR`].
const COMMIT_RECORD_KEEP_MS: i64 = 10 * 60 * 1000;

/// How often a group also deletes the commit records past [`COMMIT_RECORD_KEEP_MS`].
const COMMIT_PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The rollup key of the "all clients" rows, summed for admins' all-client queries.
pub(crate) const ALL_CLIENTS: &str = "*";

/// One write submitted to the writer.
#[derive(Debug)]
pub(crate) enum WriteOp {
    /// Events recorded all or nothing, with the answer of their idempotency key, if any,
    /// written in the same transaction.
    Events(Vec<NewEvent>, Option<IdempotentAnswer>),
    /// New image records (all or nothing) and, for each that is new, its event.
    Images(Vec<ImageRecord>),
}

impl WriteOp {
    fn weight(&self) -> usize {
        match self {
            WriteOp::Events(e, _) => e.len().max(1),
            WriteOp::Images(i) => i.len().max(1),
        }
    }

    /// The client whose line the op waits in: its first item's (an admin's batch for many
    /// clients waits in the first one's).
    fn client(&self) -> &str {
        match self {
            WriteOp::Events(e, _) => e.first().map_or("", |e| e.client_id.as_str()),
            WriteOp::Images(i) => i.first().map_or("", |i| i.client_id.as_str()),
        }
    }
}

/// Waiting ops, one line per client, and whose turn is next.
#[derive(Default)]
struct Lines {
    by_client: HashMap<String, std::collections::VecDeque<Job>>,
    turn: std::collections::VecDeque<String>,
    len: usize,
}

impl Lines {
    fn push(&mut self, job: Job) {
        let client = job.op.client().to_owned();
        let line = self.by_client.entry(client.clone()).or_default();
        if line.is_empty() {
            self.turn.push_back(client);
        }
        line.push_back(job);
        self.len += 1;
    }

    /// The next group: one op per client per round, in turn, until the group holds
    /// [`MAX_GROUP_EVENTS`] or no client may add more (at most [`MAX_CLIENT_GROUP_EVENTS`]
    /// each, its first op always). Clients left waiting keep their place in the turn.
    fn take_group(&mut self) -> (Vec<Job>, usize) {
        let mut jobs = Vec::new();
        let mut weight = 0;
        let mut taken: HashMap<String, usize> = HashMap::new();
        let mut passed = std::collections::VecDeque::new();
        while weight < MAX_GROUP_EVENTS {
            let Some(client) = self.turn.pop_front() else {
                break;
            };
            let Some(line) = self.by_client.get_mut(&client) else {
                continue;
            };
            let next = line.front().map_or(0, |j| j.op.weight());
            let mine = taken.entry(client.clone()).or_default();
            if *mine > 0 && *mine + next > MAX_CLIENT_GROUP_EVENTS {
                passed.push_back(client);
                continue;
            }
            let Some(job) = line.pop_front() else {
                continue;
            };
            *mine += next;
            weight += next;
            self.len -= 1;
            jobs.push(job);
            if line.is_empty() {
                self.by_client.remove(&client);
            } else {
                self.turn.push_back(client);
            }
        }
        // Those that had their fill this time go first next time.
        while let Some(c) = passed.pop_back() {
            self.turn.push_front(c);
        }
        (jobs, weight)
    }
}

/// Applies a group of writes in one transaction: one result per op (for images: whether each
/// was new; for events: nothing).
#[async_trait]
pub(crate) trait ApplyWrites: Send + Sync + 'static {
    /// Applies `ops` in one transaction that also writes `commit` (see [`record_commit`]).
    async fn apply(
        &self,
        ops: &[WriteOp],
        commit: &CommitRecord,
    ) -> std::result::Result<Vec<Vec<bool>>, ApplyFailure>;

    /// The results recorded under `token` if its group was committed, `None` if it was not.
    async fn committed(&self, token: &str) -> Result<Option<Vec<Vec<bool>>>>;
}

/// The commit record a group's transaction writes: a fresh random token, when, and whether
/// this group also deletes the old records.
#[derive(Debug)]
pub(crate) struct CommitRecord {
    pub(crate) token: String,
    pub(crate) at_ms: i64,
    /// Delete the records older than this, in the same transaction.
    pub(crate) prune_before: Option<i64>,
}

impl CommitRecord {
    fn new(prune: bool) -> CommitRecord {
        let at_ms = crate::now_ms();
        CommitRecord {
            token: crate::random_id(16),
            at_ms,
            prune_before: prune.then_some(at_ms - COMMIT_RECORD_KEEP_MS),
        }
    }
}

/// Why a group's transaction failed: before its commit (rolled back, nothing written) or at
/// the commit, whose outcome only the commit record can tell.
#[derive(Debug)]
pub(crate) struct ApplyFailure {
    pub(crate) error: StoreError,
    pub(crate) at_commit: bool,
}

impl ApplyFailure {
    /// A failed commit: the group may have been written.
    pub(crate) fn at_commit(error: impl Into<StoreError>) -> ApplyFailure {
        ApplyFailure {
            error: error.into(),
            at_commit: true,
        }
    }
}

impl<E: Into<StoreError>> From<E> for ApplyFailure {
    fn from(error: E) -> ApplyFailure {
        ApplyFailure {
            error: error.into(),
            at_commit: false,
        }
    }
}

struct Job {
    op: WriteOp,
    reply: oneshot::Sender<Result<Vec<bool>>>,
}

/// The handle to a store's writer task. Cheap to clone; the task ends with the last handle.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
    gate: Arc<Mutex<()>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer")
    }
}

impl Writer {
    /// Starts the writer task on the current tokio runtime; it rings `outbox` after each
    /// group (a group may have written notifications).
    pub(crate) fn spawn(applier: impl ApplyWrites, outbox: Doorbell) -> Writer {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        let gate = Arc::new(Mutex::new(()));
        tokio::spawn(run(applier, rx, gate.clone(), outbox));
        Writer { tx, gate }
    }

    /// Waits for the store's write gate: the writer task holds it while it applies a group,
    /// and other write paths of the same database (the SQLite delivery bookkeeping) take it
    /// before they begin. Writers then queue here, in order and without polling, instead of in
    /// SQLite's busy handler, which sleeps up to 100 ms between retries of a locked database.
    pub(crate) async fn gate(&self) -> OwnedMutexGuard<()> {
        self.gate.clone().lock_owned().await
    }

    /// Submits one write and waits for its commit. For images: whether each was new.
    pub(crate) async fn submit(&self, op: WriteOp) -> Result<Vec<bool>> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { op, reply })
            .await
            .map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }

    /// Records one `POST /events` batch (with the request's idempotent `answer`, if any) in
    /// the next group transaction and waits for its commit: what both backends'
    /// [`StatsStore::insert_events_answered`](crate::StatsStore::insert_events_answered) are.
    pub(crate) async fn insert_events(
        &self,
        events: Vec<NewEvent>,
        answer: Option<IdempotentAnswer>,
    ) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.submit(WriteOp::Events(events, answer))
            .await
            .map(|_| ())
    }
}

fn writer_gone() -> StoreError {
    StoreError::Database(sqlx::Error::PoolClosed)
}

async fn run(
    applier: impl ApplyWrites,
    mut rx: mpsc::Receiver<Job>,
    gate: Arc<Mutex<()>>,
    outbox: Doorbell,
) {
    let mut lines = Lines::default();
    let mut pruned = Instant::now();
    loop {
        if lines.len == 0 {
            match rx.recv().await {
                Some(job) => lines.push(job),
                None => return,
            }
        }
        // Take the gate before gathering the group, so what queued while it was held joins.
        let held = gate.lock().await;
        while lines.len < MAX_LINED_OPS {
            match rx.try_recv() {
                Ok(job) => lines.push(job),
                Err(_) => break,
            }
        }
        let (jobs, weight) = lines.take_group();
        if !jobs.is_empty() {
            let prune = pruned.elapsed() >= COMMIT_PRUNE_EVERY;
            if prune {
                pruned = Instant::now();
            }
            apply_group(&applier, jobs, weight, prune).await;
            // The group may have written notifications: wake this process's delivery workers
            // now rather than at their next poll (a hint only; they poll anyway).
            outbox.ring();
        }
        drop(held);
    }
}

#[tracing::instrument(name = "store.write_group", skip_all, fields(ops = jobs.len(), events = weight))]
async fn apply_group(applier: &impl ApplyWrites, jobs: Vec<Job>, weight: usize, prune: bool) {
    let (ops, replies): (Vec<WriteOp>, Vec<_>) = jobs.into_iter().map(|j| (j.op, j.reply)).unzip();
    match apply_once(applier, &ops, prune).await {
        Outcome::Written(results) => {
            for (reply, r) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok(r));
            }
        }
        Outcome::NotWritten(e) if ops.len() > 1 => {
            tracing::warn!(error = %e, "group write failed; retrying each write alone");
            for (op, reply) in ops.into_iter().zip(replies) {
                let r = match apply_once(applier, std::slice::from_ref(&op), false).await {
                    Outcome::Written(mut v) => Ok(v.pop().unwrap_or_default()),
                    Outcome::NotWritten(e) | Outcome::Unknown(e) => Err(e),
                };
                let _ = reply.send(r);
            }
        }
        Outcome::NotWritten(e) | Outcome::Unknown(e) => {
            // An unknown outcome is never re-applied: the group may be written.
            let mut e = Some(e);
            for reply in replies {
                let err = e.take().unwrap_or_else(|| {
                    StoreError::CommitUnknown("the group's commit was not confirmed".into())
                });
                let _ = reply.send(Err(err));
            }
        }
    }
}

/// What became of one transaction of the writer.
enum Outcome {
    /// Committed, with its results.
    Written(Vec<Vec<bool>>),
    /// Rolled back: nothing of it was written.
    NotWritten(StoreError),
    /// The commit failed and the database did not say, within [`COMMIT_CHECK_FOR`], whether
    /// it had been written.
    Unknown(StoreError),
}

/// Applies `ops` in one transaction; if its commit fails, asks the database whether the
/// commit record is there (retrying while it does not answer, up to [`COMMIT_CHECK_FOR`]).
async fn apply_once(applier: &impl ApplyWrites, ops: &[WriteOp], prune: bool) -> Outcome {
    let record = CommitRecord::new(prune);
    let failure = match applier.apply(ops, &record).await {
        Ok(results) => return Outcome::Written(results),
        Err(failure) => failure,
    };
    if !failure.at_commit {
        return Outcome::NotWritten(failure.error);
    }
    tracing::warn!(error = %failure.error, "a group's commit failed; asking whether it was written");
    let deadline = Instant::now() + COMMIT_CHECK_FOR;
    let mut pause = Duration::from_millis(50);
    loop {
        match applier.committed(&record.token).await {
            Ok(Some(results)) if results.len() == ops.len() => {
                tracing::info!("the failed commit had been written; answered as stored");
                return Outcome::Written(results);
            }
            Ok(Some(_)) => {
                return Outcome::Unknown(StoreError::CommitUnknown(
                    "the commit record does not match its group".into(),
                ));
            }
            Ok(None) => return Outcome::NotWritten(failure.error),
            Err(e) if Instant::now() + pause > deadline => {
                tracing::warn!(error = %e, "whether a failed commit was written is unknown");
                return Outcome::Unknown(StoreError::CommitUnknown(format!(
                    "{}; the database did not say within {} s whether it was written",
                    failure.error,
                    COMMIT_CHECK_FOR.as_secs()
                )));
            }
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Inserts `commit`'s record with `results` on `conn`, inside the group's transaction, and
/// deletes the old records when it is the group's turn to.
pub(crate) async fn record_commit<DB>(
    conn: &mut DB::Connection,
    commit: &CommitRecord,
    results: &[Vec<bool>],
) -> Result<()>
where
    DB: sqlx::Database,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'t> &'t str: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    sqlx::query::<DB>("INSERT INTO write_commits (token, at_ms, results) VALUES ($1, $2, $3)")
        .bind(commit.token.as_str())
        .bind(commit.at_ms)
        .bind(encode_results(results))
        .execute(&mut *conn)
        .await?;
    if let Some(before) = commit.prune_before {
        sqlx::query::<DB>("DELETE FROM write_commits WHERE at_ms < $1")
            .bind(before)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Keeps the idempotency answers of a group's event batches, on `conn` inside the group's
/// transaction: the answer commits exactly when the events do.
pub(crate) async fn store_answers<DB>(conn: &mut DB::Connection, ops: &[WriteOp]) -> Result<()>
where
    DB: sqlx::Database,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'t> &'t str: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<&'t str>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> &'t [u8]: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    for op in ops {
        if let WriteOp::Events(_, Some(answer)) = op {
            sqlx::query::<DB>(crate::idempotency::COMPLETE_SQL)
                .bind(answer.subject.as_str())
                .bind(answer.key.as_str())
                .bind(i64::from(answer.response.status))
                .bind(answer.response.content_type.as_deref())
                .bind(answer.response.body.as_slice())
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// The results recorded under `token` by [`record_commit`], if its group was committed: the
/// one [`ApplyWrites::committed`] of both backends.
pub(crate) async fn read_commit<DB>(
    pool: &sqlx::Pool<DB>,
    token: &str,
) -> Result<Option<Vec<Vec<bool>>>>
where
    DB: sqlx::Database,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'t> &'t str: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    (String,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let row: Option<(String,)> =
        sqlx::query_as::<DB, (String,)>("SELECT results FROM write_commits WHERE token = $1")
            .bind(token)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(r,)| decode_results(&r)))
}

/// Per op, `1`/`0` per image (new or not); ops joined by `;`.
fn encode_results(results: &[Vec<bool>]) -> String {
    results
        .iter()
        .map(|op| {
            op.iter()
                .map(|&new| if new { '1' } else { '0' })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// The inverse of [`encode_results`].
fn decode_results(text: &str) -> Vec<Vec<bool>> {
    text.split(';')
        .map(|op| op.chars().map(|c| c == '1').collect())
        .collect()
}

/// The event recorded for a newly stored image.
pub(crate) fn image_event(image: &ImageRecord) -> NewEvent {
    NewEvent {
        client_id: image.client_id.clone(),
        image_id: Some(image.id.clone()),
        red: image.red,
        ts: image.created_at,
    }
}

/// The changes one batch makes to the rollups of one period: its period row (total and counts
/// per band) and one band row per band it touches.
#[derive(Debug, PartialEq)]
pub(crate) struct RollupDelta {
    /// The client, or [`ALL_CLIENTS`].
    pub client: String,
    /// The level number.
    pub level: i16,
    /// The period start (epoch ms, aligned).
    pub start: i64,
    /// Counts to add, per fine bin.
    pub bins: Bins,
}

impl RollupDelta {
    /// The delta adding `bins` (sorted fine-bin counts) to one period.
    pub fn new(client: &str, level: i16, start: i64, bins: Bins) -> RollupDelta {
        RollupDelta {
            client: client.to_owned(),
            level,
            start,
            bins,
        }
    }

    /// The number of events this delta adds.
    #[cfg(test)]
    pub fn total(&self) -> u64 {
        self.bins.iter().map(|&(_, n)| n).sum()
    }

    /// The fine-bin counts to add to each band row: `(band, counts)`, by band.
    pub fn per_band(&self) -> impl Iterator<Item = (u16, &[(u16, u64)])> + '_ {
        self.bins
            .chunk_by(|&(a, _), &(b, _)| bins::band_of_fine(a) == bins::band_of_fine(b))
            .map(|run| (bins::band_of_fine(run[0].0), run))
    }

    /// The same counts per band, for the period row.
    pub fn bands(&self) -> Bins {
        self.per_band()
            .map(|(band, run)| (band, run.iter().map(|&(_, n)| n).sum()))
            .collect()
    }
}

/// The counts one batch adds to one band row.
#[derive(Debug)]
pub(crate) struct BandDelta<'a> {
    /// The client, or [`ALL_CLIENTS`].
    pub client: &'a str,
    /// The level number.
    pub level: i16,
    /// The band number.
    pub band: i16,
    /// The period start.
    pub start: i64,
    /// Counts to add, per fine bin (all in `band`).
    pub bins: &'a [(u16, u64)],
}

impl<'a> BandDelta<'a> {
    /// The band rows a period delta touches.
    pub fn of(d: &'a RollupDelta) -> impl Iterator<Item = BandDelta<'a>> + 'a {
        d.per_band().map(move |(band, bins)| BandDelta {
            client: &d.client,
            level: d.level,
            band: i16::try_from(band).unwrap_or(i16::MAX),
            start: d.start,
            bins,
        })
    }
}

/// The rollup changes of a batch of events: per client and for all clients, per level and
/// period. Sorted by key, so concurrent writers touch rows in one order.
///
/// One pass groups the events by client and minute (the finest level; a live batch usually
/// spans one or two), hashing each event once rather than once per row it counts in; every
/// hour, day and all-clients row then gathers the bins of its minutes.
pub(crate) fn rollup_deltas<'a>(events: impl Iterator<Item = &'a NewEvent>) -> Vec<RollupDelta> {
    let mut minutes: Vec<((&str, i64), Vec<u16>)> = Vec::new();
    let mut index: HashMap<(&str, i64), usize> = HashMap::new();
    let mut last: Option<((&str, i64), usize)> = None;
    for e in events {
        let key = (e.client_id.as_str(), floor_to(e.ts, MINUTE));
        let slot = match last {
            Some((k, i)) if k == key => i,
            _ => *index.entry(key).or_insert_with(|| {
                minutes.push((key, Vec::new()));
                minutes.len() - 1
            }),
        };
        last = Some((key, slot));
        minutes[slot].1.push(bins::fine_bin(e.red));
    }
    // Each row gathers the fine bins of its minutes (a copy per row: linear in the events
    // whatever their spread in time), counted once at the end.
    let mut rows: BTreeMap<(&str, i16, i64), Vec<u16>> = BTreeMap::new();
    for ((client, minute), fine) in &minutes {
        for (level, span) in LEVELS {
            let start = floor_to(*minute, span);
            for key in [*client, ALL_CLIENTS] {
                rows.entry((key, level, start))
                    .or_default()
                    .extend_from_slice(fine);
            }
        }
    }
    rows.into_iter()
        .map(|((client, level, start), fine)| {
            RollupDelta::new(client, level, start, hist::from_bins(fine))
        })
        .collect()
}

/// The images of a write group, inserted on `conn` (inside the group's transaction): per op,
/// whether each of its images was new (events ops answer an empty list), and the events of
/// the new images with their records. The SQL is the same on both databases.
pub(crate) async fn insert_images<'o, DB>(
    conn: &mut DB::Connection,
    ops: &'o [WriteOp],
) -> Result<(Vec<Vec<bool>>, Vec<NewEvent>, Vec<&'o ImageRecord>)>
where
    DB: sqlx::Database,
    DB::Arguments: sqlx::IntoArguments<DB>,
    DB::QueryResult: RowsAffected,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'t> &'t str: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    f64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut results = Vec::with_capacity(ops.len());
    let mut image_events = Vec::new();
    let mut new_images = Vec::new();
    for op in ops {
        match op {
            WriteOp::Images(images) => {
                let mut inserted_each = Vec::with_capacity(images.len());
                for image in images {
                    let inserted = sqlx::query::<DB>(INSERT_IMAGE_SQL)
                        .bind(image.client_id.as_str())
                        .bind(image.id.as_str())
                        .bind(image.format.as_str())
                        .bind(i64::from(image.width))
                        .bind(i64::from(image.height))
                        .bind(i64::try_from(image.bytes).unwrap_or(i64::MAX))
                        .bind(image.red)
                        .bind(image.created_at)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected()
                        == 1;
                    if inserted {
                        image_events.push(image_event(image));
                        new_images.push(image);
                    }
                    inserted_each.push(inserted);
                }
                results.push(inserted_each);
            }
            WriteOp::Events(..) => results.push(Vec::new()),
        }
    }
    Ok((results, image_events, new_images))
}

/// Every event of a write group: those sent as events, then those of its new images.
pub(crate) fn group_events<'a>(
    ops: &'a [WriteOp],
    image_events: &'a [NewEvent],
) -> Vec<&'a NewEvent> {
    ops.iter()
        .filter_map(|op| match op {
            WriteOp::Events(e, _) => Some(e.iter()),
            WriteOp::Images(_) => None,
        })
        .flatten()
        .chain(image_events.iter())
        .collect()
}

/// Adds the bytes of the new images to their clients' stored bytes, on `conn`.
pub(crate) async fn add_image_bytes<DB>(
    conn: &mut DB::Connection,
    new_images: Vec<&ImageRecord>,
) -> Result<()>
where
    DB: sqlx::Database,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'t> &'t str: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    for (client, bytes) in image_bytes_by_client(new_images.into_iter()) {
        sqlx::query::<DB>(ADD_IMAGE_BYTES_SQL)
            .bind(client)
            .bind(bytes)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Adds `$2` bytes to the stored image bytes of client `$1` (a delta, negative on delete).
pub(crate) const ADD_IMAGE_BYTES_SQL: &str = "\
    INSERT INTO client_usage (client_id, image_bytes) VALUES ($1, $2) \
    ON CONFLICT (client_id) DO UPDATE \
    SET image_bytes = client_usage.image_bytes + excluded.image_bytes";

/// The bytes of newly inserted images per client, for [`ADD_IMAGE_BYTES_SQL`].
pub(crate) fn image_bytes_by_client<'a>(
    inserted: impl Iterator<Item = &'a ImageRecord>,
) -> BTreeMap<&'a str, i64> {
    let mut out: BTreeMap<&str, i64> = BTreeMap::new();
    for image in inserted {
        let add = i64::try_from(image.bytes).unwrap_or(i64::MAX);
        let slot = out.entry(image.client_id.as_str()).or_default();
        *slot = slot.saturating_add(add);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientId;

    fn job_of(client: &ClientId, events: usize) -> Job {
        let e = NewEvent {
            client_id: client.clone(),
            image_id: None,
            red: 0.5,
            ts: 0,
        };
        Job {
            op: WriteOp::Events(vec![e; events], None),
            reply: oneshot::channel().0,
        }
    }

    /// Issue #18, the noisy-neighbour benchmark: the writer took ops first come, first served,
    /// 50 000 events a group, so a 10-event batch waited behind everything a flood had queued.
    #[test]
    fn another_clients_batch_joins_the_next_group_ahead_of_the_floods_queue() {
        let (flood, polite) = (ClientId::generate(), ClientId::generate());
        let mut lines = Lines::default();
        for _ in 0..32 {
            lines.push(job_of(&flood, 5_000));
        }
        lines.push(job_of(&polite, 10));
        let (jobs, weight) = lines.take_group();
        let clients: Vec<&str> = jobs.iter().map(|j| j.op.client()).collect();
        assert!(clients.contains(&polite.as_str()), "{clients:?}");
        assert!(weight <= MAX_CLIENT_GROUP_EVENTS + 10, "{weight}");
        // The flood goes on in later groups, nothing lost or reordered within it.
        let mut rest = 0;
        while lines.len > 0 {
            let (jobs, weight) = lines.take_group();
            assert!(!jobs.is_empty() && weight <= MAX_CLIENT_GROUP_EVENTS);
            rest += jobs.len();
        }
        assert_eq!(rest + clients.len(), 33);
    }

    #[test]
    fn a_client_alone_still_gets_whole_groups_and_an_oversized_op_goes_alone() {
        let c = ClientId::generate();
        let mut lines = Lines::default();
        lines.push(job_of(&c, 30_000));
        for _ in 0..10 {
            lines.push(job_of(&c, 1_000));
        }
        let (jobs, weight) = lines.take_group();
        assert_eq!((jobs.len(), weight), (1, 30_000));
        let (jobs, weight) = lines.take_group();
        assert_eq!((jobs.len(), weight), (10, 10_000));
    }

    /// A database in memory whose commits land but whose first `fail_commits` commit answers
    /// are lost, as when PostgreSQL restarts while a group commits.
    #[derive(Default)]
    struct LostCommitAnswers {
        stored: std::sync::Mutex<Vec<usize>>,
        records: std::sync::Mutex<HashMap<String, String>>,
        fail_commits: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl ApplyWrites for Arc<LostCommitAnswers> {
        async fn apply(
            &self,
            ops: &[WriteOp],
            commit: &CommitRecord,
        ) -> std::result::Result<Vec<Vec<bool>>, ApplyFailure> {
            let results = vec![Vec::new(); ops.len()];
            self.stored
                .lock()
                .unwrap()
                .extend(ops.iter().map(WriteOp::weight));
            self.records
                .lock()
                .unwrap()
                .insert(commit.token.clone(), encode_results(&results));
            let lost = self
                .fail_commits
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| n.checked_sub(1),
                )
                .is_ok();
            if lost {
                return Err(ApplyFailure::at_commit(sqlx::Error::Io(
                    std::io::ErrorKind::ConnectionReset.into(),
                )));
            }
            Ok(results)
        }

        async fn committed(&self, token: &str) -> Result<Option<Vec<Vec<bool>>>> {
            let records = self.records.lock().unwrap();
            Ok(records.get(token).map(|r| decode_results(r)))
        }
    }

    #[test]
    fn commit_results_round_trip_for_events_and_images() {
        for results in [
            vec![vec![]],
            vec![vec![], vec![]],
            vec![vec![true, false], vec![], vec![false]],
        ] {
            assert_eq!(decode_results(&encode_results(&results)), results);
        }
    }

    fn events_of(client: &ClientId, n: usize) -> WriteOp {
        let e = NewEvent {
            client_id: client.clone(),
            image_id: None,
            red: 0.5,
            ts: 0,
        };
        WriteOp::Events(vec![e; n], None)
    }

    /// Issue #26, a clean-clone CI run of the cluster recovery test: a batch answered 503
    /// while PostgreSQL restarted had been stored (640 events counted of 630 accepted). A
    /// group whose commit landed but whose answer was lost was answered as failed, and a group
    /// of several ops was then applied again op by op, counting its events twice.
    #[tokio::test]
    async fn a_group_whose_commit_answer_was_lost_is_answered_stored_and_written_once() {
        let db = Arc::new(LostCommitAnswers::default());
        db.fail_commits
            .store(1, std::sync::atomic::Ordering::SeqCst);
        let writer = Writer::spawn(db.clone(), Doorbell::default());
        let c = ClientId::generate();
        // On this one-thread runtime both ops are queued before the writer task runs, so they
        // form one group.
        let (a, b) = tokio::join!(
            writer.submit(events_of(&c, 3)),
            writer.submit(events_of(&c, 4))
        );
        assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
        assert_eq!(
            *db.stored.lock().unwrap(),
            vec![3, 4],
            "each op written once"
        );
        db.fail_commits
            .store(1, std::sync::atomic::Ordering::SeqCst);
        let alone = writer.submit(events_of(&c, 5)).await;
        assert!(alone.is_ok(), "{alone:?}");
        assert_eq!(*db.stored.lock().unwrap(), vec![3, 4, 5]);
    }

    #[test]
    fn deltas_cover_every_level_for_the_client_and_for_all() {
        let c = ClientId::generate();
        let ev = |red: f64, ts: i64| NewEvent {
            client_id: c.clone(),
            image_id: None,
            red,
            ts,
        };
        let events = [ev(0.5, 61_000), ev(0.5, 62_000), ev(1.0, 3_600_000)];
        let d = rollup_deltas(events.iter());
        // 2 minutes + 2 hours + 1 day, for the client and for "*".
        assert_eq!(d.len(), 10);
        assert_eq!(d.iter().map(RollupDelta::total).sum::<u64>(), 3 * 3 * 2);
        let day = d
            .iter()
            .find(|r| r.client == c.as_str() && r.level == 2)
            .unwrap();
        assert_eq!(day.bins, vec![(5000, 2), (10_000, 1)]);
        assert_eq!(day.bands(), vec![(50, 2), (100, 1)]);
        let per_band: Vec<_> = day.per_band().collect();
        assert_eq!(
            per_band,
            vec![(50, &[(5000, 2)][..]), (100, &[(10_000, 1)][..])]
        );
    }

    #[test]
    fn deltas_equal_a_count_per_row_for_events_spread_over_days_and_clients() {
        let clients = [ClientId::generate(), ClientId::generate()];
        let mut seed = 0x1234_5678_9abc_def1u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let events: Vec<NewEvent> = (0..6000)
            .map(|_| NewEvent {
                client_id: clients[(next() % 2) as usize].clone(),
                image_id: None,
                red: (next() % 10_001) as f64 / 10_000.0,
                ts: (next() % (3 * 86_400_000)) as i64,
            })
            .collect();
        let mut expected: BTreeMap<(String, i16, i64), Vec<u16>> = BTreeMap::new();
        for e in &events {
            for (level, span) in LEVELS {
                for client in [e.client_id.as_str(), ALL_CLIENTS] {
                    expected
                        .entry((client.to_owned(), level, floor_to(e.ts, span)))
                        .or_default()
                        .push(bins::fine_bin(e.red));
                }
            }
        }
        let got: Vec<_> = rollup_deltas(events.iter())
            .into_iter()
            .map(|d| ((d.client, d.level, d.start), d.bins))
            .collect();
        let want: Vec<_> = expected
            .into_iter()
            .map(|(k, fine)| (k, hist::from_bins(fine)))
            .collect();
        assert_eq!(got, want);
    }
}
