//! The one catalogue of error codes: each code's HTTP status and default message. Every
//! [`ApiError`](crate::ApiError) takes its code from here, and the OpenAPI document's
//! `ErrorCode` enum is this list. Codes are part of the API contract: never rename one.

use axum::http::StatusCode;

/// A stable, machine-readable error code (the `code` of an error body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorCode {
    /// 400: the request body could not be read.
    BadBody,
    /// 400: the multipart form could not be read.
    BadMultipart,
    /// 400: the job source is not a path or an s3:// URL.
    BadSource,
    /// 413: the request body is too large.
    BodyTooLarge,
    /// 401: this key's client is disabled; an admin can enable it again.
    ClientDisabled,
    /// 422: an admin key has no client of its own: add ?client=CLIENT_ID.
    ClientRequired,
    /// 409: this conflicts with the current state.
    Conflict,
    /// 400: the image is corrupt.
    CorruptImage,
    /// 400: the request body is empty.
    EmptyBody,
    /// 403: the URL's host is not allowed (--fetch-allow).
    FetchForbidden,
    /// 403: this key may not do this.
    Forbidden,
    /// 409: a request with this Idempotency-Key is still running; retry shortly.
    IdempotencyKeyInUse,
    /// 422: this Idempotency-Key was used for another request.
    IdempotencyKeyReused,
    /// 413: the image is too large.
    ImageTooLarge,
    /// 500: internal error.
    Internal,
    /// 400: an argument is out of range.
    InvalidArgument,
    /// 422: the channel is not valid.
    InvalidChannel,
    /// 400: the cursor is not one this API returned.
    InvalidCursor,
    /// 422: the delimiter must be one ASCII character other than a quote or a line end.
    InvalidDelimiter,
    /// 422: an event is not valid.
    InvalidEvent,
    /// 422: the body must be a JSON array of events.
    InvalidEvents,
    /// 422: expires_at must be an instant in the future.
    InvalidExpiresAt,
    /// 422: the body's fields are not valid.
    InvalidFields,
    /// 422: a header is not valid.
    InvalidHeader,
    /// 400: Idempotency-Key is 1 to 255 visible ASCII characters.
    InvalidIdempotencyKey,
    /// 422: interval_ms is out of range.
    InvalidInterval,
    /// 422: key must name a member of the array elements.
    InvalidKey,
    /// 400: Last-Event-ID is a seq.
    InvalidLastEventId,
    /// 422: a message is not valid.
    InvalidMessage,
    /// 422: the body holds no message.
    InvalidMessages,
    /// 422: the name is not valid.
    InvalidName,
    /// 400: overlay names are 1-64 characters of A-Z a-z 0-9 . _ - and do not start with a dot.
    InvalidOverlayName,
    /// 422: not a JSON Pointer.
    InvalidPointer,
    /// 400: the query is not valid.
    InvalidQuery,
    /// 422: seconds is out of range.
    InvalidSeconds,
    /// 422: step must be at least 1.
    InvalidStep,
    /// 422: the subscription is not valid.
    InvalidSubscription,
    /// 422: threshold must be a number in [0, 1].
    InvalidThreshold,
    /// 422: the instant is out of range.
    InvalidTimestamp,
    /// 422: types is not valid.
    InvalidTypes,
    /// 400: not an http(s) URL.
    InvalidUrl,
    /// 409: the job has already finished.
    JobFinished,
    /// 401: the API key has expired.
    KeyExpired,
    /// 409: this is the last key: make another first.
    LastKey,
    /// 400: local job sources are disabled (no --jobs-root).
    LocalSourcesDisabled,
    /// 400: the body is not well-formed JSON.
    MalformedJson,
    /// 405: this method is not allowed on this route.
    MethodNotAllowed,
    /// 400: the form holds no file part.
    NoFiles,
    /// 422: only a webhook subscription has a signing secret.
    NotAWebhook,
    /// 404: not found.
    NotFound,
    /// 400: exactly one image is measured.
    OneFile,
    /// 422: the overlay lies outside the image.
    OverlayOutsideImage,
    /// 413: the overlay is too large.
    OverlayTooLarge,
    /// 503: the server is busy; retry later.
    Overloaded,
    /// 409: a profile is already being taken.
    ProfileInProgress,
    /// 409: over a quota of this client.
    QuotaExceeded,
    /// 416: the range lies past the end.
    RangeNotSatisfiable,
    /// 429: over the rate limit; retry after Retry-After seconds.
    RateLimited,
    /// 422: the overlay at the URL cannot be used.
    RemoteOverlayUnusable,
    /// 502: the remote answered an error.
    RemoteStatus,
    /// 504: the remote did not answer in time.
    RemoteTimeout,
    /// 422: the remote's answer is too large.
    RemoteTooLarge,
    /// 502: the remote could not be reached.
    RemoteUnreachable,
    /// 400: the job source is not a file.
    SourceNotAFile,
    /// 403: the job source is outside what the operator allowed.
    SourceNotAllowed,
    /// 422: the job source does not exist.
    SourceNotFound,
    /// 400: the job source lies outside the jobs root.
    SourceOutsideRoot,
    /// 400: the job source cannot be read.
    SourceUnreadable,
    /// 503: the request took too long.
    Timeout,
    /// 422: too many buckets: widen the bucket or narrow the range.
    TooManyBuckets,
    /// 422: too many events in one batch.
    TooManyEvents,
    /// 422: too many messages in one request.
    TooManyMessages,
    /// 422: too many notifications at once.
    TooManyNotifications,
    /// 422: the remote redirected too often.
    TooManyRedirects,
    /// 429: too many open streams.
    TooManyStreams,
    /// 400: the image is truncated.
    TruncatedImage,
    /// 401: a valid API key is needed: Authorization: Bearer <key>.
    Unauthorized,
    /// 503: a dependency is unavailable; retry later.
    Unavailable,
    /// 415: not a JPEG, PNG, GIF or WebP image.
    UnsupportedImage,
    /// 415: this content type is not accepted here.
    UnsupportedMediaType,
    /// 422: the webhook URL is not allowed.
    UrlNotAllowed,
}

