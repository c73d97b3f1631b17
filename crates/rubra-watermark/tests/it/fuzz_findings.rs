//! Regression tests for the inputs the cargo-fuzz targets `watermark` and
//! `jpeg_baseline` found (issue #20), kept under `tests/fixtures/fuzz_*`: each was
//! accepted and rewritten into a JPEG that neither zune-jpeg nor libjpeg-turbo's
//! `djpeg` could decode.

use crate::helpers::*;
use rubra_watermark::{
    Gravity, Options, Overlay, Placement, WatermarkError, jpeg_to_baseline, watermark_with,
};

/// SOF9 whose chroma components use quantisation table 1, which no DQT defines
/// (the fuzzer turned the second DQT marker into the reserved JPG11 marker).
const UNDEFINED_QUANTISATION_TABLE: &[u8] =
    include_bytes!("../fixtures/fuzz_undefined_quantisation_table.jpg");
/// SOF10 whose arithmetic-coded DC scan decodes to DC values so far apart that a
/// difference needs 16 bits: no baseline Huffman DC symbol can carry it.
const DC_DIFFERENCE_OUT_OF_RANGE: &[u8] =
    include_bytes!("../fixtures/fuzz_dc_difference_out_of_range.jpg");

/// Baseline 17×24 whose luma DC Huffman table holds symbol 16 (a DC difference
/// category past 15, which libjpeg and zune-jpeg refuse in a DC table).
const DC_HUFFMAN_SYMBOL_OVER_15: &[u8] =
    include_bytes!("../fixtures/fuzz_dc_huffman_symbol_over_15.jpg");

/// Baseline 17×24 followed, before any EOI, by 18 stray bytes and a DHT segment
/// with a bad table class: zune-jpeg decodes it (and djpeg refuses it).
const BOGUS_SEGMENT_AFTER_THE_SCAN: &[u8] =
    include_bytes!("../fixtures/fuzz_bogus_segment_after_the_scan.jpg");

/// Baseline 20×33 whose SOS segment says 28 bytes where its three components make
/// 12 (the fuzzer wrote 16 bytes over the start of the entropy-coded data).
const SOS_LENGTH_TOO_LONG: &[u8] = include_bytes!("../fixtures/fuzz_sos_length_too_long.jpg");

/// Baseline 20×33 with an SOI marker inside its entropy-coded data: libjpeg ends
/// the scan there and stops ("two SOI markers"); zune-jpeg reads on past it.
const SOI_INSIDE_THE_SCAN: &[u8] = include_bytes!("../fixtures/fuzz_soi_inside_the_scan.jpg");

/// Baseline 20×33 whose entropy-coded data runs into fill bytes and the undefined
/// marker 0xFF76, followed by more data: libjpeg stops ("Unsupported marker type
/// 0x76"); zune-jpeg reads on past it.
const UNKNOWN_MARKER_INSIDE_THE_SCAN: &[u8] =
    include_bytes!("../fixtures/fuzz_unknown_marker_inside_the_scan.jpg");

/// Baseline 17×24 with a second full scan after new tables: libjpeg stops ("Didn't
/// expect more than one scan"), zune-jpeg shows other pixels than a decode of both.
const COMPONENT_IN_TWO_SEQUENTIAL_SCANS: &[u8] =
    include_bytes!("../fixtures/fuzz_component_in_two_sequential_scans.jpg");
/// SOF10 after an APP14 "Adobe" segment with colour transform 7 (T.872 defines 0, 1
/// and 2): zune-jpeg refuses any other.
const UNKNOWN_ADOBE_TRANSFORM: &[u8] =
    include_bytes!("../fixtures/fuzz_unknown_adobe_transform.jpg");

/// Baseline 20×33 with a second SOI marker between its DQT segments (libjpeg: "two
/// SOI markers"; zune-jpeg refuses it too).
const SECOND_SOI_IN_THE_HEADER: &[u8] =
    include_bytes!("../fixtures/fuzz_second_soi_in_the_header.jpg");

/// Progressive 18×20 whose second SOS marker was changed to the undefined 0xFF49:
/// libjpeg stops ("Unsupported marker type 0x49"), zune-jpeg reads on.
const UNKNOWN_MARKER_BETWEEN_SCANS: &[u8] =
    include_bytes!("../fixtures/fuzz_unknown_marker_between_scans.jpg");

/// Progressive 20×18 whose second DHT marker in the header was changed to the undefined
/// 0xFF3A (the segment stays): libjpeg stops ("Unsupported marker type 0x3a"), rubra
/// skipped it as a segment and zune-jpeg reads another image.
const UNKNOWN_MARKER_IN_THE_HEADER: &[u8] =
    include_bytes!("../fixtures/fuzz_unknown_marker_in_the_header.jpg");

/// Progressive 18×20 whose Cr component is sampled 1×3 under a 2×2 luma: T.81
/// allows it, but neither libjpeg ("Fractional sampling not implemented yet") nor
/// zune-jpeg decodes it.
const FRACTIONAL_SAMPLING: &[u8] = include_bytes!("../fixtures/fuzz_fractional_sampling.jpg");

/// Progressive 18×20 with a refinement scan of Ah = 3, Al = 6: T.81 G.1.1.1.2 wants
/// Al = Ah − 1 (libjpeg: "Invalid progressive parameters"); zune-jpeg reads it
/// its own way.
const REFINEMENT_AL_NOT_AH_MINUS_ONE: &[u8] =
    include_bytes!("../fixtures/fuzz_refinement_al_not_ah_minus_one.jpg");

/// Baseline 33×20 (4:2:0, 3×2 MCUs) whose entropy-coded data ends, at EOI, before
/// its last MCUs: decoders fill the rest of the scan with zero bits (djpeg warns
/// "premature end of data segment").
const TRUNCATED_SCAN: &[u8] = include_bytes!("../fixtures/fuzz_truncated_scan.jpg");

/// Baseline 33×20 (4:2:0) whose entropy-coded data holds, at offset 776, 108 fill
/// bytes 0xFF and then `FF 00`: libjpeg and zune-jpeg read `FF FF… 00` as one
/// stuffed data byte 0xFF and decode on.
const FILL_BYTES_THEN_FF00_INSIDE_THE_SCAN: &[u8] =
    include_bytes!("../fixtures/fuzz_fill_bytes_then_ff00_inside_the_scan.jpg");

/// SOF9 161×117 with luma sampled 3×2, restart interval 22, and 319 stray bytes
/// and then RST1 where RST0 belongs: libjpeg resynchronises ("found marker 0xd1
/// instead of RST0": MCUs 22-43 decoded from nothing, 44-55 from the data after
/// RST1), zune-jpeg refuses the horizontal factor 3.
const SAMPLING_3X2_RESTART_OUT_OF_SEQUENCE: &[u8] =
    include_bytes!("../fixtures/fuzz_sampling_3x2_restart_out_of_sequence.jpg");

