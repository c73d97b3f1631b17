//! JPEG: exactly libjpeg-turbo's default full-resolution decode (`djpeg -ppm`),
//! in every colour space and coding mode we accept.

use jpeg_encoder::{ColorType, SamplingFactor};
use rubra_image::{ImageFormat, Limits, RedReport, measure};

use crate::helpers::*;

fn ours(bytes: &[u8]) -> RedReport {
    measure(bytes, &Limits::default()).expect("measures")
}

/// Asserts our red count is exactly djpeg's (when djpeg is installed); returns ours.
fn assert_exactly_djpeg(bytes: &[u8], what: &str) -> RedReport {
    let report = ours(bytes);
    if let Some(theirs) = djpeg_count(bytes) {
        eprintln!(
            "{what}: ours {:.6} djpeg {:.6}",
            report.red,
            theirs.fraction()
        );
        // Decoded by libjpeg-turbo itself: exactly djpeg's pixels.
        assert_eq!(
            (report.red_pixels, report.counted_pixels),
            (theirs.red, theirs.counted),
            "{what}: exactly djpeg's"
        );
    }
    report
}

fn photo(w: u16, h: u16, seed: u64) -> Vec<u8> {
    reference_rgb(usize::from(w), usize::from(h), seed)
}

#[test]
fn reference_image_matches_libjpeg_turbo() {
    let bytes = reference_jpeg();
    let r = assert_exactly_djpeg(&bytes, "reference 1980x1280 q90");
    assert_eq!(
        (r.format, r.width, r.height),
        (ImageFormat::Jpeg, 1980, 1280)
    );
    assert!(r.red > 0.05, "the reference image has red in it: {}", r.red);
}

#[test]
fn baseline_in_every_chroma_subsampling_matches_libjpeg_turbo() {
    let (w, h) = (642, 401); // not a multiple of the MCU size
    let rgb = photo(w, h, 11);
    for (name, sampling) in [
        ("4:4:4", SamplingFactor::F_1_1),
        ("4:2:2", SamplingFactor::F_2_1),
        ("4:2:0", SamplingFactor::F_2_2),
        ("4:4:0", SamplingFactor::F_1_2),
    ] {
        let mut out = Vec::new();
        let mut enc = jpeg_encoder::Encoder::new(&mut out, 85);
        enc.set_sampling_factor(sampling);
        enc.encode(&rgb, w, h, ColorType::Rgb).unwrap();
        assert_exactly_djpeg(&out, name);
    }
}

#[test]
fn progressive_matches_libjpeg_turbo_and_baseline() {
    let (w, h) = (500, 333);
    let rgb = photo(w, h, 12);
    let progressive = jpeg(&rgb, w, h, ColorType::Rgb, true, None);
    let baseline = jpeg(&rgb, w, h, ColorType::Rgb, false, None);
    // A progressive JPEG starts its frame with SOF2.
    assert!(progressive.windows(2).any(|m| m == [0xFF, 0xC2]));
    let p = assert_exactly_djpeg(&progressive, "progressive");
    let b = ours(&baseline);
    assert!((p.red - b.red).abs() < 0.002);
}

#[test]
fn restart_intervals_are_decoded() {
    let (w, h) = (300, 200);
    let rgb = photo(w, h, 13);
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 90);
    enc.set_restart_interval(4);
    enc.encode(&rgb, w, h, ColorType::Rgb).unwrap();
    assert_exactly_djpeg(&out, "restart intervals");
}

#[test]
fn grayscale_jpeg_is_never_red() {
    let (w, h) = (120u16, 90u16);
    let grey: Vec<u8> = (0..usize::from(w) * usize::from(h))
        .map(|i| (i % 251) as u8)
        .collect();
    let bytes = jpeg(&grey, w, h, ColorType::Luma, false, None);
    let r = assert_exactly_djpeg(&bytes, "grey");
    assert_eq!((r.red, r.red_pixels, r.counted_pixels), (0.0, 0, 120 * 90));
}

