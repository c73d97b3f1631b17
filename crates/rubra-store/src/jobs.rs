//! The CSV job queue: jobs leased to workers with a heartbeat, so a dead worker's job is
//! taken over when its lease expires.
//!
//! A claim makes a job `running` with `lease_owner` = the worker's instance id, a lease
//! deadline, and `attempts + 1`. The pair (owner, attempts) is the lease's fencing token
//! ([`Lease`]): every later write by the worker (heartbeat, result, failure) matches it, so a
//! worker whose lease expired and was taken over can no longer write anything — in particular
//! the result is written once, by the current holder of a running job.
//!
//! The per-client limit of running jobs holds across all processes because it is checked in
//! the claim itself: on SQLite the claim is one `UPDATE … WHERE id = (SELECT …)` statement
//! (SQLite has one writer, and a write statement holds the write lock from its start), on
//! PostgreSQL the candidate row is locked with `FOR UPDATE SKIP LOCKED` and the count is taken
//! under a per-client transaction-scoped advisory lock.

use crate::sql::{Backend, RowsAffected};
use crate::{ClientId, PgStore, Result, Scope, SqliteStore, StoreError, now_ms, random_id};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};
use std::fmt;
use std::time::Duration;

/// How many times a job is claimed before it fails for good (the first run included).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// The id of a job: `job_` followed by 16 random hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    /// A fresh random id.
    pub fn generate() -> Self {
        JobId(format!("job_{}", random_id(8)))
    }

    /// Accepts an id from a URL; `None` if it cannot be a job id.
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s.strip_prefix("job_")?;
        (hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| JobId(s.to_ascii_lowercase()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for a worker (or for its retry time).
    Queued,
    /// Leased to a worker.
    Running,
    /// Done, with a result.
    Succeeded,
    /// Done, with an error.
    Failed,
    /// Canceled before it finished.
    Canceled,
}

impl JobState {
    /// The state as stored and shown (`queued`, `running`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Canceled => "canceled",
        }
    }

    /// Parses a state name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "failed" => JobState::Failed,
            "canceled" => JobState::Canceled,
            _ => return None,
        })
    }

    /// True for the states a job never leaves.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Canceled
        )
    }
}

/// What a job sums and how to read it, as submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// The source as given: `s3://bucket/key` or a path relative to the local root.
    pub source: String,
    /// Sum every `step`-th column (1-based).
    pub step: u32,
    /// The field delimiter byte.
    pub delimiter: u8,
    /// Whether the first record is a header.
    pub header: bool,
    /// Count, rather than fail on, cells that are not numbers.
    pub skip_invalid: bool,
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The owner.
    pub client_id: ClientId,
    /// What to run.
    pub spec: JobSpec,
    /// Claims allowed before the job fails for good.
    pub max_attempts: u32,
    /// The most queued and running jobs the client may have, this one included.
    pub limit: u32,
}

/// Live progress of a running job, as last reported by its worker's heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JobProgress {
    /// Input bytes parsed.
    pub bytes_done: u64,
    /// Size of the input, once known.
    pub bytes_total: Option<u64>,
    /// Data rows counted.
    pub rows: u64,
}

/// The exact sum of one column of a finished job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobColumn {
    /// 1-based column index.
    pub index: u64,
    /// The header's name for the column, else `c<index>`.
    pub name: String,
    /// The exact decimal sum.
    pub sum: String,
    /// Cells skipped as not numbers (only when the job asked to skip them).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The result of a succeeded job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    /// Data rows.
    pub rows: u64,
    /// The summed columns in index order.
    pub columns: Vec<JobColumn>,
}

