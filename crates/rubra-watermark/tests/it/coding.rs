//! JPEG codings other than 8-bit Huffman (issue #24): arithmetic-coded files are
//! read, rewritten with the same coefficients and watermarked (they were refused
//! as corrupt); 12-bit, lossless and hierarchical files are unsupported (415) on
//! every strategy, never "corrupt" (400).

use crate::helpers::*;
use crate::{H, OH, OW, W, check_exact, placements};
use rubra_watermark::{
    Gravity, Options, Placement, Route, Strategy, WatermarkError, jpeg_to_baseline, watermark_with,
};

/// `cjpeg -quality 85 -arithmetic -sample 2x2 -restart 2` of a 161×117 picture.
const ARITH_SEQUENTIAL: &[u8] = include_bytes!("../fixtures/arith_seq_420_restart.jpg");
/// `cjpeg -quality 85 -arithmetic -progressive -sample 2x1` of the same picture.
const ARITH_PROGRESSIVE: &[u8] = include_bytes!("../fixtures/arith_progressive_422.jpg");

/// Arithmetic-coded JPEGs: the two fixtures, and with `cjpeg` every sampling,
/// grey, restart intervals and progressive (with and without restarts).
fn arithmetic_jpegs() -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        (
            "fixture sequential 4:2:0 restart".to_owned(),
            ARITH_SEQUENTIAL.to_vec(),
        ),
        (
            "fixture progressive 4:2:2".to_owned(),
            ARITH_PROGRESSIVE.to_vec(),
        ),
    ];
    if !cjpeg_available() {
        eprintln!(
            "SKIPPED the cjpeg variants: cjpeg not found (apt-get install -y libjpeg-turbo-progs)"
        );
        return out;
    }
    let rgb = photo(W, H, 21);
    let variants: &[(&[&str], bool)] = &[
        (&["-sample", "1x1"], false),
        (&["-sample", "2x2"], false),
        (&["-sample", "2x1"], false),
        (&["-sample", "1x2", "-restart", "1"], false),
        (&["-restart", "3B"], false),
        (&[], true),
        (&["-progressive", "-sample", "2x2"], false),
        (&["-progressive", "-sample", "1x1", "-restart", "1"], false),
        (&["-progressive"], true),
    ];
    for (args, gray) in variants {
        let mut all = vec!["-quality", "88", "-arithmetic"];
        all.extend_from_slice(args);
        let name = format!(
            "cjpeg {}{}",
            all.join(" "),
            if *gray { " (grey)" } else { "" }
        );
        out.push((name, cjpeg(&rgb, W, H, &all, *gray)));
    }
    out
}

fn sof(jpeg: &[u8]) -> u8 {
    let at = jpeg
        .windows(2)
        .position(|m| m[0] == 0xFF && matches!(m[1], 0xC0..=0xC3 | 0xC9..=0xCB))
        .expect("a frame header");
    jpeg[at + 1]
}

#[test]
fn arithmetic_coded_jpeg_rewrites_to_the_same_pixels_as_libjpeg_turbo_decodes() {
    for (name, arith) in arithmetic_jpegs() {
        assert!(
            matches!(sof(&arith), 0xC9 | 0xCA),
            "{name} is arithmetic-coded"
        );
        let baseline = jpeg_to_baseline(&arith, u64::MAX).expect(&name);
        assert_eq!(sof(&baseline), 0xC0, "{name}");
        let Some(reference) = djpeg(&arith) else {
            eprintln!("SKIPPED: djpeg not found (apt-get install -y libjpeg-turbo-progs)");
            return;
        };
        // Same coefficients, so libjpeg-turbo decodes both to the same pixels.
        assert!(decode_jpeg(&baseline) == reference, "{name}: pixels differ");
    }
}