/// Baseline 33×20 whose Cr is sampled 1×4 under 2×2 luma (the fuzzer changed one
/// sampling byte), with 123 stray bytes before EOI: libjpeg decodes it, zune-jpeg
/// refuses it ("Invalid component dimensions") and the watermarked output alike.
const CR_SAMPLED_1X4: &[u8] = include_bytes!("../fixtures/fuzz_cr_sampled_1x4.jpg");

/// The `watermark` fuzz target's overlay: 8×8 red with alpha rising 0, 4, 8, …
fn fuzz_overlay() -> Overlay {
    let rgba: Vec<u8> = (0..64u32)
        .flat_map(|i| [255, 0, 0, (i * 4) as u8])
        .collect();
    Overlay::from_rgba(8, 8, rgba).expect("overlay")
}

/// The `watermark` fuzz target's options for a placement by `gravity`, `dx`
/// pixels in, and its first byte `pick` (the opacity is `pick / 255`).
fn fuzz_options(gravity: Gravity, dx: i64, pick: u8) -> Options {
    Options {
        opacity: f32::from(pick) / 255.0,
        max_pixels: 1 << 20,
        ..Options::new(Placement::gravity(gravity, dx, 0))
    }
}

/// zune-jpeg's verdict, with the limits the fuzz targets use.
fn zune_decodes(jpeg: &[u8]) -> bool {
    let options = zune_core::options::DecoderOptions::default()
        .set_max_width(1 << 20)
        .set_max_height(1 << 20);
    let mut d = zune_jpeg::JpegDecoder::new_with_options(
        zune_core::bytestream::ZCursor::new(jpeg),
        options,
    );
    d.decode().is_ok()
}

/// Either refused as corrupt (400), or an output both decoders read.
fn corrupt_or_decodable(result: rubra_watermark::Result<Vec<u8>>, what: &str) {
    match result {
        Err(e) => assert!(
            matches!(e, WatermarkError::Corrupt(_)) && e.http_status() == 400,
            "{what}: {e}"
        ),
        Ok(out) => {
            assert!(
                zune_decodes(&out),
                "{what}: zune-jpeg cannot decode the output"
            );
            // djpeg (when installed) panics inside the helper on a decode failure.
            let _ = djpeg(&out);
        }
    }
}

#[test]
fn jpeg_baseline_output_zune_cannot_decode_undefined_quantisation_table_is_corrupt() {
    let result = jpeg_to_baseline(UNDEFINED_QUANTISATION_TABLE, 1 << 20);
    // Refused at the reserved JPG11 marker now (as libjpeg refuses it), before the missing
    // table is noticed; corrupt either way.
    assert!(
        matches!(&result, Err(WatermarkError::Corrupt(m))
            if m.contains("quantisation table") || m.contains("a marker decoders do not know")),
        "{:?}",
        result.as_ref().map(Vec::len)
    );
    corrupt_or_decodable(result, "jpeg_to_baseline");
    let opts = Options::new(Placement::gravity(Gravity::South, 0, 0));
    let wm = watermark_with(UNDEFINED_QUANTISATION_TABLE, &fuzz_overlay(), &opts);
    corrupt_or_decodable(wm.map(|w| w.bytes), "watermark");
}

#[test]
fn watermark_output_zune_cannot_decode_dc_difference_out_of_range_is_corrupt() {
    // The fuzzer's placement (first byte 7: South, 0, 0 at opacity 7/255) and full opacity.
    for opacity in [7.0 / 255.0, 1.0] {
        let opts = Options {
            opacity,
            max_pixels: 1 << 20,
            ..Options::new(Placement::gravity(Gravity::South, 0, 0))
        };
        let wm = watermark_with(DC_DIFFERENCE_OUT_OF_RANGE, &fuzz_overlay(), &opts);
        assert!(
            matches!(&wm, Err(WatermarkError::Corrupt(m)) if m.contains("out of range")),
            "{:?}",
            wm.as_ref().map(|w| w.route)
        );
        corrupt_or_decodable(wm.map(|w| w.bytes), "watermark");
    }
    corrupt_or_decodable(
        jpeg_to_baseline(DC_DIFFERENCE_OUT_OF_RANGE, 1 << 20),
        "jpeg_to_baseline",
    );
}

/// A sequential 4:2:0 JPEG from `cjpeg` in one scan per component, with a DQT
/// redefining table `tq` as all ones inserted before the second scan; `None`
/// without `cjpeg` and `djpeg`.
fn with_dqt_before_second_scan(tq: u8) -> Option<Vec<u8>> {
    if !cjpeg_available() {
        return None;
    }
    let script =
        std::env::temp_dir().join(format!("rubra-wm-scans-{}-{tq}.txt", std::process::id()));
    std::fs::write(&script, "0;\n1;\n2;\n").expect("scan script");
    let path = script.to_str().expect("utf-8 path");
    let jpeg = cjpeg(
        &photo(64, 48, 5),
        64,
        48,
        &["-quality", "80", "-scans", path],
        false,
    );
    let _ = std::fs::remove_file(&script);
    let sos: Vec<usize> = jpeg
        .windows(2)
        .enumerate()
        .filter(|(_, m)| m == &[0xFF, 0xDA])
        .map(|(i, _)| i)
        .collect();
    assert_eq!(sos.len(), 3, "one scan per component");
    let mut dqt = vec![0xFF, 0xDB, 0, 67, tq];
    dqt.extend_from_slice(&[1; 64]);
    let mut out = jpeg[..sos[1]].to_vec();
    out.extend_from_slice(&dqt);
    out.extend_from_slice(&jpeg[sos[1]..]);
    Some(out)
}

#[test]
fn quantisation_table_redefined_before_a_components_first_scan_is_corrupt_not_ignored() {
    // Found while fixing the finding above: the rewrite copies the header's DQT
    // segments, so a table a later component is first scanned with must be those.
    let Some(input) = with_dqt_before_second_scan(1) else {
        eprintln!("SKIPPED: cjpeg not found (apt-get install -y libjpeg-turbo-progs)");
        return;
    };
    match jpeg_to_baseline(&input, 1 << 20) {
        Err(e) => assert!(matches!(e, WatermarkError::Corrupt(_)), "{e}"),
        Ok(out) => assert!(
            decode_jpeg(&out) == decode_jpeg(&input),
            "the rewrite decodes to other pixels than the input"
        ),
    }
}

#[test]
fn quantisation_table_redefined_after_its_components_scan_is_ignored_as_decoders_do() {
    let Some(input) = with_dqt_before_second_scan(0) else {
        eprintln!("SKIPPED: cjpeg not found (apt-get install -y libjpeg-turbo-progs)");
        return;
    };
    let out = jpeg_to_baseline(&input, 1 << 20).expect("a luma table redefined after its scan");
    assert!(decode_jpeg(&out) == decode_jpeg(&input), "pixels changed");
}