/// Why a job failed: a stable code and a message naming the cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobFailure {
    /// Machine-readable code (`csv_invalid_number`, `download_failed`, …).
    pub code: String,
    /// What happened.
    pub message: String,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// Its id.
    pub id: JobId,
    /// The owner.
    pub client_id: ClientId,
    /// What it runs.
    pub spec: JobSpec,
    /// Where it is.
    pub state: JobState,
    /// Submitted, epoch ms.
    pub created_at: i64,
    /// First claimed, epoch ms.
    pub started_at: Option<i64>,
    /// Reached a final state, epoch ms.
    pub finished_at: Option<i64>,
    /// Claims so far.
    pub attempts: u32,
    /// Claims allowed.
    pub max_attempts: u32,
    /// A cancel was asked for while it ran.
    pub cancel_requested: bool,
    /// Last reported progress.
    pub progress: JobProgress,
    /// The result, once succeeded.
    pub result: Option<JobResult>,
    /// The last failure: the final one for a failed job, the one being retried for a
    /// queued job waiting for its next attempt.
    pub error: Option<JobFailure>,
}

/// A page request over jobs, newest first.
#[derive(Debug, Clone, Default)]
pub struct JobPage {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Continue after this (created_at, id), as returned with the previous page.
    pub after: Option<(i64, JobId)>,
    /// At most this many.
    pub limit: u32,
}

/// The jobs in progress: `GET /jobs/active`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ActiveJobs {
    /// Waiting for a worker.
    pub queued: u64,
    /// Being run.
    pub running: u64,
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The job was queued and is now canceled.
    Canceled,
    /// The job is running: its worker sees the request on its next heartbeat and stops.
    Requested,
    /// The job had already finished in this state; nothing changed.
    AlreadyFinished(JobState),
}

/// A worker's hold on a running job. Every write under the lease is matched against it, so a
/// worker that lost the lease cannot change the job any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The job.
    pub job_id: JobId,
    /// The worker's instance id.
    pub owner: String,
    /// The claim number (the job's `attempts` after this claim): the fencing token.
    pub attempt: u32,
}

/// How a worker claims.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// The worker's instance id.
    pub owner: String,
    /// How long the lease lasts without a heartbeat.
    pub lease: Duration,
    /// Running jobs of one client allowed at once, across all workers.
    pub per_client_limit: u32,
}

/// A job handed to a worker by a claim.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// The lease to present on every later write.
    pub lease: Lease,
    /// The owner.
    pub client_id: ClientId,
    /// What to run.
    pub spec: JobSpec,
    /// Claims allowed.
    pub max_attempts: u32,
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseStatus {
    /// The lease was extended; keep going.
    Held,
    /// The lease was extended, and a cancel was asked for: stop.
    CancelRequested,
    /// The lease is gone (expired and taken over, or the job was finished): stop at once and
    /// write nothing.
    Lost,
}

/// Queue operations for CSV jobs (DESIGN §6).
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Enqueues a job.
    async fn submit_job(&self, job: &NewJob) -> Result<JobRecord>;

    /// Looks a job up within `scope`.
    async fn get_job(&self, scope: &Scope, id: &JobId) -> Result<Option<JobRecord>>;

    /// A page of jobs within `scope`, newest first.
    async fn list_jobs(&self, scope: &Scope, page: &JobPage) -> Result<Vec<JobRecord>>;

    /// Counts the queued and running jobs within `scope`.
    async fn active_jobs(&self, scope: &Scope) -> Result<ActiveJobs>;

    /// Cancels a job within `scope`: a queued job at once, a running one through the flag its
    /// worker reads on each heartbeat. `None` when there is no such job in scope.
    async fn cancel_job(&self, scope: &Scope, id: &JobId) -> Result<Option<CancelOutcome>>;

    /// Leases the oldest claimable job — queued and due, or running with an expired lease —
    /// whose client is under `per_client_limit` running jobs. `None` when there is none.
    ///
    /// Also settles expired leases that must not be taken over: a job whose cancel was asked
    /// for becomes `canceled`, one that used up its attempts becomes `failed`.
    async fn claim_job(&self, req: &ClaimRequest) -> Result<Option<ClaimedJob>>;

    /// Extends the lease by `extend` and stores the progress.
    async fn heartbeat_job(
        &self,
        lease: &Lease,
        progress: &JobProgress,
        extend: Duration,
    ) -> Result<LeaseStatus>;

    /// Writes the result of a job run under `lease`, with its final progress. The job becomes
    /// `succeeded`, or `canceled` (without a result) if a cancel was asked for meanwhile.
    /// `None` when the lease was lost: nothing is written.
    async fn complete_job(
        &self,
        lease: &Lease,
        result: &JobResult,
        progress: &JobProgress,
    ) -> Result<Option<JobState>>;

    /// Records a failed run under `lease`. With `retry_at` (epoch ms) and attempts left, the
    /// job goes back to `queued`, claimable from then on; otherwise it becomes `failed`. The
    /// failure is kept in `error` either way. `None` when the lease was lost.
    async fn fail_job(
        &self,
        lease: &Lease,
        failure: &JobFailure,
        retry_at: Option<i64>,
    ) -> Result<Option<JobState>>;

    /// Records that a run under `lease` stopped because a cancel was asked for. `false` when
    /// the lease was lost.
    async fn cancel_run(&self, lease: &Lease) -> Result<bool>;

    /// Gives a job back without counting the attempt against it (the worker is shutting
    /// down): it is queued again at once, with one more attempt allowed (`attempts` itself only
    /// grows, as it fences leases). `false` when the lease was lost.
    async fn release_job(&self, lease: &Lease) -> Result<bool>;
}

