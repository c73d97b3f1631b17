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

/// Length and FNV-1a of the output for the reference JPEG and overlay, south-east 20 px
/// in. They hold as long as the generator in benches/reference.rs and the jpeg-encoder
/// version stay the same. Commit f7fd5e4 (before the faster skip) gave 921 433 bytes,
/// FNV-1a 0x6a3d_97ab_cdac_6045; since session 18 the last re-encoded blocks carry ZRL
/// codes that keep the copied tail at its bit position in the byte (`fast::realign`),
/// 7 bytes more, and djpeg decodes both outputs to the same pixels (same MD5 of the PPM).
const BEFORE: (usize, u64) = (921_440, 0xca4e_9038_f53f_3cd4);

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
    whole.extend_from_slice(&input[input.len() - parts.suffix..]);
    assert_eq!((whole.len(), fnv1a(&whole)), BEFORE);
    // The overlay covers the last ~8 of 80 MCU rows.
    assert!(
        parts.prefix > input.len() * 8 / 10,
        "prefix {} of {}",
        parts.prefix,
        input.len()
    );
}

/// With the overlay at the top, nearly the whole scan is the copied tail: it keeps its bit
/// position in the byte (`fast::realign`), so it is the input's own bytes, up to EOI.
#[test]
fn the_copied_tail_is_the_inputs_own_bytes_after_a_north_west_watermark() {
    let (input, overlay, _) = reference_load();
    let opts = Options::new(Placement::gravity(Gravity::NorthWest, 20, 20));
    let out = watermark_with(&input, &overlay, &opts).expect("watermark");
    assert_eq!(out.route, Route::JpegFast);
    let same_tail = input
        .iter()
        .rev()
        .zip(out.bytes.iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    assert!(
        same_tail > input.len() * 8 / 10,
        "{same_tail} bytes of {} end both",
        input.len()
    );
    // And the server sends them from the input: only the head and the re-encoded MCUs
    // are new bytes.
    let parts = watermark_parts(&input, &overlay, &opts).expect("watermark");
    assert!(
        parts.suffix > input.len() * 8 / 10 && parts.rest.len() < input.len() / 10,
        "prefix {}, rest {}, suffix {} of {}",
        parts.prefix,
        parts.rest.len(),
        parts.suffix,
        input.len()
    );
    let mut whole = input[..parts.prefix].to_vec();
    whole.extend_from_slice(&parts.rest);
    whole.extend_from_slice(&input[input.len() - parts.suffix..]);
    assert!(whole == out.bytes, "the parts are not the whole output");
}
