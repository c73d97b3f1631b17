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

fuzz_target!(|input: &[u8]| {
    let Ok(out) = rubra_watermark::jpeg_to_baseline(input, 1 << 20) else {
        return;
    };
    let after = decode(&out).expect("the baseline output decodes");
    if let Some(before) = decode(input)
        && before != after
    {
        // zune-jpeg reads some damaged files (markers between scans it does not
        // expect) differently from libjpeg-turbo; the reference decides then.
        let reference = djpeg(input).expect("pixels changed, and djpeg cannot decode the input");
        assert!(
            djpeg(&out) == Some(reference),
            "pixels changed for zune-jpeg and for djpeg"
        );
    }
});