const JOB_COLUMNS: &str = "id, client_id, source, step, delimiter, header, skip_invalid, state, \
    created_at, started_at, finished_at, attempts, max_attempts, cancel_requested, bytes_done, \
    bytes_total, rows_done, result, error_code, error";

/// The condition on `jobs j` that a claim may take it: queued and due, or running with an
/// expired lease that may be taken over; of a client under the limit and not disabled (a
/// disabled client's jobs wait, a job already running finishes). `now` and `limit` are the
/// placeholders to use.
fn claimable(now: &str, limit: &str) -> String {
    format!(
        "((j.state = 'queued' AND j.run_after <= {now}) \
          OR (j.state = 'running' AND j.lease_until < {now} AND NOT j.cancel_requested \
              AND j.attempts < j.max_attempts)) \
        AND NOT EXISTS (SELECT 1 FROM clients c \
                        WHERE c.id = j.client_id AND c.disabled_at IS NOT NULL) \
        AND (SELECT COUNT(*) FROM jobs r \
             WHERE r.client_id = j.client_id AND r.state = 'running' \
               AND r.lease_until >= {now}) < {limit}"
    )
}

/// Sets a claimed job running: `$1` now, `$2` owner, `$3` lease deadline; the caller appends
/// the `WHERE` clause that picks the job.
const TAKE: &str = "\
    UPDATE jobs SET state = 'running', lease_owner = $2, lease_until = $3, \
        attempts = attempts + 1, started_at = COALESCE(started_at, $1), \
        bytes_done = 0, bytes_total = NULL, rows_done = 0 ";

const TAKE_RETURNING: &str = " RETURNING id, client_id, source, step, delimiter, header, skip_invalid, attempts, max_attempts";

/// Expired leases that must not be taken over: asked to cancel, or out of attempts.
const SETTLE_CANCELED: &str = "\
    UPDATE jobs SET state = 'canceled', finished_at = $1, lease_owner = NULL, lease_until = NULL \
    WHERE state = 'running' AND lease_until < $1 AND cancel_requested";
const SETTLE_EXHAUSTED: &str = "\
    UPDATE jobs SET state = 'failed', finished_at = $1, lease_owner = NULL, lease_until = NULL, \
        error_code = 'worker_lost', \
        error = 'the worker running the job stopped answering on every attempt (' \
                || CAST(attempts AS TEXT) || ' of ' || CAST(max_attempts AS TEXT) || ')' \
    WHERE state = 'running' AND lease_until < $1 AND attempts >= max_attempts";

/// Matches the current holder of a running job's lease: `$1` id, `$2` owner, `$3` attempt.
const HELD: &str = "id = $1 AND lease_owner = $2 AND attempts = $3 AND state = 'running'";

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn to_u32(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn decode_result(text: Option<String>) -> Result<Option<JobResult>> {
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| StoreError::Config(format!("a stored job result is not valid: {e}")))
    })
    .transpose()
}

