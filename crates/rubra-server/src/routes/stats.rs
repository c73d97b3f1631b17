//! `GET /stats`: exact event counts over `[from, to)`, optionally per bucket.
//!
//! `from`/`to` are RFC 3339 or epoch ms between 1970-01-01T00:00:00Z and
//! 9999-12-31T23:59:59.999Z (default: the last 24 hours up to now; malformed: 400
//! `invalid_query`, out of range: 422 `invalid_timestamp`, `from` after `to`: 400
//! `invalid_query`); `threshold` any finite number (default 0.5), `above` counting
//! `red > threshold` strictly; `bucket` one of `1m`, `5m`, `1h`, `1d` on the epoch-aligned UTC
//! grid, at most [`MAX_BUCKETS`](rubra_store::MAX_BUCKETS) buckets (else 422
//! `too_many_buckets`), every bucket listed
//! (empty ones too), each counting only its part inside `[from, to)`, and `partial: true` on a
//! bucket that is not over yet. A client sees its own events; an admin all clients' or, with
//! `client=`, one client's. The store answers any range at a cost that does not grow with its
//! length; the answer of a bucketed query is built and serialized on the blocking pool.

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ApiQuery, Caller};
use crate::state::AppState;
use crate::timefmt::{format_ms, query_timestamp};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use rubra_store::{
    BucketWidth, ClientId, Principal, Scope, StatsQuery, StatsQueryError, StatsReport, Timestamp,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

const DEFAULT_SPAN_MS: i64 = 86_400_000;

/// Query of `GET /stats`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// Start of the range, inclusive (RFC 3339 or epoch ms) [default: 24 h before `to`].
    #[param(schema_with = crate::openapi::instant_in)]
    from: Option<String>,
    /// End of the range, exclusive (RFC 3339 or epoch ms) [default: now].
    #[param(schema_with = crate::openapi::instant_in)]
    to: Option<String>,
    /// `above` counts events whose red level is strictly above this finite number
    /// [default 0.5].
    #[param(
        pattern = "^[+-]?(?:[0-9]{1,15}(?:\\.[0-9]{0,15})?|\\.[0-9]{1,15})(?:[eE][+-]?[0-9]{1,2})?$"
    )]
    threshold: Option<String>,
    /// An admin's: only this client's events.
    client: Option<String>,
    /// Count per bucket of this width: `1m`, `5m`, `1h` or `1d` (empty: one total).
    #[param(pattern = "^(1m|5m|1h|1d)?$")]
    bucket: Option<String>,
}

/// The body of `GET /stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsAnswer {
    /// Start of the range (RFC 3339, UTC, ms).
    from: String,
    /// End of the range, exclusive.
    to: String,
    /// The threshold `above` counts from.
    threshold: f64,
    /// The client the counts are of; null: every client the caller sees.
    client: Option<String>,
    /// Events in the range.
    total: u64,
    /// Events in the range strictly above the threshold.
    above: u64,
    /// The bucket width, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket: Option<&'static str>,
    /// Every bucket of the range, empty ones too, when a width was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    buckets: Option<Vec<Bucket>>,
}

/// One bucket of `GET /stats?bucket=`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Bucket {
    /// Its start on the epoch-aligned UTC grid (RFC 3339, UTC, ms).
    start: String,
    /// Events in its part of the range.
    total: u64,
    /// Those strictly above the threshold.
    above: u64,
    /// It is not over yet.
    partial: bool,
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidQuery, m)
}

/// The range `[from, to)` of a query made at `now`, given the `from` and `to` it names.
///
/// The default end is just after the current millisecond: `to` is exclusive, and an event
/// stamped now (a moment ago, in this same millisecond) belongs to "the last 24 h". The
/// default start is 24 hours before the end (neither leaves the range of a [`Timestamp`]:
/// both saturate).
fn range(now: Timestamp, from: Option<Timestamp>, to: Option<Timestamp>) -> (Timestamp, Timestamp) {
    let to = to.unwrap_or(Timestamp::saturating_from_ms(now.as_ms() + 1));
    let from = from.unwrap_or_else(|| Timestamp::saturating_from_ms(to.as_ms() - DEFAULT_SPAN_MS));
    (from, to)
}

