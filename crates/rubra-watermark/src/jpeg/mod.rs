//! JPEG watermarking in the DCT domain: only the 8×8 blocks under the overlay are
//! decoded, blended and re-quantised; every other coefficient is kept, so pixels
//! outside the MCU-aligned rectangle decode exactly as before.

mod arith;
mod coefs;
mod dct;
mod destuff;
mod edit;
mod fast;
mod huffman;
#[cfg(target_arch = "x86_64")]
mod lanes;
mod parse;
#[cfg(target_arch = "x86_64")]
mod simd;
mod skip;
#[cfg(test)]
mod xorshift;

use crate::Route;
use crate::error::{Result, WatermarkError};
use crate::overlay::Overlay;
use crate::placement::{Placement, clip};

#[cfg(fuzzing)]
pub(crate) use skip::both_ways_for_fuzzing;

/// A watermarked image in three parts: `input[..prefix]`, then `out`, then
/// `input[input.len() - suffix..]` (only the fast route shares the input's bytes).
pub(crate) struct Made {
    pub(crate) prefix: usize,
    pub(crate) out: Vec<u8>,
    pub(crate) suffix: usize,
}

impl Made {
    /// An output made whole.
    pub(crate) fn whole(out: Vec<u8>) -> Made {
        Made {
            prefix: 0,
            out,
            suffix: 0,
        }
    }
}

/// A malformed-input error from the JPEG internals, with a static reason.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Corrupt(pub &'static str);

impl From<Corrupt> for WatermarkError {
    fn from(c: Corrupt) -> Self {
        WatermarkError::Corrupt(c.0.to_owned())
    }
}

/// Width and height from the JPEG header, after [`check_frame`].
pub(crate) fn checked_dimensions(input: &[u8], max_pixels: u64) -> Result<(u32, u32)> {
    let hdr = parse::parse_header(input)?;
    check_frame(&hdr.frame, max_pixels)?;
    Ok((hdr.frame.width as u32, hdr.frame.height as u32))
}

/// Refuses what no route of this crate reads: more than `max_pixels`, a sample
/// precision other than 8 bits, lossless and hierarchical coding.
fn check_frame(f: &parse::Frame, max_pixels: u64) -> Result<()> {
    let (w, h) = (f.width as u32, f.height as u32);
    if w as u64 * h as u64 > max_pixels {
        return Err(WatermarkError::TooLarge {
            width: w,
            height: h,
            limit: max_pixels,
        });
    }
    if f.precision != 8 {
        return Err(WatermarkError::Unsupported(format!(
            "{}-bit JPEG (only 8-bit samples are supported)",
            f.precision
        )));
    }
    if let parse::Process::Other(m) = f.process {
        return Err(WatermarkError::Unsupported(format!(
            "lossless or hierarchical JPEG (SOF{})",
            m - 0xC0
        )));
    }
    Ok(())
}

/// Rewrites a JPEG as one baseline Huffman-coded scan with the same DCT
/// coefficients (see [`crate::jpeg_to_baseline`]).
pub(crate) fn to_baseline(input: &[u8], max_pixels: u64) -> Result<Vec<u8>> {
    let hdr = parse::parse_header(input)?;
    check_frame(&hdr.frame, max_pixels)?;
    check_no_sampling_factor_3(&hdr.frame)?;
    check_blocks_per_mcu(&hdr.frame)?;
    if !sampling_divides(&hdr.frame) {
        // T.81 allows them, but libjpeg ("Fractional sampling not implemented yet")
        // and zune-jpeg decode neither the input nor a rewrite of it.
        return Err(WatermarkError::Unsupported(
            "sampling factors that do not divide the largest ones".into(),
        ));
    }
    Ok(coefs::run(input, &hdr, None)?)
}

/// Refuses a sampling factor of 3 (415). T.81 allows factors 1 to 4 and libjpeg
/// reads 3 (upsampling by replication), but a block sampled by 3 spans 24 pixels,
/// past the 16 the rest of this crate (and its fuzz oracle) counts an edit's reach
/// in, so both a horizontal and a vertical 3 are refused. (zune-jpeg, the pixel
/// decoder before libjpeg-turbo, refused them too.)
fn check_no_sampling_factor_3(f: &parse::Frame) -> Result<()> {
    if f.comps.iter().any(|c| c.h == 3 || c.v == 3) {
        return Err(WatermarkError::Unsupported(
            "JPEG with a sampling factor of 3 (only 1, 2 and 4 are supported)".into(),
        ));
    }
    Ok(())
}

