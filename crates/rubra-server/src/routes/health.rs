//! Liveness, readiness and metrics: the unauthenticated operational endpoints.

use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde_json::{Value, json};

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the database and the blob store both answer.
#[tracing::instrument(name = "http.readyz", skip_all)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let (db, blobs) = tokio::join!(state.store.ping(), state.blobs.ping());
    match (db, blobs) {
        (Ok(()), Ok(())) => Ok(Json(json!({
            "status": "ready",
            "database": state.store.backend(),
            "storage": state.blobs.describe(),
        }))),
        (db, blobs) => {
            let mut down = Vec::new();
            if let Err(e) = db {
                tracing::warn!(error = %e, "readiness: database down");
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
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.telemetry.render_metrics(),
    )
}
