//! `GET /debug/profile`: a CPU profile of this process as a flamegraph SVG, for admins.

use crate::error::{ApiError, ErrorCode};
use crate::extract::{Admin, ApiQuery};
use crate::state::AppState;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use rubra_telemetry::ProfileError;
use serde::Deserialize;
use std::time::Duration;

/// The longest profile one request may ask for.
const MAX_SECONDS: u64 = 60;
/// Samples per second: enough detail, negligible overhead.
const FREQUENCY: i32 = 99;

/// Query of `GET /debug/profile`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProfileQuery {
    /// How long to sample, 1 to 60 seconds and below the request timeout [default 10].
    #[param(minimum = 1, maximum = 60)]
    seconds: Option<u64>,
}

/// `GET /debug/profile?seconds=N`: samples every thread for N seconds (capped at 60 and
/// below the request timeout) and answers with a flamegraph SVG.
#[utoipa::path(
    get,
    path = "/debug/profile",
    tag = "operations",
    params(ProfileQuery),
    responses(
        (status = 200, description = "A flamegraph of this process", content_type = "image/svg+xml", body = String),
    ),
)]
#[tracing::instrument(name = "http.debug_profile", skip_all, fields(seconds))]
pub async fn profile(
    _admin: Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ProfileQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let cap = MAX_SECONDS.min(state.settings.request_timeout.as_secs().saturating_sub(1));
    let seconds = q.seconds.unwrap_or(10);
    if seconds == 0 || seconds > cap {
        return Err(ApiError::new(
            ErrorCode::InvalidSeconds,
            format!("seconds must be between 1 and {cap} (the request timeout caps it)"),
        ));
    }
    tracing::Span::current().record("seconds", seconds);
    let svg = rubra_telemetry::cpu_flamegraph(Duration::from_secs(seconds), FREQUENCY)
        .await
        .map_err(|e| match e {
            ProfileError::Busy => ApiError::new(ErrorCode::ProfileInProgress, e.to_string()),
            ProfileError::Profiler(_) => ApiError::internal(&e),
        })?;
    Ok(([(CONTENT_TYPE, "image/svg+xml")], svg))
}
