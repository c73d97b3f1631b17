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
    // not the probe's. The SOF10 file goes through rubra-watermark's rewrite, which
    // refuses the SOS.
    let limits = Limits::default();
    assert!(probe_within(TWO_SIZES, &limits).is_ok());
    let err = measure(TWO_SIZES, &limits).unwrap_err();
    assert_eq!(err.http_status(), 400, "{err}");

    // The same file Huffman-coded (SOF2 for SOF10) reaches zune-jpeg, which reads
    // both frame headers and refuses the file: corrupt too, not a 16×9 image.
    let mut huffman = TWO_SIZES.to_vec();
    assert_eq!(&huffman[0x9E..0xA0], &[0xFF, 0xCA]);
    huffman[0x9F] = 0xC2;
    let info = probe(&huffman).unwrap();
    assert_eq!((info.width, info.height), (161, 117));
    let err = measure(&huffman, &limits).unwrap_err();
    assert!(matches!(&err, Error::Corrupt(_)), "{err:?}");
}
