//! `/jobs`: CSV-sum jobs (DESIGN §6). Submitting checks the source against what the operator
//! allowed at once (a local path without a local root or escaping it is a 400, an S3 object
//! outside `jobs-s3-allow` a 403, before anything is queued or fetched) and rings this
//! process's workers; the workers (`workers::jobs`) check again, run the job and write its
//! result.

use super::Page;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ApiJson, ApiQuery, Caller, client_of};
use crate::quotas::{self, Quota};
use crate::state::AppState;
use crate::timefmt::format_ms;
use crate::workers::jobs as job_workers;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rubra_jobs::{JobSource, SourceError};
use rubra_store::{
    CancelOutcome, ClientId, DEFAULT_MAX_ATTEMPTS, JobId, JobPage, JobRecord, JobSpec, JobState,
    NewJob, Principal, Scope,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `POST /jobs` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    /// The CSV: a file beneath `--jobs-local-root` named by a relative path (else 400; 422
    /// `source_not_found` when there is no such file), or `s3://bucket/key` in
    /// `--jobs-s3-allow` (else 403). Which exist is the operator's to say, at run time.
    #[schema(
        min_length = 1,
        pattern = "^[^\\u0000]+$",
        example = "sales/2026-11.csv"
    )]
    source: String,
    /// Progress is recorded every `step` MiB [default 10].
    #[serde(default, deserialize_with = "crate::integral::optional_integer")]
    #[schema(minimum = 1, nullable = false)]
    step: Option<u32>,
    /// One ASCII character other than a quote or a line end [default `,`].
    #[serde(default)]
    #[schema(
        nullable = false,
        pattern = "^[\\u0000-\\u0009\\u000B\\u000C\\u000E-\\u0021\\u0023-\\u007F]$"
    )]
    delimiter: Option<String>,
    /// The first row names the columns [default true].
    #[serde(default)]
    #[schema(nullable = false)]
    header: Option<bool>,
    /// Cells that are not numbers are counted and skipped instead of failing the job
    /// [default false].
    #[serde(default)]
    #[schema(nullable = false)]
    skip_invalid: Option<bool>,
}

/// `?client=` — whose jobs an admin acts on (clients always act on their own).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClientQuery {
    /// An admin's: the client to act for (required for an admin where it creates).
    client: Option<String>,
}

/// `GET /jobs` query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only jobs in this state (empty: any).
    #[param(pattern = "^(queued|running|succeeded|failed|canceled)?$")]
    state: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^([0-9]{1,15}_job_[0-9a-f]{16})?$")]
    cursor: Option<String>,
    /// Jobs per page, 1 to 1000 [default 50].
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// An admin's: only this client's jobs.
    client: Option<String>,
}

/// A column's exact sum.
#[derive(Debug, Serialize, ToSchema)]
pub struct ColumnSum {
    /// 1-based column index.
    index: u64,
    /// The header's name for the column, else `c<index>`.
    name: String,
    /// The exact decimal sum.
    sum: String,
    /// Cells skipped as not numbers (present when the job skips them).
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<u64>,
}

/// The result of a succeeded job.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobResultView {
    /// Data rows read.
    rows: u64,
    /// Per column, its sum.
    columns: Vec<ColumnSum>,
}

/// How far a job got.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobProgressView {
    /// Bytes read.
    bytes_done: u64,
    /// The source's size, when known.
    bytes_total: Option<u64>,
    /// Rows read.
    rows: u64,
}

/// Why a job failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobErrorView {
    /// Stable and machine-readable.
    code: String,
    /// For people.
    message: String,
}

/// A job.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    /// Its id.
    id: String,
    /// Whose.
    client_id: String,
    /// `queued`, `running`, `succeeded`, `failed` or `canceled`.
    state: &'static str,
    /// The CSV it sums.
    source: String,
    /// Progress step, MiB.
    step: u32,
    /// The delimiter.
    delimiter: String,
    /// Whether the first row names the columns.
    header: bool,
    /// Whether cells that are not numbers are skipped.
    skip_invalid: bool,
    /// When it was submitted (RFC 3339, UTC, ms).
    created_at: String,
    /// When a worker started it last.
    started_at: Option<String>,
    /// When it finished.
    finished_at: Option<String>,
    /// How many times a worker took it.
    attempts: u32,
    /// A cancel was asked for and the job has not stopped yet.
    cancel_requested: bool,
    /// How far it got.
    progress: JobProgressView,
    /// The sums, once succeeded.
    result: Option<JobResultView>,
    /// Why it failed.
    error: Option<JobErrorView>,
}

/// `202` answer of `POST /jobs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobQueued {
    /// The new job's id.
    id: String,
    /// `queued`.
    state: &'static str,
}

