//! `/jobs`: CSV-sum jobs (DESIGN §6). Submitting checks the source against what the operator
//! allowed at once (a local path without a local root or escaping it is a 400, an S3 object
//! outside `jobs-s3-allow` a 403, before anything is queued or fetched) and rings this
//! process's workers; the workers (`workers::jobs`) check again, run the job and write its
//! result.

use crate::error::{ApiError, ApiResult};
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
use serde::Deserialize;
use serde_json::{Value, json};

/// `POST /jobs` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    source: String,
    #[serde(default)]
    step: Option<u32>,
    #[serde(default)]
    delimiter: Option<String>,
    #[serde(default)]
    header: Option<bool>,
    #[serde(default)]
    skip_invalid: Option<bool>,
}

/// `?client=` — whose jobs an admin acts on (clients always act on their own).
#[derive(Debug, Default, Deserialize)]
pub struct ClientQuery {
    client: Option<String>,
}

/// `GET /jobs` query.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    state: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
    client: Option<String>,
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
        SourceError::NotFound { .. } => ApiError::unprocessable(e.code(), e.to_string()),
        SourceError::NotAllowed { .. } => {
            ApiError::new(StatusCode::FORBIDDEN, e.code(), e.to_string())
        }
        _ => ApiError::bad_request(e.code(), e.to_string()),
    }
}

fn spec_from(body: SubmitBody) -> ApiResult<JobSpec> {
    let step = body.step.unwrap_or(10);
    if step == 0 {
        return Err(ApiError::unprocessable(
            "invalid_step",
            "step must be at least 1",
        ));
    }
    let delimiter = match body.delimiter.as_deref() {
        None => b',',
        Some(d) if d.len() == 1 && !matches!(d.as_bytes()[0], b'"' | b'\n' | b'\r') => {
            d.as_bytes()[0]
        }
        Some(d) => {
            return Err(ApiError::unprocessable(
                "invalid_delimiter",
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
pub(crate) fn job_json(job: &JobRecord) -> Value {
    let p = &job.progress;
    let result = job.result.as_ref().map(|r| {
        let columns: Vec<Value> = r
            .columns
            .iter()
            .map(|c| {
                let mut col = json!({ "index": c.index, "name": c.name, "sum": c.sum });
                if job.spec.skip_invalid {
                    col["skipped"] = json!(c.skipped);
                }
                col
            })
            .collect();
        json!({ "rows": r.rows, "columns": columns })
    });
    json!({
        "id": job.id,
        "client_id": job.client_id,
        "state": job.state.as_str(),
        "source": job.spec.source,
        "step": job.spec.step,
        "delimiter": char::from(job.spec.delimiter).to_string(),
        "header": job.spec.header,
        "skip_invalid": job.spec.skip_invalid,
        "created_at": format_ms(job.created_at),
        "started_at": job.started_at.map(format_ms),
        "finished_at": job.finished_at.map(format_ms),
        "attempts": job.attempts,
        "cancel_requested": job.cancel_requested,
        "progress": {
            "bytes_done": p.bytes_done,
            "bytes_total": p.bytes_total,
            "rows": p.rows,
        },
        "result": result,
        "error": job.error.as_ref().map(|e| json!({ "code": e.code, "message": e.message })),
    })
}

/// `POST /jobs`: validate and enqueue; `202 {"id", "state": "queued"}`.
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
        Json(json!({ "id": job.id, "state": job.state.as_str() })),
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
#[tracing::instrument(name = "http.jobs.get", skip_all, fields(job = %id))]
pub async fn get(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(job_json(&find_visible(&state, &who, &id).await?)))
}

/// `GET /jobs/active`: `{"queued": n, "running": m}`.
#[tracing::instrument(name = "http.jobs.active", skip_all)]
pub async fn active(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<ClientQuery>,
) -> ApiResult<Json<Value>> {
    let scope = read_scope(&who, q.client.as_deref())?;
    let a = state.store.active_jobs(&scope).await?;
    Ok(Json(json!({ "queued": a.queued, "running": a.running })))
}

/// `GET /jobs?state=&cursor=&limit=`: newest first.
#[tracing::instrument(name = "http.jobs.list", skip_all)]
pub async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    let bad = |code, m: String| ApiError::bad_request(code, m);
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(bad(
            "invalid_query",
            "limit must be between 1 and 1000".into(),
        ));
    }
    let job_state = q
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            JobState::parse(s).ok_or_else(|| {
                bad(
                    "invalid_query",
                    format!(
                        "state {s:?} is not one of queued, running, succeeded, failed, canceled"
                    ),
                )
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
    let items: Vec<Value> = rows.iter().map(job_json).collect();
    Ok(Json(json!({ "items": items, "next_cursor": next })))
}

fn parse_cursor(c: &str) -> ApiResult<(i64, JobId)> {
    let bad = || ApiError::bad_request("invalid_cursor", "the cursor is not one this API returned");
    let (ts, id) = c.split_once('_').ok_or_else(bad)?;
    Ok((
        ts.parse().map_err(|_| bad())?,
        JobId::parse(id).ok_or_else(bad)?,
    ))
}

/// `DELETE /jobs/{id}`: cancel. A queued job is canceled at once (200); a running one is
/// asked to stop (202) and does within a second; a finished one is a 409.
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
                StatusCode::CONFLICT,
                "job_finished",
                format!("the job has already finished ({})", s.as_str()),
            ));
        }
    };
    let job = find_visible(&state, &who, &id).await?;
    Ok((status, Json(job_json(&job))).into_response())
}
