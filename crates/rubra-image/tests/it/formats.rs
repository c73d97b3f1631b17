//! PNG, GIF and WebP: results must be exact.

use image::ExtendedColorType;
use rubra_image::{ImageFormat, Limits, RedCount, measure, probe, sniff};

use crate::helpers::*;

fn counts(bytes: &[u8]) -> (rubra_image::RedReport, RedCount) {
    let r = measure(bytes, &Limits::default()).expect("measures");
    (
        r,
        RedCount {
            red: r.red_pixels,
            counted: r.counted_pixels,
        },
    )
}

#[test]
fn png_rgba8_is_exact_and_leaves_out_alpha_below_128() {
    let (w, h) = (203, 97);
    let rgba = mixed_rgba(w, h, 1);
    let bytes = png(
        w as u32,
        h as u32,
        png::ColorType::Rgba,
        png::BitDepth::Eight,
        &rgba,
        None,
    );
    let (report, got) = counts(&bytes);
    let want = oracle(&rgba, 4);
    assert_eq!(got, want);
    assert!(
        want.red > 100 && want.counted < (w * h) as u64,
        "the picture exercises both"
    );
    assert_eq!(
        (report.format, report.width, report.height),
        (ImageFormat::Png, 203, 97)
    );
    assert_eq!(report.red, want.red as f64 / want.counted as f64);
}

#[test]
fn png_rgb8_is_exact() {
    let (w, h) = (64, 50);
    let rgb = rgb_of(&mixed_rgba(w, h, 2));
    let bytes = png(
        w as u32,
        h as u32,
        png::ColorType::Rgb,
        png::BitDepth::Eight,
        &rgb,
        None,
    );
    assert_eq!(counts(&bytes).1, oracle(&rgb, 3));
}

#[test]
fn png_known_fraction_one_quarter() {
    // 40×40: the top-left 20×20 square pure red, the rest grey: exactly 0.25.
    let mut rgb = vec![128u8; 40 * 40 * 3];
    for y in 0..20 {
        for x in 0..20 {
            rgb[(y * 40 + x) * 3..][..3].copy_from_slice(&[230, 10, 20]);
        }
    }
    let bytes = png(
        40,
        40,
        png::ColorType::Rgb,
        png::BitDepth::Eight,
        &rgb,
        None,
    );
    assert_eq!(measure(&bytes, &Limits::default()).unwrap().red, 0.25);
}

#[test]
fn png_16_bit_rounds_to_the_nearest_8_bit_value() {
    let (w, h) = (50, 40);
    let rgba8 = mixed_rgba(w, h, 3);
    // Widen exactly (v * 257), then nudge some samples across rounding edges.
    let mut rgba16: Vec<u16> = rgba8.iter().map(|&v| u16::from(v) * 257).collect();
    for (i, s) in rgba16.iter_mut().enumerate() {
        match i % 7 {
            0 => *s = s.saturating_add(128), // still rounds to the same 8-bit value
            3 => *s = s.saturating_sub(128), // rounds down one step (except at 0)
            _ => {}
        }
    }
    let expected8: Vec<u8> = rgba16
        .iter()
        .map(|&v| ((u32::from(v) * 255 + 32767) / 65535) as u8)
        .collect();
    let be: Vec<u8> = rgba16.iter().flat_map(|v| v.to_be_bytes()).collect();
    let bytes = png(
        w as u32,
        h as u32,
        png::ColorType::Rgba,
        png::BitDepth::Sixteen,
        &be,
        None,
    );
    assert_eq!(counts(&bytes).1, oracle(&expected8, 4));

    let rgb16: Vec<u8> = rgba16
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let bytes = png(
        w as u32,
        h as u32,
        png::ColorType::Rgb,
        png::BitDepth::Sixteen,
        &rgb16,
        None,
    );
    assert_eq!(counts(&bytes).1, oracle(&rgb_of(&expected8), 3));
}