#[test]
fn watermark_output_zune_cannot_decode_dc_huffman_symbol_over_15_is_corrupt() {
    for opacity in [7.0 / 255.0, 1.0] {
        let opts = Options {
            opacity,
            max_pixels: 1 << 20,
            ..Options::new(Placement::gravity(Gravity::South, 0, 0))
        };
        let wm = watermark_with(DC_HUFFMAN_SYMBOL_OVER_15, &fuzz_overlay(), &opts);
        assert!(
            matches!(&wm, Err(WatermarkError::Corrupt(_))),
            "{:?}",
            wm.as_ref().map(|w| w.route)
        );
    }
    corrupt_or_decodable(
        jpeg_to_baseline(DC_HUFFMAN_SYMBOL_OVER_15, 1 << 20),
        "jpeg_to_baseline",
    );
}

/// `jpeg` with one more symbol (12) of the longest length in its luma DC table,
/// which fills the code space: the all-ones code that T.81 reserves becomes a code.
fn with_complete_luma_dc_table(jpeg: &[u8]) -> Vec<u8> {
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        // One table per DHT segment, as jpeg-encoder writes them.
        if jpeg[i + 1] == 0xC4 && jpeg[i + 4] == 0x00 {
            let counts = &jpeg[i + 5..i + 21];
            let longest = counts.iter().rposition(|&c| c > 0).expect("a code");
            let n: usize = counts.iter().map(|&c| usize::from(c)).sum();
            let mut out = jpeg[..i].to_vec();
            out.extend_from_slice(&[0xFF, 0xC4]);
            out.extend_from_slice(&(len as u16 + 1).to_be_bytes());
            out.push(0x00);
            let mut counts = counts.to_vec();
            counts[longest] += 1;
            out.extend_from_slice(&counts);
            out.extend_from_slice(&jpeg[i + 21..i + 21 + n]);
            out.push(12);
            out.extend_from_slice(&jpeg[i + 2 + len..]);
            return out;
        }
        i += 2 + len;
    }
    panic!("no luma DC table");
}

#[test]
fn huffman_table_using_the_all_ones_code_is_corrupt_as_decoders_say() {
    // Found while fixing the finding above: a table whose codes fill the whole code
    // space was accepted and copied to the output, which decoders then refuse.
    let jpeg = encode_jpeg(&photo(64, 48, 3), 64, 48, JpegSpec::baseline((2, 2)));
    let bad = with_complete_luma_dc_table(&jpeg);
    assert!(!zune_decodes(&bad), "zune-jpeg refuses the table");
    let opts = Options::new(Placement::gravity(Gravity::SouthEast, 0, 0));
    let wm = watermark_with(&bad, &fuzz_overlay(), &opts);
    corrupt_or_decodable(wm.map(|w| w.bytes), "watermark");
    corrupt_or_decodable(jpeg_to_baseline(&bad, 1 << 20), "jpeg_to_baseline");
}

#[test]
fn watermark_output_zune_cannot_decode_bogus_segment_after_the_scan_is_dropped() {
    assert!(zune_decodes(BOGUS_SEGMENT_AFTER_THE_SCAN));
    for (gravity, opacity) in [(Gravity::South, 7.0 / 255.0), (Gravity::North, 1.0)] {
        let opts = Options {
            opacity,
            max_pixels: 1 << 20,
            ..Options::new(Placement::gravity(gravity, 0, 0))
        };
        let out = watermark_with(BOGUS_SEGMENT_AFTER_THE_SCAN, &fuzz_overlay(), &opts)
            .expect("zune-jpeg decodes the input");
        assert!(
            zune_decodes(&out.bytes),
            "{gravity:?}: zune-jpeg cannot decode the output ({:?})",
            out.route
        );
        // (djpeg decodes it too, warning about the input's stray bytes, which are kept.)
    }
}

#[test]
fn watermark_output_zune_cannot_decode_sos_length_too_long_is_corrupt() {
    let opts = fuzz_options(Gravity::South, 0, 7);
    let wm = watermark_with(SOS_LENGTH_TOO_LONG, &fuzz_overlay(), &opts);
    assert!(
        matches!(&wm, Err(WatermarkError::Corrupt(_))),
        "{:?}",
        wm.as_ref().map(|w| w.route)
    );
    corrupt_or_decodable(
        jpeg_to_baseline(SOS_LENGTH_TOO_LONG, 1 << 20),
        "jpeg_to_baseline",
    );
}

#[test]
fn frame_header_longer_than_its_components_is_corrupt_as_decoders_say() {
    // Found with the finding above: the SOF length was checked as a minimum too.
    let jpeg = encode_jpeg(&photo(64, 48, 3), 64, 48, JpegSpec::baseline((2, 2)));
    let at = jpeg
        .windows(2)
        .position(|m| m == [0xFF, 0xC0])
        .expect("SOF0");
    let len = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
    let mut bad = jpeg[..at + 2].to_vec();
    bad.extend_from_slice(&(len as u16 + 1).to_be_bytes());
    bad.extend_from_slice(&jpeg[at + 4..at + 2 + len]);
    bad.push(0);
    bad.extend_from_slice(&jpeg[at + 2 + len..]);
    assert!(!zune_decodes(&bad), "zune-jpeg refuses the frame header");
    let opts = Options::new(Placement::gravity(Gravity::SouthEast, 0, 0));
    let wm = watermark_with(&bad, &fuzz_overlay(), &opts);
    corrupt_or_decodable(wm.map(|w| w.bytes), "watermark");
    corrupt_or_decodable(jpeg_to_baseline(&bad, 1 << 20), "jpeg_to_baseline");
}

#[test]
fn watermark_pixel_changed_outside_the_overlay_soi_inside_the_scan_is_corrupt() {
    // The fuzzer's first byte 0x2F: NorthWest, 2, 0 at opacity 47/255. The fast route
    // copied the scan up to the SOI, so the pixels after it differed from zune-jpeg's.
    let opts = fuzz_options(Gravity::NorthWest, 2, 47);
    let wm = watermark_with(SOI_INSIDE_THE_SCAN, &fuzz_overlay(), &opts);
    assert!(
        matches!(&wm, Err(WatermarkError::Corrupt(_))),
        "{:?}",
        wm.as_ref().map(|w| w.route)
    );
}

#[test]
fn watermark_pixel_changed_outside_the_overlay_unknown_marker_inside_the_scan_is_corrupt() {
    let opts = fuzz_options(Gravity::NorthWest, 2, 47);
    let wm = watermark_with(UNKNOWN_MARKER_INSIDE_THE_SCAN, &fuzz_overlay(), &opts);
    assert!(
        matches!(&wm, Err(WatermarkError::Corrupt(_))),
        "{:?}",
        wm.as_ref().map(|w| w.route)
    );
}

