//! Decoding to 8-bit samples with the bomb guards in the decoders themselves,
//! and counting red over whatever sample layout the decoder produced.
//!
//! JPEG goes straight to `zune-jpeg` (the decoder the `image` crate wraps) so
//! that colour spaces are under our control; PNG, GIF and WebP go through the
//! `image` crate.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::errors::DecodeErrors;

use crate::error::{Error, Result};
use crate::format::ImageFormat;
use crate::probe::{Header, ImageInfo, read_header};
use crate::red::{RedCount, count_rgb8, count_rgba8};
use crate::{Limits, check_limits};

/// A decoded image: its header facts and its samples, ready to be counted.
///
/// Produced by [`decode`]; most callers want [`crate::measure`], which is
/// `decode` followed by [`Decoded::red_count`].
#[derive(Debug)]
pub struct Decoded {
    info: ImageInfo,
    pixels: Pixels,
}

enum Pixels {
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

fn decode_jpeg(bytes: &[u8], header: &Header, limits: &Limits) -> Result<Pixels> {
    match header.jpeg_sof {
        Some((0xC0..=0xC2, 8)) => {}
        Some((0xC9 | 0xCA, 8)) => {
            check_eoi(bytes, header)?;
            return decode_arithmetic_jpeg(bytes, header, limits);
        }
        Some((_, 8)) => {
            return Err(Error::Unsupported("lossless or hierarchical JPEG".into()));
        }
        _ => {
            return Err(Error::Unsupported(
                "JPEG with a sample precision other than 8".into(),
            ));
        }
    }
    check_eoi(bytes, header)?;
    decode_huffman_jpeg(bytes, header, limits)
}

/// Every scan of a complete JPEG is followed by an EOI marker; 0xFF 0xD9 cannot
/// occur inside entropy-coded data (0xFF is stuffed as 0xFF 0x00 there), so its
/// absence after the first scan means the file was cut short. The decoders
/// themselves would fill the missing rows with grey, as libjpeg does, and report
/// nothing.
fn check_eoi(bytes: &[u8], header: &Header) -> Result<()> {
    let scans = bytes.get(header.jpeg_scan_start..).unwrap_or_default();
    if !scans.windows(2).rev().any(|w| w == [0xFF, 0xD9]) {
        return Err(Error::Truncated);
    }
    Ok(())
}

/// Arithmetic-coded JPEG (SOF9, SOF10): rewritten by `rubra-watermark` as one
/// Huffman-coded baseline scan with exactly the same DCT coefficients (what
/// `jpegtran` does), which then decodes like any other JPEG: the pixels are
/// those of decoding the arithmetic-coded file itself. The rewrite holds every
/// coefficient (2 bytes a sample), so it is bounded by the allocation limit too.
fn decode_arithmetic_jpeg(bytes: &[u8], header: &Header, limits: &Limits) -> Result<Pixels> {
    // 64 coefficients of 2 bytes per 8×8 block, up to 4 components, plus padding.
    if header.info.pixels().saturating_mul(8) > limits.max_alloc {
        return Err(too_large(&header.info, limits));
    }
    let baseline = rubra_watermark::jpeg_to_baseline(bytes, limits.max_pixels).map_err(|e| {
        use rubra_watermark::WatermarkError as W;
        match e {
            W::Unsupported(s) => Error::Unsupported(format!("JPEG: {s}")),
            W::TooLarge { .. } => too_large(&header.info, limits),
            other => Error::Corrupt(format!("JPEG: {other}")),
        }
    })?;
    let header = read_header(&baseline)?;
    decode_huffman_jpeg(&baseline, &header, limits)
}

/// Baseline, extended-sequential and progressive Huffman-coded 8-bit JPEG.
fn decode_huffman_jpeg(bytes: &[u8], header: &Header, limits: &Limits) -> Result<Pixels> {
    let options = DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(usize::from(u16::MAX))
        .set_max_height(usize::from(u16::MAX));
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(jpeg_error)?;
    let (w, h) = decoder
        .dimensions()
        .ok_or_else(|| Error::corrupt("JPEG without a frame"))?;
    // Guard in the decoder too: its idea of the size is what it will allocate for.
    let decoded_pixels = (w as u64) * (h as u64);
    if decoded_pixels > limits.max_pixels
        || (w, h) != (header.info.width as usize, header.info.height as usize)
    {
        return Err(too_large(&header.info, limits));
    }
    let input = decoder
        .input_colorspace()
        .ok_or_else(|| Error::corrupt("JPEG without a colour space"))?;
    if matches!(input, ColorSpace::CMYK | ColorSpace::YCCK) {
        return decode_cmyk_jpeg(bytes, decoded_pixels, limits);
    }
    let gray = matches!(input, ColorSpace::Luma | ColorSpace::LumaA);
    let out = if gray {
        ColorSpace::Luma
    } else {
        ColorSpace::RGB
    };
    decoder.set_options(decoder.options().jpeg_set_out_colorspace(out));
    let size = decoder
        .output_buffer_size()
        .ok_or_else(|| Error::corrupt("JPEG without a frame"))?;
    let needed = decoded_pixels * if gray { 1 } else { 3 };
    if size as u64 != needed || needed > limits.max_alloc {
        return Err(too_large(&header.info, limits));
    }
    #[cfg(feature = "libjpeg-turbo")]
    let pixels = decode_with_libjpeg_turbo(bytes, w, h, gray)?;
    #[cfg(not(feature = "libjpeg-turbo"))]
    let pixels = decoder.decode().map_err(jpeg_error)?;
    Ok(if gray {
        Pixels::Gray {
            pixels: decoded_pixels,
        }
    } else {
        Pixels::Rgb8(pixels)
    })
}

/// libjpeg-turbo's default decode (accurate integer IDCT, fancy upsampling):
/// the pixels `djpeg` and Pillow produce.
#[cfg(feature = "libjpeg-turbo")]
fn decode_with_libjpeg_turbo(bytes: &[u8], w: usize, h: usize, gray: bool) -> Result<Vec<u8>> {
    let (format, channels) = if gray {
        (turbojpeg::PixelFormat::GRAY, 1)
    } else {
        (turbojpeg::PixelFormat::RGB, 3)
    };
    let mut pixels = vec![0u8; w * h * channels];
    let mut decompressor = turbojpeg::Decompressor::new()
        .map_err(|e| Error::Corrupt(format!("JPEG: libjpeg-turbo: {e}")))?;
    let image = turbojpeg::Image {
        pixels: &mut pixels[..],
        width: w,
        pitch: w * channels,
        height: h,
        format,
    };
    decompressor
        .decompress(bytes, image)
        .map_err(|e| Error::Corrupt(format!("JPEG: libjpeg-turbo: {e}")))?;
    Ok(pixels)
}

/// Four-component JPEGs (CMYK, YCCK) go through `jpeg-decoder`: zune-jpeg
/// 0.5.15 upsamples them wrongly when their components are not all sampled
/// alike (a subsampled CMYK file came out with half its pixels off by up to
/// 255). They are rare, so speed does not matter here.
///
/// The colour conversion is libjpeg-turbo's for `djpeg -ppm`
/// (`cmyk_to_rgb`): the stored samples are Adobe's inverted CMYK, and
/// `R = round(C·K/255)`, `G = round(M·K/255)`, `B = round(Y·K/255)`; YCCK is
/// first turned into that CMYK with the JPEG YCbCr equations (C = 255 − R of
/// the YCC triple). `jpeg-decoder` hands out `255 − stored` for all four, so the
/// stored values are recovered by inverting again.
fn decode_cmyk_jpeg(bytes: &[u8], pixels: u64, limits: &Limits) -> Result<Pixels> {
    let needed = pixels * 4;
    if needed > limits.max_alloc {
        return Err(Error::corrupt("CMYK JPEG larger than the allocation limit"));
    }
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.set_max_decoding_buffer_size(usize::try_from(limits.max_alloc).unwrap_or(usize::MAX));
    let cmyk = decoder.decode().map_err(|e| match e {
        jpeg_decoder::Error::Unsupported(f) => Error::Unsupported(format!("JPEG: {f:?}")),
        jpeg_decoder::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::Truncated
        }
        other => Error::Corrupt(format!("JPEG: {other}")),
    })?;
    let info = decoder
        .info()
        .ok_or_else(|| Error::corrupt("JPEG without a frame"))?;
    if info.pixel_format != jpeg_decoder::PixelFormat::CMYK32 || cmyk.len() as u64 != needed {
        return Err(Error::corrupt("four-component JPEG did not decode to CMYK"));
    }
    let rgb = cmyk
        .chunks_exact(4)
        .flat_map(|p| {
            let k = u32::from(255 - p[3]);
            let mul = |v: u8| ((u32::from(255 - v) * k + 127) / 255) as u8;
            [mul(p[0]), mul(p[1]), mul(p[2])]
        })
        .collect();
    Ok(Pixels::Rgb8(rgb))
}

fn jpeg_error(e: DecodeErrors) -> Error {
    match e {
        DecodeErrors::Unsupported(s) => Error::Unsupported(format!("JPEG: {s:?}")),
        DecodeErrors::ExhaustedData => Error::Truncated,
        DecodeErrors::LargeDimensions(_) => Error::corrupt("JPEG dimensions too large"),
        other => Error::Corrupt(format!("JPEG: {other}")),
    }
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
