//! A decoded overlay, kept premultiplied so blending is one multiply-add per channel.

use crate::error::{Result, WatermarkError};

/// Overlays larger than this (in pixels) are refused; they are meant to be small.
pub const MAX_OVERLAY_PIXELS: u64 = 16 * 1024 * 1024;

/// An RGBA overlay ready to be composited: premultiplied 8-bit sRGB, with the
/// bounding box of its non-transparent pixels precomputed so that fully
/// transparent margins cost nothing (and, for JPEG, touch no DCT block).
#[derive(Clone)]
pub struct Overlay {
    width: u32,
    height: u32,
    /// Premultiplied RGBA, row-major, `width * height` entries.
    premul: Vec<[u8; 4]>,
    /// Bounding box of pixels with alpha > 0: x0, y0, x1, y1 (exclusive); empty if x0 >= x1.
    bounds: [u32; 4],
}

impl std::fmt::Debug for Overlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overlay")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("bounds", &self.bounds)
            .finish_non_exhaustive()
    }
}

impl Overlay {
    /// Decode a PNG (any colour type; alpha is used when present) into an overlay.
    pub fn from_png(bytes: &[u8]) -> Result<Overlay> {
        let mut reader =
            image::ImageReader::with_format(std::io::Cursor::new(bytes), image::ImageFormat::Png);
        let mut limits = image::Limits::default();
        limits.max_alloc = Some(MAX_OVERLAY_PIXELS * 8);
        reader.limits(limits);
        let img = reader.decode().map_err(|e| match e {
            image::ImageError::Limits(_) => WatermarkError::TooLarge {
                width: 0,
                height: 0,
                limit: MAX_OVERLAY_PIXELS,
            },
            image::ImageError::Unsupported(e) => WatermarkError::Unsupported(e.to_string()),
            e => WatermarkError::Corrupt(e.to_string()),
        })?;
        let rgba = img.to_rgba8();
        let (w, h) = rgba.dimensions();
        Overlay::from_rgba(w, h, rgba.into_raw())
    }

    /// Build an overlay from straight (non-premultiplied) RGBA8 pixels, row-major.
    pub fn from_rgba(width: u32, height: u32, rgba: Vec<u8>) -> Result<Overlay> {
        if width == 0 || height == 0 {
            return Err(WatermarkError::InvalidArgument("empty overlay".into()));
        }
        if width as u64 * height as u64 > MAX_OVERLAY_PIXELS {
            return Err(WatermarkError::TooLarge {
                width,
                height,
                limit: MAX_OVERLAY_PIXELS,
            });
        }
        if rgba.len() != width as usize * height as usize * 4 {
            return Err(WatermarkError::InvalidArgument(format!(
                "expected {} RGBA bytes, got {}",
                width as usize * height as usize * 4,
                rgba.len()
            )));
        }
        let premul = rgba
            .chunks_exact(4)
            .map(|p| {
                let a = p[3] as u32;
                let m = |c: u8| ((c as u32 * a + 127) / 255) as u8;
                [m(p[0]), m(p[1]), m(p[2]), p[3]]
            })
            .collect();
        Ok(Self::from_premultiplied(width, height, premul))
    }