/// Naive CMYK of an RGB picture (K from the darkest channel).
fn cmyk_of(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks_exact(3)
        .flat_map(|p| {
            let k = 255 - p[0].max(p[1]).max(p[2]);
            let scale = |v: u8| {
                if k == 255 {
                    0
                } else {
                    ((255 - v - k) as u32 * 255 / (255 - k) as u32) as u8
                }
            };
            [scale(p[0]), scale(p[1]), scale(p[2]), k]
        })
        .collect()
}

#[test]
fn cmyk_and_ycck_convert_like_djpeg() {
    let (w, h) = (320, 240);
    let cmyk = cmyk_of(&photo(w, h, 14));
    let plain = jpeg(&cmyk, w, h, ColorType::Cmyk, false, None);
    let ycck = jpeg(&cmyk, w, h, ColorType::CmykAsYcck, false, None);
    // Both carry an Adobe APP14 segment (transform 0 and 2).
    assert!(plain.windows(5).any(|s| s == b"Adobe"));
    let a = assert_exactly_djpeg(&plain, "CMYK");
    let b = assert_exactly_djpeg(&ycck, "YCCK");
    assert!(a.red > 0.01, "the CMYK picture keeps its red: {}", a.red);
    assert!((a.red - b.red).abs() < 0.01);
}

#[test]
fn cmyk_fixture_from_another_encoder() {
    // tests/fixtures/cmyk.jpg: a 96×64 Adobe CMYK JPEG (left half red, right half
    // blue), written by Pillow's libjpeg rather than by `jpeg-encoder`.
    let bytes = include_bytes!("../fixtures/cmyk.jpg");
    let r = assert_exactly_djpeg(bytes, "CMYK fixture");
    assert_eq!((r.width, r.height), (96, 64));
    assert!((r.red - 0.5).abs() < 0.02, "red {}", r.red);
}

#[test]
fn exif_orientation_does_not_change_the_red_level() {
    let (w, h) = (400u16, 240u16);
    let rgb = photo(w, h, 15);
    let plain = jpeg(&rgb, w, h, ColorType::Rgb, false, None);
    let base = ours(&plain);
    for orientation in 1..=8 {
        let tagged = jpeg(
            &rgb,
            w,
            h,
            ColorType::Rgb,
            false,
            Some(&exif_orientation(orientation)),
        );
        assert!(tagged.windows(6).any(|s| s == b"Exif\0\0"));
        let r = ours(&tagged);
        // Same pixels, same dimensions as stored: identical result.
        assert_eq!(
            (r.red, r.width, r.height),
            (base.red, w.into(), h.into()),
            "{orientation}"
        );
    }
    // The same picture stored rotated by 90° with orientation 6 ("rotate to
    // display"): a permutation of the pixels, up to JPEG's own rounding.
    let mut rotated = vec![0u8; rgb.len()];
    let (wu, hu) = (usize::from(w), usize::from(h));
    for y in 0..hu {
        for x in 0..wu {
            let (nx, ny) = (hu - 1 - y, x); // 90° clockwise: new width is h
            rotated[(ny * hu + nx) * 3..][..3].copy_from_slice(&rgb[(y * wu + x) * 3..][..3]);
        }
    }
    let stored = jpeg(
        &rotated,
        h,
        w,
        ColorType::Rgb,
        false,
        Some(&exif_orientation(8)),
    );
    let r = assert_exactly_djpeg(&stored, "rotated + EXIF 8");
    assert_eq!((r.width, r.height), (u32::from(h), u32::from(w)));
    assert!(
        (r.red - base.red).abs() < 0.005,
        "{} vs {}",
        r.red,
        base.red
    );
}

/// `cjpeg -quality 85 -arithmetic -sample 2x2 -restart 2` of a 161×117 picture
/// with a red disc: libjpeg-turbo's arithmetic coding, like its `testimgari.jpg`.
const ARITH_FIXTURE: &[u8] = include_bytes!("../fixtures/arith_seq_420_restart.jpg");