#[test]
fn jpeg_baseline_pixels_changed_component_in_two_sequential_scans_is_corrupt() {
    let result = jpeg_to_baseline(COMPONENT_IN_TWO_SEQUENTIAL_SCANS, 1 << 20);
    assert!(
        matches!(&result, Err(WatermarkError::Corrupt(_))),
        "{:?}",
        result.as_ref().map(Vec::len)
    );
}

#[test]
fn watermark_output_zune_cannot_decode_unknown_adobe_transform_is_corrupt() {
    let opts = fuzz_options(Gravity::South, 0, 7);
    let wm = watermark_with(UNKNOWN_ADOBE_TRANSFORM, &fuzz_overlay(), &opts);
    corrupt_or_decodable(wm.map(|w| w.bytes), "watermark");
    corrupt_or_decodable(
        jpeg_to_baseline(UNKNOWN_ADOBE_TRANSFORM, 1 << 20),
        "jpeg_to_baseline",
    );
}

#[test]
fn watermark_output_zune_cannot_decode_second_soi_in_the_header_is_corrupt() {
    // The fuzzer's first byte 0x06: North, 0, 0 at opacity 6/255.
    let opts = fuzz_options(Gravity::North, 0, 6);
    let wm = watermark_with(SECOND_SOI_IN_THE_HEADER, &fuzz_overlay(), &opts);
    corrupt_or_decodable(wm.map(|w| w.bytes), "watermark");
}

#[test]
fn jpeg_baseline_pixels_changed_unknown_marker_between_scans_is_corrupt() {
    let result = jpeg_to_baseline(UNKNOWN_MARKER_BETWEEN_SCANS, 1 << 20);
    assert!(
        matches!(&result, Err(WatermarkError::Corrupt(_))),
        "{:?}",
        result.as_ref().map(Vec::len)
    );
}

#[test]
fn jpeg_baseline_pixels_changed_unknown_marker_in_the_header_is_corrupt() {
    let result = jpeg_to_baseline(UNKNOWN_MARKER_IN_THE_HEADER, 1 << 20);
    assert!(
        matches!(&result, Err(WatermarkError::Corrupt(_))),
        "{:?}",
        result.as_ref().map(Vec::len)
    );
}

#[test]
fn jpeg_baseline_output_zune_cannot_decode_fractional_sampling_is_unsupported() {
    let result = jpeg_to_baseline(FRACTIONAL_SAMPLING, 1 << 20);
    assert!(
        matches!(&result, Err(WatermarkError::Unsupported(_))),
        "{:?}",
        result.as_ref().map(Vec::len)
    );
}

#[test]
fn jpeg_baseline_pixels_changed_refinement_al_not_ah_minus_one_is_corrupt() {
    let result = jpeg_to_baseline(REFINEMENT_AL_NOT_AH_MINUS_ONE, 1 << 20);
    assert!(
        matches!(&result, Err(WatermarkError::Corrupt(_))),
        "{:?}",
        result.as_ref().map(Vec::len)
    );
}

/// libjpeg-turbo's `djpeg -pnm` on `jpeg`: whether it decoded it (exit status 0, or 2:
/// "decoded, with warnings", as for a short scan) and what it wrote; `None` when it is not
/// installed.
fn run_djpeg(jpeg: &[u8]) -> Option<(bool, Vec<u8>)> {
    use std::io::Write;
    let mut child = std::process::Command::new("djpeg")
        .arg("-pnm")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input = jpeg.to_vec();
    // A refusal may stop djpeg reading before the end: the write then fails, which says
    // nothing more than its exit status.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().ok()?;
    let _ = writer.join();
    Some((matches!(out.status.code(), Some(0 | 2)), out.stdout))
}

/// djpeg's pixels, with warnings accepted; `None` when it refuses or is not installed.
fn djpeg_with_warnings(jpeg: &[u8]) -> Option<Vec<u8>> {
    let (decoded, out) = run_djpeg(jpeg)?;
    decoded.then_some(out)
}

/// zune-jpeg's pixels, width, height and channels.
fn zune_pixels(jpeg: &[u8]) -> (Vec<u8>, usize, usize, usize) {
    let options = zune_core::options::DecoderOptions::default()
        .set_max_width(1 << 20)
        .set_max_height(1 << 20);
    let mut d = zune_jpeg::JpegDecoder::new_with_options(
        zune_core::bytestream::ZCursor::new(jpeg),
        options,
    );
    let px = d.decode().expect("zune-jpeg decodes");
    let (w, h) = d.dimensions().expect("dimensions");
    let ch = px.len() / (w * h);
    (px, w, h, ch)
}

/// The `watermark` fuzz target's placements for an input whose first byte was
/// `pick`: that one, then every gravity the target picks at full opacity.
fn fuzz_cases(gravity: Gravity, dx: i64, pick: u8) -> Vec<(Gravity, i64, f32)> {
    let mut cases = vec![(gravity, dx, f32::from(pick) / 255.0)];
    for g in [
        Gravity::North,
        Gravity::South,
        Gravity::East,
        Gravity::West,
        Gravity::NorthEast,
        Gravity::SouthWest,
        Gravity::NorthWest,
    ] {
        cases.push((g, 0, 1.0));
    }
    cases
}

/// The `watermark` fuzz target's check, for each of `cases`: `input` (a `w`×`h`
/// colour JPEG) is refused as corrupt, or watermarked into an output in which
/// zune-jpeg and djpeg (when installed) see every sample outside the overlay's
/// 16-pixel blocks, and one more block around them, as in the input.
pub(crate) fn assert_unchanged_outside_the_overlay(
    input: &[u8],
    size: (usize, usize),
    cases: &[(Gravity, i64, f32)],
) {
    assert_unchanged_outside_the_overlay_for(input, size, cases, Judges::Both);
}

/// Who must see the samples outside the overlay unchanged.
#[derive(Clone, Copy, PartialEq)]
enum Judges {
    /// zune-jpeg, and djpeg when installed.
    Both,
    /// djpeg alone (the test is skipped without it): zune-jpeg reads on past a marker
    /// that ends a short scan, where libjpeg, the reference, fills the rest with 0-bits.
    Djpeg,
}

