//! The image_probe fuzz target's oracle as a property test on stable (issue #20): for
//! generated PNG (RGBA, RGB), GIF and lossless WebP pictures of any size, the header probe
//! reads the format and size they were written with, and the red level counts exactly what
//! the `image` crate's decode of the same bytes holds.

use image::ExtendedColorType;
use proptest::prelude::*;
use rubra_image::{ImageFormat, Limits, RedCount, measure, probe};

use crate::helpers::{mixed_rgba, oracle};

/// `rgba` (w × h) written as format `kind`: 0 PNG RGBA8, 1 PNG RGB8, 2 GIF, 3 WebP lossless.
fn encode(kind: u8, w: u32, h: u32, rgba: &[u8]) -> (Vec<u8>, ImageFormat) {
    use image::ImageEncoder;
    let rgb: Vec<u8> = rgba
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    let mut out = Vec::new();
    let format = match kind {
        0 | 1 => {
            let (data, ct) = if kind == 0 {
                (rgba, ExtendedColorType::Rgba8)
            } else {
                (rgb.as_slice(), ExtendedColorType::Rgb8)
            };
            image::codecs::png::PngEncoder::new(&mut out)
                .write_image(data, w, h, ct)
                .unwrap();
            ImageFormat::Png
        }
        2 => {
            image::codecs::gif::GifEncoder::new(&mut out)
                .encode(rgba, w, h, ExtendedColorType::Rgba8)
                .unwrap();
            ImageFormat::Gif
        }
        _ => {
            image::codecs::webp::WebPEncoder::new_lossless(&mut out)
                .encode(rgba, w, h, ExtendedColorType::Rgba8)
                .unwrap();
            ImageFormat::WebP
        }
    };
    (out, format)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn probe_and_red_level_agree_with_the_image_crate(
        w in 1u32..64,
        h in 1u32..64,
        seed in any::<u64>(),
        kind in 0u8..4,
    ) {
        let rgba = mixed_rgba(w as usize, h as usize, seed);
        let (bytes, format) = encode(kind, w, h, &rgba);
        let info = probe(&bytes).unwrap();
        prop_assert_eq!((info.format, info.width, info.height), (format, w, h));
        let report = measure(&bytes, &Limits::default()).unwrap();
        let decoded = image::load_from_memory(&bytes).unwrap().to_rgba8();
        // An RGB picture has no alpha to leave pixels out: its decode is opaque.
        let want = oracle(decoded.as_raw(), 4);
        prop_assert_eq!(
            RedCount { red: report.red_pixels, counted: report.counted_pixels },
            want
        );
    }
}