#[test]
fn arithmetic_coded_jpeg_is_measured_not_unsupported() {
    // Issue #24: this was 415 unsupported_image, though Pillow decodes it.
    let r = assert_exactly_djpeg(ARITH_FIXTURE, "arithmetic fixture");
    assert_eq!((r.width, r.height), (161, 117));
    assert!(r.red > 0.1, "the fixture has a red disc: {}", r.red);
    // The same coefficients with Huffman coding measure identically.
    if let Some(huffman) = jpegtran(ARITH_FIXTURE, &[]) {
        assert_eq!(ours(&huffman), r);
    }
}

/// A 12-bit JPEG is unsupported (415), never corrupt.
#[test]
fn twelve_bit_jpeg_is_unsupported() {
    let mut j = vec![0xFF, 0xD8, 0xFF, 0xDB, 0x00, 0x43, 0x00];
    j.extend_from_slice(&[1; 64]);
    j.extend_from_slice(&[0xFF, 0xC1, 0x00, 0x0B, 12, 0, 8, 0, 8, 1, 1, 0x11, 0]);
    for class in [0x00, 0x10] {
        j.extend_from_slice(&[0xFF, 0xC4, 0x00, 0x14, class, 1]);
        j.extend_from_slice(&[0; 16]);
    }
    j.extend_from_slice(&[
        0xFF, 0xDA, 0x00, 0x08, 1, 1, 0x00, 0, 63, 0, 0x3F, 0xFF, 0xD9,
    ]);
    let err = measure(&j, &Limits::default()).unwrap_err();
    assert_eq!(
        (err.http_status(), err.code()),
        (415, "unsupported_image"),
        "{err}"
    );
}

/// Issue #24's set: every kind of JPEG a client sends measures like libjpeg-turbo's
/// decode, and watermarks (the watermark keeps the size and measures again).
#[test]
fn every_kind_of_jpeg_measures_like_libjpeg_turbo_and_watermarks() {
    let (w, h) = (402u16, 301u16);
    let rgb = photo(w, h, 16);
    let with = |sampling: SamplingFactor, progressive: bool, restart: u16| {
        let mut out = Vec::new();
        let mut enc = jpeg_encoder::Encoder::new(&mut out, 87);
        enc.set_sampling_factor(sampling);
        enc.set_progressive(progressive);
        enc.set_restart_interval(restart);
        enc.encode(&rgb, w, h, ColorType::Rgb).unwrap();
        out
    };
    let grey: Vec<u8> = rgb.chunks_exact(3).map(|p| p[1]).collect();
    let baseline = with(SamplingFactor::F_2_2, false, 0);
    let mut set: Vec<(String, Vec<u8>)> = vec![
        ("baseline 4:2:0".into(), baseline.clone()),
        (
            "baseline 4:4:4".into(),
            with(SamplingFactor::F_1_1, false, 0),
        ),
        (
            "baseline 4:2:2".into(),
            with(SamplingFactor::F_2_1, false, 0),
        ),
        ("progressive".into(), with(SamplingFactor::F_2_2, true, 0)),
        (
            "restart markers".into(),
            with(SamplingFactor::F_2_2, false, 3),
        ),
        (
            "grayscale".into(),
            jpeg(&grey, w, h, ColorType::Luma, false, None),
        ),
        (
            "CMYK".into(),
            jpeg(&cmyk_of(&rgb), w, h, ColorType::Cmyk, false, None),
        ),
        (
            "EXIF-rotated".into(),
            jpeg(
                &rgb,
                w,
                h,
                ColorType::Rgb,
                false,
                Some(&exif_orientation(6)),
            ),
        ),
        ("arithmetic fixture".into(), ARITH_FIXTURE.to_vec()),
    ];
    for (name, args) in [
        ("arithmetic-coded", &["-arithmetic"][..]),
        (
            "arithmetic-coded progressive",
            &["-arithmetic", "-progressive"],
        ),
    ] {
        if let Some(bytes) = jpegtran(&baseline, args) {
            set.push((name.into(), bytes));
        }
    }
    let overlay =
        rubra_watermark::Overlay::from_rgba(60, 20, [200, 0, 0, 255].repeat(60 * 20)).unwrap();
    let placement = rubra_watermark::Placement::gravity(rubra_watermark::Gravity::SouthEast, 5, 5);
    for (name, bytes) in set {
        let before = assert_exactly_djpeg(&bytes, &name);
        let out = rubra_watermark::watermark(&bytes, &overlay, placement, 1.0)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let after = assert_exactly_djpeg(&out, &format!("{name}, watermarked"));
        assert_eq!(
            (after.width, after.height),
            (before.width, before.height),
            "{name}"
        );
        if name != "grayscale" && name != "CMYK" {
            // 1 200 pure red pixels land on the picture.
            assert!(after.red_pixels > before.red_pixels, "{name}");
        }
    }
}