/// [`assert_unchanged_outside_the_overlay`] with the `judges` named.
fn assert_unchanged_outside_the_overlay_for(
    input: &[u8],
    (w, h): (usize, usize),
    cases: &[(Gravity, i64, f32)],
    judges: Judges,
) {
    let (zune_before, ..) = zune_pixels(input);
    let djpeg_before = djpeg_with_warnings(input);
    if judges == Judges::Djpeg && djpeg_before.is_none() {
        eprintln!("SKIPPED: djpeg not found (apt-get install -y libjpeg-turbo-progs)");
        return;
    }
    for &(gravity, dx, opacity) in cases {
        let placement = Placement::gravity(gravity, dx, 0);
        let opts = Options {
            opacity,
            max_pixels: 1 << 20,
            ..Options::new(placement)
        };
        let out = match watermark_with(input, &fuzz_overlay(), &opts) {
            Err(e) => {
                assert!(matches!(e, WatermarkError::Corrupt(_)), "{gravity:?}: {e}");
                continue;
            }
            Ok(out) => out,
        };
        // The fuzz target's rectangle: the overlay's 16-pixel blocks and one more
        // block around them (upsampled chroma).
        let (ox, oy) = placement.origin(w as u32, h as u32, 8, 8);
        let (x0, x1) = (
            (ox.div_euclid(16) - 1) * 16,
            ((ox + 8).div_euclid(16) + 2) * 16,
        );
        let (y0, y1) = (
            (oy.div_euclid(16) - 1) * 16,
            ((oy + 8).div_euclid(16) + 2) * 16,
        );
        let outside = |i: usize, ch: usize| {
            let (x, y) = (((i / ch) % w) as i64, ((i / ch) / w) as i64);
            !((x0..x1).contains(&x) && (y0..y1).contains(&y))
        };
        let (zune_after, w2, h2, ch) = zune_pixels(&out.bytes);
        assert_eq!((w2, h2, ch), (w, h, 3));
        let zune_changed = (0..zune_after.len())
            .filter(|&i| outside(i, ch) && zune_before[i] != zune_after[i])
            .count();
        assert!(
            zune_changed == 0 || judges == Judges::Djpeg,
            "{gravity:?}, route {:?}: zune-jpeg sees {zune_changed} samples outside the overlay change",
            out.route
        );
        if let Some(before) = &djpeg_before {
            let after = djpeg_with_warnings(&out.bytes).expect("djpeg decodes the output");
            // Both PPMs have the same header; pixels start after it.
            let head = after.len() - w * h * 3;
            assert_eq!(after.len(), before.len());
            let djpeg_changed = (0..w * h * 3)
                .filter(|&i| outside(i, 3) && before[head + i] != after[head + i])
                .count();
            assert_eq!(
                djpeg_changed, 0,
                "{gravity:?}, route {:?}: djpeg sees samples outside the overlay change",
                out.route
            );
        }
    }
}

#[test]
fn watermark_truncated_scan_pixels_change_outside_the_overlay() {
    // The fuzzer's first byte 0x2F (NorthWest, 2, 0 at opacity 47/255), then every
    // gravity the target picks: the overlay lands before, inside and after the
    // MCUs the data runs out in.
    let cases = fuzz_cases(Gravity::NorthWest, 2, 0x2F);
    assert_unchanged_outside_the_overlay(TRUNCATED_SCAN, (33, 20), &cases);
}

#[test]
fn watermark_fill_bytes_then_ff00_inside_the_scan_pixels_change() {
    // The fuzzer's first byte 0x75 (West, 7, 0 at opacity 117/255), then every
    // gravity: the 108 fill bytes and `FF 00` lie in the MCUs after the overlay for
    // some, before or inside them for others.
    let cases = fuzz_cases(Gravity::West, 7, 0x75);
    assert_unchanged_outside_the_overlay(FILL_BYTES_THEN_FF00_INSIDE_THE_SCAN, (33, 20), &cases);
    // The coefficient route reads the same coefficients as from the file without
    // the fill bytes (`FF 00` alone): here both are refused, for an AC run past the
    // end of a block before the fill bytes (libjpeg ignores such runs).
    let input = FILL_BYTES_THEN_FF00_INSIDE_THE_SCAN;
    assert_eq!(&input[776..778], &[0xFF, 0xFF]);
    let run = input[776..].iter().take_while(|&&b| b == 0xFF).count();
    // 108 fill bytes, then the stuffed `FF 00`.
    assert_eq!((run, input[776 + run]), (109, 0));
    let without = [&input[..776], &input[776 + run - 1..]].concat();
    let (a, b) = (
        jpeg_to_baseline(input, 1 << 20),
        jpeg_to_baseline(&without, 1 << 20),
    );
    assert_eq!(format!("{a:?}"), format!("{b:?}"), "jpeg_to_baseline");
    let watermarked = |jpeg: &[u8]| {
        let opts = fuzz_options(Gravity::West, 7, 117);
        let out = watermark_with(jpeg, &fuzz_overlay(), &opts).expect("watermark");
        (out.route, zune_pixels(&out.bytes).0)
    };
    assert!(watermarked(input) == watermarked(&without), "watermark");
}

/// `jpeg` with `fill` bytes 0xFF put before the stuffed zero of the `FF 00` pairs
/// found in its first scan's entropy-coded data at about 1/10, 1/2 and 9/10 of it:
/// `FF 00` becomes `FF FF…FF 00`, which libjpeg and zune-jpeg read as the same
/// one data byte 0xFF.
fn with_fill_bytes_before_stuffed_zeros(jpeg: &[u8], fill: usize) -> Vec<u8> {
    let sos = (2..jpeg.len())
        .find(|&i| jpeg[i - 2] == 0xFF && jpeg[i - 1] == 0xDA)
        .expect("an SOS marker");
    let start = sos + usize::from(u16::from_be_bytes([jpeg[sos], jpeg[sos + 1]]));
    let mut pairs = Vec::new();
    let mut i = start;
    while i + 1 < jpeg.len() {
        match (jpeg[i], jpeg[i + 1]) {
            (0xFF, 0x00) => {
                pairs.push(i);
                i += 2;
            }
            (0xFF, 0xD0..=0xD7) => i += 2,
            (0xFF, _) => break,
            _ => i += 1,
        }
    }
    assert!(pairs.len() >= 3, "{} stuffed bytes", pairs.len());
    let picked = [
        pairs[pairs.len() / 10],
        pairs[pairs.len() / 2],
        pairs[pairs.len() * 9 / 10],
    ];
    let mut out = Vec::with_capacity(jpeg.len() + 3 * fill);
    let mut from = 0;
    for p in picked {
        out.extend_from_slice(&jpeg[from..=p]);
        out.extend(std::iter::repeat_n(0xFF, fill));
        from = p + 1;
    }
    out.extend_from_slice(&jpeg[from..]);
    out
}