#[test]
fn png_palette_with_trns() {
    // Palette: 0 red (opaque), 1 red (alpha 100: left out), 2 grey, 3 red (no tRNS entry).
    let plte = [250, 0, 0, 250, 0, 0, 128, 128, 128, 200, 30, 30];
    let trns = [255, 100, 255];
    let (w, h) = (30u32, 20u32);
    let idx: Vec<u8> = (0..w * h).map(|i| (i % 4) as u8).collect();
    let bytes = png(
        w,
        h,
        png::ColorType::Indexed,
        png::BitDepth::Eight,
        &idx,
        Some((&plte, &trns)),
    );
    let (_, got) = counts(&bytes);
    // 600 pixels, 150 of each index: counted = 450 (index 1 excluded), red = 300.
    assert_eq!(
        got,
        RedCount {
            red: 300,
            counted: 450
        }
    );

    // 2-bit palette without tRNS.
    let packed: Vec<u8> = (0..h)
        .flat_map(|_| (0..8).map(|_| 0b00_01_10_11u8))
        .collect();
    let bytes = png(
        32,
        h,
        png::ColorType::Indexed,
        png::BitDepth::Two,
        &packed,
        Some((&plte, &[])),
    );
    assert_eq!(
        counts(&bytes).1,
        RedCount {
            red: 32 * 20 * 3 / 4,
            counted: 32 * 20
        }
    );
}

#[test]
fn png_grey_and_grey_alpha_are_never_red() {
    let grey: Vec<u8> = (0..=255).collect();
    let bytes = png(
        16,
        16,
        png::ColorType::Grayscale,
        png::BitDepth::Eight,
        &grey,
        None,
    );
    assert_eq!(
        counts(&bytes).1,
        RedCount {
            red: 0,
            counted: 256
        }
    );
    let ga: Vec<u8> = (0..=255u8).flat_map(|v| [255, v]).collect();
    let bytes = png(
        16,
        16,
        png::ColorType::GrayscaleAlpha,
        png::BitDepth::Eight,
        &ga,
        None,
    );
    assert_eq!(
        counts(&bytes).1,
        RedCount {
            red: 0,
            counted: 128
        }
    );
    let ga16: Vec<u8> = (0..=255u16)
        .flat_map(|v| [0xFF, 0xFF, (v >> 8) as u8 ^ v as u8, 0])
        .collect();
    let bytes = png(
        16,
        16,
        png::ColorType::GrayscaleAlpha,
        png::BitDepth::Sixteen,
        &ga16,
        None,
    );
    assert_eq!(counts(&bytes).0.red, 0.0);
}

#[test]
fn png_fully_transparent_is_zero_not_nan() {
    let px = [255u8, 0, 0, 0].repeat(100);
    let bytes = png(
        10,
        10,
        png::ColorType::Rgba,
        png::BitDepth::Eight,
        &px,
        None,
    );
    let r = measure(&bytes, &Limits::default()).unwrap();
    assert_eq!((r.red, r.red_pixels, r.counted_pixels), (0.0, 0, 0));
}

/// A picture with few colours (GIF keeps them exactly) and alpha 0 or 255.
fn few_colours(w: usize, h: usize, seed: u64) -> Vec<u8> {
    let palette = [
        [255, 0, 0],
        [77, 0, 0],
        [76, 0, 0],
        [200, 101, 101],
        [10, 200, 30],
        [250, 250, 250],
    ];
    let mut rng = Rng::new(seed);
    (0..w * h)
        .flat_map(|_| {
            let c = palette[rng.below(palette.len() as u32) as usize];
            let a = if rng.below(5) == 0 { 0 } else { 255 };
            [c[0], c[1], c[2], a]
        })
        .collect()
}

#[test]
fn gif_first_frame_is_exact() {
    use image::codecs::gif::GifEncoder;
    use image::{Delay, Frame, RgbaImage};
    let (w, h) = (48u32, 36u32);
    let first = few_colours(w as usize, h as usize, 4);
    let second = [255u8, 0, 0, 255].repeat((w * h) as usize);
    let mut out = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut out);
        for px in [&first, &second] {
            let img = RgbaImage::from_raw(w, h, px.clone()).unwrap();
            enc.encode_frame(Frame::from_parts(
                img,
                0,
                0,
                Delay::from_numer_denom_ms(100, 1),
            ))
            .unwrap();
        }
    }
    assert_eq!(sniff(&out), Some(ImageFormat::Gif));
    let (report, got) = counts(&out);
    assert_eq!(got, oracle(&first, 4));
    assert_eq!((report.width, report.height), (48, 36));
}

