//! The one error type of this crate.

/// Why a poll produced no document.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WatchError {
    /// Fetching failed (refused by the allow-list, HTTP error status, timeout, too large…).
    #[error(transparent)]
    Fetch(#[from] rubra_fetch::FetchError),
    /// The body is not JSON; the message names the line and column.
    #[error("the source did not send valid JSON: {0}")]
    Json(String),
    /// The document nests deeper than a watch accepts ([`crate::MAX_DEPTH`]).
    #[error(
        "the source's document nests deeper than the depth limit of {limit} levels for watches{at}"
    )]
    TooDeep {
        /// The limit.
        limit: usize,
        /// How deep the document is, as far as known (`" (101 levels)"`).
        at: String,
    },
    /// Parsing or comparing the document failed unexpectedly (a bug, reported, not a crash).
    #[error("comparing the document failed: {0}")]
    Internal(String),
    /// The watch's JSON Pointer is malformed.
    #[error("invalid JSON Pointer {0:?}: it must be empty or start with '/'")]
    InvalidPointer(String),
    /// The watch's JSON Pointer matches nothing in the document.
    #[error("the JSON Pointer {0:?} matches nothing in the document")]
    PointerNotFound(String),
}

impl WatchError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            WatchError::Fetch(e) => e.code(),
            WatchError::Json(_) => "invalid_json",
            WatchError::TooDeep { .. } => "json_too_deep",
            WatchError::Internal(_) => "internal",
            WatchError::InvalidPointer(_) => "invalid_pointer",
            WatchError::PointerNotFound(_) => "pointer_not_found",
        }
    }
}