#[test]
fn fill_bytes_before_a_stuffed_zero_are_one_data_byte_0xff_in_every_route() {
    // Generated files (Huffman without and with restart markers, 4:2:0 and 4:4:4)
    // and an arithmetic-coded one: with fill bytes before three of their stuffed
    // zeros they must give what the files without them give, in the fast route
    // (the skip before the overlay, the re-encoded MCUs, the copied tail, the copy
    // after a restart marker) and the coefficient route.
    //
    // zune-jpeg is the judge here, not djpeg: libjpeg's careful decoder
    // (`jpeg_fill_bit_buffer`) reads `FF FF… 00` as one data byte 0xFF, but with
    // libjpeg-turbo 2.1.5 the MCU around such bytes sometimes comes out otherwise:
    // in a 22 KB file with one fill byte put before each of its 101 stuffed zeros
    // in turn, 18 gave one 16×16 MCU of other pixels, all of them in the first
    // ~1.1 KiB of one of djpeg's 4 KiB input buffers (where it runs its fast
    // decoder, which stops at `FF FF` and hands the MCU to the careful one). The
    // outputs hold no fill bytes where rubra re-encodes or shifts the data.
    let (w, h) = (256usize, 192usize);
    let rgb = photo(w, h, 11);
    let mut files = Vec::new();
    for (sampling, restart) in [((2, 2), 0), ((1, 1), 0), ((2, 2), 3)] {
        let spec = JpegSpec {
            restart,
            ..JpegSpec::baseline(sampling)
        };
        files.push(encode_jpeg(&rgb, w, h, spec));
    }
    files.push(include_bytes!("../fixtures/arith_seq_420_restart.jpg").to_vec());
    for (n, plain) in files.iter().enumerate() {
        for fill in [1, 5] {
            let filled = with_fill_bytes_before_stuffed_zeros(plain, fill);
            if n < 3 {
                // (zune-jpeg does not read arithmetic coding.)
                assert!(
                    zune_pixels(&filled).0 == zune_pixels(plain).0,
                    "file {n}: zune-jpeg reads the fill bytes otherwise"
                );
            }
            assert_eq!(
                jpeg_to_baseline(&filled, 1 << 24).expect("jpeg_to_baseline"),
                jpeg_to_baseline(plain, 1 << 24).expect("jpeg_to_baseline"),
                "file {n}, {fill} fill bytes: jpeg_to_baseline"
            );
            for gravity in [
                Gravity::NorthWest,
                Gravity::Center,
                Gravity::East,
                Gravity::SouthEast,
            ] {
                let opts = Options {
                    max_pixels: 1 << 24,
                    ..Options::new(Placement::gravity(gravity, 0, 0))
                };
                let a = watermark_with(plain, &fuzz_overlay(), &opts).expect("watermark");
                let b = watermark_with(&filled, &fuzz_overlay(), &opts).expect("watermark");
                assert_eq!(a.route, b.route, "file {n}, {gravity:?}");
                assert!(
                    zune_pixels(&a.bytes).0 == zune_pixels(&b.bytes).0,
                    "file {n}, {fill} fill bytes, {gravity:?}, route {:?}: zune-jpeg",
                    b.route
                );
            }
        }
    }
}

#[test]
fn jpeg_baseline_sampling_3x2_output_zune_cannot_decode_is_unsupported() {
    let result = jpeg_to_baseline(SAMPLING_3X2_RESTART_OUT_OF_SEQUENCE, 1 << 20);
    assert!(
        matches!(&result, Err(e @ WatermarkError::Unsupported(m))
            if m.contains("sampling factor of 3") && e.http_status() == 415),
        "{:?}",
        result.as_ref().map(Vec::len)
    );
    let opts = Options::new(Placement::gravity(Gravity::South, 0, 0));
    let wm = watermark_with(SAMPLING_3X2_RESTART_OUT_OF_SEQUENCE, &fuzz_overlay(), &opts);
    assert!(
        matches!(&wm, Err(WatermarkError::Unsupported(_))),
        "{:?}",
        wm.as_ref().map(|w| w.route)
    );
    // The same for an undamaged file: libjpeg encodes and decodes a factor of 3,
    // zune-jpeg reads neither it nor a rewrite of it.
    if !cjpeg_available() {
        eprintln!("SKIPPED: cjpeg not found (apt-get install -y libjpeg-turbo-progs)");
        return;
    }
    for args in [
        &["-sample", "3x2,1x1,1x1"][..],
        &["-sample", "3x2,1x1,1x1", "-arithmetic"],
        &["-sample", "1x3,1x1,1x1", "-progressive"],
    ] {
        let jpeg = cjpeg(&photo(64, 48, 3), 64, 48, args, false);
        assert!(djpeg(&jpeg).is_some(), "{args:?}: djpeg decodes it");
        let result = jpeg_to_baseline(&jpeg, 1 << 20);
        assert!(
            matches!(&result, Err(WatermarkError::Unsupported(_))),
            "{args:?}: {:?}",
            result.as_ref().map(Vec::len)
        );
        let wm = watermark_with(&jpeg, &fuzz_overlay(), &opts);
        assert!(
            matches!(&wm, Err(WatermarkError::Unsupported(_))),
            "{args:?}: {:?}",
            wm.as_ref().map(|w| w.route)
        );
    }
}

/// `jpeg` with its `k`-th restart marker (0-based) renumbered one ahead.
fn with_restart_marker_renumbered(jpeg: &[u8], k: usize) -> Vec<u8> {
    let sos = jpeg
        .windows(2)
        .position(|m| m == [0xFF, 0xDA])
        .expect("SOS");
    let at = (sos..jpeg.len() - 1)
        .filter(|&i| jpeg[i] == 0xFF && (0xD0..=0xD7).contains(&jpeg[i + 1]))
        .nth(k)
        .expect("enough restart markers");
    let mut out = jpeg.to_vec();
    out[at + 1] = 0xD0 + (out[at + 1] - 0xD0 + 1) % 8;
    out
}

#[test]
fn restart_marker_out_of_sequence_is_corrupt_not_read_as_the_expected_one() {
    // Found analysing the finding above: every RSTn was taken for the next one,
    // where libjpeg resynchronises (an interval decoded from nothing when the
    // marker is one or two ahead), so the rewrite showed djpeg other pixels.
    let huffman = encode_jpeg(
        &photo(64, 48, 3),
        64,
        48,
        JpegSpec {
            restart: 2,
            ..JpegSpec::baseline((2, 2))
        },
    );
    let arithmetic = include_bytes!("../fixtures/arith_seq_420_restart.jpg");
    for (what, jpeg) in [("huffman", &huffman[..]), ("arithmetic", &arithmetic[..])] {
        let bad = with_restart_marker_renumbered(jpeg, 1);
        let result = jpeg_to_baseline(&bad, 1 << 20);
        assert!(
            matches!(&result, Err(WatermarkError::Corrupt(m)) if m.contains("out of sequence")),
            "{what}: {:?}",
            result.as_ref().map(Vec::len)
        );
        // The fast route passes over that marker to reach the overlay at the bottom.
        let opts = Options::new(Placement::gravity(Gravity::SouthEast, 0, 0));
        let wm = watermark_with(&bad, &fuzz_overlay(), &opts);
        assert!(
            matches!(&wm, Err(WatermarkError::Corrupt(_))),
            "{what}: {:?}",
            wm.as_ref().map(|w| w.route)
        );
    }
}