/// `GET /jobs/active`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActiveJobs {
    /// Jobs waiting for a worker.
    queued: u64,
    /// Jobs a worker runs.
    running: u64,
}

fn parse_client(c: &str) -> ApiResult<ClientId> {
    ClientId::parse(c).ok_or_else(|| ApiError::not_found("client"))
}

/// The scope of a read: a client's own jobs; an admin's all, or one client's with `?client=`.
fn read_scope(who: &Principal, client: Option<&str>) -> ApiResult<Scope> {
    match (who, client) {
        (Principal::Admin, Some(c)) => Ok(Scope::Client(parse_client(c)?)),
        _ => Ok(who.scope()),
    }
}

/// The response to a refused source: 422 for a missing file, 403 for an S3 object outside
/// the allow-list, 400 otherwise.
fn source_error(e: &SourceError) -> ApiError {
    match e {
        SourceError::NotFound { .. } => ApiError::foreign(422, e.code(), e.to_string()),
        SourceError::NotAllowed { .. } => ApiError::foreign(403, e.code(), e.to_string()),
        _ => ApiError::foreign(400, e.code(), e.to_string()),
    }
}

fn spec_from(body: SubmitBody) -> ApiResult<JobSpec> {
    let step = body.step.unwrap_or(10);
    if step == 0 {
        return Err(ApiError::new(
            ErrorCode::InvalidStep,
            "step must be at least 1",
        ));
    }
    let delimiter = match body.delimiter.as_deref() {
        None => b',',
        Some(d) if d.len() == 1 && !matches!(d.as_bytes()[0], b'"' | b'\n' | b'\r') => {
            d.as_bytes()[0]
        }
        Some(d) => {
            return Err(ApiError::new(
                ErrorCode::InvalidDelimiter,
                format!(
                    "delimiter {d:?} must be one ASCII character other than a quote or a line end"
                ),
            ));
        }
    };
    Ok(JobSpec {
        source: body.source,
        step,
        delimiter,
        header: body.header.unwrap_or(true),
        skip_invalid: body.skip_invalid.unwrap_or(false),
    })
}

/// The JSON form of a job.
pub(crate) fn job_json(job: &JobRecord) -> JobView {
    let p = &job.progress;
    let result = job.result.as_ref().map(|r| JobResultView {
        rows: r.rows,
        columns: r
            .columns
            .iter()
            .map(|c| ColumnSum {
                index: c.index,
                name: c.name.clone(),
                sum: c.sum.clone(),
                skipped: job.spec.skip_invalid.then_some(c.skipped),
            })
            .collect(),
    });
    JobView {
        id: job.id.to_string(),
        client_id: job.client_id.to_string(),
        state: job.state.as_str(),
        source: job.spec.source.clone(),
        step: job.spec.step,
        delimiter: char::from(job.spec.delimiter).to_string(),
        header: job.spec.header,
        skip_invalid: job.spec.skip_invalid,
        created_at: format_ms(job.created_at),
        started_at: job.started_at.map(format_ms),
        finished_at: job.finished_at.map(format_ms),
        attempts: job.attempts,
        cancel_requested: job.cancel_requested,
        progress: JobProgressView {
            bytes_done: p.bytes_done,
            bytes_total: p.bytes_total,
            rows: p.rows,
        },
        result,
        error: job.error.as_ref().map(|e| JobErrorView {
            code: e.code.clone(),
            message: e.message.clone(),
        }),
    }
}

/// `POST /jobs`: validate and enqueue; `202 {"id", "state": "queued"}`.
#[utoipa::path(
    post,
    path = "/jobs",
    tag = "jobs",
    params(ClientQuery),
    request_body = SubmitBody,
    responses((status = 202, description = "Queued", body = JobQueued)),
)]
#[tracing::instrument(name = "http.jobs.submit", skip_all)]
pub async fn submit(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<ClientQuery>,
    ApiJson(body): ApiJson<SubmitBody>,
) -> ApiResult<Response> {
    let client = client_of(&state, &who, q.client.as_deref()).await?;
    let spec = spec_from(body)?;
    // Checked here so a source the operator did not allow is refused before anything is
    // queued or fetched; the worker checks again before reading (the file system may have
    // changed, the allow-list narrowed). Off the async threads: it stats a local file.
    let policy = job_workers::source_policy(&state.settings);
    let source = spec.source.clone();
    tokio::task::spawn_blocking(move || JobSource::parse(&source, &policy))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| source_error(&e))?;
    let limit = quotas::limit_u32(&state, &client, Quota::Jobs).await?;
    let job = state
        .store
        .submit_job(&NewJob {
            client_id: client,
            spec,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            limit,
        })
        .await?;
    state.wakeups.jobs.wake();
    tracing::info!(job = %job.id, "job queued");
    Ok((
        StatusCode::ACCEPTED,
        Json(JobQueued {
            id: job.id.to_string(),
            state: job.state.as_str(),
        }),
    )
        .into_response())
}

