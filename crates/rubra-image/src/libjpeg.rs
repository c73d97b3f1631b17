//! JPEG decoded by the system's libjpeg-turbo and counted row by row.
//!
//! The decode is libjpeg-turbo's default (accurate integer IDCT, fancy
//! upsampling): the pixels `djpeg` and Pillow make, so a JPEG's red level is
//! exactly theirs. Rows come out [`ROWS`] at a time into one small buffer and
//! are counted at once, so a request never holds a full-frame RGB buffer (the
//! reference 1980×1280 photo needs 95 KB instead of 7.6 MB, and the count runs
//! on rows still in cache). libjpeg's own memory (the coefficient buffer of a
//! progressive or multi-scan file) is capped at [`Limits::max_alloc`].
//!
//! The libjpeg calls are made from `csrc/jpeg_rows.c`: libjpeg leaves a fatal
//! error by `longjmp`, which must never cross a Rust frame, so the C side keeps
//! every jump point and returns status codes.
//!
//! A baseline file's Huffman data is decoded by `csrc/jpeg_huffman.c` instead
//! of libjpeg-turbo's own entropy decoder (about two thirds of libjpeg's time
//! on a photo): it finds a coefficient's code, run and value in one lookup.
//! The coefficients are the same, so the pixels are too; it decodes only clean
//! data and gives a damaged file back to libjpeg whole (see [`read_rows`]).
//!
//! With `simd.rs`, the only module allowed `unsafe`: the calls into C. Each
//! block says what it relies on.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_long};

use crate::error::{Error, Result};
use crate::red::{RedCount, count_rgb8};
use crate::{ImageInfo, Limits};

/// Rows decoded per call (libjpeg hands out at most one iMCU row of 16 at a time).
const ROWS: u32 = 16;

/// Progressive scans accepted in one file. Ordinary encoders write about ten;
/// each scan is a pass over the whole coefficient buffer, so a hostile file with
/// thousands of tiny scans would cost seconds. libjpeg-turbo's own fuzzers use 500.
const MAX_SCANS: c_int = 500;

const OK: c_int = 0;
const CORRUPT: c_int = 1;
const UNSUPPORTED: c_int = 2;
const TOO_LARGE: c_int = 3;
const TRUNCATED: c_int = 4;
const RETRY: c_int = 5;

const GRAY: c_int = 1;
const RGB: c_int = 3;
const CMYK: c_int = 4;

/// The C side's decompressor (`struct rubra_jpeg`), only ever behind a pointer.
#[repr(C)]
struct RawJpeg {
    _private: [u8; 0],
}

unsafe extern "C" {
    fn rubra_jpeg_new() -> *mut RawJpeg;
    fn rubra_jpeg_free(h: *mut RawJpeg);
    fn rubra_jpeg_message(h: *const RawJpeg) -> *const c_char;
    fn rubra_jpeg_start(
        h: *mut RawJpeg,
        data: *const u8,
        len: usize,
        max_memory: c_long,
        fast: c_int,
        max_scans: c_int,
        expect_width: u32,
        expect_height: u32,
        width: *mut u32,
        height: *mut u32,
        layout: *mut c_int,
    ) -> c_int;
    fn rubra_jpeg_read(
        h: *mut RawJpeg,
        buf: *mut u8,
        stride: usize,
        max_rows: u32,
        rows: *mut u32,
    ) -> c_int;
    fn rubra_jpeg_finish(h: *mut RawJpeg) -> c_int;
}

/// One decompression; the C state is freed on drop, whatever happened.
struct Decompressor(*mut RawJpeg);

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: the pointer came from rubra_jpeg_new and is freed only here.
        unsafe { rubra_jpeg_free(self.0) }
    }
}

impl Decompressor {
    fn new() -> Result<Decompressor> {
        // SAFETY: no arguments; a null result is handled.
        let raw = unsafe { rubra_jpeg_new() };
        if raw.is_null() {
            return Err(Error::corrupt("JPEG: libjpeg could not start"));
        }
        Ok(Decompressor(raw))
    }