/// libjpeg's own rewrite of `jpeg` with the same coefficients (`jpegtran`), `None`
/// when it refuses it or is not installed.
fn jpegtran(jpeg: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut child = std::process::Command::new("jpegtran")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input = jpeg.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().ok()?;
    writer.join().ok()?.ok()?;
    matches!(out.status.code(), Some(0 | 2)).then_some(out.stdout)
}

#[test]
fn jpeg_baseline_pixels_changed_progressive_luma_without_low_ac_bands_reads_as_jpegtran() {
    // Not a bug (the target's oracle was wrong): the luma's AC scans 1-20 and 21-41
    // are missing, and libjpeg smooths such blocks of a progressive file, which a
    // one-scan rewrite cannot ask for. Rubra must read libjpeg's coefficients.
    let input = include_bytes!("../fixtures/fuzz_progressive_luma_without_low_ac_bands.jpg");
    let out = jpeg_to_baseline(input, 1 << 20).expect("rewrite");
    let Some(reference) = jpegtran(input) else {
        eprintln!("SKIPPED: jpegtran not found (apt-get install -y libjpeg-turbo-progs)");
        return;
    };
    let ours = djpeg_with_warnings(&out).expect("djpeg decodes the rewrite");
    assert!(
        djpeg_with_warnings(&reference) == Some(ours),
        "the rewrite decodes otherwise than jpegtran's"
    );
}

#[test]
fn watermark_output_zune_cannot_decode_app0_of_length_6_is_kept_and_decodes() {
    // Not a bug: zune-jpeg 0.5.15 reads 5 bytes of this 4-byte APP0 body and then
    // refuses the file; libjpeg skips it, as T.81 leaves APPn bodies to applications.
    let input = include_bytes!("../fixtures/fuzz_app0_of_length_6.jpg");
    let opts = fuzz_options(Gravity::South, 0, 7);
    let out = watermark_with(input, &fuzz_overlay(), &opts).expect("watermark");
    let app0_6 = [0xFF, 0xE0, 0x00, 0x06];
    assert!(
        out.bytes.windows(4).any(|w| w == app0_6),
        "the APP0 is kept"
    );
    if djpeg_with_warnings(input).is_some() {
        assert!(
            djpeg_with_warnings(&out.bytes).is_some(),
            "djpeg decodes the output"
        );
    }
}

#[test]
fn watermark_output_zune_cannot_decode_superseded_dc_table_with_symbol_over_15_is_corrupt() {
    // A baseline 24×17 whose header defines chroma DC table 1 twice, first with
    // symbol 25, then validly: libjpeg checks only the table a scan uses, zune-jpeg
    // checks every DHT as it reads it and refused the output, which kept the header.
    let input = include_bytes!("../fixtures/fuzz_superseded_dc_table_symbol_over_15.jpg");
    assert!(!zune_decodes(input), "zune-jpeg refuses the input too");
    let opts = fuzz_options(Gravity::South, 0, 7);
    let wm = watermark_with(input, &fuzz_overlay(), &opts);
    assert!(
        matches!(&wm, Err(WatermarkError::Corrupt(m)) if m.contains("over 15")),
        "{:?}",
        wm.as_ref().map(|w| w.route)
    );
    corrupt_or_decodable(jpeg_to_baseline(input, 1 << 20), "jpeg_to_baseline");
}

#[test]
fn watermark_pixel_changed_outside_the_overlay_short_scan_then_a_second_scan_is_corrupt() {
    // Baseline 24×529 4:4:4 whose scan runs short into DHT/DQT segments and a second
    // scan of all three components: the fast route dropped the second scan, which
    // zune-jpeg decodes over the first, so pixel (0, 32) changed for it. The
    // coefficient route already refused a component in two sequential scans.
    let input = include_bytes!("../fixtures/fuzz_short_scan_then_a_second_scan.jpg");
    // The fuzzer's first byte 0x05: NorthWest, 0, 0 at opacity 5/255.
    let opts = fuzz_options(Gravity::NorthWest, 0, 5);
    let wm = watermark_with(input, &fuzz_overlay(), &opts);
    assert!(
        matches!(&wm, Err(WatermarkError::Corrupt(m)) if m.contains("two scans")),
        "{:?}",
        wm.as_ref().map(|w| w.route)
    );
}

#[test]
fn watermark_pixel_changed_short_scan_then_stray_bytes_after_a_table_is_exact_for_djpeg() {
    // Not a bug: zune-jpeg reads the stray bytes after the DHT that ends this short
    // scan as more of the scan; libjpeg fills it with 0-bits, and so must the output.
    let input = include_bytes!("../fixtures/fuzz_short_scan_then_stray_bytes_after_a_table.jpg");
    let (w, h) = (24usize, 529usize);
    let opts = fuzz_options(Gravity::NorthWest, 0, 5);
    let out = watermark_with(input, &fuzz_overlay(), &opts).expect("watermark");
    let Some(before) = djpeg_with_warnings(input) else {
        eprintln!("SKIPPED: djpeg not found (apt-get install -y libjpeg-turbo-progs)");
        return;
    };
    let after = djpeg_with_warnings(&out.bytes).expect("djpeg decodes the output");
    assert_eq!(after.len(), before.len());
    let head = after.len() - w * h * 3;
    // The overlay at (0, 0): its blocks and one more around them end at 32.
    let changed = (0..w * h * 3)
        .filter(|&i| {
            let (x, y) = ((i / 3) % w, (i / 3) / w);
            (x >= 32 || y >= 32) && before[head + i] != after[head + i]
        })
        .count();
    assert_eq!(changed, 0, "djpeg sees samples outside the overlay change");
}

#[test]
fn watermark_index_out_of_bounds_eleven_blocks_per_mcu_is_unsupported() {
    // SOF10 161×117 sampled 2×1, 1×1, 4×2: an MCU of all three components holds
    // 2 + 1 + 8 = 11 blocks. T.81 (B.2.3) allows at most 10 in an interleaved scan
    // (libjpeg: "Sampling factors too large for interleaved scan"), so such a frame
    // can be coded only in one-component scans; the coefficient route, which writes
    // one interleaved scan, panicked on an edit buffer of 10 blocks.
    let input = include_bytes!("../fixtures/fuzz_eleven_blocks_per_mcu.jpg");
    // The fuzzer's first byte 0x07: South, 0, 0 at opacity 7/255; then every gravity.
    for gravity in Gravity::ALL {
        let opts = Options {
            opacity: 7.0 / 255.0,
            max_pixels: 1 << 20,
            ..Options::new(Placement::gravity(gravity, 0, 0))
        };
        let wm = watermark_with(input, &fuzz_overlay(), &opts);
        assert!(
            matches!(&wm, Err(e @ WatermarkError::Unsupported(m))
                if m.contains("10 blocks") && e.http_status() == 415),
            "{gravity:?}: {:?}",
            wm.as_ref().map(|w| w.route)
        );
    }
    let result = jpeg_to_baseline(input, 1 << 20);
    assert!(
        matches!(&result, Err(WatermarkError::Unsupported(m)) if m.contains("10 blocks")),
        "{:?}",
        result.as_ref().map(Vec::len)
    );
}

