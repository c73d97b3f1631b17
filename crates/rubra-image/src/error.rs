//! The one error type of the crate, with the HTTP status and stable code each
//! failure maps to, so the server does not have to guess.

/// Everything that can go wrong while sniffing, probing or measuring an image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not an image format this crate reads (or use a feature of
    /// one that it does not, such as arithmetic-coded or 12-bit JPEG).
    #[error("unsupported image: {0}")]
    Unsupported(String),
    /// The bytes claim to be an image but are malformed.
    #[error("corrupt image: {0}")]
    Corrupt(String),
    /// The bytes end before the image does.
    #[error("truncated image: the data ends before the image does")]
    Truncated,
    /// The image has more pixels than the configured limit; refused before any
    /// pixel was decoded.
    #[error("image too large: {width}x{height} pixels exceeds the limit of {limit} pixels")]
    TooLarge {
        /// Width announced by the header.
        width: u32,
        /// Height announced by the header.
        height: u32,
        /// The pixel-count limit in force ([`crate::Limits::max_pixels`]).
        limit: u64,
    },
}

impl Error {
    /// The HTTP status this error should be answered with: 415 for
    /// [`Error::Unsupported`], 400 for [`Error::Corrupt`] and [`Error::Truncated`],
    /// 413 for [`Error::TooLarge`].
    pub fn http_status(&self) -> u16 {
        match self {
            Error::Unsupported(_) => 415,
            Error::Corrupt(_) | Error::Truncated => 400,
            Error::TooLarge { .. } => 413,
        }
    }

    /// A stable machine-readable code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unsupported(_) => "unsupported_image",
            Error::Corrupt(_) => "corrupt_image",
            Error::Truncated => "truncated_image",
            Error::TooLarge { .. } => "image_too_large",
        }
    }

    pub(crate) fn corrupt(msg: impl Into<String>) -> Self {
        Error::Corrupt(msg.into())
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
