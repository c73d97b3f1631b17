//! The reference load (bench/watermark) watermarked by the fast path gives the very
//! bytes it gave before the skip was made faster (issue #24): the skip only decides
//! where the copied prefix ends and which DC predictors the re-encoding starts from,
//! so any slip there changes the output.

use rubra_watermark::{
    Gravity, Options, Overlay, Placement, Route, watermark_parts, watermark_with,
};

#[path = "../../benches/reference.rs"]
#[allow(dead_code)]
mod reference;

/// FNV-1a, 64 bits: enough to tell two outputs apart.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Length and FNV-1a of the output of commit f7fd5e4 (before this work) for the
/// reference JPEG and overlay, south-east 20 px in. They hold as long as the
/// generator in benches/reference.rs and the jpeg-encoder version stay the same.
const BEFORE: (usize, u64) = (921_433, 0x6a3d_97ab_cdac_6045);

/// The reference JPEG and overlay, south-east 20 px in.
fn reference_load() -> (Vec<u8>, Overlay, Options) {
    let input = reference::jpeg();
    let overlay = Overlay::from_png(&reference::overlay_png()).expect("overlay");
    let opts = Options::new(Placement::gravity(Gravity::SouthEast, 20, 20));
    (input, overlay, opts)
}

#[test]
fn reference_output_is_byte_identical_to_the_build_before_the_faster_skip() {
    let (input, overlay, opts) = reference_load();
    let out = watermark_with(&input, &overlay, &opts).expect("watermark");
    assert_eq!(out.route, Route::JpegFast);
    assert_eq!(
        (out.bytes.len(), fnv1a(&out.bytes)),
        BEFORE,
        "output of the reference load changed"
    );
}

/// What the server sends for the reference load: the input's head, shared, and the
/// re-encoded rest, which together are the pinned output.
#[test]
fn reference_output_in_parts_shares_the_head_of_the_input() {
    let (input, overlay, opts) = reference_load();
    let parts = watermark_parts(&input, &overlay, &opts).expect("watermark");
    assert_eq!(parts.route, Route::JpegFast);
    let mut whole = input[..parts.prefix].to_vec();
    whole.extend_from_slice(&parts.rest);
    assert_eq!((whole.len(), fnv1a(&whole)), BEFORE);
    // The overlay covers the last ~8 of 80 MCU rows.
    assert!(
        parts.prefix > input.len() * 8 / 10,
        "prefix {} of {}",
        parts.prefix,
        input.len()
    );
}
