//! Decoding to 8-bit samples with the bomb guards in the decoders themselves,
//! and counting red over whatever sample layout the decoder produced.
//!
//! JPEG goes to the system's libjpeg-turbo and is counted row by row as it
//! decodes ([`crate::libjpeg`]), so no frame buffer is kept; PNG, GIF and WebP
//! go through the `image` crate.

use std::io::Cursor;

use crate::error::{Error, Result};
use crate::format::ImageFormat;
use crate::probe::{Header, ImageInfo, read_header};
use crate::red::{RedCount, count_rgb8, count_rgba8};
use crate::{Limits, check_limits, libjpeg};
use image::{DynamicImage, ImageDecoder};

/// A decoded image: its header facts and its samples, ready to be counted
/// (a JPEG is counted while it decodes, and only its count is kept).
///
/// Produced by [`decode`]; most callers want [`crate::measure`], which is
/// `decode` followed by [`Decoded::red_count`].
#[derive(Debug)]
pub struct Decoded {
    info: ImageInfo,
    pixels: Pixels,
}

enum Pixels {
    /// Already counted while decoding (JPEG): no samples kept.
    Counted(RedCount),
    /// Interleaved 8-bit RGB.
    Rgb8(Vec<u8>),
    /// Interleaved 8-bit RGBA.
    Rgba8(Vec<u8>),
    /// Grey without alpha: never red, every pixel counted.
    Gray { pixels: u64 },
    /// Grey with alpha (8 bits): never red; counted where alpha ≥ 128.
    GrayAlpha8(Vec<u8>),
    /// Grey with alpha (16 bits).
    GrayAlpha16(Vec<u16>),
    /// Interleaved 16-bit RGB.
    Rgb16(Vec<u16>),
    /// Interleaved 16-bit RGBA.
    Rgba16(Vec<u16>),
}

impl std::fmt::Debug for Pixels {
    /// The layout and sample count only: the samples themselves are megabytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pixels::Counted(c) => write!(f, "Counted({c:?})"),
            Pixels::Rgb8(v) => write!(f, "Rgb8({} samples)", v.len()),
            Pixels::Rgba8(v) => write!(f, "Rgba8({} samples)", v.len()),
            Pixels::Gray { pixels } => write!(f, "Gray({pixels} pixels)"),
            Pixels::GrayAlpha8(v) => write!(f, "GrayAlpha8({} samples)", v.len()),
            Pixels::GrayAlpha16(v) => write!(f, "GrayAlpha16({} samples)", v.len()),
            Pixels::Rgb16(v) => write!(f, "Rgb16({} samples)", v.len()),
            Pixels::Rgba16(v) => write!(f, "Rgba16({} samples)", v.len()),
        }
    }
}

impl Decoded {
    /// Format and dimensions.
    pub fn info(&self) -> ImageInfo {
        self.info
    }

    /// Counts the red and the counted pixels (DESIGN §4).
    pub fn red_count(&self) -> RedCount {
        match &self.pixels {
            Pixels::Counted(count) => *count,
            Pixels::Rgb8(px) => count_rgb8(px),
            Pixels::Rgba8(px) => count_rgba8(px),
            Pixels::Gray { pixels } => RedCount {
                red: 0,
                counted: *pixels,
            },
            Pixels::GrayAlpha8(px) => {
                let counted = px.chunks_exact(2).map(|p| u64::from(p[1] >> 7)).sum();
                RedCount { red: 0, counted }
            }
            Pixels::GrayAlpha16(px) => {
                let counted = px
                    .chunks_exact(2)
                    .map(|p| u64::from(to_u8(p[1]) >> 7))
                    .sum();
                RedCount { red: 0, counted }
            }
            Pixels::Rgb16(px) => count_16(px, 3),
            Pixels::Rgba16(px) => count_16(px, 4),
        }
    }
}

/// 16 → 8 bits by rounding to the nearest 8-bit value, `(v*255 + 32767) / 65535`
/// (the same as the `image` crate's own conversion, `(v + 128) / 257`).
/// Rounding rather than `v >> 8` keeps every 16-bit colour on the 8-bit value
/// nearest to it, so a 16-bit image that is an exact widening of an 8-bit one
/// (`v * 257`) measures exactly like the 8-bit image.
#[inline(always)]
pub(crate) fn to_u8(v: u16) -> u8 {
    ((u32::from(v) * 255 + 32767) / 65535) as u8
}