#[test]
fn arithmetic_coded_jpeg_is_watermarked_not_corrupt() {
    let ov = overlay(OW, OH);
    for (name, arith) in arithmetic_jpegs() {
        let (_, w, h, ch) = decode_jpeg(&arith);
        let spec = if ch == 1 {
            JpegSpec {
                gray: true,
                ..JpegSpec::baseline((1, 1))
            }
        } else {
            // The protected rectangle only needs the largest sampling factors.
            let (hs, vs) = match name.as_str() {
                n if n.contains("2x2") || n.contains("4:2:0") || !n.contains("-sample") => (2, 2),
                n if n.contains("2x1") || n.contains("4:2:2") => (2, 1),
                n if n.contains("1x2") => (1, 2),
                _ => (1, 1),
            };
            JpegSpec::baseline((hs, vs))
        };
        let placements = if (w, h) == (W, H) {
            placements()
        } else {
            vec![Placement::gravity(Gravity::SouthEast, 7, 5)]
        };
        for p in placements {
            let route = check_exact(&arith, &spec, p, &ov);
            assert_eq!(route, Route::JpegCoefficients, "{name} {p:?}");
        }
        let pixels = Options {
            strategy: Strategy::Pixels,
            ..Options::new(Placement::gravity(Gravity::SouthEast, 7, 5))
        };
        let out = watermark_with(&arith, &ov, &pixels).expect(&name);
        assert_eq!(out.route, Route::JpegPixels);
        assert_eq!(decode_jpeg(&out.bytes).1, w, "{name}");
    }
}

/// A complete, valid 8×8 grey JPEG with 12-bit samples (SOF1, P = 12): one block,
/// DC difference 0 and end-of-block, each a 1-bit code.
fn twelve_bit_jpeg() -> Vec<u8> {
    let mut j = vec![0xFF, 0xD8];
    j.extend_from_slice(&[0xFF, 0xDB, 0x00, 0x43, 0x00]);
    j.extend_from_slice(&[1; 64]);
    j.extend_from_slice(&[0xFF, 0xC1, 0x00, 0x0B, 12, 0, 8, 0, 8, 1, 1, 0x11, 0]);
    for class in [0x00, 0x10] {
        j.extend_from_slice(&[0xFF, 0xC4, 0x00, 0x14, class, 1]);
        j.extend_from_slice(&[0; 15]);
        j.push(0x00); // the one symbol: DC category 0, or AC end-of-block
    }
    j.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 1, 1, 0x00, 0, 63, 0]);
    j.push(0b0011_1111); // "0" (DC), "0" (EOB), padded with ones
    j.extend_from_slice(&[0xFF, 0xD9]);
    j
}

#[test]
fn twelve_bit_lossless_and_hierarchical_jpegs_are_unsupported_not_corrupt() {
    let ov = overlay(4, 4);
    let mut cases = vec![("12-bit", twelve_bit_jpeg())];
    let base = encode_jpeg(&photo(64, 48, 3), 64, 48, JpegSpec::baseline((2, 2)));
    for (name, marker) in [
        ("lossless", 0xC3),
        ("hierarchical", 0xC5),
        ("lossless arithmetic", 0xCB),
    ] {
        let mut j = base.clone();
        let at = j.windows(2).position(|m| m == [0xFF, 0xC0]).expect("SOF0");
        j[at + 1] = marker;
        cases.push((name, j));
    }
    for (name, jpeg) in cases {
        for strategy in [Strategy::Auto, Strategy::Pixels] {
            let opts = Options {
                strategy,
                ..Options::new(Placement::gravity(Gravity::Center, 0, 0))
            };
            let err = watermark_with(&jpeg, &ov, &opts).expect_err(name);
            assert!(
                matches!(err, WatermarkError::Unsupported(_)),
                "{name} {strategy:?}: {err}"
            );
            assert_eq!((err.http_status(), err.code()), (415, "unsupported_image"));
        }
        assert!(matches!(
            jpeg_to_baseline(&jpeg, u64::MAX),
            Err(WatermarkError::Unsupported(_))
        ));
    }
}