impl ErrorCode {
    /// Every code, in discriminant order (a test checks that none is left out).
    pub const ALL: [ErrorCode; 81] = [
        ErrorCode::BadBody,
        ErrorCode::BadMultipart,
        ErrorCode::BadSource,
        ErrorCode::BodyTooLarge,
        ErrorCode::ClientDisabled,
        ErrorCode::ClientRequired,
        ErrorCode::Conflict,
        ErrorCode::CorruptImage,
        ErrorCode::EmptyBody,
        ErrorCode::FetchForbidden,
        ErrorCode::Forbidden,
        ErrorCode::IdempotencyKeyInUse,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::ImageTooLarge,
        ErrorCode::Internal,
        ErrorCode::InvalidArgument,
        ErrorCode::InvalidChannel,
        ErrorCode::InvalidCursor,
        ErrorCode::InvalidDelimiter,
        ErrorCode::InvalidEvent,
        ErrorCode::InvalidEvents,
        ErrorCode::InvalidExpiresAt,
        ErrorCode::InvalidFields,
        ErrorCode::InvalidHeader,
        ErrorCode::InvalidIdempotencyKey,
        ErrorCode::InvalidInterval,
        ErrorCode::InvalidKey,
        ErrorCode::InvalidLastEventId,
        ErrorCode::InvalidMessage,
        ErrorCode::InvalidMessages,
        ErrorCode::InvalidName,
        ErrorCode::InvalidOverlayName,
        ErrorCode::InvalidPointer,
        ErrorCode::InvalidQuery,
        ErrorCode::InvalidSeconds,
        ErrorCode::InvalidStep,
        ErrorCode::InvalidSubscription,
        ErrorCode::InvalidThreshold,
        ErrorCode::InvalidTimestamp,
        ErrorCode::InvalidTypes,
        ErrorCode::InvalidUrl,
        ErrorCode::JobFinished,
        ErrorCode::KeyExpired,
        ErrorCode::LastKey,
        ErrorCode::LocalSourcesDisabled,
        ErrorCode::MalformedJson,
        ErrorCode::MethodNotAllowed,
        ErrorCode::NoFiles,
        ErrorCode::NotAWebhook,
        ErrorCode::NotFound,
        ErrorCode::OneFile,
        ErrorCode::OverlayOutsideImage,
        ErrorCode::OverlayTooLarge,
        ErrorCode::Overloaded,
        ErrorCode::ProfileInProgress,
        ErrorCode::QuotaExceeded,
        ErrorCode::RangeNotSatisfiable,
        ErrorCode::RateLimited,
        ErrorCode::RemoteOverlayUnusable,
        ErrorCode::RemoteStatus,
        ErrorCode::RemoteTimeout,
        ErrorCode::RemoteTooLarge,
        ErrorCode::RemoteUnreachable,
        ErrorCode::SourceNotAFile,
        ErrorCode::SourceNotAllowed,
        ErrorCode::SourceNotFound,
        ErrorCode::SourceOutsideRoot,
        ErrorCode::SourceUnreadable,
        ErrorCode::Timeout,
        ErrorCode::TooManyBuckets,
        ErrorCode::TooManyEvents,
        ErrorCode::TooManyMessages,
        ErrorCode::TooManyNotifications,
        ErrorCode::TooManyRedirects,
        ErrorCode::TooManyStreams,
        ErrorCode::TruncatedImage,
        ErrorCode::Unauthorized,
        ErrorCode::Unavailable,
        ErrorCode::UnsupportedImage,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::UrlNotAllowed,
    ];

