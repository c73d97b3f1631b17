//! Header-only probing: format and dimensions read from the first bytes of the
//! file, without decoding (or allocating for) a single pixel, so that a
//! decompression bomb is refused before any work is done.

use crate::error::{Error, Result};
use crate::format::{ImageFormat, sniff};

/// What the header of an image says: its format and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// The format, from the magic bytes.
    pub format: ImageFormat,
    /// Width in pixels (the canvas width for GIF and extended WebP).
    pub width: u32,
    /// Height in pixels (the canvas height for GIF and extended WebP).
    pub height: u32,
}

impl ImageInfo {
    /// `width * height`, without overflow.
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// Extra facts the decoder needs that the public [`ImageInfo`] does not carry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub info: ImageInfo,
    /// The largest pixel count any buffer of the first frame needs (a GIF frame
    /// may be larger than its logical screen).
    pub max_frame_pixels: u64,
    /// For JPEG: the SOFn marker byte (0xC0..=0xCF) and the sample precision.
    pub jpeg_sof: Option<(u8, u8)>,
    /// For JPEG: where the first scan's entropy-coded data starts.
    pub jpeg_scan_start: usize,
}

/// Reads the format, width and height from the header of `bytes`.
///
/// Only the first few hundred bytes are looked at in the common case (JPEG
/// walks its marker segments up to the frame header); nothing is allocated and
/// no pixel is decoded, so it takes microseconds even for a
/// 100000×100000 PNG. It does not check [`crate::Limits`]: see
/// [`crate::check_limits`] or [`crate::probe_within`].
///
/// # Errors
/// [`Error::Unsupported`] if the bytes are no supported format,
/// [`Error::Truncated`] if they end inside the header, [`Error::Corrupt`] if
/// the header is malformed or announces a zero dimension.
pub fn probe(bytes: &[u8]) -> Result<ImageInfo> {
    read_header(bytes).map(|h| h.info)
}

pub(crate) fn read_header(bytes: &[u8]) -> Result<Header> {
    let format = match sniff(bytes) {
        Some(f) => f,
        None => return Err(Error::Unsupported("unrecognised image format".into())),
    };
    let header = match format {
        ImageFormat::Png => png(bytes)?,
        ImageFormat::Jpeg => jpeg(bytes)?,
        ImageFormat::Gif => gif(bytes)?,
        ImageFormat::WebP => webp(bytes)?,
    };
    if header.info.width == 0 || header.info.height == 0 {
        return Err(Error::corrupt(
            "the header announces a zero width or height",
        ));
    }
    Ok(header)
}

fn simple(format: ImageFormat, width: u32, height: u32) -> Header {
    Header {
        info: ImageInfo {
            format,
            width,
            height,
        },
        max_frame_pixels: u64::from(width) * u64::from(height),
        jpeg_sof: None,
        jpeg_scan_start: 0,
    }
}

fn be16(b: &[u8], at: usize) -> Result<u16> {
    match b.get(at..at + 2) {
        Some(s) => Ok(u16::from_be_bytes([s[0], s[1]])),
        None => Err(Error::Truncated),
    }
}

fn le16(b: &[u8], at: usize) -> Result<u16> {
    match b.get(at..at + 2) {
        Some(s) => Ok(u16::from_le_bytes([s[0], s[1]])),
        None => Err(Error::Truncated),
    }
}

fn byte(b: &[u8], at: usize) -> Result<u8> {
    b.get(at).copied().ok_or(Error::Truncated)
}

fn png(b: &[u8]) -> Result<Header> {
    // Signature (8), then the IHDR chunk: length (4) = 13, type (4), width, height.
    let ihdr = b.get(8..8 + 8 + 13).ok_or(Error::Truncated)?;
    if &ihdr[4..8] != b"IHDR" || ihdr[0..4] != [0, 0, 0, 13] {
        return Err(Error::corrupt("PNG does not start with a valid IHDR chunk"));
    }
    let width = u32::from_be_bytes([ihdr[8], ihdr[9], ihdr[10], ihdr[11]]);
    let height = u32::from_be_bytes([ihdr[12], ihdr[13], ihdr[14], ihdr[15]]);
    if width > i32::MAX as u32 || height > i32::MAX as u32 {
        return Err(Error::corrupt("PNG dimension above 2^31-1"));
    }
    Ok(simple(ImageFormat::Png, width, height))
}

fn jpeg(b: &[u8]) -> Result<Header> {
    let mut pos = 2; // after SOI
    let mut frame: Option<Header> = None;
    loop {
        // Find the next marker; libjpeg skips stray bytes with a warning, so do we.
        while byte(b, pos)? != 0xFF {
            pos += 1;
        }
        while byte(b, pos)? == 0xFF {
            pos += 1; // fill bytes
        }
        let marker = byte(b, pos)?;
        pos += 1;
        match marker {
            // FF 00 is stuffed data, not a marker: libjpeg's next_marker skips it
            // and goes on looking for the next FF, so do we.
            0x00 => continue,
            // Standalone markers without a length.
            0x01 | 0xD0..=0xD7 => continue,
            0xD8 => return Err(Error::corrupt("JPEG has a second start-of-image marker")),
            0xD9 => return Err(Error::corrupt("JPEG ends before its image data")),
            0xDA => {
                let Some(mut h) = frame else {
                    return Err(Error::corrupt("JPEG has no frame header before its data"));
                };
                h.jpeg_scan_start = pos;
                return Ok(h);
            }
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                if frame.is_some() {
                    return Err(Error::corrupt("JPEG has two frame headers"));
                }
                let precision = byte(b, pos + 2)?;
                let height = be16(b, pos + 3)?;
                let width = be16(b, pos + 5)?;
                let mut h = simple(ImageFormat::Jpeg, u32::from(width), u32::from(height));
                h.jpeg_sof = Some((marker, precision));
                frame = Some(h);
                pos += usize::from(be16(b, pos)?);
            }
            _ => {
                let len = usize::from(be16(b, pos)?);
                if len < 2 {
                    return Err(Error::corrupt("JPEG marker segment with a length below 2"));
                }
                pos += len;
            }
        }
    }
}

