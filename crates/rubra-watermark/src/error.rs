//! The one error type of this crate, with the HTTP status each failure maps to.

/// Everything that can go wrong while loading an overlay or watermarking an image.
#[derive(Debug, thiserror::Error)]
pub enum WatermarkError {
    /// The input (image or overlay) is malformed or truncated. Maps to 400.
    #[error("corrupt image: {0}")]
    Corrupt(String),
    /// The input is a valid image this crate cannot process (format, colour model,
    /// bit depth). Maps to 415.
    #[error("unsupported image: {0}")]
    Unsupported(String),
    /// The overlay, once placed, does not intersect the image at all. Maps to 422.
    #[error("the overlay lies entirely outside the image")]
    OutsideImage,
    /// The image (or overlay) has more pixels than the configured limit. Maps to 413.
    #[error("image too large: {width}x{height} exceeds the limit of {limit} pixels")]
    TooLarge {
        /// Width read from the header.
        width: u32,
        /// Height read from the header.
        height: u32,
        /// The limit in pixels that was exceeded.
        limit: u64,
    },
    /// A parameter (opacity, scale, width) is out of range. Maps to 400.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl WatermarkError {
    /// The HTTP status code the server should answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Corrupt(_) | Self::InvalidArgument(_) => 400,
            Self::Unsupported(_) => 415,
            Self::OutsideImage => 422,
            Self::TooLarge { .. } => 413,
        }
    }

    /// A stable machine-readable code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Corrupt(_) => "corrupt_image",
            Self::Unsupported(_) => "unsupported_image",
            Self::OutsideImage => "overlay_outside_image",
            Self::TooLarge { .. } => "image_too_large",
            Self::InvalidArgument(_) => "invalid_argument",
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = WatermarkError> = std::result::Result<T, E>;