async fn find_visible(state: &AppState, who: &Principal, id: &str) -> ApiResult<JobRecord> {
    let id = JobId::parse(id).ok_or_else(|| ApiError::not_found("job"))?;
    state
        .store
        .get_job(&who.scope(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))
}

/// `GET /jobs/{id}`.
#[utoipa::path(
    get,
    path = "/jobs/{id}",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "The job", body = JobView)),
)]
#[tracing::instrument(name = "http.jobs.get", skip_all, fields(job = %id))]
pub async fn get(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    Ok(Json(job_json(&find_visible(&state, &who, &id).await?)))
}

/// `GET /jobs/active`: `{"queued": n, "running": m}`.
#[utoipa::path(
    get,
    path = "/jobs/active",
    tag = "jobs",
    params(ClientQuery),
    responses((status = 200, description = "How many jobs wait and run", body = ActiveJobs)),
)]
#[tracing::instrument(name = "http.jobs.active", skip_all)]
pub async fn active(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<ClientQuery>,
) -> ApiResult<Json<ActiveJobs>> {
    let scope = read_scope(&who, q.client.as_deref())?;
    let a = state.store.active_jobs(&scope).await?;
    Ok(Json(ActiveJobs {
        queued: a.queued,
        running: a.running,
    }))
}

/// `GET /jobs?state=&cursor=&limit=`: newest first.
#[utoipa::path(
    get,
    path = "/jobs",
    tag = "jobs",
    params(ListQuery),
    responses((status = 200, description = "A page of jobs, newest first", body = Page<JobView>)),
)]
#[tracing::instrument(name = "http.jobs.list", skip_all)]
pub async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<JobView>>> {
    let bad = |m: String| ApiError::new(ErrorCode::InvalidQuery, m);
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(bad("limit must be between 1 and 1000".into()));
    }
    let job_state = q
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            JobState::parse(s).ok_or_else(|| {
                bad(format!(
                    "state {s:?} is not one of queued, running, succeeded, failed, canceled"
                ))
            })
        })
        .transpose()?;
    let after = q
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(parse_cursor)
        .transpose()?;
    let scope = read_scope(&who, q.client.as_deref())?;
    let rows = state
        .store
        .list_jobs(
            &scope,
            &JobPage {
                state: job_state,
                after,
                limit,
            },
        )
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|j| format!("{}_{}", j.created_at, j.id)))
        .flatten();
    Ok(Json(Page {
        items: rows.iter().map(job_json).collect(),
        next_cursor: next,
    }))
}

fn parse_cursor(c: &str) -> ApiResult<(i64, JobId)> {
    let bad = || {
        ApiError::new(
            ErrorCode::InvalidCursor,
            "the cursor is not one this API returned",
        )
    };
    let (ts, id) = c.split_once('_').ok_or_else(bad)?;
    Ok((
        ts.parse().map_err(|_| bad())?,
        JobId::parse(id).ok_or_else(bad)?,
    ))
}

/// `DELETE /jobs/{id}`: cancel. A queued job is canceled at once (200); a running one is
/// asked to stop (202) and does within a second; a finished one is a 409.
#[utoipa::path(
    delete,
    path = "/jobs/{id}",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "A queued job, canceled", body = JobView),
        (status = 202, description = "A running job, asked to stop", body = JobView),
    ),
)]
#[tracing::instrument(name = "http.jobs.cancel", skip_all, fields(job = %id))]
pub async fn cancel(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let job_id = JobId::parse(&id).ok_or_else(|| ApiError::not_found("job"))?;
    let scope = who.scope();
    let outcome = state
        .store
        .cancel_job(&scope, &job_id)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    let status = match outcome {
        CancelOutcome::Canceled => StatusCode::OK,
        CancelOutcome::Requested => {
            // Stops at once if this process runs it; other processes see the flag on their
            // next heartbeat.
            state.wakeups.jobs.cancel_local(&job_id);
            StatusCode::ACCEPTED
        }
        CancelOutcome::AlreadyFinished(s) => {
            return Err(ApiError::new(
                ErrorCode::JobFinished,
                format!("the job has already finished ({})", s.as_str()),
            ));
        }
    };
    let job = find_visible(&state, &who, &id).await?;
    Ok((status, Json(job_json(&job))).into_response())
}
