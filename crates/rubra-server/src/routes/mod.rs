//! The HTTP routes, one module per resource, and the router that joins them.

mod audit;
pub(crate) mod clients;
mod dashboard;
mod debug;
pub(crate) mod events;
mod health;
mod images;
mod jobs;
pub(crate) mod keys;
pub(crate) mod messages;
mod notifications;
pub(crate) mod overlays;
mod stats;
mod subscriptions;
mod watches;
mod watermark;

use crate::error::ApiError;
use crate::middleware;
use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};

/// Builds the whole application router on `state`.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/", get(dashboard::page))
        .route("/assets/{file}", get(dashboard::asset))
        .route("/favicon.ico", get(dashboard::favicon))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/debug/profile", get(debug::profile))
        .route(
            "/admin/keys",
            get(keys::list_admin).post(keys::create_admin),
        )
        .route("/admin/keys/{key_id}", delete(keys::revoke_admin))
        .route("/audit", get(audit::list))
        .route("/clients", get(clients::list).post(clients::create))
        .route("/clients/{id}", get(clients::get).patch(clients::patch))
        .route("/clients/{id}/keys", get(keys::list).post(keys::create))
        .route("/clients/{id}/keys/{key_id}", delete(keys::revoke))
        .route("/images", get(images::list).post(images::upload))
        .route(
            "/images/{id}",
            get(images::get).head(images::head).delete(images::delete),
        )
        .route("/images/{id}/info", get(images::info))
        .route("/red", post(images::red))
        .route("/jobs", get(jobs::list).post(jobs::submit))
        .route("/jobs/active", get(jobs::active))
        .route("/jobs/{id}", get(jobs::get).delete(jobs::cancel))
        .route("/events", post(events::create))
        .route("/messages", post(messages::create))
        .route("/stats", get(stats::get))
        .route(
            "/subscriptions",
            get(subscriptions::list).post(subscriptions::create),
        )
        .route(
            "/subscriptions/{id}",
            get(subscriptions::get).delete(subscriptions::delete),
        )
        .route("/subscriptions/{id}/resume", post(subscriptions::resume))
        .route(
            "/subscriptions/{id}/rotate-secret",
            post(subscriptions::rotate_secret),
        )
        .route("/notifications", get(notifications::log))
        .route("/notifications/stream", get(notifications::stream))
        .route("/overlays", get(overlays::list))
        .route(
            "/overlays/{name}",
            get(overlays::get)
                .put(overlays::put)
                .delete(overlays::delete),
        )
        .route("/watermark", post(watermark::watermark))
        .route("/watches", get(watches::list).post(watches::create))
        .route("/watches/{id}", get(watches::get).delete(watches::delete))
        .route("/watches/{id}/changes", get(watches::changes))
        .route("/watches/{id}/stream", get(watches::stream));

    api.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::idempotency::idempotency,
        ))
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::throttle::throttle_uploads,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::timeout,
        ))
        .layer(axum::middleware::from_fn(middleware::record_metrics))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            middleware::panic_response,
        ))
        // Outermost, so panics and timeouts carry the headers too.
        .layer(axum::middleware::from_fn(middleware::security_headers))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this method is not allowed on this route",
    )
}