/// Refuses a frame whose components make more than 10 blocks per MCU (415), say
/// sampled 2×1, 1×1 and 4×2. T.81 (B.2.3) allows at most 10 in an interleaved
/// scan (libjpeg: "Sampling factors too large for interleaved scan"), so such a
/// frame can be coded in one-component scans only, and the DCT routes write every
/// component into one interleaved scan (and edit an MCU of at most 10 blocks: a
/// fuzz finding panicked there).
fn check_blocks_per_mcu(f: &parse::Frame) -> Result<()> {
    let blocks: usize = (0..f.comps.len())
        .map(|i| {
            let (h, v) = f.sampling(i);
            h * v
        })
        .sum();
    if f.comps.len() > 1 && blocks > 10 {
        return Err(WatermarkError::Unsupported(format!(
            "JPEG whose components make {blocks} blocks per MCU (an interleaved scan \
             holds at most 10 blocks)"
        )));
    }
    Ok(())
}

/// Whether every component's sampling factors divide the largest ones.
fn sampling_divides(f: &parse::Frame) -> bool {
    let (hm, vm) = f.max_sampling();
    (0..f.comps.len()).all(|i| {
        let (ch, cv) = f.sampling(i);
        hm % ch == 0 && vm % cv == 0
    })
}

/// Watermark a JPEG in the DCT domain when its structure allows, telling which
/// route was taken; `Ok(None)` means "use the pixel path". The output is
/// `input[..prefix]`, the bytes returned, then `input[input.len() - suffix..]`, `prefix`
/// and `suffix` being 0 unless `share` (see [`fast::run`]).
pub(crate) fn watermark_dct(
    input: &[u8],
    overlay: &Overlay,
    placement: Placement,
    opacity: f32,
    max_pixels: u64,
    share: bool,
) -> Result<Option<(Made, Route)>> {
    let hdr = parse::parse_header(input)?;
    let f = &hdr.frame;
    check_frame(f, max_pixels)?;
    let (w, h) = (f.width as u32, f.height as u32);
    let origin = placement.origin(w, h, overlay.width(), overlay.height());
    clip(w, h, origin.0, origin.1, overlay.width(), overlay.height())?;
    check_no_sampling_factor_3(f)?;
    check_blocks_per_mcu(f)?;

    let sampling_ok = sampling_divides(f);
    let colour_ok = match f.comps.len() {
        1 => true,
        3 => hdr.adobe_transform != Some(0),
        _ => false,
    };
    if !(sampling_ok && colour_ok) {
        return Ok(None);
    }
    let mut qts = Vec::new();
    for c in &f.comps {
        qts.push(hdr.tables.qt[c.tq].ok_or(Corrupt("missing quantisation table"))?);
    }
    let Some(ed) = edit::McuEditor::new(f, &qts, overlay, origin, opacity) else {
        let made = if share {
            Made {
                prefix: input.len(),
                out: Vec::new(),
                suffix: 0,
            }
        } else {
            Made::whole(input.to_vec())
        };
        return Ok(Some((made, Route::Unchanged)));
    };
    let s = &hdr.scan;
    let single_baseline_scan = f.process == parse::Process::Sequential
        && s.comps.len() == f.comps.len()
        && s.comps.iter().enumerate().all(|(i, c)| c.comp == i)
        && s.ss == 0
        && s.se == 63
        && s.ah == 0
        && s.al == 0;
    if single_baseline_scan {
        match fast::run(input, &hdr, &ed, share) {
            Ok(made) => return Ok(Some((made, Route::JpegFast))),
            Err(fast::FastError::Corrupt(c)) => return Err(c.into()),
            Err(fast::FastError::MissingSymbol) => {}
        }
    }
    let out = coefs::run(input, &hdr, Some(&ed))?;
    Ok(Some((Made::whole(out), Route::JpegCoefficients)))
}
