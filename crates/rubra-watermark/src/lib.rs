//! Composite an RGBA overlay (a watermark, a "beard") onto a JPEG or PNG.
//!
//! JPEG stays JPEG and PNG stays PNG. For JPEG the work happens in the DCT
//! domain: only the 8×8 blocks under the overlay's visible pixels are decoded,
//! blended and re-quantised with the image's own tables; every other coefficient
//! is kept, so outside the MCU-aligned rectangle around the overlay the output
//! decodes to exactly the same pixels as the input (no generation loss). For
//! baseline files the entropy-coded bytes before the first changed MCU are
//! copied verbatim and those after the last one are copied bit-shifted, so the
//! cost is one decode-only pass over the prefix (run as two overlapping
//! decoding chains, the second one speculative) plus a few MCU rows.
//! Arithmetic-coded JPEGs are read too (and written back Huffman-coded).
//!
//! ```no_run
//! use rubra_watermark::{Gravity, Overlay, Placement, watermark};
//! # fn demo(png: &[u8], jpeg: &[u8]) -> rubra_watermark::Result<()> {
//! let overlay = Overlay::from_png(png)?; // decode once, cache it
//! let out = watermark(jpeg, &overlay, Placement::gravity(Gravity::SouthEast, 20, 20), 1.0)?;
//! # let _ = out; Ok(()) }
//! ```
#![deny(missing_docs)]

mod blend;
mod error;
mod jpeg;
mod overlay;
mod placement;
mod plain;

pub use error::{Result, WatermarkError};

/// Internals for the cargo-fuzz targets, built only with `--cfg fuzzing`
/// (which cargo-fuzz sets).
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// Where the skip over the first MCUs of a single-scan baseline JPEG lands
    /// (raw byte, bit, DC predictors) or why it fails, with the AVX-512 lanes
    /// and with the scalar chains alone; `None` for any other file. See the
    /// `skip_lanes` fuzz target.
    pub type Landings = [Result<((usize, u32), [i32; 4]), &'static str>; 2];

    /// [`Landings`] at MCU `share / 65 536` of the file's total.
    pub fn skip_both_ways(jpeg: &[u8], share: u16) -> Option<Landings> {
        crate::jpeg::both_ways_for_fuzzing(jpeg, share).map(|r| r.map(|l| l.map_err(|c| c.0)))
    }
}
pub use overlay::{MAX_OVERLAY_PIXELS, Overlay};
pub use placement::{ClippedRect, Gravity, ParseGravityError, Placement, clip};

/// Images with more pixels than this are refused by [`watermark`] (413), checked
/// from the header before anything is decoded.
pub const DEFAULT_MAX_PIXELS: u64 = 50_000_000;

/// The image formats this crate reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// JPEG (JFIF/Exif).
    Jpeg,
    /// PNG.
    Png,
}

impl Format {
    /// Sniff the format from the first bytes.
    pub fn detect(bytes: &[u8]) -> Option<Format> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Format::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Format::Png)
        } else {
            None
        }
    }

    /// The media type for `Content-Type`.
    pub fn mime_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
        }
    }
}

/// How the output was produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Baseline JPEG: prefix and suffix copied, only the MCUs around the overlay re-encoded.
    JpegFast,
    /// JPEG: all coefficients decoded (progressive, multi-scan, arithmetic-coded, or a
    /// Huffman table lacking a needed symbol) and written as one baseline scan with
    /// optimal tables;
    /// still lossless outside the edited blocks.
    JpegCoefficients,
    /// JPEG decoded to pixels and encoded again (CMYK, Adobe RGB, sampling factors
    /// that do not divide each other).
    JpegPixels,
    /// PNG decoded, blended and encoded with fast compression.
    Png,
    /// No visible overlay pixel landed on the image; the input is returned as is.
    Unchanged,
}

/// Which implementation to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// The DCT-domain path for JPEG where possible, pixels otherwise.
    #[default]
    Auto,
    /// Always decode to pixels and encode again (for comparison and benchmarks).
    Pixels,
}

/// Everything [`watermark_with`] needs besides the input and overlay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Where to put the overlay.
    pub placement: Placement,
    /// Multiplies the overlay's alpha; within [0, 1].
    pub opacity: f32,
    /// Refuse larger images (413).
    pub max_pixels: u64,
    /// Implementation choice.
    pub strategy: Strategy,
}

impl Options {
    /// Options with the given placement, full opacity and default limits.
    pub fn new(placement: Placement) -> Self {
        Options {
            placement,
            opacity: 1.0,
            max_pixels: DEFAULT_MAX_PIXELS,
            strategy: Strategy::Auto,
        }
    }
}

/// The result of [`watermark_with`].
#[derive(Debug, Clone)]
pub struct Watermarked {
    /// The encoded output image.
    pub bytes: Vec<u8>,
    /// Its format (always the input's).
    pub format: Format,
    /// How it was produced.
    pub route: Route,
}