/// `GET /stats`.
#[utoipa::path(
    get,
    path = "/stats",
    tag = "events",
    params(StatsParams),
    responses((status = 200, description = "Exact counts over the range", body = StatsAnswer)),
)]
#[tracing::instrument(name = "http.stats", skip_all)]
pub async fn get(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(p): ApiQuery<StatsParams>,
) -> ApiResult<Response> {
    let now = Timestamp::now();
    let instant = |s: &Option<String>, name: &str| -> ApiResult<Option<Timestamp>> {
        s.as_deref().map(|v| query_timestamp(name, v)).transpose()
    };
    let (from, to) = range(now, instant(&p.from, "from")?, instant(&p.to, "to")?);
    let threshold = match p.threshold.as_deref() {
        None => 0.5,
        Some(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|t| t.is_finite())
            .ok_or_else(|| bad(format!("threshold: {s:?} is not a finite number")))?,
    };
    let bucket = match p.bucket.as_deref() {
        None | Some("") => None,
        Some(b) => Some(
            BucketWidth::parse(b)
                .ok_or_else(|| bad(format!("bucket: {b:?} is not one of 1m, 5m, 1h, 1d")))?,
        ),
    };
    let query = StatsQuery::new(from, to, threshold, bucket).map_err(|e| match e {
        StatsQueryError::Reversed { .. } => bad("from must not be after to"),
        StatsQueryError::Threshold(_) => bad(format!("threshold: {e}")),
        StatsQueryError::TooManyBuckets { .. } => {
            ApiError::new(ErrorCode::TooManyBuckets, format!("bucket: {e}"))
        }
    })?;
    let scope = match (&who, p.client.as_deref()) {
        (Principal::Client(own), None) => Scope::Client(own.clone()),
        (Principal::Client(own), Some(c)) if c == own.as_str() => Scope::Client(own.clone()),
        (Principal::Client(_), Some(_)) => return Err(ApiError::not_found("client")),
        (Principal::Admin, None) => Scope::All,
        (Principal::Admin, Some(c)) => {
            let id = ClientId::parse(c).ok_or_else(|| ApiError::not_found("client"))?;
            let client = state.store.get_client(&Scope::All, &id).await?;
            Scope::Client(client.ok_or_else(|| ApiError::not_found("client"))?.id)
        }
    };
    let report = state.store.stats(&scope, &query).await?;
    let client = scope.client_filter().map(str::to_owned);
    // Up to MAX_BUCKETS buckets are formatted and serialized: CPU work, off the async workers.
    let body = tokio::task::spawn_blocking(move || {
        serde_json::to_vec(&answer(&query, client.as_deref(), &report, now))
    })
    .await
    .map_err(|e| ApiError::internal(&e))?
    .map_err(|e| ApiError::internal(&e))?;
    Ok(([(CONTENT_TYPE, "application/json")], body).into_response())
}

/// The JSON answer to `query` (made at `now`) for the client filter `client`.
fn answer(
    query: &StatsQuery,
    client: Option<&str>,
    report: &StatsReport,
    now: Timestamp,
) -> StatsAnswer {
    let bucket = query.bucket();
    StatsAnswer {
        from: format_ms(query.from().as_ms()),
        to: format_ms(query.to().as_ms()),
        threshold: query.threshold(),
        client: client.map(str::to_owned),
        total: report.total,
        above: report.above,
        bucket: bucket.map(|w| w.as_str()),
        buckets: bucket.map(|w| {
            report
                .buckets
                .iter()
                .map(|b| Bucket {
                    start: format_ms(b.start),
                    total: b.total,
                    above: b.above,
                    // No overflow: a bucket starts at most a day before `to`.
                    partial: b.start + w.ms() > now.as_ms(),
                })
                .collect()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_range_holds_an_event_of_this_millisecond() {
        let ts = |ms| Timestamp::from_ms(ms).unwrap();
        let ms = |(from, to): (Timestamp, Timestamp)| (from.as_ms(), to.as_ms());
        let now = 1_763_856_000_123;
        let (from, to) = ms(range(ts(now), None, None));
        // An event stamped `now` is inside `[from, to)`, and the range spans 24 hours.
        assert!(from <= now && now < to);
        assert_eq!(to - from, DEFAULT_SPAN_MS);
        // Named bounds are kept as given; a named end moves the default start with it.
        assert_eq!(ms(range(ts(now), Some(ts(5)), Some(ts(9)))), (5, 9));
        assert_eq!(
            ms(range(ts(now), None, Some(ts(DEFAULT_SPAN_MS + 7)))),
            (7, DEFAULT_SPAN_MS + 7)
        );
        // The defaults stay inside the range of a timestamp at its ends.
        assert_eq!(ms(range(ts(now), None, Some(ts(5)))), (0, 5));
        assert_eq!(
            ms(range(Timestamp::MAX, None, None)),
            (
                Timestamp::MAX.as_ms() - DEFAULT_SPAN_MS,
                Timestamp::MAX.as_ms()
            )
        );
    }
}