    /// The error for a non-OK status, with libjpeg's message.
    fn error(&self, status: c_int, info: &ImageInfo, limits: &Limits) -> Error {
        // SAFETY: the message is a NUL-terminated buffer inside the live state.
        let message = unsafe { CStr::from_ptr(rubra_jpeg_message(self.0)) }.to_string_lossy();
        match status {
            UNSUPPORTED => Error::Unsupported(format!("JPEG: {message}")),
            TOO_LARGE => Error::TooLarge {
                width: info.width,
                height: info.height,
                limit: limits.max_pixels,
            },
            TRUNCATED => Error::Truncated,
            CORRUPT => Error::Corrupt(format!("JPEG: {message}")),
            other => Error::Corrupt(format!("JPEG: libjpeg status {other}: {message}")),
        }
    }
}

/// Rows handed to a [`read_rows`] sink: `count` rows of `width` pixels, grey
/// (1 byte a pixel) or RGB (3 bytes), packed, starting at row `first`.
pub(crate) struct Rows<'a> {
    /// The index of the first of these rows. It is 0 again when the decode
    /// starts over (see [`read_rows`]): the sink then drops what it was given.
    pub first: u32,
    /// One byte a pixel (grey) or three (RGB).
    pub gray: bool,
    /// Pixels per row.
    pub width: u32,
    /// Rows in `samples`.
    pub count: u32,
    /// The samples, row after row.
    pub samples: &'a [u8],
}

