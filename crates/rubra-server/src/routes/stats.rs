//! `GET /stats`: exact event counts over `[from, to)`, optionally per bucket.
//!
//! `from`/`to` are RFC 3339 or epoch ms (default: the last 24 hours up to now); `threshold`
//! any finite number (default 0.5), `above` counting `red > threshold` strictly; `bucket` one
//! of `1m`, `5m`, `1h`, `1d` on the epoch-aligned UTC grid, at most [`MAX_BUCKETS`] buckets,
//! every bucket listed (empty ones too), each counting only its part inside `[from, to)`,
//! and `partial: true` on a bucket that is not over yet. A client sees its own events; an
//! admin all clients' or, with `client=`, one client's.

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, Caller};
use crate::state::AppState;
use crate::timefmt::{format_ms, parse_instant};
use axum::Json;
use axum::extract::State;
use rubra_store::{BucketWidth, ClientId, Principal, Scope, StatsQuery, now_ms};
use serde::Deserialize;
use serde_json::{Value, json};

/// The most buckets one query may ask for (a month of minutes fits).
pub const MAX_BUCKETS: i64 = 50_000;

const DEFAULT_SPAN_MS: i64 = 86_400_000;

/// Query of `GET /stats`.
#[derive(Debug, Deserialize)]
pub struct StatsParams {
    from: Option<String>,
    to: Option<String>,
    threshold: Option<String>,
    client: Option<String>,
    bucket: Option<String>,
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_query", m)
}

/// The range `[from, to)` of a query made at `now`, given the `from` and `to` it names.
///
/// The default end is just after the current millisecond: `to` is exclusive, and an event
/// stamped now (a moment ago, in this same millisecond) belongs to "the last 24 h". The
/// default start is 24 hours before the end.
fn range(now: i64, from: Option<i64>, to: Option<i64>) -> (i64, i64) {
    let to = to.unwrap_or(now.saturating_add(1));
    let from = from.unwrap_or(to.saturating_sub(DEFAULT_SPAN_MS));
    (from, to)
}

/// `GET /stats`.
#[tracing::instrument(name = "http.stats", skip_all)]
pub async fn get(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(p): ApiQuery<StatsParams>,
) -> ApiResult<Json<Value>> {
    let now = now_ms();
    let instant = |s: &Option<String>, name: &str| -> ApiResult<Option<i64>> {
        s.as_deref()
            .map(|v| parse_instant(v).map_err(|m| bad(format!("{name}: {m}"))))
            .transpose()
    };
    let (from, to) = range(now, instant(&p.from, "from")?, instant(&p.to, "to")?);
    if from > to {
        return Err(bad("from must not be after to"));
    }
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
    if let Some(w) = bucket
        && w.count(from, to) > MAX_BUCKETS
    {
        return Err(bad(format!(
            "bucket: {} buckets of {} asked, at most {MAX_BUCKETS}",
            w.count(from, to),
            w.as_str()
        )));
    }
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
    let query = StatsQuery {
        from,
        to,
        threshold,
        bucket,
    };
    let report = state.store.stats(&scope, &query).await?;
    let mut body = json!({
        "from": format_ms(from),
        "to": format_ms(to),
        "threshold": threshold,
        "client": scope.client_filter(),
        "total": report.total,
        "above": report.above,
    });
    if let Some(w) = bucket {
        let buckets: Vec<Value> = report
            .buckets
            .iter()
            .map(|b| {
                json!({
                    "start": format_ms(b.start),
                    "total": b.total,
                    "above": b.above,
                    "partial": b.start + w.ms() > now,
                })
            })
            .collect();
        body["bucket"] = json!(w.as_str());
        body["buckets"] = Value::Array(buckets);
    }
    Ok(Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_range_holds_an_event_of_this_millisecond() {
        let now = 1_763_856_000_123;
        let (from, to) = range(now, None, None);
        // An event stamped `now` is inside `[from, to)`, and the range spans 24 hours.
        assert!(from <= now && now < to);
        assert_eq!(to - from, DEFAULT_SPAN_MS);
        // Named bounds are kept as given; a named end moves the default start with it.
        assert_eq!(range(now, Some(5), Some(9)), (5, 9));
        assert_eq!(
            range(now, None, Some(DEFAULT_SPAN_MS + 7)),
            (7, DEFAULT_SPAN_MS + 7)
        );
    }
}