    /// The code's catalogue entry: its text, its HTTP status and its default message.
    fn entry(self) -> (&'static str, StatusCode, &'static str) {
        use StatusCode as S;
        match self {
            ErrorCode::BadBody => (
                "bad_body",
                S::BAD_REQUEST,
                "the request body could not be read",
            ),
            ErrorCode::BadMultipart => (
                "bad_multipart",
                S::BAD_REQUEST,
                "the multipart form could not be read",
            ),
            ErrorCode::BadSource => (
                "bad_source",
                S::BAD_REQUEST,
                "the job source is not a path or an s3:// URL",
            ),
            ErrorCode::BodyTooLarge => (
                "body_too_large",
                S::PAYLOAD_TOO_LARGE,
                "the request body is too large",
            ),
            ErrorCode::ClientDisabled => (
                "client_disabled",
                S::UNAUTHORIZED,
                "this key's client is disabled; an admin can enable it again",
            ),
            ErrorCode::ClientRequired => (
                "client_required",
                S::UNPROCESSABLE_ENTITY,
                "an admin key has no client of its own: add ?client=CLIENT_ID",
            ),
            ErrorCode::Conflict => (
                "conflict",
                S::CONFLICT,
                "this conflicts with the current state",
            ),
            ErrorCode::CorruptImage => ("corrupt_image", S::BAD_REQUEST, "the image is corrupt"),
            ErrorCode::EmptyBody => ("empty_body", S::BAD_REQUEST, "the request body is empty"),
            ErrorCode::FetchForbidden => (
                "fetch_forbidden",
                S::FORBIDDEN,
                "the URL's host is not allowed (--fetch-allow)",
            ),
            ErrorCode::Forbidden => ("forbidden", S::FORBIDDEN, "this key may not do this"),
            ErrorCode::IdempotencyKeyInUse => (
                "idempotency_key_in_use",
                S::CONFLICT,
                "a request with this Idempotency-Key is still running; retry shortly",
            ),
            ErrorCode::IdempotencyKeyReused => (
                "idempotency_key_reused",
                S::UNPROCESSABLE_ENTITY,
                "this Idempotency-Key was used for another request",
            ),
            ErrorCode::ImageTooLarge => (
                "image_too_large",
                S::PAYLOAD_TOO_LARGE,
                "the image is too large",
            ),
            ErrorCode::Internal => ("internal", S::INTERNAL_SERVER_ERROR, "internal error"),
            ErrorCode::InvalidArgument => (
                "invalid_argument",
                S::BAD_REQUEST,
                "an argument is out of range",
            ),
            ErrorCode::InvalidChannel => (
                "invalid_channel",
                S::UNPROCESSABLE_ENTITY,
                "the channel is not valid",
            ),
            ErrorCode::InvalidCursor => (
                "invalid_cursor",
                S::BAD_REQUEST,
                "the cursor is not one this API returned",
            ),
            ErrorCode::InvalidDelimiter => (
                "invalid_delimiter",
                S::UNPROCESSABLE_ENTITY,
                "the delimiter must be one ASCII character other than a quote or a line end",
            ),
            ErrorCode::InvalidEvent => (
                "invalid_event",
                S::UNPROCESSABLE_ENTITY,
                "an event is not valid",
            ),
            ErrorCode::InvalidEvents => (
                "invalid_events",
                S::UNPROCESSABLE_ENTITY,
                "the body must be a JSON array of events",
            ),
            ErrorCode::InvalidExpiresAt => (
                "invalid_expires_at",
                S::UNPROCESSABLE_ENTITY,
                "expires_at must be an instant in the future",
            ),
            ErrorCode::InvalidFields => (
                "invalid_fields",
                S::UNPROCESSABLE_ENTITY,
                "the body's fields are not valid",
            ),
            ErrorCode::InvalidHeader => (
                "invalid_header",
                S::UNPROCESSABLE_ENTITY,
                "a header is not valid",
            ),
            ErrorCode::InvalidIdempotencyKey => (
                "invalid_idempotency_key",
                S::BAD_REQUEST,
                "Idempotency-Key is 1 to 255 visible ASCII characters",
            ),
            ErrorCode::InvalidInterval => (
                "invalid_interval",
                S::UNPROCESSABLE_ENTITY,
                "interval_ms is out of range",
            ),
            ErrorCode::InvalidKey => (
                "invalid_key",
                S::UNPROCESSABLE_ENTITY,
                "key must name a member of the array elements",
            ),
            ErrorCode::InvalidLastEventId => (
                "invalid_last_event_id",
                S::BAD_REQUEST,
                "Last-Event-ID is a seq",
            ),
            ErrorCode::InvalidMessage => (
                "invalid_message",
                S::UNPROCESSABLE_ENTITY,
                "a message is not valid",
            ),
            ErrorCode::InvalidMessages => (
                "invalid_messages",
                S::UNPROCESSABLE_ENTITY,
                "the body holds no message",
            ),
            ErrorCode::InvalidName => (
                "invalid_name",
                S::UNPROCESSABLE_ENTITY,
                "the name is not valid",
            ),
            ErrorCode::InvalidOverlayName => (
                "invalid_overlay_name",
                S::BAD_REQUEST,
                "overlay names are 1-64 characters of A-Z a-z 0-9 . _ - and do not start with a dot",
            ),
            ErrorCode::InvalidPointer => (
                "invalid_pointer",
                S::UNPROCESSABLE_ENTITY,
                "not a JSON Pointer",
            ),
            ErrorCode::InvalidQuery => ("invalid_query", S::BAD_REQUEST, "the query is not valid"),
            ErrorCode::InvalidSeconds => (
                "invalid_seconds",
                S::UNPROCESSABLE_ENTITY,
                "seconds is out of range",
            ),
            ErrorCode::InvalidStep => (
                "invalid_step",
                S::UNPROCESSABLE_ENTITY,
                "step must be at least 1",
            ),
            ErrorCode::InvalidSubscription => (
                "invalid_subscription",
                S::UNPROCESSABLE_ENTITY,
                "the subscription is not valid",
            ),
            ErrorCode::InvalidThreshold => (
                "invalid_threshold",
                S::UNPROCESSABLE_ENTITY,
                "threshold must be a number in [0, 1]",
            ),
            ErrorCode::InvalidTimestamp => (
                "invalid_timestamp",
                S::UNPROCESSABLE_ENTITY,
                "the instant is out of range",
            ),
            ErrorCode::InvalidTypes => (
                "invalid_types",
                S::UNPROCESSABLE_ENTITY,
                "types is not valid",
            ),
            ErrorCode::InvalidUrl => ("invalid_url", S::BAD_REQUEST, "not an http(s) URL"),
            ErrorCode::JobFinished => ("job_finished", S::CONFLICT, "the job has already finished"),
            ErrorCode::KeyExpired => ("key_expired", S::UNAUTHORIZED, "the API key has expired"),
            ErrorCode::LastKey => (
                "last_key",
                S::CONFLICT,
                "this is the last key: make another first",
            ),
            ErrorCode::LocalSourcesDisabled => (
                "local_sources_disabled",
                S::BAD_REQUEST,
                "local job sources are disabled (no --jobs-root)",
            ),
            ErrorCode::MalformedJson => (
                "malformed_json",
                S::BAD_REQUEST,
                "the body is not well-formed JSON",
            ),
            ErrorCode::MethodNotAllowed => (
                "method_not_allowed",
                S::METHOD_NOT_ALLOWED,
                "this method is not allowed on this route",
            ),
            ErrorCode::NoFiles => ("no_files", S::BAD_REQUEST, "the form holds no file part"),
            ErrorCode::NotAWebhook => (
                "not_a_webhook",
                S::UNPROCESSABLE_ENTITY,
                "only a webhook subscription has a signing secret",
            ),
            ErrorCode::NotFound => ("not_found", S::NOT_FOUND, "not found"),
            ErrorCode::OneFile => ("one_file", S::BAD_REQUEST, "exactly one image is measured"),
            ErrorCode::OverlayOutsideImage => (
                "overlay_outside_image",
                S::UNPROCESSABLE_ENTITY,
                "the overlay lies outside the image",
            ),
            ErrorCode::OverlayTooLarge => (
                "overlay_too_large",
                S::PAYLOAD_TOO_LARGE,
                "the overlay is too large",
            ),
            ErrorCode::Overloaded => (
                "overloaded",
                S::SERVICE_UNAVAILABLE,
                "the server is busy; retry later",
            ),
            ErrorCode::ProfileInProgress => (
                "profile_in_progress",
                S::CONFLICT,
                "a profile is already being taken",
            ),
            ErrorCode::QuotaExceeded => {
                ("quota_exceeded", S::CONFLICT, "over a quota of this client")
            }
            ErrorCode::RangeNotSatisfiable => (
                "range_not_satisfiable",
                S::RANGE_NOT_SATISFIABLE,
                "the range lies past the end",
            ),
            ErrorCode::RateLimited => (
                "rate_limited",
                S::TOO_MANY_REQUESTS,
                "over the rate limit; retry after Retry-After seconds",
            ),
            ErrorCode::RemoteOverlayUnusable => (
                "remote_overlay_unusable",
                S::UNPROCESSABLE_ENTITY,
                "the overlay at the URL cannot be used",
            ),
            ErrorCode::RemoteStatus => (
                "remote_status",
                S::BAD_GATEWAY,
                "the remote answered an error",
            ),
            ErrorCode::RemoteTimeout => (
                "remote_timeout",
                S::GATEWAY_TIMEOUT,
                "the remote did not answer in time",
            ),
            ErrorCode::RemoteTooLarge => (
                "remote_too_large",
                S::UNPROCESSABLE_ENTITY,
                "the remote's answer is too large",
            ),
            ErrorCode::RemoteUnreachable => (
                "remote_unreachable",
                S::BAD_GATEWAY,
                "the remote could not be reached",
            ),
            ErrorCode::SourceNotAFile => (
                "source_not_a_file",
                S::BAD_REQUEST,
                "the job source is not a file",
            ),
            ErrorCode::SourceNotAllowed => (
                "source_not_allowed",
                S::FORBIDDEN,
                "the job source is outside what the operator allowed",
            ),
            ErrorCode::SourceNotFound => (
                "source_not_found",
                S::UNPROCESSABLE_ENTITY,
                "the job source does not exist",
            ),
            ErrorCode::SourceOutsideRoot => (
                "source_outside_root",
                S::BAD_REQUEST,
                "the job source lies outside the jobs root",
            ),
            ErrorCode::SourceUnreadable => (
                "source_unreadable",
                S::BAD_REQUEST,
                "the job source cannot be read",
            ),
            ErrorCode::Timeout => (
                "timeout",
                S::SERVICE_UNAVAILABLE,
                "the request took too long",
            ),
            ErrorCode::TooManyBuckets => (
                "too_many_buckets",
                S::UNPROCESSABLE_ENTITY,
                "too many buckets: widen the bucket or narrow the range",
            ),
            ErrorCode::TooManyEvents => (
                "too_many_events",
                S::UNPROCESSABLE_ENTITY,
                "too many events in one batch",
            ),
            ErrorCode::TooManyMessages => (
                "too_many_messages",
                S::UNPROCESSABLE_ENTITY,
                "too many messages in one request",
            ),
            ErrorCode::TooManyNotifications => (
                "too_many_notifications",
                S::UNPROCESSABLE_ENTITY,
                "too many notifications at once",
            ),
            ErrorCode::TooManyRedirects => (
                "too_many_redirects",
                S::UNPROCESSABLE_ENTITY,
                "the remote redirected too often",
            ),
            ErrorCode::TooManyStreams => (
                "too_many_streams",
                S::TOO_MANY_REQUESTS,
                "too many open streams",
            ),
            ErrorCode::TruncatedImage => {
                ("truncated_image", S::BAD_REQUEST, "the image is truncated")
            }
            ErrorCode::Unauthorized => (
                "unauthorized",
                S::UNAUTHORIZED,
                "a valid API key is needed: Authorization: Bearer <key>",
            ),
            ErrorCode::Unavailable => (
                "unavailable",
                S::SERVICE_UNAVAILABLE,
                "a dependency is unavailable; retry later",
            ),
            ErrorCode::UnsupportedImage => (
                "unsupported_image",
                S::UNSUPPORTED_MEDIA_TYPE,
                "not a JPEG, PNG, GIF or WebP image",
            ),
            ErrorCode::UnsupportedMediaType => (
                "unsupported_media_type",
                S::UNSUPPORTED_MEDIA_TYPE,
                "this content type is not accepted here",
            ),
            ErrorCode::UrlNotAllowed => (
                "url_not_allowed",
                S::UNPROCESSABLE_ENTITY,
                "the webhook URL is not allowed",
            ),
        }
    }