#[test]
fn webp_lossless_is_exact() {
    use image::codecs::webp::WebPEncoder;
    let (w, h) = (77u32, 41u32);
    for alpha in [true, false] {
        let rgba = mixed_rgba(w as usize, h as usize, 5);
        let (data, ct, ch) = if alpha {
            (rgba.clone(), ExtendedColorType::Rgba8, 4)
        } else {
            (rgb_of(&rgba), ExtendedColorType::Rgb8, 3)
        };
        let mut out = Vec::new();
        WebPEncoder::new_lossless(&mut out)
            .encode(&data, w, h, ct)
            .unwrap();
        assert_eq!(probe(&out).unwrap().format, ImageFormat::WebP);
        let (report, got) = counts(&out);
        assert_eq!(got, oracle(&data, ch), "alpha: {alpha}");
        assert_eq!((report.width, report.height), (w, h));
    }
}

#[test]
fn webp_lossy_fixture() {
    // Made with `cwebp -q 80` from a 64×48 PNG whose left half is pure red
    // (230, 20, 20) and right half grey (128): red is about 0.5.
    let bytes = include_bytes!("../fixtures/half_red_lossy.webp");
    let info = probe(bytes).unwrap();
    assert_eq!(
        (info.format, info.width, info.height),
        (ImageFormat::WebP, 64, 48)
    );
    let r = measure(bytes, &Limits::default()).unwrap();
    assert!((r.red - 0.5).abs() < 0.03, "red {}", r.red);
}

#[test]
fn webp_lossy_with_alpha_fixture() {
    // `cwebp -q 80 -exact` of a 64×48 RGBA PNG: columns 0–15 red (230, 20, 20),
    // 16–31 grey, both opaque; 32–63 red but fully transparent (left out).
    let bytes = include_bytes!("../fixtures/red_alpha_lossy.webp");
    let r = measure(bytes, &Limits::default()).unwrap();
    assert_eq!((r.width, r.height, r.counted_pixels), (64, 48, 32 * 48));
    assert!((r.red - 0.5).abs() < 0.03, "red {}", r.red);
}

#[test]
fn png_rgb_with_trns_colour_key() {
    // tRNS on a truecolour PNG: the one colour (250, 0, 0) is fully transparent,
    // so those red pixels are left out; (200, 0, 0) stays red and counted.
    let (w, h) = (20u32, 10u32);
    let rgb: Vec<u8> = (0..w * h)
        .flat_map(|i| match i % 4 {
            0 => [250, 0, 0],
            1 => [200, 0, 0],
            _ => [90, 90, 90],
        })
        .collect();
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_trns(vec![0, 250, 0, 0, 0, 0]);
        enc.write_header().unwrap().write_image_data(&rgb).unwrap();
    }
    let r = measure(&out, &Limits::default()).unwrap();
    assert_eq!((r.red_pixels, r.counted_pixels), (50, 150));
}

#[test]
fn png_16_bit_samples_become_round_v_255_over_65535_not_the_high_byte() {
    // Every 16-bit value as the red sample of a pixel with green = blue = 0: the
    // pixel is red exactly when round(v·255/65535) >= 77 (DESIGN §4), computed
    // here in floating point, independently of the crate's integer form.
    let expected = (0..=u16::MAX)
        .filter(|&v| (f64::from(v) * 255.0 / 65535.0).round() >= 77.0)
        .count() as u64;
    let high_byte = (0..=u16::MAX).filter(|&v| v >> 8 >= 77).count() as u64;
    assert_ne!(expected, high_byte, "the two rules differ on this image");
    let samples: Vec<u8> = (0..=u16::MAX)
        .flat_map(|v| [v.to_be_bytes(), [0, 0], [0, 0]].concat())
        .collect();
    let bytes = png(
        256,
        256,
        png::ColorType::Rgb,
        png::BitDepth::Sixteen,
        &samples,
        None,
    );
    let r = measure(&bytes, &Limits::default()).unwrap();
    assert_eq!((r.red_pixels, r.counted_pixels), (expected, 65536));
}
