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
        // A zune-jpeg bug, not a corrupt output: the reference decides.
        assert!(
            has_app0_of_length_6(&out) && djpeg(&out).is_some(),
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
        // of the coefficients) must decode to the same pixels as ours.
        assert!(
            ours == Some(reference)
                || (ours.is_some() && jpegtran(input).and_then(|t| djpeg(&t)) == ours),
            "pixels changed for zune-jpeg and for djpeg"
        );
    }
});