#[test]
fn corrupted_arithmetic_coded_data_is_an_error_or_a_result_never_a_panic() {
    let ov = overlay(20, 10);
    let mut seed = 11u64;
    for fixture in [ARITH_SEQUENTIAL, ARITH_PROGRESSIVE] {
        // Past the headers: the first scan starts after the last DHT/DAC/SOS bytes.
        let start = fixture.len() / 3;
        for round in 0..200 {
            let mut bad = fixture.to_vec();
            for _ in 0..1 + round % 6 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = start + (seed as usize) % (bad.len() - start);
                bad[at] = (seed >> 40) as u8;
            }
            if round % 40 == 0 {
                bad.truncate(start + (seed as usize) % (bad.len() - start));
            }
            let opts = Options::new(Placement::gravity(Gravity::SouthEast, 3, 3));
            let _ = watermark_with(&bad, &ov, &opts);
            let _ = jpeg_to_baseline(&bad, u64::MAX);
        }
    }
}

/// A CMYK JPEG takes the pixel path. Its pixels came from zune-jpeg, which decodes
/// this 402×301 CMYK file to other colours than libjpeg-turbo does: the whole
/// picture came back changed (mean error 78 of 255 away from the overlay; the red
/// level of rubra-image's JPEG set went 0.79 → 0.41). Now libjpeg-turbo decodes it
/// as djpeg does, and away from the overlay only the re-encoding differs (~2).
#[test]
fn a_cmyk_jpeg_keeps_its_colours_when_watermarked() {
    let (width, height) = (402usize, 301usize);
    let rgb = photo(width, height, 21);
    // CMYK inks of the picture, black from its darkest channel (jpeg-encoder stores
    // them as Adobe's inverted CMYK); a K of its own in every pixel.
    let cmyk: Vec<u8> = rgb
        .chunks_exact(3)
        .flat_map(|p| {
            let k = 255 - p[0].max(p[1]).max(p[2]);
            let ink = |v: u8| match k {
                255 => 0,
                _ => (u32::from(255 - v - k) * 255 / u32::from(255 - k)) as u8,
            };
            [ink(p[0]), ink(p[1]), ink(p[2]), k]
        })
        .collect();
    let mut input = Vec::new();
    jpeg_encoder::Encoder::new(&mut input, 88)
        .encode(
            &cmyk,
            width as u16,
            height as u16,
            jpeg_encoder::ColorType::Cmyk,
        )
        .expect("cmyk jpeg");
    let ov = overlay(OW, OH);
    let p = Placement::gravity(Gravity::SouthEast, 5, 5);
    let res = watermark_with(&input, &ov, &Options::new(p)).expect("watermark");
    assert_eq!(res.route, Route::JpegPixels);
    let (before, w, h, ch) = decode_jpeg(&input);
    let (after, w2, h2, ch2) = decode_jpeg(&res.bytes);
    assert_eq!((w, h, ch), (w2, h2, ch2));
    let (ox, oy) = p.origin(w as u32, h as u32, OW as u32, OH as u32);
    let (mut sum, mut n) = (0u64, 0u64);
    for y in 0..h {
        for x in 0..w {
            let near = x + 16 >= ox as usize && y + 16 >= oy as usize;
            if !near {
                let i = (y * w + x) * ch;
                for c in 0..ch {
                    sum += u64::from(before[i + c].abs_diff(after[i + c]));
                    n += 1;
                }
            }
        }
    }
    let mean = sum as f64 / n as f64;
    assert!(mean < 3.0, "mean error {mean:.1} away from the overlay");
}

/// Review finding (session 13): 787 bytes of arithmetic-coded progressive JPEG, a 7071×7071
/// frame whose refinement scan is repeated 50 times (libjpeg only warns about the bogus
/// progression), took 1.3 s of CPU on the coefficient route. The route now has the decoder's
/// work budget: at most 6 passes over the image's coefficients.
#[test]
fn a_tiny_progressive_file_repeating_a_refinement_scan_is_refused_by_the_work_budget() {
    let input: &[u8] =
        include_bytes!("../fixtures/review_arith_progressive_50mp_refinement_scan_repeated.jpg");
    assert!(input.len() < 1000);
    let p = Placement::gravity(Gravity::SouthEast, 5, 5);
    let err = watermark_with(input, &overlay(OW, OH), &Options::new(p)).unwrap_err();
    assert!(
        matches!(&err, WatermarkError::Corrupt(m) if m.contains("more scans than")),
        "{err}"
    );
}
