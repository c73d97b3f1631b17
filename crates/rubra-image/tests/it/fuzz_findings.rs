//! Regression tests for the inputs the cargo-fuzz target `image_probe` found
//! (issue #20), kept under `tests/fixtures/fuzz_*`.

use rubra_image::{Error, ImageFormat, Limits, measure, probe, probe_within};

/// A JPEG whose first frame header is an SOF10 of 161×117, followed by an APP0
/// segment of length 6 (a 4-byte body), a damaged SOS (component 73, which the
/// frame lacks) and, inside that scan's data, an SOF2 of 16×9. libjpeg (`djpeg -v`)
/// reads "Start Of Frame 0xca: width=161, height=117" and then stops at the SOS
/// ("Invalid component ID 73 in SOS"). zune-jpeg 0.5.15 reads 5 bytes of any APP0
/// longer than 5 (looking for "AVI1"), one past this one: it loses the SOS marker,
/// skips on to the SOF2 and reports 16×9.
const TWO_SIZES: &[u8] = include_bytes!("../fixtures/fuzz_two_sizes_probe_161x117_zune_16x9.jpg");

/// The frame size `djpeg -v` reports, `None` when it reports none or is not installed.
fn djpeg_frame_size(jpeg: &[u8]) -> Option<(u32, u32)> {
    use std::io::Write;
    let mut child = std::process::Command::new("djpeg")
        .arg("-v")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input = jpeg.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().ok()?;
    let _ = writer.join();
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text.lines().find(|l| l.starts_with("Start Of Frame"))?;
    let field = |name: &str| -> Option<u32> {
        let rest = &line[line.find(name)? + name.len()..];
        rest.split(',').next()?.trim().parse().ok()
    };
    Some((field("width=")?, field("height=")?))
}

#[test]
fn image_probe_two_sizes_probe_161x117_zune_16x9() {
    // The probe reads the first frame header, as libjpeg does.
    let info = probe(TWO_SIZES).unwrap();
    assert_eq!(
        (info.format, info.width, info.height),
        (ImageFormat::Jpeg, 161, 117)
    );
    if let Some(size) = djpeg_frame_size(TWO_SIZES) {
        assert_eq!(size, (161, 117), "djpeg's frame header");
    }
    // `/red` (probe_within, then measure): refused as corrupt, never a size that is
    // not the probe's: libjpeg refuses the SOS, as djpeg does.
    let limits = Limits::default();
    assert!(probe_within(TWO_SIZES, &limits).is_ok());
    let err = measure(TWO_SIZES, &limits).unwrap_err();
    assert_eq!(err.http_status(), 400, "{err}");

    // The same file Huffman-coded (SOF2 for SOF10): corrupt too, not a 16×9 image
    // (zune-jpeg, the decoder before libjpeg-turbo, once reported 16×9 here).
    let mut huffman = TWO_SIZES.to_vec();
    assert_eq!(&huffman[0x9E..0xA0], &[0xFF, 0xCA]);
    huffman[0x9F] = 0xC2;
    let info = probe(&huffman).unwrap();
    assert_eq!((info.width, info.height), (161, 117));
    let err = measure(&huffman, &limits).unwrap_err();
    assert!(matches!(&err, Error::Corrupt(_)), "{err:?}");
}

/// A lossless WebP (a `VP8L` chunk) whose header gives a width of 16384 (the 14-bit
/// field 0x3FFF, plus one: RFC 9649 3.2.1) and a height of 3072, then garbage.
/// image-webp 0.2.4, the `image` crate's WebP decoder, reads a `VP8L` width and
/// height as `(1 + field) & 0x3FFF`, 0 for 16384.
const WEBP_LOSSLESS_WIDTH_16384: &[u8] =
    include_bytes!("../fixtures/fuzz_webp_lossless_width_16384.webp");

/// `bytes` of one lossless WebP row of `width` red pixels.
fn red_lossless_webp_row(width: u32) -> Vec<u8> {
    let px = [255u8, 0, 0, 255].repeat(width as usize);
    let mut out = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut out)
        .encode(&px, width, 1, image::ExtendedColorType::Rgba8)
        .unwrap();
    out
}

#[test]
fn image_probe_webp_lossless_width_16384_image_crate_reads_0() {
    // The probe reads the spec's size; the `image` crate says 0×3072.
    let info = probe(WEBP_LOSSLESS_WIDTH_16384).unwrap();
    assert_eq!(
        (info.format, info.width, info.height),
        (ImageFormat::WebP, 16384, 3072)
    );
    // `/red`: over the default limit of 50 M pixels, 413 from the header.
    let err = measure(WEBP_LOSSLESS_WIDTH_16384, &Limits::default()).unwrap_err();
    assert_eq!(err.http_status(), 413, "{err}");
    // A valid 16384×1 lossless WebP: probed right, and refused by image-webp
    // ("Inconsistent image sizes": its header reading and its decoder disagree), so
    // `/red` answers 400 rather than counting over another size; 16383 wide measures.
    let wide = red_lossless_webp_row(16384);
    let info = probe(&wide).unwrap();
    assert_eq!((info.width, info.height), (16384, 1));
    let err = measure(&wide, &Limits::default()).unwrap_err();
    assert_eq!(err.http_status(), 400, "{err}");
    let report = measure(&red_lossless_webp_row(16383), &Limits::default()).unwrap();
    assert_eq!(
        (report.width, report.red_pixels, report.counted_pixels),
        (16383, 16383, 16383)
    );
}

/// A JPEG whose APP14 "Adobe" segment holds the bytes "VP8 " at offset 12, where a
/// lossy WebP names its chunk, and whose SOF0 says 16×65504 (`djpeg -v`: "Start Of
/// Frame 0xc0: width=16, height=65504", then "Bogus marker length"). The target
/// masked imagesize's size as a lossy WebP's for any input with "VP8 " there.
const JPEG_WITH_VP8_IN_AN_APP14_SEGMENT: &[u8] =
    include_bytes!("../fixtures/fuzz_jpeg_with_vp8_in_an_app14_segment.jpg");

#[test]
fn image_probe_imagesize_jpeg_with_vp8_in_an_app14_segment() {
    let info = probe(JPEG_WITH_VP8_IN_AN_APP14_SEGMENT).unwrap();
    assert_eq!(
        (info.format, info.width, info.height),
        (ImageFormat::Jpeg, 16, 65504)
    );
    if let Some(size) = djpeg_frame_size(JPEG_WITH_VP8_IN_AN_APP14_SEGMENT) {
        assert_eq!(size, (16, 65504), "djpeg's frame header");
    }
    // `/red`: 1 048 064 pixels are within the default limit; the frame's sample
    // precision byte is 0xD8, so the file is refused as unsupported.
    let err = measure(JPEG_WITH_VP8_IN_AN_APP14_SEGMENT, &Limits::default()).unwrap_err();
    assert_eq!(err.http_status(), 415, "{err}");
}