/// The byte ranges of a JPEG's scans: each from its SOS marker to the next marker
/// that is not a stuffed 0xFF or a restart marker.
fn scans(jpeg: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut pos = 2;
    while pos + 4 <= jpeg.len() {
        assert_eq!(jpeg[pos], 0xFF, "a marker at {pos}");
        let marker = jpeg[pos + 1];
        if marker == 0xD9 {
            break;
        }
        let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
        let mut end = pos + 2 + len;
        if marker == 0xDA {
            while jpeg[end] != 0xFF || matches!(jpeg[end + 1], 0x00 | 0xD0..=0xD7) {
                end += 1;
            }
            out.push(pos..end);
        }
        pos = end;
    }
    out
}

/// `jpeg` with its scan `scan` repeated `extra` more times right after itself.
fn with_scan_repeated(jpeg: &[u8], scan: &std::ops::Range<usize>, extra: usize) -> Vec<u8> {
    let mut out = jpeg[..scan.end].to_vec();
    for _ in 0..extra {
        out.extend_from_slice(&jpeg[scan.clone()]);
    }
    out.extend_from_slice(&jpeg[scan.end..]);
    out
}

/// A hostile progressive file repeats its first (DC) scan: each repeat is one
/// more pass over the whole coefficient buffer for the decoder.
#[test]
fn a_jpeg_with_thousands_of_progressive_scans_is_refused_quickly() {
    let (w, h) = (402u16, 301u16);
    let progressive = jpeg(&photo(w, h, 17), w, h, ColorType::Rgb, true, None);
    let first = scans(&progressive)[0].clone();
    assert!(first.len() < progressive.len() / 4, "the DC scan is small");
    let hostile = with_scan_repeated(&progressive, &first, 2_000);
    let started = std::time::Instant::now();
    let err = measure(&hostile, &Limits::default()).unwrap_err();
    eprintln!("refused in {:?}: {err}", started.elapsed());
    assert!(
        matches!(&err, rubra_image::Error::Corrupt(m) if m.contains("500 scans")),
        "{err:?}"
    );
    // 500 passes over a 402×301 image, not 2 000: well under a second.
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // 500 scans are still accepted.
    let many = with_scan_repeated(&progressive, &first, 500 - scans(&progressive).len());
    assert_eq!(ours(&many).counted_pixels, u64::from(w) * u64::from(h));
}

/// libjpeg's own buffers (a progressive file's coefficients) are bounded by
/// `Limits::max_alloc` too: 413, not an allocation the server did not plan for.
#[test]
fn a_progressive_jpeg_over_the_allocation_limit_is_too_large() {
    let (w, h) = (402u16, 301u16);
    let progressive = jpeg(&photo(w, h, 18), w, h, ColorType::Rgb, true, None);
    let baseline = jpeg(&photo(w, h, 18), w, h, ColorType::Rgb, false, None);
    let mut limits = Limits::default();
    // The coefficients of 402×301 at 4:2:0 take ~370 KB; a baseline file needs
    // only a row of blocks.
    limits.max_alloc = 128 << 10;
    let err = measure(&progressive, &limits).unwrap_err();
    assert_eq!(
        (err.http_status(), err.code()),
        (413, "image_too_large"),
        "{err}"
    );
    assert!(measure(&baseline, &limits).is_ok());
}

/// The marker segment `marker` of a JPEG (from its 0xFF to its end).
fn segment(jpeg: &[u8], marker: u8) -> std::ops::Range<usize> {
    let mut pos = 2;
    loop {
        assert_eq!(jpeg[pos], 0xFF, "a marker at {pos}");
        let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
        if jpeg[pos + 1] == marker {
            return pos..pos + 2 + len;
        }
        assert_ne!(
            jpeg[pos + 1],
            0xDA,
            "no segment {marker:#x} before the scan"
        );
        pos += 2 + len;
    }
}

