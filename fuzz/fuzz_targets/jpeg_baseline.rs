//! rubra-watermark's JPEG parser, Huffman and arithmetic decoders and Huffman
//! encoder: `jpeg_to_baseline` keeps the DCT coefficients, so when zune-jpeg
//! decodes the input, it decodes the output to exactly the same pixels, or, where
//! zune-jpeg reads a damaged input differently from libjpeg-turbo, `djpeg` (the
//! reference) does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

fn decode(bytes: &[u8]) -> Option<(usize, usize, Vec<u8>)> {
    let options = DecoderOptions::default()
        .set_max_width(1 << 20)
        .set_max_height(1 << 20);
    let mut d = JpegDecoder::new_with_options(zune_core::bytestream::ZCursor::new(bytes), options);
    let pixels = d.decode().ok()?;
    let (w, h) = d.dimensions()?;
    Some((w, h, pixels))
}

/// libjpeg-turbo's `djpeg` (the reference decoder) on `bytes`: its pixels, `None`
/// when it refuses them or is not installed.
fn djpeg(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("djpeg")
        .arg("-pnm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().ok()?;
    writer.join().ok()?.ok()?;
    // Exit 2 is "decoded, with warnings" (stray bytes, a short scan filled with zeros).
    matches!(out.status.code(), Some(0 | 2)).then_some(out.stdout)
}

/// libjpeg's own rewrite of `bytes` with the same coefficients (`jpegtran`, the
/// reference transcoder), `None` when it refuses them or is not installed.
fn jpegtran(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("jpegtran")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().ok()?;
    writer.join().ok()?.ok()?;
    matches!(out.status.code(), Some(0 | 2)).then_some(out.stdout)
}

/// `jpeg` without the DQT segments libjpeg ignores: one that comes after a scan and
/// redefines only tables whose every component has already been in a scan (libjpeg latches a
/// component's table at its first scan, so the new values are never used). jpegtran refuses
/// such a file ("multiple use of quantization table") though djpeg decodes it; without them
/// it is the same file to libjpeg. `None` when the segments cannot be walked.
fn without_ignored_dqt(jpeg: &[u8]) -> Option<Vec<u8>> {
    // Component id -> its quantization table, from the frame header.
    let mut table_of: Vec<(u8, u8)> = Vec::new();
    let mut seen: Vec<u8> = Vec::new();
    let mut out = jpeg.get(..2)?.to_vec();
    let mut i = 2;
    loop {
        // libjpeg skips stray bytes (and fill bytes) before a marker, with a warning: so does
        // this walk, and drops them.
        while i + 1 < jpeg.len() && !(jpeg[i] == 0xFF && !matches!(jpeg[i + 1], 0x00 | 0xFF)) {
            i += 1;
        }
        let Some(&[0xFF, m]) = jpeg.get(i..i + 2) else {
            break;
        };
        if m == 0xD9 {
            break;
        }
        if m == 0x01 || (0xD0..=0xD8).contains(&m) {
            // TEM, RSTn, SOI: a marker without a segment.
            out.extend_from_slice(&[0xFF, m]);
            i += 2;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([*jpeg.get(i + 2)?, *jpeg.get(i + 3)?]));
        // A segment running past the end: the rest is copied as it is.
        let Some(seg) = jpeg.get(i..i + 2 + len) else {
            break;
        };
        let body = seg.get(4..)?;
        match m {
            0xC0..=0xCF if m != 0xC4 && m != 0xC8 && m != 0xCC => {
                let n = usize::from(*body.get(5)?);
                for c in 0..n {
                    let at = 6 + 3 * c;
                    table_of.push((*body.get(at)?, *body.get(at + 2)?));
                }
            }
            0xDB if !seen.is_empty() => {
                // Table ids this segment defines.
                let mut ids = Vec::new();
                let mut k = 0;
                while let Some(&pq_tq) = body.get(k) {
                    ids.push(pq_tq & 0x0F);
                    k += 1 + if pq_tq >> 4 == 0 { 64 } else { 128 };
                }
                let ignored = ids.iter().all(|t| {
                    table_of
                        .iter()
                        .filter(|(_, q)| q == t)
                        .all(|(c, _)| seen.contains(c))
                });
                if ignored {
                    i += 2 + len;
                    continue;
                }
            }
            _ => {}
        }
        out.extend_from_slice(seg);
        i += 2 + len;
        if m == 0xDA {
            let n = usize::from(*body.first()?);
            for c in 0..n {
                seen.push(*body.get(1 + 2 * c)?);
            }
            // The entropy-coded data, up to the next marker that is not a stuffed zero or
            // a restart marker.
            let start = i;
            while i + 1 < jpeg.len()
                && !(jpeg[i] == 0xFF
                    && jpeg[i + 1] != 0x00
                    && !(0xD0..=0xD7).contains(&jpeg[i + 1])
                    && jpeg[i + 1] != 0xFF)
            {
                i += 1;
            }
            out.extend_from_slice(&jpeg[start..i]);
        }
    }
    out.extend_from_slice(jpeg.get(i..)?);
    Some(out)
}

/// Whether the header holds an APP0 segment of length 6 (a 4-byte body), which
/// zune-jpeg 0.5.15 misreads: it reads 5 bytes of any APP0 longer than 5 (looking
/// for "AVI1"), one past the segment, loses the next marker and then refuses the
/// file. djpeg reads it, and T.81 leaves APPn bodies to the application.
fn has_app0_of_length_6(jpeg: &[u8]) -> bool {
    let mut i = 2;
    while let Some(&[0xFF, m, hi, lo]) = jpeg.get(i..i + 4) {
        if m == 0xDA {
            break;
        }
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if m == 0xE0 && len == 6 {
            return true;
        }
        i += 2 + len;
    }
    false
}

fuzz_target!(|input: &[u8]| {
    let Ok(out) = rubra_watermark::jpeg_to_baseline(input, 1 << 20) else {
        return;
    };
    let Some(after) = decode(&out) else {
        // A zune-jpeg bug, or a file it refuses as it refused the input (it refuses a
        // 1×4-sampled Cr under 2×2 luma, which libjpeg decodes): not a corrupt output,
        // the reference decides.
        assert!(
            (has_app0_of_length_6(&out) || decode(input).is_none()) && djpeg(&out).is_some(),
            "the baseline output decodes"
        );
        return;
    };
    if let Some(before) = decode(input)
        && before != after
    {
        // zune-jpeg reads some damaged files (markers between scans it does not
        // expect) differently from libjpeg-turbo; the reference decides then.
        let reference = djpeg(input).expect("pixels changed, and djpeg cannot decode the input");
        let ours = djpeg(&out);
        // libjpeg smooths the low frequencies of a progressive file's blocks whose
        // lowest AC coefficients never arrived (jdcoefct.c, block smoothing), which no
        // one-scan file can ask for: then jpegtran's own rewrite (libjpeg's reading
        // of the coefficients) must decode to the same pixels as ours — of the input
        // without the DQT redefinitions libjpeg ignores, which jpegtran refuses.
        let libjpeg_rewrite = |bytes: &[u8]| jpegtran(bytes).and_then(|t| djpeg(&t));
        assert!(
            ours == Some(reference)
                || (ours.is_some()
                    && (libjpeg_rewrite(input) == ours
                        || without_ignored_dqt(input)
                            .and_then(|stripped| libjpeg_rewrite(&stripped))
                            == ours)),
            "pixels changed for zune-jpeg and for djpeg"
        );
    }
});
