//! The faster Huffman decoder (`csrc/jpeg_huffman.c`) against libjpeg-turbo's
//! own (`djpeg -ppm`), pixel for pixel: every kind of baseline file it decodes,
//! and damaged files, which it must hand back to libjpeg so that they decode
//! exactly as libjpeg decodes them.

use jpeg_encoder::{ColorType, SamplingFactor};
use rubra_image::{Error, Limits, decode_jpeg_pixels, measure};

use crate::helpers::*;

/// Asserts `decode_jpeg_pixels` gives djpeg's pixels. Returns false when
/// there was nothing to compare (djpeg not installed or refusing the file, or
/// the file cut short: djpeg pads it with grey, ours refuses it as truncated).
/// Any other refusal of a file djpeg decodes fails.
fn same_pixels_as_djpeg(jpeg: &[u8], what: &str) -> bool {
    let Some(theirs) = djpeg_pixels(jpeg) else {
        return false;
    };
    let ours = match decode_jpeg_pixels(jpeg, &Limits::default()) {
        Ok(ours) => ours,
        Err(Error::Truncated) => return false,
        Err(e) => panic!("{what}: djpeg decodes the file, ours refuses it: {e}"),
    };
    let (channels, samples) = theirs;
    assert_eq!(
        usize::from(!ours.gray) * 2 + 1,
        channels,
        "{what}: grey or RGB"
    );
    assert_eq!(ours.samples.len(), samples.len(), "{what}: size");
    if let Some(at) = ours.samples.iter().zip(&samples).position(|(a, b)| a != b) {
        panic!(
            "{what}: sample {at} (pixel {}) is {}, djpeg's {}",
            at / channels,
            ours.samples[at],
            samples[at]
        );
    }
    // The red meter counts the rows as they come: after a hand-back to libjpeg it
    // must count the image once, not the abandoned rows too.
    if let Ok(report) = measure(jpeg, &Limits::default()) {
        let theirs = oracle(&samples, channels);
        assert_eq!(
            (report.red_pixels, report.counted_pixels),
            (theirs.red, theirs.counted),
            "{what}: red count"
        );
    }
    true
}

fn encode(
    rgb: &[u8],
    w: u16,
    h: u16,
    quality: u8,
    sampling: SamplingFactor,
    restart: u16,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, quality);
    enc.set_sampling_factor(sampling);
    if restart > 0 {
        enc.set_restart_interval(restart);
    }
    enc.encode(rgb, w, h, ColorType::Rgb).expect("encodes");
    out
}

#[test]
fn the_fast_huffman_decoder_gives_djpegs_pixels_for_every_kind_of_baseline_file() {
    if djpeg_pixels(&reference_jpeg()).is_none() {
        return;
    }
    assert!(same_pixels_as_djpeg(&reference_jpeg(), "reference"));
    let (w, h) = (333u16, 217u16); // not a multiple of any MCU size
    let rgb = reference_rgb(usize::from(w), usize::from(h), 21);
    for quality in [100, 90, 50, 5] {
        for (name, sampling) in [
            ("4:4:4", SamplingFactor::F_1_1),
            ("4:2:2", SamplingFactor::F_2_1),
            ("4:2:0", SamplingFactor::F_2_2),
            ("4:4:0", SamplingFactor::F_1_2),
            ("4:1:1", SamplingFactor::F_4_1),
        ] {
            for restart in [0, 1, 7] {
                let file = encode(&rgb, w, h, quality, sampling, restart);
                let what = format!("q{quality} {name} restart {restart}");
                assert!(same_pixels_as_djpeg(&file, &what), "{what}");
                // Optimised Huffman tables: other code lengths, long codes.
                if let Some(optimized) = jpegtran(&file, &["-optimize"]) {
                    assert!(same_pixels_as_djpeg(
                        &optimized,
                        &format!("{what} optimized")
                    ));
                }
            }
        }
    }
    let grey: Vec<u8> = rgb.chunks_exact(3).map(|p| p[1]).collect();
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 93)
        .encode(&grey, w, h, ColorType::Luma)
        .expect("grey");
    assert!(same_pixels_as_djpeg(&out, "grey"));
    let cmyk: Vec<u8> = rgb
        .chunks_exact(3)
        .flat_map(|p| [255 - p[0], 255 - p[1], 255 - p[2], 200])
        .collect();
    for color in [ColorType::Cmyk, ColorType::CmykAsYcck] {
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, 90)
            .encode(&cmyk, w, h, color)
            .expect("cmyk");
        assert!(same_pixels_as_djpeg(&out, &format!("{color:?}")));
    }
}

