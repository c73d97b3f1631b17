//! Cross-cutting request handling: time limits, per-route metrics, security headers, panics as
//! JSON errors.

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{
    REFERRER_POLICY, WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::any::Any;
use std::time::Instant;

/// Answers 503 `timeout` when a handler has not produced its response in time.
///
/// Only the time to the response head counts: a streamed body (SSE, downloads) may then
/// run as long as it needs.
pub async fn timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = state.settings.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            crate::error::ErrorCode::Timeout,
            format!(
                "the request did not complete within {} ms",
                limit.as_millis()
            ),
        )
        .into_response(),
    }
}

/// Adds the headers that keep a browser from misreading or framing any response: no content
/// sniffing (an uploaded image is never run as HTML or script), no referrer leaking URLs with
/// ids, no framing (clickjacking of the dashboard). 401s say how to authenticate.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let headers = resp.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if resp.status() == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

/// Counts requests and records their latency per route template (`/images/{id}`, not the
/// concrete path, so the number of series stays bounded).
pub async fn record_metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    let secs = started.elapsed().as_secs_f64();
    rubra_telemetry::metrics::counter!(
        "rubra_http_requests_total",
        "method" => method.clone(), "route" => route.clone(), "status" => status
    )
    .increment(1);
    rubra_telemetry::metrics::histogram!(
        "rubra_http_request_duration_seconds",
        "method" => method, "route" => route
    )
    .record(secs);
    resp
}

/// Turns a handler panic into a 500 in the usual error shape (and logs it).
pub fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    ApiError::internal(&format!("handler panicked: {detail}")).into_response()
}