/// Decodes an 8-bit JPEG (any coding, grey/YCbCr/RGB/CMYK/YCCK) with
/// libjpeg-turbo and hands its rows to `sink`, top to bottom, at most [`ROWS`]
/// at a time; CMYK and YCCK come out as RGB (see [`cmyk_to_rgb`]). Returns
/// whether the image is grey.
///
/// A baseline file's Huffman data is decoded by `csrc/jpeg_huffman.c`, which
/// only decodes clean data: on anything else it gives up, and the file is
/// decoded again from the start by libjpeg alone, so a damaged file gives
/// exactly libjpeg's pixels. The sink then sees row 0 again.
///
/// `info` is the header already probed (and checked against `limits`); a frame
/// that decodes to another size is refused as too large.
///
/// # Errors
/// [`Error::Unsupported`] for what libjpeg-turbo cannot decode (12-bit,
/// lossless, hierarchical, colour spaces without an RGB conversion),
/// [`Error::TooLarge`] past the memory cap, [`Error::Truncated`] when the data
/// ends early, [`Error::Corrupt`] for anything else libjpeg refuses.
pub(crate) fn read_rows(
    bytes: &[u8],
    info: &ImageInfo,
    limits: &Limits,
    mut sink: impl FnMut(Rows<'_>),
) -> Result<bool> {
    match decode_rows(bytes, info, limits, true, &mut sink) {
        Err(Retry) => decode_rows(bytes, info, limits, false, &mut sink).map_err(|Retry| {
            Error::corrupt("JPEG: libjpeg asked to decode again without the fast decoder")
        })?,
        Ok(done) => done,
    }
}

/// The fast Huffman decoder gave up: decode again without it.
struct Retry;

/// One decode by [`read_rows`], with or without the fast Huffman decoder.
fn decode_rows(
    bytes: &[u8],
    info: &ImageInfo,
    limits: &Limits,
    fast: bool,
    sink: &mut impl FnMut(Rows<'_>),
) -> std::result::Result<Result<bool>, Retry> {
    let jpeg = match Decompressor::new() {
        Ok(jpeg) => jpeg,
        Err(e) => return Ok(Err(e)),
    };
    let fail = |status: c_int| {
        if status == RETRY {
            Err(Retry)
        } else {
            Ok(Err(jpeg.error(status, info, limits)))
        }
    };
    let (mut width, mut height, mut layout) = (0u32, 0u32, 0 as c_int);
    let max_memory = c_long::try_from(limits.max_alloc).unwrap_or(c_long::MAX);
    // SAFETY: `bytes` outlives the decompressor's use of it (it ends with this
    // function); the out-pointers are to live locals.
    let status = unsafe {
        rubra_jpeg_start(
            jpeg.0,
            bytes.as_ptr(),
            bytes.len(),
            max_memory,
            c_int::from(fast),
            MAX_SCANS,
            info.width,
            info.height,
            &mut width,
            &mut height,
            &mut layout,
        )
    };
    if status != OK {
        return fail(status);
    }
    if (width, height) != (info.width, info.height) {
        // The C side already refused a frame that is not the probed one; a
        // different output size would be libjpeg's doing, still not a size problem.
        return Ok(Err(Error::corrupt(
            "JPEG: libjpeg decodes another size than the header's",
        )));
    }
    let channels = match layout {
        GRAY | RGB | CMYK => layout as usize,
        other => {
            return Ok(Err(Error::Unsupported(format!(
                "JPEG decoded to {other} components"
            ))));
        }
    };
    let stride = width as usize * channels;
    let mut rows = vec![0u8; stride * ROWS as usize];
    let mut rgb = if layout == CMYK {
        vec![0u8; width as usize * 3 * ROWS as usize]
    } else {
        Vec::new()
    };
    let mut seen = 0u32;
    while seen < height {
        let mut got = 0u32;
        // SAFETY: `rows` holds ROWS rows of `stride` bytes; libjpeg writes at
        // most `stride` bytes (output_width × output_components) per row.
        let status = unsafe { rubra_jpeg_read(jpeg.0, rows.as_mut_ptr(), stride, ROWS, &mut got) };
        if status != OK {
            return fail(status);
        }
        if got == 0 {
            return Ok(Err(Error::corrupt(
                "JPEG: libjpeg stopped before the last row",
            )));
        }
        let first = seen;
        seen += got;
        let filled = &rows[..stride * got as usize];
        let samples = if layout == CMYK {
            let out = &mut rgb[..width as usize * 3 * got as usize];
            cmyk_to_rgb(filled, out);
            &*out
        } else {
            filled
        };
        sink(Rows {
            first,
            gray: layout == GRAY,
            width,
            count: got,
            samples,
        });
    }
    // SAFETY: the decompressor is live and every row was read.
    let status = unsafe { rubra_jpeg_finish(jpeg.0) };
    if status != OK {
        return fail(status);
    }
    Ok(Ok(layout == GRAY))
}

/// The red count (DESIGN §4) of a JPEG, counted as its rows come out of
/// [`read_rows`]: no full-frame buffer.
///
/// # Errors
/// As [`read_rows`].
pub(crate) fn count_jpeg(bytes: &[u8], info: &ImageInfo, limits: &Limits) -> Result<RedCount> {
    let mut count = RedCount::default();
    read_rows(bytes, info, limits, |rows| {
        if rows.first == 0 {
            count = RedCount::default();
        }
        count += if rows.gray {
            // Grey is never red; every pixel is counted.
            RedCount {
                red: 0,
                counted: u64::from(rows.width) * u64::from(rows.count),
            }
        } else {
            count_rgb8(rows.samples)
        };
    })?;
    Ok(count)
}

/// libjpeg-turbo's CMYK → RGB for `djpeg -ppm` (`cmyk_to_rgb` in its `cmyk.h`):
/// the samples are Adobe's inverted CMYK as stored, and `R = round(C·K/255)`,
/// `G = round(M·K/255)`, `B = round(Y·K/255)`. libjpeg has already turned YCCK
/// into that CMYK.
fn cmyk_to_rgb(cmyk: &[u8], rgb: &mut [u8]) {
    for (p, out) in cmyk.chunks_exact(4).zip(rgb.chunks_exact_mut(3)) {
        let k = u32::from(p[3]);
        // c·k ≤ 255·255, and (c·k + 127) / 255 ≤ 255: exact rounding, no overflow.
        let mul = |v: u8| ((u32::from(v) * k + 127) / 255) as u8;
        out[0] = mul(p[0]);
        out[1] = mul(p[1]);
        out[2] = mul(p[2]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_conversion_rounds_like_djpeg() {
        // djpeg: (JSAMPLE)((double)c * (double)k / 255.0 + 0.5)
        for c in (0..=255u8).step_by(3) {
            for k in (0..=255u8).step_by(5) {
                let mut out = [0u8; 3];
                cmyk_to_rgb(&[c, c, c, k], &mut out);
                let want = (f64::from(c) * f64::from(k) / 255.0 + 0.5) as u8;
                assert_eq!(out, [want; 3], "c={c} k={k}");
            }
        }
    }
}
