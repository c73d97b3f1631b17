//! The RED meter: how red an image is, exactly as DESIGN §4 defines it, plus
//! the cheap checks a server makes before it spends time on an image.
//!
//! Usable without the server:
//!
//! ```no_run
//! # fn main() -> Result<(), rubra_image::Error> {
//! let bytes = std::fs::read("photo.jpg").unwrap();
//! let limits = rubra_image::Limits::default(); // 50 megapixels
//! // Cheap: header only, refuses decompression bombs before any decoding.
//! let info = rubra_image::probe_within(&bytes, &limits)?;
//! // Decode and count (re-checks the limits inside the decoder too).
//! let report = rubra_image::measure(&bytes, &limits)?;
//! println!("{} {}x{} red={:.4}", info.format, report.width, report.height, report.red);
//! # Ok(()) }
//! ```
//!
//! # Red level
//! Decoded to 8-bit sRGB, without colour management (embedded ICC profiles are
//! ignored). A pixel `(r, g, b)` is red when, with `M = max` and `m = min`,
//! `r == M`, `r >= 77`, `2*(r-m) >= r` and `3*|g-b| <= r-m` (see [`is_red`]).
//! Pixels with alpha < 128 are left out of both counts; `red = red/counted`,
//! 0 when nothing was counted. Grey images (grey JPEG, grey PNG) are never red.
//!
//! # Format notes
//! - **JPEG**: decoded by the system's libjpeg-turbo with its defaults
//!   (accurate integer IDCT, fancy upsampling), so the red level is exactly
//!   the one computed on `djpeg`'s or Pillow's pixels. Baseline,
//!   extended-sequential and progressive, Huffman- or arithmetic-coded, 8-bit;
//!   grey, YCbCr, RGB (Adobe transform 0), CMYK and YCCK. CMYK/YCCK become RGB
//!   as `djpeg` writes them to PPM: samples taken as Adobe's inverted CMYK,
//!   `R = C·K/255` (rounded), likewise G from M and B from Y. Lossless,
//!   hierarchical and 12-bit JPEGs are [`Error::Unsupported`]. A file with more
//!   than 500 progressive scans, or whose scans together would pass over its
//!   coefficients more than 6 times (at least a 1-megapixel image's worth), is
//!   [`Error::Corrupt`]: libjpeg only warns about a repeated scan, and each is a
//!   pass over the whole image. A frame header other than the probed one (a
//!   second one hidden where the probe and libjpeg would read differently) is
//!   refused before anything is decoded. A JPEG cut short before its
//!   end-of-image marker is [`Error::Truncated`]; a scan whose data stops early
//!   but is followed by a marker decodes as djpeg decodes it (the missing
//!   blocks grey, with a warning).
//!   Rows are counted as they come out, 16 at a time: no full-frame buffer.
//! - **EXIF orientation** is not applied: rotating or mirroring only permutes
//!   pixels, so the fraction of red pixels is the same either way.
//! - **PNG**: every bit depth and colour type; palettes and `tRNS` are expanded
//!   to RGBA first. 16-bit samples (colour and alpha) become 8-bit by PNG's
//!   recommended scaling (PNG specification §13.12), rounded to the nearest:
//!   `round(v·255/65535)`, computed exactly as `(v·255 + 32767) / 65535`.
//!   Decoders that keep the high byte instead (`v >> 8`, as Pillow does) differ
//!   on the samples just below a rounding step, so their red level can differ
//!   in the fifth decimal. The first (default) image of an APNG.
//! - **GIF**: the first frame, on its logical screen; the area it leaves
//!   uncovered is transparent and therefore not counted.
//! - **WebP**: lossy and lossless (and the first frame of an animation).
//!   Lossless, PNG and GIF results are exact.
//!
//! # Limits
//! [`probe`] reads only the header; [`check_limits`] (or [`probe_within`])
//! refuses `width·height > max_pixels` with [`Error::TooLarge`] before any pixel
//! is decoded. [`measure`] does both and also bounds the decoders' allocations
//! ([`Limits::max_alloc`]), so a header that lies is caught inside the decoder.

#![deny(missing_docs)]

mod decode;
mod error;
mod format;
mod libjpeg;
mod probe;
mod red;
#[cfg(target_arch = "x86_64")]
mod simd;

pub use decode::{Decoded, JpegPixels, decode, decode_jpeg_pixels};
pub use error::{Error, Result};
pub use format::{ImageFormat, sniff};
pub use probe::{ImageInfo, probe};
pub use red::{RedCount, count_rgb8, count_rgba8, is_red};

/// Bounds on what an image may cost to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest accepted `width · height`. Default: 50 000 000 (50 megapixels).
    pub max_pixels: u64,
    /// Largest single allocation the decoders may make, in bytes. Default:
    /// enough for `max_pixels` of 16-bit RGBA (8 bytes per pixel).
    pub max_alloc: u64,
}

impl Limits {
    /// The default pixel limit: 50 megapixels.
    pub const DEFAULT_MAX_PIXELS: u64 = 50_000_000;

    /// Limits allowing `max_pixels` pixels, with `max_alloc` sized to match.
    pub fn with_max_pixels(max_pixels: u64) -> Limits {
        Limits {
            max_pixels,
            max_alloc: max_pixels.saturating_mul(8),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::with_max_pixels(Limits::DEFAULT_MAX_PIXELS)
    }
}

/// Refuses an image whose header announces more than `limits.max_pixels`.
///
/// # Errors
/// [`Error::TooLarge`] with the announced dimensions and the limit.
pub fn check_limits(info: &ImageInfo, limits: &Limits) -> Result<()> {
    if info.pixels() > limits.max_pixels {
        return Err(Error::TooLarge {
            width: info.width,
            height: info.height,
            limit: limits.max_pixels,
        });
    }
    Ok(())
}

/// [`probe`] followed by [`check_limits`]: what a server calls before it
/// stores or decodes anything.
///
/// # Errors
/// As [`probe`], plus [`Error::TooLarge`].
pub fn probe_within(bytes: &[u8], limits: &Limits) -> Result<ImageInfo> {
    let info = probe(bytes)?;
    check_limits(&info, limits)?;
    Ok(info)
}

/// The result of measuring one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RedReport {
    /// The format, sniffed from the bytes.
    pub format: ImageFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `red_pixels / counted_pixels`, in `[0, 1]`; 0 when nothing was counted.
    pub red: f64,
    /// Pixels that are red and have alpha ≥ 128.
    pub red_pixels: u64,
    /// Pixels with alpha ≥ 128 (all of them for an image without alpha).
    pub counted_pixels: u64,
}

/// Measures the red level of an encoded image: sniff, probe, refuse if over
/// `limits`, decode, count.
///
/// # Errors
/// - [`Error::Unsupported`] (HTTP 415): not JPEG/PNG/GIF/WebP, or an
///   unsupported variant of one;
/// - [`Error::Corrupt`] / [`Error::Truncated`] (HTTP 400): malformed or cut short;
/// - [`Error::TooLarge`] (HTTP 413): over [`Limits::max_pixels`], refused
///   before decoding.
///
/// Never panics on any input.
pub fn measure(bytes: &[u8], limits: &Limits) -> Result<RedReport> {
    let decoded = decode(bytes, limits)?;
    let info = decoded.info();
    let count = decoded.red_count();
    Ok(RedReport {
        format: info.format,
        width: info.width,
        height: info.height,
        red: count.fraction(),
        red_pixels: count.red,
        counted_pixels: count.counted,
    })
}