#[test]
fn watermark_output_zune_cannot_decode_cr_sampled_1x4_as_it_cannot_the_input() {
    // The fuzzer's first byte 0x07: South, 0, 0 at opacity 7/255. The target took
    // zune-jpeg's refusal of the output for a corrupt output; it refuses the input
    // too, and libjpeg decodes both.
    let opts = fuzz_options(Gravity::South, 0, 7);
    let out = watermark_with(CR_SAMPLED_1X4, &fuzz_overlay(), &opts).expect("watermark");
    assert!(
        !zune_decodes(CR_SAMPLED_1X4),
        "zune-jpeg now reads the input"
    );
    assert!(!zune_decodes(&out.bytes), "zune-jpeg now reads the output");
    // djpeg (when installed) panics inside the helper on a decode failure.
    let _ = djpeg(&out.bytes);
}

#[test]
fn jpeg_baseline_output_zune_cannot_decode_cr_sampled_1x4_as_it_cannot_the_input() {
    // The same fixture under the `jpeg_baseline` target, whose oracle took zune-jpeg's
    // refusal of the output for a corrupt output (CI's fuzz run failed on it, the
    // fixture being part of that target's corpus): zune-jpeg refuses the input too,
    // and libjpeg decodes both.
    let out = jpeg_to_baseline(CR_SAMPLED_1X4, 1 << 20).expect("a baseline rewrite");
    assert!(
        !zune_decodes(CR_SAMPLED_1X4),
        "zune-jpeg now reads the input"
    );
    assert!(!zune_decodes(&out), "zune-jpeg now reads the output");
    // djpeg (when installed) panics inside the helper on a decode failure.
    let _ = djpeg(&out);
}

/// A damaged baseline 33×20 (4:2:0, 3×2 MCUs) whose entropy-coded data runs into the
/// marker `FF 01` (TEM) inside MCU 3: libjpeg decodes that MCU with 0-bits for what is
/// missing and leaves every later MCU all-zero (uniform grey).
const SHORT_SCAN_PADDING: &[u8] =
    include_bytes!("../fixtures/fuzz_short_scan_padding_completes_the_mcu_that_ran_out.jpg");

/// The same family, 155×20.
const SHORT_SCAN_PADDING_SECOND: &[u8] =
    include_bytes!("../fixtures/fuzz_short_scan_padding_second_input.jpg");

/// The same family, 33×20, with a DHT after the short scan that libjpeg refuses ("Bogus
/// Huffman table definition"): only zune-jpeg judges it.
const SHORT_SCAN_THEN_BOGUS_DHT: &[u8] =
    include_bytes!("../fixtures/fuzz_short_scan_then_bogus_dht.jpg");

#[test]
fn watermark_pixels_changed_short_scan_padding_completes_the_mcu_that_ran_out() {
    // The fuzzer's first byte 0x27: West, 2, 0 at opacity 39/255, then every gravity.
    // The fast route re-encoded MCUs 0–1 two bits shorter and copied the rest shifted,
    // padded to the byte with 0-bits: those bits completed MCU 3 in the output, so MCU 4
    // ran out instead and was decoded from zeros rather than left grey.
    let cases = fuzz_cases(Gravity::West, 2, 0x27);
    assert_unchanged_outside_the_overlay_for(SHORT_SCAN_PADDING, (33, 20), &cases, Judges::Djpeg);
}

#[test]
fn watermark_pixels_changed_short_scan_padding_second_input() {
    let cases = fuzz_cases(Gravity::West, 2, 0x27);
    assert_unchanged_outside_the_overlay_for(
        SHORT_SCAN_PADDING_SECOND,
        (155, 20),
        &cases,
        Judges::Djpeg,
    );
}

#[test]
fn watermark_pixel_changed_short_scan_then_bogus_dht_is_corrupt_as_libjpeg_says() {
    // libjpeg refuses the whole file for the DHT after the scan, as it reads the tables
    // there while looking for EOI; the fast route dropped the segment unread, and zune-jpeg,
    // which reads on past the TEM marker that ends the scan, saw MCU 2 change. Every
    // placement is refused now: for the DHT, or for the short scan where the route must
    // decode to the end of it to keep its alignment (see `fast::realign`).
    for (gravity, dx, opacity) in fuzz_cases(Gravity::West, 2, 0x27) {
        let opts = Options {
            opacity,
            ..fuzz_options(gravity, dx, 0)
        };
        let result = watermark_with(SHORT_SCAN_THEN_BOGUS_DHT, &fuzz_overlay(), &opts);
        assert!(
            matches!(&result, Err(WatermarkError::Corrupt(m))
                     if m.contains("DHT") || m.contains("truncated")),
            "{gravity:?}: {:?}",
            result.map(|o| o.route)
        );
    }
    if let Some(refused) = djpeg_refuses(SHORT_SCAN_THEN_BOGUS_DHT) {
        assert!(refused, "djpeg decodes the input now");
    }
}

/// Whether djpeg refuses `jpeg` (exits 1, not 0 or 2 for warnings); `None` without djpeg.
fn djpeg_refuses(jpeg: &[u8]) -> Option<bool> {
    run_djpeg(jpeg).map(|(decoded, _)| !decoded)
}

#[test]
fn dri_of_the_wrong_length_after_the_scan_is_corrupt_as_libjpeg_says() {
    // A review of the check above: libjpeg refuses a DRI segment whose length is not 4
    // (JERR_BAD_LENGTH), after the scan as in the header; the fast route dropped it unread
    // and wrote a file that decodes.
    let rgb = photo(64, 48, 7);
    let good = encode_jpeg(&rgb, 64, 48, JpegSpec::baseline((2, 2)));
    assert_eq!(&good[good.len() - 2..], &[0xFF, 0xD9]);
    let mut bad = good[..good.len() - 2].to_vec();
    bad.extend_from_slice(&[0xFF, 0xDD, 0x00, 0x05, 0x00, 0x00, 0x00, 0xFF, 0xD9]);
    for gravity in [Gravity::NorthWest, Gravity::SouthEast] {
        let opts = fuzz_options(gravity, 0, 255);
        let result = watermark_with(&bad, &fuzz_overlay(), &opts);
        assert!(
            matches!(&result, Err(WatermarkError::Corrupt(m)) if m.contains("DRI")),
            "{gravity:?}: {:?}",
            result.map(|o| o.route)
        );
        watermark_with(&good, &fuzz_overlay(), &opts).expect("the file without it");
    }
    if let Some(refused) = djpeg_refuses(&bad) {
        assert!(refused, "djpeg decodes the input now");
    }
}