/// Where the entropy-coded data of a single-scan file starts and ends.
fn scan_data(jpeg: &[u8]) -> std::ops::Range<usize> {
    let sos = jpeg
        .windows(2)
        .position(|m| m == [0xFF, 0xDA])
        .expect("an SOS");
    let start = sos + 2 + usize::from(u16::from_be_bytes([jpeg[sos + 2], jpeg[sos + 3]]));
    let end = jpeg
        .windows(2)
        .rposition(|m| m == [0xFF, 0xD9])
        .expect("an EOI");
    start..end
}

/// The damaged versions of `file` the test below compares: single bits and
/// bytes changed, stretches missing, runs of one bits (bad codes), stray
/// restart markers, and each restart marker given the wrong number.
fn damaged(file: &[u8], rng: &mut Rng) -> Vec<Vec<u8>> {
    let data = scan_data(file);
    let mut out = Vec::new();
    let at = |rng: &mut Rng| data.start + rng.below(data.len() as u32) as usize;
    for case in 0..300 {
        let mut bad = file.to_vec();
        let at = at(rng);
        match case % 6 {
            0 | 1 => bad[at] ^= 1 << rng.below(8), // desynchronised codes, runs past the block
            2 => bad[at] = 0xFF,                   // a marker (or FF 00) in the data
            3 => bad[at] = rng.below(256) as u8,
            4 => {
                let end = (at + 1 + rng.below(64) as usize).min(data.end);
                bad.drain(at..end);
            }
            _ => {
                // 24 one bits: no table has a code of 16 ones
                let insert: &[u8] = if rng.below(2) == 0 {
                    &[0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x00]
                } else {
                    &[0xFF, 0xD0]
                };
                bad.splice(at..at, insert.iter().copied());
            }
        }
        out.push(bad);
    }
    for rst in (data.start..data.end - 1)
        .filter(|&i| file[i] == 0xFF && (0xD0..=0xD7).contains(&file[i + 1]))
    {
        let mut bad = file.to_vec();
        bad[rst + 1] = 0xD0 + (file[rst + 1] - 0xD0 + 1 + rng.below(7) as u8) % 8;
        out.push(bad);
    }
    out
}

#[test]
fn a_damaged_baseline_jpeg_decodes_exactly_as_libjpeg_decodes_it() {
    let (w, h) = (160u16, 96u16);
    let rgb = reference_rgb(usize::from(w), usize::from(h), 22);
    let mut rng = Rng::new(7);
    let (mut compared, mut total) = (0, 0);
    for restart in [0u16, 3] {
        let file = encode(&rgb, w, h, 90, SamplingFactor::F_2_2, restart);
        if djpeg_pixels(&file).is_none() {
            return;
        }
        for (case, bad) in damaged(&file, &mut rng).iter().enumerate() {
            total += 1;
            if same_pixels_as_djpeg(bad, &format!("restart {restart}, case {case}")) {
                compared += 1;
            }
        }
    }
    // djpeg decodes nearly all of them (with warnings); ours refuses only the
    // ones it finds cut short.
    eprintln!("{compared} of {total} damaged files compared");
    assert!(
        compared * 10 >= total * 8,
        "only {compared} of {total} damaged files compared"
    );
}