    fn from_premultiplied(width: u32, height: u32, premul: Vec<[u8; 4]>) -> Overlay {
        let (mut x0, mut y0, mut x1, mut y1) = (width, height, 0, 0);
        for y in 0..height {
            let row = &premul[(y * width) as usize..((y + 1) * width) as usize];
            if let Some(first) = row.iter().position(|p| p[3] != 0) {
                let last = row.iter().rposition(|p| p[3] != 0).unwrap_or(first);
                x0 = x0.min(first as u32);
                x1 = x1.max(last as u32 + 1);
                y0 = y0.min(y);
                y1 = y + 1;
            }
        }
        if x0 >= x1 {
            (x0, y0, x1, y1) = (0, 0, 0, 0);
        }
        Overlay {
            width,
            height,
            premul,
            bounds: [x0, y0, x1, y1],
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Bounding box `(x, y, width, height)` of the pixels that are not fully
    /// transparent; `None` for an entirely transparent overlay.
    pub fn visible_bounds(&self) -> Option<(u32, u32, u32, u32)> {
        let [x0, y0, x1, y1] = self.bounds;
        (x1 > x0).then(|| (x0, y0, x1 - x0, y1 - y0))
    }

    /// A row of premultiplied pixels starting at (x, y), `len` long.
    #[inline]
    pub(crate) fn row(&self, x: u32, y: u32, len: u32) -> &[[u8; 4]] {
        let start = (y * self.width + x) as usize;
        &self.premul[start..start + len as usize]
    }

    /// The same overlay with its alpha (and premultiplied colour) multiplied by
    /// `opacity` ∈ [0, 1], baked in once for a cached overlay.
    pub fn with_opacity(&self, opacity: f32) -> Result<Overlay> {
        let o = check_opacity(opacity)?;
        let premul = self
            .premul
            .iter()
            .map(|p| p.map(|c| (c as f32 * o + 0.5) as u8))
            .collect();
        Ok(Self::from_premultiplied(self.width, self.height, premul))
    }

    /// Resize by a factor (> 0), with a triangle filter on premultiplied pixels so
    /// edges do not pick up dark fringes.
    pub fn scaled(&self, factor: f32) -> Result<Overlay> {
        if !(factor.is_finite() && factor > 0.0) {
            return Err(WatermarkError::InvalidArgument(format!(
                "scale must be a positive number, got {factor}"
            )));
        }
        let w = ((self.width as f64 * factor as f64).round() as u64).max(1);
        let h = ((self.height as f64 * factor as f64).round() as u64).max(1);
        self.resized(w, h)
    }

    /// Resize to `width` pixels wide, keeping the aspect ratio.
    pub fn resized_to_width(&self, width: u32) -> Result<Overlay> {
        if width == 0 {
            return Err(WatermarkError::InvalidArgument("width must be > 0".into()));
        }
        let h = ((self.height as u64 * width as u64 + self.width as u64 / 2) / self.width as u64)
            .max(1);
        self.resized(width as u64, h)
    }

    /// Resize to exactly `width`×`height`.
    pub fn resized(&self, width: u64, height: u64) -> Result<Overlay> {
        if width == 0 || height == 0 || width > 65535 || height > 65535 {
            return Err(WatermarkError::InvalidArgument(format!(
                "overlay size {width}x{height} out of range"
            )));
        }
        if width * height > MAX_OVERLAY_PIXELS {
            return Err(WatermarkError::TooLarge {
                width: width as u32,
                height: height as u32,
                limit: MAX_OVERLAY_PIXELS,
            });
        }
        let (width, height) = (width as u32, height as u32);
        if (width, height) == (self.width, self.height) {
            return Ok(self.clone());
        }
        let raw: Vec<u8> = self.premul.iter().flatten().copied().collect();
        let buf = image::RgbaImage::from_raw(self.width, self.height, raw).ok_or_else(|| {
            WatermarkError::InvalidArgument("overlay buffer size mismatch".into())
        })?;
        let out =
            image::imageops::resize(&buf, width, height, image::imageops::FilterType::Triangle);
        let premul = out
            .into_raw()
            .chunks_exact(4)
            .map(|p| {
                let a = p[3];
                [p[0].min(a), p[1].min(a), p[2].min(a), a]
            })
            .collect();
        Ok(Self::from_premultiplied(width, height, premul))
    }
}

/// Validate an opacity value.
pub(crate) fn check_opacity(opacity: f32) -> Result<f32> {
    if (0.0..=1.0).contains(&opacity) {
        Ok(opacity)
    } else {
        Err(WatermarkError::InvalidArgument(format!(
            "opacity must be within [0, 1], got {opacity}"
        )))
    }
}