/// The job queue's portable queries — every one but the claim — written once for both
/// databases: each backend's [`JobQueue`] impl delegates to these (`Jobs(self)`) and adds its
/// own `claim_job`.
pub(crate) struct Jobs<'a, S>(pub(crate) &'a S);

impl<S, DB> Jobs<'_, S>
where
    S: Backend<Db = DB>,
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    DB::QueryResult: RowsAffected,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> Option<&'t str>: Encode<'t, DB> + Type<DB>,
    String: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<String>: for<'r> Decode<'r, DB> + Type<DB>,
    bool: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i32: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<i64>: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
{
    fn job_from_row(row: &DB::Row) -> Result<JobRecord> {
        let delimiter: i32 = row.try_get(4)?;
        let state: String = row.try_get(7)?;
        let bytes_total: Option<i64> = row.try_get(15)?;
        let error_code: Option<String> = row.try_get(18)?;
        let error: Option<String> = row.try_get(19)?;
        Ok(JobRecord {
            id: JobId(row.try_get(0)?),
            client_id: ClientId::from_db(row.try_get(1)?),
            spec: JobSpec {
                source: row.try_get(2)?,
                step: to_u32(row.try_get(3)?),
                delimiter: u8::try_from(delimiter).unwrap_or(b','),
                header: row.try_get(5)?,
                skip_invalid: row.try_get(6)?,
            },
            state: JobState::parse(&state).ok_or_else(|| {
                StoreError::Config(format!("unknown job state {state:?} in the database"))
            })?,
            created_at: row.try_get(8)?,
            started_at: row.try_get(9)?,
            finished_at: row.try_get(10)?,
            attempts: to_u32(row.try_get(11)?),
            max_attempts: to_u32(row.try_get(12)?),
            cancel_requested: row.try_get(13)?,
            progress: JobProgress {
                bytes_done: to_u64(row.try_get(14)?),
                bytes_total: bytes_total.map(to_u64),
                rows: to_u64(row.try_get(16)?),
            },
            result: decode_result(row.try_get(17)?)?,
            error: match (error_code, error) {
                (Some(code), Some(message)) => Some(JobFailure { code, message }),
                (Some(code), None) => Some(JobFailure {
                    message: code.clone(),
                    code,
                }),
                _ => None,
            },
        })
    }

    pub(crate) fn claimed_from_row(row: &DB::Row) -> Result<ClaimedJob> {
        let delimiter: i32 = row.try_get(4)?;
        Ok(ClaimedJob {
            lease: Lease {
                job_id: JobId(row.try_get(0)?),
                owner: String::new(),
                attempt: to_u32(row.try_get(7)?),
            },
            client_id: ClientId::from_db(row.try_get(1)?),
            spec: JobSpec {
                source: row.try_get(2)?,
                step: to_u32(row.try_get(3)?),
                delimiter: u8::try_from(delimiter).unwrap_or(b','),
                header: row.try_get(5)?,
                skip_invalid: row.try_get(6)?,
            },
            max_attempts: to_u32(row.try_get(8)?),
        })
    }

    /// Settles expired leases that must not be taken over.
    pub(crate) async fn settle_expired(&self, now: i64) -> Result<()> {
        sqlx::query(SETTLE_CANCELED)
            .bind(now)
            .execute(self.0.pool())
            .await?;
        sqlx::query(SETTLE_EXHAUSTED)
            .bind(now)
            .execute(self.0.pool())
            .await?;
        Ok(())
    }

    #[tracing::instrument(name = "store.submit_job", skip_all, fields(client = %job.client_id))]
    pub(crate) async fn submit_job(&self, job: &NewJob) -> Result<JobRecord> {
        let id = JobId::generate();
        let now = now_ms();
        // One statement: the count and the insert see the same snapshot (SQLite has one
        // writer; on PostgreSQL two racing submits may pass the limit by one).
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO jobs (id, client_id, source, step, delimiter, header, \
                        skip_invalid, state, created_at, run_after, max_attempts) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, 'queued', $8, $8, $9 \
                     WHERE (SELECT COUNT(*) FROM jobs \
                            WHERE client_id = $2 AND state IN ('queued', 'running')) < $10 \
                     RETURNING {JOB_COLUMNS}"
        )))
        .bind(id.as_str())
        .bind(job.client_id.as_str())
        .bind(job.spec.source.as_str())
        .bind(to_i32(job.spec.step))
        .bind(i32::from(job.spec.delimiter))
        .bind(job.spec.header)
        .bind(job.spec.skip_invalid)
        .bind(now)
        .bind(to_i32(job.max_attempts.max(1)))
        .bind(i64::from(job.limit))
        .fetch_optional(self.0.pool())
        .await
        .map_err(|e| StoreError::from_insert(e, "a job with this id"))?;
        match row {
            Some(row) => Self::job_from_row(&row),
            None => Err(StoreError::QuotaExceeded(format!(
                "quota max-jobs-per-client: this client already has {} queued and \
                         running jobs, the most allowed",
                job.limit
            ))),
        }
    }

    #[tracing::instrument(name = "store.get_job", skip_all, fields(job = %id))]
    pub(crate) async fn get_job(&self, scope: &Scope, id: &JobId) -> Result<Option<JobRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs \
                     WHERE id = $1 AND (CAST($2 AS TEXT) IS NULL OR client_id = $2)"
        )))
        .bind(id.as_str())
        .bind(scope.client_filter())
        .fetch_optional(self.0.pool())
        .await?;
        row.as_ref().map(Self::job_from_row).transpose()
    }

    #[tracing::instrument(name = "store.list_jobs", skip_all)]
    pub(crate) async fn list_jobs(&self, scope: &Scope, page: &JobPage) -> Result<Vec<JobRecord>> {
        let (after_ts, after_id) = match &page.after {
            Some((ts, id)) => (Some(*ts), Some(id.as_str())),
            None => (None, None),
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs \
                     WHERE (CAST($1 AS TEXT) IS NULL OR client_id = $1) \
                       AND (CAST($2 AS TEXT) IS NULL OR state = $2) \
                       AND (CAST($3 AS BIGINT) IS NULL OR created_at < $3 \
                            OR (created_at = $3 AND id < $4)) \
                     ORDER BY created_at DESC, id DESC LIMIT $5"
        )))
        .bind(scope.client_filter())
        .bind(page.state.map(JobState::as_str))
        .bind(after_ts)
        .bind(after_id)
        .bind(i64::from(page.limit))
        .fetch_all(self.0.pool())
        .await?;
        rows.iter().map(Self::job_from_row).collect()
    }

    #[tracing::instrument(level = "debug", name = "store.active_jobs", skip_all)]
    pub(crate) async fn active_jobs(&self, scope: &Scope) -> Result<ActiveJobs> {
        let row = sqlx::query(
            "SELECT COUNT(CASE WHEN state = 'queued' THEN 1 END), \
                            COUNT(CASE WHEN state = 'running' THEN 1 END) \
                     FROM jobs WHERE state IN ('queued', 'running') \
                       AND (CAST($1 AS TEXT) IS NULL OR client_id = $1)",
        )
        .bind(scope.client_filter())
        .fetch_one(self.0.pool())
        .await?;
        Ok(ActiveJobs {
            queued: to_u64(row.try_get(0)?),
            running: to_u64(row.try_get(1)?),
        })
    }

    #[tracing::instrument(name = "store.cancel_job", skip_all, fields(job = %id))]
    pub(crate) async fn cancel_job(
        &self,
        scope: &Scope,
        id: &JobId,
    ) -> Result<Option<CancelOutcome>> {
        let now = now_ms();
        let row = sqlx::query(
            "UPDATE jobs SET \
                        cancel_requested = TRUE, \
                        finished_at = CASE WHEN state = 'queued' THEN $3 ELSE finished_at END, \
                        state = CASE WHEN state = 'queued' THEN 'canceled' ELSE state END \
                     WHERE id = $1 AND (CAST($2 AS TEXT) IS NULL OR client_id = $2) \
                       AND state IN ('queued', 'running') \
                     RETURNING state",
        )
        .bind(id.as_str())
        .bind(scope.client_filter())
        .bind(now)
        .fetch_optional(self.0.pool())
        .await?;
        if let Some(row) = row {
            let state: String = row.try_get(0)?;
            return Ok(Some(if state == "canceled" {
                CancelOutcome::Canceled
            } else {
                CancelOutcome::Requested
            }));
        }
        Ok(self
            .get_job(scope, id)
            .await?
            .map(|job| CancelOutcome::AlreadyFinished(job.state)))
    }

    #[tracing::instrument(
                name = "store.heartbeat_job", skip_all,
                fields(job = %lease.job_id, attempt = lease.attempt)
            )]
    pub(crate) async fn heartbeat_job(
        &self,
        lease: &Lease,
        progress: &JobProgress,
        extend: Duration,
    ) -> Result<LeaseStatus> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET lease_until = $4, bytes_done = $5, bytes_total = $6, \
                        rows_done = $7 \
                     WHERE {HELD} RETURNING cancel_requested"
        )))
        .bind(lease.job_id.as_str())
        .bind(lease.owner.as_str())
        .bind(to_i32(lease.attempt))
        .bind(now_ms().saturating_add(ms(extend)))
        .bind(to_i64(progress.bytes_done))
        .bind(progress.bytes_total.map(to_i64))
        .bind(to_i64(progress.rows))
        .fetch_optional(self.0.pool())
        .await?;
        Ok(match row {
            None => LeaseStatus::Lost,
            Some(row) if row.try_get::<bool, _>(0)? => LeaseStatus::CancelRequested,
            Some(_) => LeaseStatus::Held,
        })
    }

    #[tracing::instrument(
                name = "store.complete_job", skip_all,
                fields(job = %lease.job_id, attempt = lease.attempt)
            )]
    pub(crate) async fn complete_job(
        &self,
        lease: &Lease,
        result: &JobResult,
        progress: &JobProgress,
    ) -> Result<Option<JobState>> {
        let json = serde_json::to_string(result)
            .map_err(|e| StoreError::Config(format!("cannot encode a job result: {e}")))?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET \
                        state = CASE WHEN cancel_requested THEN 'canceled' ELSE 'succeeded' END, \
                        result = CASE WHEN cancel_requested THEN NULL ELSE $4 END, \
                        rows_done = $5, bytes_done = $7, bytes_total = $8, \
                        error_code = NULL, error = NULL, \
                        finished_at = $6, lease_owner = NULL, lease_until = NULL \
                     WHERE {HELD} RETURNING state"
        )))
        .bind(lease.job_id.as_str())
        .bind(lease.owner.as_str())
        .bind(to_i32(lease.attempt))
        .bind(json)
        .bind(to_i64(progress.rows))
        .bind(now_ms())
        .bind(to_i64(progress.bytes_done))
        .bind(progress.bytes_total.map(to_i64))
        .fetch_optional(self.0.pool())
        .await?;
        row.map(|r| {
            let s: String = r.try_get(0)?;
            Ok(JobState::parse(&s).unwrap_or(JobState::Succeeded))
        })
        .transpose()
    }

    #[tracing::instrument(
                name = "store.fail_job", skip_all,
                fields(job = %lease.job_id, attempt = lease.attempt, code = %failure.code)
            )]
    pub(crate) async fn fail_job(
        &self,
        lease: &Lease,
        failure: &JobFailure,
        retry_at: Option<i64>,
    ) -> Result<Option<JobState>> {
        let now = now_ms();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET \
                        state = CASE WHEN cancel_requested THEN 'canceled' \
                                     WHEN CAST($4 AS BIGINT) IS NOT NULL \
                                          AND attempts < max_attempts THEN 'queued' \
                                     ELSE 'failed' END, \
                        run_after = COALESCE(CAST($4 AS BIGINT), run_after), \
                        finished_at = CASE WHEN cancel_requested \
                                             OR CAST($4 AS BIGINT) IS NULL \
                                             OR attempts >= max_attempts THEN $5 END, \
                        error_code = $6, error = $7, lease_owner = NULL, lease_until = NULL \
                     WHERE {HELD} RETURNING state"
        )))
        .bind(lease.job_id.as_str())
        .bind(lease.owner.as_str())
        .bind(to_i32(lease.attempt))
        .bind(retry_at)
        .bind(now)
        .bind(failure.code.as_str())
        .bind(failure.message.as_str())
        .fetch_optional(self.0.pool())
        .await?;
        row.map(|r| {
            let s: String = r.try_get(0)?;
            Ok(JobState::parse(&s).unwrap_or(JobState::Failed))
        })
        .transpose()
    }

    #[tracing::instrument(
                name = "store.cancel_run", skip_all,
                fields(job = %lease.job_id, attempt = lease.attempt)
            )]
    pub(crate) async fn cancel_run(&self, lease: &Lease) -> Result<bool> {
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET state = 'canceled', finished_at = $4, \
                        lease_owner = NULL, lease_until = NULL \
                     WHERE {HELD}"
        )))
        .bind(lease.job_id.as_str())
        .bind(lease.owner.as_str())
        .bind(to_i32(lease.attempt))
        .bind(now_ms())
        .execute(self.0.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(
                name = "store.release_job", skip_all,
                fields(job = %lease.job_id, attempt = lease.attempt)
            )]
    pub(crate) async fn release_job(&self, lease: &Lease) -> Result<bool> {
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET \
                        state = CASE WHEN cancel_requested THEN 'canceled' ELSE 'queued' END, \
                        finished_at = CASE WHEN cancel_requested THEN $4 END, \
                        max_attempts = max_attempts + 1, run_after = $4, \
                        lease_owner = NULL, lease_until = NULL \
                     WHERE {HELD}"
        )))
        .bind(lease.job_id.as_str())
        .bind(lease.owner.as_str())
        .bind(to_i32(lease.attempt))
        .bind(now_ms())
        .execute(self.0.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// Implements [`JobQueue`] for a backend: every method a one-line call — of [`Jobs`] on the
/// store's pool, and of the backend's own claim function for `claim_job`.
macro_rules! impl_job_queue {
    ($store:ty, $claim:path) => {
        #[async_trait]
        impl JobQueue for $store {
            async fn claim_job(&self, req: &ClaimRequest) -> Result<Option<ClaimedJob>> {
                $claim(self, req).await
            }
            async fn submit_job(&self, job: &NewJob) -> Result<JobRecord> {
                Jobs(self).submit_job(job).await
            }
            async fn get_job(&self, scope: &Scope, id: &JobId) -> Result<Option<JobRecord>> {
                Jobs(self).get_job(scope, id).await
            }
            async fn list_jobs(&self, scope: &Scope, page: &JobPage) -> Result<Vec<JobRecord>> {
                Jobs(self).list_jobs(scope, page).await
            }
            async fn active_jobs(&self, scope: &Scope) -> Result<ActiveJobs> {
                Jobs(self).active_jobs(scope).await
            }
            async fn cancel_job(&self, scope: &Scope, id: &JobId) -> Result<Option<CancelOutcome>> {
                Jobs(self).cancel_job(scope, id).await
            }
            async fn heartbeat_job(
                &self,
                lease: &Lease,
                progress: &JobProgress,
                extend: Duration,
            ) -> Result<LeaseStatus> {
                Jobs(self).heartbeat_job(lease, progress, extend).await
            }
            async fn complete_job(
                &self,
                lease: &Lease,
                result: &JobResult,
                progress: &JobProgress,
            ) -> Result<Option<JobState>> {
                Jobs(self).complete_job(lease, result, progress).await
            }
            async fn fail_job(
                &self,
                lease: &Lease,
                failure: &JobFailure,
                retry_at: Option<i64>,
            ) -> Result<Option<JobState>> {
                Jobs(self).fail_job(lease, failure, retry_at).await
            }
            async fn cancel_run(&self, lease: &Lease) -> Result<bool> {
                Jobs(self).cancel_run(lease).await
            }
            async fn release_job(&self, lease: &Lease) -> Result<bool> {
                Jobs(self).release_job(lease).await
            }
        }
    };
}

impl_job_queue!(SqliteStore, claim_sqlite);
impl_job_queue!(PgStore, claim_postgres);

/// `claim_job` on SQLite. Oldest first; jobs submitted in the same millisecond keep their submission order
/// (`rowid` grows with each insert). One statement: SQLite takes the write lock when a write statement starts,
/// so the candidate chosen by the inner SELECT (and the client's running count in it) cannot
/// change before the UPDATE applies — in this process or any other on the same file.
#[tracing::instrument(level = "debug", name = "store.claim_job", skip_all, fields(owner = %req.owner))]
async fn claim_sqlite(store: &SqliteStore, req: &ClaimRequest) -> Result<Option<ClaimedJob>> {
    let now = now_ms();
    Jobs(store).settle_expired(now).await?;
    let sql = format!(
        "{TAKE} WHERE id = (SELECT j.id FROM jobs j WHERE {} \
                            ORDER BY j.created_at, j.rowid LIMIT 1) {TAKE_RETURNING}",
        claimable("$1", "$4"),
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(&req.owner)
        .bind(now.saturating_add(ms(req.lease)))
        .bind(i64::from(req.per_client_limit))
        .fetch_optional(store.pool())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut claimed = Jobs::<SqliteStore>::claimed_from_row(&row)?;
    claimed.lease.owner = req.owner.clone();
    Ok(Some(claimed))
}

/// `claim_job` on PostgreSQL. Oldest first (`seq` breaks ties within a millisecond). Each try is one transaction:
/// lock the oldest claimable row (`SKIP LOCKED`, so workers
/// never wait on each other's candidates), then take the client's advisory lock and count
/// its running jobs again — claims of one client are serialized there, so two workers
/// cannot both see "one below the limit". A client found at its limit is skipped on the
/// next try (in a fresh transaction, so no two advisory locks are ever held at once).
#[tracing::instrument(level = "debug", name = "store.claim_job", skip_all, fields(owner = %req.owner))]
async fn claim_postgres(store: &PgStore, req: &ClaimRequest) -> Result<Option<ClaimedJob>> {
    let now = now_ms();
    Jobs(store).settle_expired(now).await?;
    let limit = i64::from(req.per_client_limit);
    let mut skipped: Vec<String> = Vec::new();
    for _ in 0..16 {
        let mut tx = store.pool().begin().await?;
        let candidate = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT j.id, j.client_id FROM jobs j WHERE {} \
               AND NOT (j.client_id = ANY($3)) \
             ORDER BY j.created_at, j.seq LIMIT 1 FOR UPDATE SKIP LOCKED",
            claimable("$1", "$2"),
        )))
        .bind(now)
        .bind(limit)
        .bind(&skipped)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(candidate) = candidate else {
            tx.rollback().await?;
            return Ok(None);
        };
        let id: String = candidate.try_get(0)?;
        let client: String = candidate.try_get(1)?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('rubra.jobs:' || $1, 0))")
            .bind(&client)
            .execute(&mut *tx)
            .await?;
        let running: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE client_id = $1 AND state = 'running' \
               AND lease_until >= $2 AND id <> $3",
        )
        .bind(&client)
        .bind(now)
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
        if running >= limit {
            tx.rollback().await?;
            skipped.push(client);
            continue;
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{TAKE} WHERE id = $4 {TAKE_RETURNING}"
        )))
        .bind(now)
        .bind(&req.owner)
        .bind(now.saturating_add(ms(req.lease)))
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut claimed = Jobs::<PgStore>::claimed_from_row(&row)?;
        claimed.lease.owner = req.owner.clone();
        return Ok(Some(claimed));
    }
    Ok(None)
}