    /// The code as it appears in an error body.
    pub fn as_str(self) -> &'static str {
        self.entry().0
    }

    /// The HTTP status an error with this code answers.
    pub fn status(self) -> StatusCode {
        self.entry().1
    }

    /// The message of an error with this code when nothing more specific is said.
    pub fn default_message(self) -> &'static str {
        self.entry().2
    }

    /// The code named `s`, for the codes other crates' errors name themselves.
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(ErrorCode::ALL.map(ErrorCode::as_str)))
            .description(Some(
                "Stable and machine-readable; the catalogue in crates/rubra-server/src/codes.rs \
                 gives each code's status",
            ))
            .into()
    }
}

impl utoipa::ToSchema for ErrorCode {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_code_once_in_order() {
        for (i, c) in ErrorCode::ALL.into_iter().enumerate() {
            assert_eq!(c as usize, i, "{c} is out of place in ALL");
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
        }
        // A code inserted anywhere but at the end shifts the others and fails above; this
        // pins the end.
        assert_eq!(ErrorCode::UrlNotAllowed as usize + 1, ErrorCode::ALL.len());
    }

    #[test]
    fn codes_are_snake_case_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            let s = c.as_str();
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert!(seen.insert(s), "{s} twice");
            assert!(c.status().is_client_error() || c.status().is_server_error());
        }
    }
}