/// Composite `overlay` onto `input` (JPEG or PNG) and return an image of the same
/// format. `opacity` ∈ [0, 1] multiplies the overlay's alpha.
pub fn watermark(
    input: &[u8],
    overlay: &Overlay,
    placement: Placement,
    opacity: f32,
) -> Result<Vec<u8>> {
    let opts = Options {
        opacity,
        ..Options::new(placement)
    };
    watermark_with(input, overlay, &opts).map(|w| w.bytes)
}

/// Rewrites a JPEG as one baseline, Huffman-coded scan with optimal tables and
/// exactly the same DCT coefficients, as `jpegtran` does: any decoder then gives
/// the same pixels for the output as for the input. Reads arithmetic-coded
/// (SOF9, SOF10), progressive and multi-scan files; keeps the APPn, COM and DQT
/// segments. This is how decoders that read only Huffman coding are handed an
/// arithmetic-coded JPEG.
///
/// # Errors
/// [`WatermarkError::TooLarge`] over `max_pixels` (checked from the header
/// first); [`WatermarkError::Unsupported`] for sample precisions other than 8
/// bits, for lossless or hierarchical JPEG, for sampling factors that do not
/// divide the largest ones (which decoders do not read), for a sampling factor
/// of 3 (which zune-jpeg does not read) and for components that make more than 10
/// blocks per MCU (which one interleaved scan cannot hold);
/// [`WatermarkError::Corrupt`] for malformed data, a restart marker out of sequence
/// among them.
pub fn jpeg_to_baseline(input: &[u8], max_pixels: u64) -> Result<Vec<u8>> {
    jpeg::to_baseline(input, max_pixels)
}

/// The result of [`watermark_parts`]: the output image is the input's first `prefix`
/// bytes, then `rest`, then the input's last `suffix` bytes.
#[derive(Debug, Clone)]
pub struct WatermarkedParts {
    /// How many of the input's first bytes begin the output unchanged.
    pub prefix: usize,
    /// The output's bytes after those.
    pub rest: Vec<u8>,
    /// How many of the input's last bytes end the output unchanged (a JPEG's scan after the
    /// last changed MCU, where it keeps its place in the byte, up to the end of the file).
    pub suffix: usize,
    /// Its format (always the input's).
    pub format: Format,
    /// How it was produced.
    pub route: Route,
}

/// [`watermark`] with explicit limits and strategy, reporting the route taken.
pub fn watermark_with(input: &[u8], overlay: &Overlay, opts: &Options) -> Result<Watermarked> {
    let w = watermark_parts_of(input, overlay, opts, false)?;
    debug_assert_eq!((w.prefix, w.suffix), (0, 0));
    Ok(Watermarked {
        bytes: w.rest,
        format: w.format,
        route: w.route,
    })
}

/// [`watermark_with`] for a caller that holds the input in a shareable buffer: the
/// output's bytes that equal the input's head are not copied but counted in
/// [`WatermarkedParts::prefix`] (on the DCT fast path of a JPEG with the overlay low in
/// the picture, nearly the whole file), so that a server can send them from the
/// request's own buffer.
pub fn watermark_parts(
    input: &[u8],
    overlay: &Overlay,
    opts: &Options,
) -> Result<WatermarkedParts> {
    watermark_parts_of(input, overlay, opts, true)
}

fn watermark_parts_of(
    input: &[u8],
    overlay: &Overlay,
    opts: &Options,
    share: bool,
) -> Result<WatermarkedParts> {
    let opacity = overlay::check_opacity(opts.opacity)?;
    let format = Format::detect(input)
        .ok_or_else(|| WatermarkError::Unsupported("input is neither JPEG nor PNG".into()))?;
    let whole = jpeg::Made::whole;
    let (made, route) = match format {
        Format::Png => (
            whole(plain::watermark_png(
                input,
                overlay,
                opts.placement,
                opacity,
                opts.max_pixels,
            )?),
            Route::Png,
        ),
        Format::Jpeg => {
            let dct = match opts.strategy {
                Strategy::Auto => jpeg::watermark_dct(
                    input,
                    overlay,
                    opts.placement,
                    opacity,
                    opts.max_pixels,
                    share,
                )?,
                Strategy::Pixels => None,
            };
            match dct {
                Some(r) => r,
                None => (
                    whole(plain::watermark_jpeg_pixels(
                        input,
                        overlay,
                        opts.placement,
                        opacity,
                        opts.max_pixels,
                    )?),
                    Route::JpegPixels,
                ),
            }
        }
    };
    Ok(WatermarkedParts {
        prefix: made.prefix,
        rest: made.out,
        suffix: made.suffix,
        format,
        route,
    })
}
