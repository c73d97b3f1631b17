//! The one error type of this crate, with the HTTP status a server should answer.

/// Why a fetch failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// The URL is malformed or not http(s). Maps to 400.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// A request header given by the caller is not valid HTTP. Maps to 400.
    #[error("invalid request header: {0}")]
    InvalidHeader(String),
    /// The host is not on the allow-list, resolves only to addresses it may not reach, or a
    /// redirect leads off the list. Maps to 403.
    #[error("fetching from this host is not allowed: {0}")]
    Forbidden(String),
    /// The response body is larger than the limit. Maps to 422.
    #[error("the remote response is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The remote answered with a status other than 200 or 304. 4xx maps to 422, 5xx to 502.
    #[error("the remote answered HTTP {0}")]
    Status(u16),
    /// More redirects than allowed. Maps to 422.
    #[error("too many redirects")]
    TooManyRedirects,
    /// No answer within the time limit. Maps to 504.
    #[error("the remote did not answer in time")]
    Timeout,
    /// Connection or protocol failure. Maps to 502.
    #[error("cannot reach the remote: {0}")]
    Network(String),
}

impl FetchError {
    /// The HTTP status a server should answer its own caller with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::InvalidUrl(_) | Self::InvalidHeader(_) => 400,
            Self::Forbidden(_) => 403,
            Self::TooLarge { .. } | Self::TooManyRedirects => 422,
            Self::Status(s) if *s < 500 => 422,
            Self::Status(_) | Self::Network(_) => 502,
            Self::Timeout => 504,
        }
    }

    /// A stable machine-readable code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidUrl(_) => "invalid_url",
            Self::InvalidHeader(_) => "invalid_header",
            Self::Forbidden(_) => "fetch_forbidden",
            Self::TooLarge { .. } => "remote_too_large",
            Self::Status(_) => "remote_status",
            Self::TooManyRedirects => "too_many_redirects",
            Self::Timeout => "remote_timeout",
            Self::Network(_) => "remote_unreachable",
        }
    }

    /// Whether a cached copy may be served instead (the remote is down, not saying "gone").
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Timeout | Self::Network(_))
            || matches!(self, Self::Status(s) if *s >= 500)
    }
}

impl From<reqwest::Error> for FetchError {
    /// A refusal of the guarded resolver becomes [`FetchError::Forbidden`] with its reason; a
    /// timeout [`FetchError::Timeout`]; anything else [`FetchError::Network`] with the chain
    /// of causes.
    fn from(e: reqwest::Error) -> FetchError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if let Some(b) = s.downcast_ref::<crate::guard::Blocked>() {
                return FetchError::Forbidden(b.0.clone());
            }
            source = s.source();
        }
        if e.is_timeout() {
            return FetchError::Timeout;
        }
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        FetchError::Network(msg)
    }
}