/// Converts 16-bit samples to 8 bits in stack-sized chunks and counts them
/// with the 8-bit loops, so no second full-size buffer is allocated.
fn count_16(px: &[u16], channels: usize) -> RedCount {
    const PIXELS: usize = 1024;
    let mut buf = [0u8; PIXELS * 4];
    let mut out = RedCount::default();
    for chunk in px.chunks(PIXELS * channels) {
        let chunk = &chunk[..chunk.len() - chunk.len() % channels];
        let dst = &mut buf[..chunk.len()];
        for (d, s) in dst.iter_mut().zip(chunk) {
            *d = to_u8(*s);
        }
        out += if channels == 3 {
            count_rgb8(dst)
        } else {
            count_rgba8(dst)
        };
    }
    out
}

/// Decodes `bytes` after checking the header against `limits`.
///
/// # Errors
/// As [`crate::measure`].
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Decoded> {
    let header = read_header(bytes)?;
    check_limits(&header.info, limits)?;
    if header.max_frame_pixels > limits.max_pixels {
        return Err(too_large(&header.info, limits));
    }
    let pixels = match header.info.format {
        ImageFormat::Jpeg => decode_jpeg(bytes, &header, limits)?,
        _ => decode_with_image(bytes, &header, limits)?,
    };
    Ok(Decoded {
        info: header.info,
        pixels,
    })
}

fn too_large(info: &ImageInfo, limits: &Limits) -> Error {
    Error::TooLarge {
        width: info.width,
        height: info.height,
        limit: limits.max_pixels,
    }
}

/// 8-bit JPEG in every coding libjpeg-turbo decodes (baseline, extended
/// sequential, progressive; Huffman or arithmetic), counted as it decodes.
fn decode_jpeg(bytes: &[u8], header: &Header, limits: &Limits) -> Result<Pixels> {
    check_jpeg(bytes, header)?;
    Ok(Pixels::Counted(libjpeg::count_jpeg(
        bytes,
        &header.info,
        limits,
    )?))
}

/// What is refused before libjpeg sees the file: codings it does not decode
/// and files cut short.
fn check_jpeg(bytes: &[u8], header: &Header) -> Result<()> {
    match header.jpeg_sof {
        Some((0xC0..=0xC2 | 0xC9 | 0xCA, 8)) => {}
        Some((_, 8)) => {
            return Err(Error::Unsupported("lossless or hierarchical JPEG".into()));
        }
        _ => {
            return Err(Error::Unsupported(
                "JPEG with a sample precision other than 8".into(),
            ));
        }
    }
    check_eoi(bytes, header)
}

/// A JPEG's pixels as libjpeg-turbo's default decode makes them (the pixels the
/// red level is counted on), from [`decode_jpeg_pixels`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JpegPixels {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// One sample a pixel (grey) instead of three (RGB).
    pub gray: bool,
    /// Row after row, packed: grey, or interleaved RGB (CMYK and YCCK
    /// converted as `djpeg` writes them to PPM).
    pub samples: Vec<u8>,
}

/// Decodes a JPEG to a full-frame grey or RGB buffer with libjpeg-turbo, under
/// the same checks as [`crate::measure`] (the buffer counts against
/// [`Limits::max_alloc`]). For callers that need the pixels, such as the
/// watermark's pixel path; the red meter itself never holds the frame.
///
/// # Errors
/// As [`crate::measure`]; [`Error::Unsupported`] for a format other than JPEG.
pub fn decode_jpeg_pixels(bytes: &[u8], limits: &Limits) -> Result<JpegPixels> {
    let header = read_header(bytes)?;
    if header.info.format != ImageFormat::Jpeg {
        return Err(Error::Unsupported(format!(
            "{} where a JPEG was expected",
            header.info.format
        )));
    }
    check_limits(&header.info, limits)?;
    check_jpeg(bytes, &header)?;
    let frame = header.info.pixels().saturating_mul(3);
    if frame > limits.max_alloc {
        return Err(too_large(&header.info, limits));
    }
    let mut samples = Vec::with_capacity(usize::try_from(frame).unwrap_or(usize::MAX));
    let gray = libjpeg::read_rows(bytes, &header.info, limits, |rows| {
        if rows.first == 0 {
            samples.clear();
        }
        samples.extend_from_slice(rows.samples);
    })?;
    Ok(JpegPixels {
        width: header.info.width,
        height: header.info.height,
        gray,
        samples,
    })
}

