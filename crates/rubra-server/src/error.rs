//! The one API error type: every failure becomes a status, a stable `code` and a message.
//!
//! The body is always `{"error": {"code": "…", "message": "…"}}`. Codes are part of the API
//! contract: clients switch on them, so a code is never renamed once shipped.

pub use crate::codes::ErrorCode;
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
    pub code: ErrorCode,
    /// For people; its wording may change.
    pub message: String,
}

/// An error answered to an API caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    /// Seconds a client should wait before trying again (`Retry-After`), for 429 and 503.
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `code` (its status from the catalogue) and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status: code.status(),
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// An error with `code` and its default message.
    pub fn of(code: ErrorCode) -> Self {
        Self::new(code, code.default_message())
    }

    /// An error another crate describes by its own status and code (`rubra_image::Error`,
    /// `rubra_fetch::FetchError`, …): the code must be in the catalogue (else it is logged
    /// and answered as `internal`); the status is the crate's, which may differ from the
    /// catalogue's default (e.g. `remote_status` is 422 for a remote's 4xx, 502 for its 5xx).
    pub fn foreign(status: u16, code: &str, message: impl Into<String>) -> Self {
        match ErrorCode::parse(code) {
            Some(code) => ApiError {
                status: StatusCode::from_u16(status).unwrap_or(code.status()),
                ..Self::new(code, message)
            },
            None => Self::internal(&format!("error code {code:?} is not in the catalogue")),
        }
    }

    /// The same error with a `Retry-After: secs` header (at least 1 second).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    /// 401 `unauthorized`: no key, or a key that is not known.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    /// 403 `forbidden`: the key is valid but may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// 404 `not_found`: nothing here, or nothing this caller may see.
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// 409 `conflict`: conflicts with existing state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// 413 `body_too_large`: the request body is over `max-body-bytes`.
    pub fn body_too_large() -> Self {
        Self::of(ErrorCode::BodyTooLarge)
    }

    /// 415 `unsupported_media_type`: a content type this endpoint does not take.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnsupportedMediaType, message)
    }

    /// 503 `unavailable`: a dependency (database, storage) is down.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// 500 `internal`: a bug or an unexpected failure. The details go to the log, not to the
    /// caller.
    pub fn internal(err: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::of(ErrorCode::Internal)
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
        self.code.as_str()
    }

    /// The code as the catalogue's value.
    pub fn error_code(&self) -> ErrorCode {
        self.code
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code.as_str(),
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
                ApiError::new(ErrorCode::QuotaExceeded, msg.clone())
            }
            StoreError::TooManyNotifications(msg) => {
                rubra_telemetry::metrics::counter!(
                    "rubra_rejected_requests_total", "reason" => "too_many_notifications"
                )
                .increment(1);
                ApiError::new(ErrorCode::TooManyNotifications, msg.clone())
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
        ApiError::foreign(err.http_status(), err.code(), err.to_string())
    }
}

impl From<rubra_fetch::FetchError> for ApiError {
    fn from(err: rubra_fetch::FetchError) -> Self {
        ApiError::foreign(err.http_status(), err.code(), err.to_string())
    }
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
