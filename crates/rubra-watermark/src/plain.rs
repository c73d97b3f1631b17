//! The pixel path: decode → blend → encode. Used for PNG, and for JPEGs the DCT
//! path cannot handle (CMYK, Adobe RGB, odd sampling, arithmetic coding); JPEG
//! pixels come from libjpeg-turbo through `rubra-image`.

use crate::blend::blend_into;
use crate::error::{Result, WatermarkError};
use crate::overlay::Overlay;
use crate::placement::{Placement, clip};
use image::ImageEncoder;

fn check_size(w: u32, h: u32, max_pixels: u64) -> Result<()> {
    if w as u64 * h as u64 > max_pixels {
        return Err(WatermarkError::TooLarge {
            width: w,
            height: h,
            limit: max_pixels,
        });
    }
    Ok(())
}

/// Width and height from a PNG's IHDR.
pub(crate) fn png_dimensions(input: &[u8]) -> Result<(u32, u32)> {
    let b = input
        .get(16..24)
        .ok_or_else(|| WatermarkError::Corrupt("truncated PNG header".into()))?;
    // Without this, garbage after the signature read as a huge size gave 413, not 400.
    if input.get(12..16) != Some(b"IHDR") {
        return Err(WatermarkError::Corrupt(
            "PNG does not start with an IHDR chunk".into(),
        ));
    }
    let w = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let h = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    Ok((w, h))
}

/// PNG in, PNG out (8-bit; 16-bit inputs are reduced to 8 bits per channel).
pub(crate) fn watermark_png(
    input: &[u8],
    overlay: &Overlay,
    placement: Placement,
    opacity: f32,
    max_pixels: u64,
) -> Result<Vec<u8>> {
    let (w, h) = png_dimensions(input)?;
    check_size(w, h, max_pixels)?;
    let origin = placement.origin(w, h, overlay.width(), overlay.height());
    let rect = clip(w, h, origin.0, origin.1, overlay.width(), overlay.height())?;
    let img =
        image::load_from_memory_with_format(input, image::ImageFormat::Png).map_err(
            |e| match e {
                image::ImageError::Unsupported(e) => WatermarkError::Unsupported(e.to_string()),
                e => WatermarkError::Corrupt(e.to_string()),
            },
        )?;
    use image::DynamicImage as D;
    let (mut buf, channels, color) = match img {
        D::ImageLuma8(b) => (b.into_raw(), 1, image::ExtendedColorType::L8),
        D::ImageLumaA8(b) => (b.into_raw(), 2, image::ExtendedColorType::La8),
        D::ImageRgb8(b) => (b.into_raw(), 3, image::ExtendedColorType::Rgb8),
        other if other.color().has_alpha() => (
            other.to_rgba8().into_raw(),
            4,
            image::ExtendedColorType::Rgba8,
        ),
        D::ImageRgba8(b) => (b.into_raw(), 4, image::ExtendedColorType::Rgba8),
        other => (
            other.to_rgb8().into_raw(),
            3,
            image::ExtendedColorType::Rgb8,
        ),
    };
    blend_into(&mut buf, w, channels, overlay, &rect, opacity);
    let mut out = Vec::with_capacity(input.len() + input.len() / 4);
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Adaptive,
    )
    .write_image(&buf, w, h, color)
    .map_err(|e| WatermarkError::Unsupported(e.to_string()))?;
    Ok(out)
}

/// JPEG in, JPEG out through pixels (quality 90, 4:2:0; grayscale stays grayscale).
/// The pixels are libjpeg-turbo's default decode, through `rubra-image` (every
/// coding, CMYK and YCCK converted as `djpeg` does), so a file comes back with
/// the colours every other decoder shows for it.
pub(crate) fn watermark_jpeg_pixels(
    input: &[u8],
    overlay: &Overlay,
    placement: Placement,
    opacity: f32,
    max_pixels: u64,
) -> Result<Vec<u8>> {
    let (w, h) = crate::jpeg::checked_dimensions(input, max_pixels)?;
    let origin = placement.origin(w, h, overlay.width(), overlay.height());
    let rect = clip(w, h, origin.0, origin.1, overlay.width(), overlay.height())?;
    let limits = rubra_image::Limits::with_max_pixels(max_pixels);
    let decoded = rubra_image::decode_jpeg_pixels(input, &limits).map_err(|e| match e {
        rubra_image::Error::Unsupported(m) => WatermarkError::Unsupported(m),
        rubra_image::Error::TooLarge {
            width,
            height,
            limit,
        } => WatermarkError::TooLarge {
            width,
            height,
            limit,
        },
        other => WatermarkError::Corrupt(other.to_string()),
    })?;
    if (decoded.width, decoded.height) != (w, h) {
        return Err(WatermarkError::Corrupt(
            "JPEG decoded to another size".into(),
        ));
    }
    let (mut buf, gray) = (decoded.samples, decoded.gray);
    let channels = if gray { 1 } else { 3 };
    blend_into(&mut buf, w, channels, overlay, &rect, opacity);
    let mut out = Vec::with_capacity(input.len() + input.len() / 4);
    let enc = jpeg_encoder::Encoder::new(&mut out, 90);
    let ct = if gray {
        jpeg_encoder::ColorType::Luma
    } else {
        jpeg_encoder::ColorType::Rgb
    };
    enc.encode(&buf, w as u16, h as u16, ct)
        .map_err(|e| WatermarkError::Unsupported(e.to_string()))?;
    Ok(out)
}