fn gif(b: &[u8]) -> Result<Header> {
    let width = le16(b, 6)?;
    let height = le16(b, 8)?;
    let flags = byte(b, 10)?;
    let mut h = simple(ImageFormat::Gif, u32::from(width), u32::from(height));
    // Walk to the first image descriptor: a frame may extend past the screen,
    // and the decoder allocates for the frame.
    let mut pos = 13;
    if flags & 0x80 != 0 {
        pos += 3 << ((flags & 7) + 1);
    }
    loop {
        match byte(b, pos)? {
            0x21 => {
                pos += 2; // introducer, label
                loop {
                    let n = usize::from(byte(b, pos)?);
                    pos += 1 + n;
                    if n == 0 {
                        break;
                    }
                }
            }
            0x2C => {
                let left = u64::from(le16(b, pos + 1)?);
                let top = u64::from(le16(b, pos + 3)?);
                let fw = u64::from(le16(b, pos + 5)?);
                let fh = u64::from(le16(b, pos + 7)?);
                let canvas = (left + fw).max(u64::from(width)) * (top + fh).max(u64::from(height));
                h.max_frame_pixels = canvas.max(h.max_frame_pixels);
                return Ok(h);
            }
            0x3B => return Err(Error::corrupt("GIF has no image")),
            other => {
                return Err(Error::corrupt(format!(
                    "GIF has an unknown block 0x{other:02X}"
                )));
            }
        }
    }
}

fn webp(b: &[u8]) -> Result<Header> {
    // RIFF header (12), then the first chunk: fourcc (4), size (4), payload.
    let fourcc = b.get(12..16).ok_or(Error::Truncated)?;
    let p = 20; // payload start
    let (width, height) = match fourcc {
        b"VP8X" => {
            let d = b.get(p + 4..p + 10).ok_or(Error::Truncated)?;
            let w = u32::from_le_bytes([d[0], d[1], d[2], 0]) + 1;
            let h = u32::from_le_bytes([d[3], d[4], d[5], 0]) + 1;
            (w, h)
        }
        b"VP8 " => {
            // Frame tag (3), start code 9d 01 2a, then 14-bit width and height.
            let d = b.get(p..p + 10).ok_or(Error::Truncated)?;
            if d[3..6] != [0x9D, 0x01, 0x2A] {
                return Err(Error::corrupt("WebP VP8 frame without its start code"));
            }
            if d[0] & 1 != 0 {
                return Err(Error::corrupt("WebP VP8 first frame is not a key frame"));
            }
            let w = u32::from(u16::from_le_bytes([d[6], d[7]]) & 0x3FFF);
            let h = u32::from(u16::from_le_bytes([d[8], d[9]]) & 0x3FFF);
            (w, h)
        }
        b"VP8L" => {
            let d = b.get(p..p + 5).ok_or(Error::Truncated)?;
            if d[0] != 0x2F {
                return Err(Error::corrupt("WebP VP8L chunk without its signature"));
            }
            let bits = u32::from_le_bytes([d[1], d[2], d[3], d[4]]);
            ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        }
        _ => return Err(Error::corrupt("WebP without a VP8, VP8L or VP8X chunk")),
    };
    Ok(simple(ImageFormat::WebP, width, height))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn png_header(w: u32, h: u32) -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(&h.to_be_bytes());
        v.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
        v
    }

    #[test]
    fn png_dimensions() {
        let i = probe(&png_header(100_000, 90_000)).unwrap();
        assert_eq!(
            (i.format, i.width, i.height),
            (ImageFormat::Png, 100_000, 90_000)
        );
        assert!(matches!(probe(&png_header(0, 5)), Err(Error::Corrupt(_))));
        assert!(matches!(
            probe(&png_header(5, 5)[..20]),
            Err(Error::Truncated)
        ));
    }

    #[test]
    fn jpeg_walks_segments_to_the_frame_header() {
        let mut v = vec![
            0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 1, 2, 0xFF, 0xFF, 0xC2, 0, 11, 8,
        ];
        v.extend_from_slice(&[0x01, 0x02, 0x03, 0x04, 1, 1, 0x11, 0]);
        v.extend_from_slice(&[0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0, 0x12]);
        let h = read_header(&v).unwrap();
        assert_eq!((h.info.width, h.info.height), (0x0304, 0x0102));
        assert_eq!(h.jpeg_sof, Some((0xC2, 8)));
        assert_eq!(h.jpeg_scan_start, 24);
        assert!(matches!(probe(&v[..9]), Err(Error::Truncated)));
        assert!(matches!(probe(&v[..23]), Err(Error::Truncated)));
        assert!(matches!(probe(b"\xFF\xD8\xFF\xD9"), Err(Error::Corrupt(_))));
    }

    #[test]
    fn unknown_bytes_are_unsupported() {
        assert!(matches!(probe(b"hello world"), Err(Error::Unsupported(_))));
    }
}