/// Review finding (session 13): libjpeg-turbo only warns about a bogus progression, so a
/// progressive file may repeat one AC scan, each repeat one more pass over every block. 400
/// repeats pass the scan cap (500); a 48 KB file of this kind over 50 MP took 26–40 s of CPU.
/// The work budget (every scan charged its blocks × its band, at most 6 passes over the
/// image's coefficients, never less than a 1 MP image's) refuses it early.
#[test]
fn a_progressive_jpeg_repeating_one_ac_scan_is_refused_by_the_work_budget() {
    let (w, h) = (1024u16, 1024u16);
    let grey = vec![128u8; usize::from(w) * usize::from(h)];
    let progressive = jpeg(&grey, w, h, ColorType::Luma, true, None);
    // The widest AC band of the file (Ss, Se follow the component list in the SOS header).
    let band = |r: &std::ops::Range<usize>| {
        let ns = usize::from(progressive[r.start + 4]);
        let at = r.start + 5 + 2 * ns;
        (progressive[at], progressive[at + 1])
    };
    let widest = scans(&progressive)
        .into_iter()
        .filter(|r| band(r).0 > 0)
        .max_by_key(|r| {
            let (ss, se) = band(r);
            se - ss
        })
        .expect("an AC scan");
    let hostile = with_scan_repeated(&progressive, &widest, 400);
    assert!(ours(&progressive).counted_pixels == 1024 * 1024);
    let started = std::time::Instant::now();
    let err = measure(&hostile, &Limits::default()).unwrap_err();
    eprintln!("refused in {:?}: {err}", started.elapsed());
    assert!(
        matches!(&err, rubra_image::Error::Corrupt(m) if m.contains("more scans than")),
        "{err:?}"
    );
}

/// Review finding (session 13): the probe took the stuffed `FF 00` after SOI for a marker with
/// a length, jumped over the real frame header into a comment holding a fake 16×16 one, and
/// the pixel limit and the admission saw 256 pixels, while libjpeg (which skips `FF 00` and the
/// comment) decoded the real frame and the answer was a false 413. Now the probe skips `FF 00`
/// as libjpeg does, and the C side refuses a frame that is not the probed one before decoding.
#[test]
fn a_jpeg_hiding_a_second_frame_header_from_libjpeg_is_probed_as_libjpeg_reads_it() {
    let (w, h) = (640u16, 480u16);
    let real = jpeg(&photo(w, h, 19), w, h, ColorType::Rgb, false, None);
    let sof = segment(&real, 0xC0);
    let fake_sof: &[u8] = &[0xFF, 0xC0, 0, 11, 8, 0, 16, 0, 16, 1, 1, 0x11, 0];
    let mut hostile = vec![0xFF, 0xD8, 0xFF, 0x00];
    // The length the old probe read after FF 00: it skipped to the fake frame header.
    let skip = (2 + sof.len() + 4) as u16;
    hostile.extend_from_slice(&skip.to_be_bytes());
    hostile.extend_from_slice(&real[sof.clone()]);
    hostile.extend_from_slice(&[0xFF, 0xFE]);
    hostile.extend_from_slice(&((2 + fake_sof.len()) as u16).to_be_bytes());
    hostile.extend_from_slice(fake_sof);
    hostile.extend_from_slice(&real[2..sof.start]);
    hostile.extend_from_slice(&real[sof.end..]);
    let info = rubra_image::probe(&hostile).unwrap();
    assert_eq!(
        (info.width, info.height),
        (640, 480),
        "the frame libjpeg reads"
    );
    let err = measure(&hostile, &Limits::with_max_pixels(10_000)).unwrap_err();
    assert_eq!(err.http_status(), 413, "{err}");
    // The same pixels as the file it was made from (djpeg decodes it too, with a warning
    // about the extraneous bytes, and exits 2).
    assert_eq!(ours(&hostile), ours(&real));
}