/// Every scan of a complete JPEG is followed by an EOI marker; 0xFF 0xD9 cannot
/// occur inside entropy-coded data (0xFF is stuffed as 0xFF 0x00 there), so its
/// absence after the first scan means the file was cut short. The decoder
/// itself would fill the missing rows with grey and only warn.
fn check_eoi(bytes: &[u8], header: &Header) -> Result<()> {
    let scans = bytes.get(header.jpeg_scan_start..).unwrap_or_default();
    if !scans.windows(2).rev().any(|w| w == [0xFF, 0xD9]) {
        return Err(Error::Truncated);
    }
    Ok(())
}

fn decode_with_image(bytes: &[u8], header: &Header, limits: &Limits) -> Result<Pixels> {
    let info = &header.info;
    match info.format {
        ImageFormat::Png => {
            // A PNG ends with an IEND chunk (type and CRC); without one the file
            // was cut short.
            let iend = bytes.windows(4).rposition(|w| w == b"IEND");
            if iend.is_none_or(|at| at + 8 > bytes.len()) {
                return Err(Error::Truncated);
            }
        }
        ImageFormat::WebP => {
            // The RIFF header states the size of the whole file.
            let riff = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
            if (bytes.len() as u64) < u64::from(riff) + 8 {
                return Err(Error::Truncated);
            }
        }
        _ => {}
    }
    let format = match info.format {
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Gif => image::ImageFormat::Gif,
        ImageFormat::WebP => image::ImageFormat::WebP,
        ImageFormat::Jpeg => return Err(Error::Unsupported("JPEG is decoded elsewhere".into())),
    };
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(limits.max_alloc);
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(image_limits);
    let decoder = reader
        .into_decoder()
        .map_err(|e| image_error(e, info, limits))?;
    let (w, h) = decoder.dimensions();
    // `DynamicImage::from_decoder` allocates the output before decoding without
    // consulting the decoder's limits (only `ImageReader::decode` does): check it here.
    if u64::from(w) * u64::from(h) > limits.max_pixels || decoder.total_bytes() > limits.max_alloc {
        return Err(Error::TooLarge {
            width: w,
            height: h,
            limit: limits.max_pixels,
        });
    }
    let image = DynamicImage::from_decoder(decoder).map_err(|e| image_error(e, info, limits))?;
    let pixels = u64::from(image.width()) * u64::from(image.height());
    Ok(match image {
        DynamicImage::ImageRgb8(b) => Pixels::Rgb8(b.into_raw()),
        DynamicImage::ImageRgba8(b) => Pixels::Rgba8(b.into_raw()),
        DynamicImage::ImageLuma8(_) | DynamicImage::ImageLuma16(_) => Pixels::Gray { pixels },
        DynamicImage::ImageLumaA8(b) => Pixels::GrayAlpha8(b.into_raw()),
        DynamicImage::ImageLumaA16(b) => Pixels::GrayAlpha16(b.into_raw()),
        DynamicImage::ImageRgb16(b) => Pixels::Rgb16(b.into_raw()),
        DynamicImage::ImageRgba16(b) => Pixels::Rgba16(b.into_raw()),
        // Float images come from none of the enabled decoders; convert just in case.
        other => Pixels::Rgba8(other.to_rgba8().into_raw()),
    })
}

fn image_error(e: image::ImageError, info: &ImageInfo, limits: &Limits) -> Error {
    use image::ImageError as E;
    match e {
        E::Limits(_) => too_large(info, limits),
        E::Unsupported(u) => Error::Unsupported(u.to_string()),
        E::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => Error::Truncated,
        E::Decoding(d) if is_eof(&d) => Error::Truncated,
        other => Error::Corrupt(other.to_string()),
    }
}

/// Whether a decoder error was caused by running out of input.
fn is_eof(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::UnexpectedEof
        {
            return true;
        }
        let text = err.to_string().to_ascii_lowercase();
        if text.contains("unexpected eof") || text.contains("unexpected end") {
            return true;
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_to_eight_bits_rounds() {
        assert_eq!(to_u8(0), 0);
        assert_eq!(to_u8(65535), 255);
        for v in 0..=255u16 {
            assert_eq!(to_u8(v * 257), v as u8);
        }
        for v in 0..=65535u16 {
            assert_eq!(u32::from(to_u8(v)), (u32::from(v) + 128) / 257);
        }
    }
}
