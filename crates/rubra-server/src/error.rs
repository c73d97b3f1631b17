//! The one API error type: every failure becomes a status, a stable `code` and a message.
//!
//! The body is always `{"error": {"code": "…", "message": "…"}}`. Codes are part of the API
//! contract: clients switch on them, so a code is never renamed once shipped.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rubra_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The `error` of an [`ErrorBody`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: clients switch on it.
    pub code: &'static str,
    /// For people; its wording may change.
    pub message: String,
}

/// An error answered to an API caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds a client should wait before trying again (`Retry-After`), for 429 and 503.
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error with a `Retry-After: secs` header (at least 1 second).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    /// 400: the request is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no key, or a key that is not known.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: the key is valid but may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: nothing here, or nothing this caller may see.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 409: conflicts with existing state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 413: the body or the image is too large.
    pub fn too_large(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, code, message)
    }

    /// 413 `body_too_large`: the request body is over `max-body-bytes`.
    pub fn body_too_large() -> Self {
        Self::too_large("body_too_large", "the request body is too large")
    }

    /// 415: a content type this endpoint does not take.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }

    /// 422: well-formed input with invalid values.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 503: a dependency (database, storage) is down.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500: a bug or an unexpected failure. The details go to the log, not to the caller.
    pub fn internal(err: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// The same error with `context` (e.g. which file part) in front of its message.
    pub fn with_context(mut self, context: &str) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match &err {
            StoreError::Conflict(msg) => ApiError::conflict(msg.clone()),
            StoreError::QuotaExceeded(msg) => {
                rubra_telemetry::metrics::counter!(
                    "rubra_rejected_requests_total", "reason" => "quota_exceeded"
                )
                .increment(1);
                ApiError::new(StatusCode::CONFLICT, "quota_exceeded", msg.clone())
            }
            StoreError::TooManyNotifications(msg) => {
                rubra_telemetry::metrics::counter!(
                    "rubra_rejected_requests_total", "reason" => "too_many_notifications"
                )
                .increment(1);
                ApiError::unprocessable("too_many_notifications", msg.clone())
            }
            _ if err.is_unavailable() => {
                tracing::warn!(error = %err, "dependency unavailable");
                ApiError::unavailable("a storage dependency is unavailable; retry later")
            }
            _ => ApiError::internal(&err),
        }
    }
}

impl From<&rubra_watermark::WatermarkError> for ApiError {
    fn from(err: &rubra_watermark::WatermarkError) -> Self {
        let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError::new(status, err.code(), err.to_string())
    }
}

impl From<rubra_fetch::FetchError> for ApiError {
    fn from(err: rubra_fetch::FetchError) -> Self {
        let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
        ApiError::new(status, err.code(), err.to_string())
    }
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
