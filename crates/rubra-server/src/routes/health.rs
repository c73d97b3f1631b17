//! Liveness, readiness and metrics: the unauthenticated operational endpoints.

use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

/// Body of `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// Body of `GET /readyz` when ready.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// Always `ready`.
    #[schema(example = "ready")]
    status: &'static str,
    /// The database backend (`sqlite` or `postgres`).
    database: &'static str,
    /// Where blobs are kept.
    storage: String,
}

/// `GET /healthz`: the process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The process is up", body = Health)),
)]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `GET /readyz`: the database and the blob store both answer.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "The database and the blob store answer", body = Ready),
        (status = 503, description = "`unavailable`: one of them does not", body = crate::error::ErrorBody),
    ),
)]
#[tracing::instrument(name = "http.readyz", skip_all)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    let (db, blobs) = tokio::join!(state.store.ping(), state.blobs.ping());
    match (db, blobs) {
        (Ok(()), Ok(())) => Ok(Json(Ready {
            status: "ready",
            database: state.store.backend(),
            storage: state.blobs.describe().to_string(),
        })),
        (db, blobs) => {
            let mut down = Vec::new();
            if let Err(e) = db {
                // A pool whose every connection is open and none idle answers "pool timed
                // out" whether the database is down or every connection is held: the figures
                // tell the two apart.
                let pool = state.store.pool_usage();
                tracing::warn!(
                    error = %e,
                    pool_open = pool.open,
                    pool_idle = pool.idle,
                    pool_max = pool.max,
                    "readiness: database down"
                );
                down.push("database");
            }
            if let Err(e) = blobs {
                tracing::warn!(error = %e, "readiness: blob storage down");
                down.push("storage");
            }
            Err(ApiError::unavailable(format!(
                "not ready: {} unavailable",
                down.join(" and ")
            )))
        }
    }
}

/// `GET /metrics`: Prometheus text exposition.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security(()),
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)),
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.telemetry.render_metrics(),
    )
}
