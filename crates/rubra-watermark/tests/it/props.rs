//! The watermark fuzz target's oracle as a property test on stable (issue #20): a generated
//! JPEG of any size, sampling, quality, coding (baseline or progressive) and restart
//! interval, watermarked at any gravity, offset and opacity, is either refused as corrupt or
//! becomes a JPEG in which zune-jpeg and djpeg (when installed) see every sample outside the
//! overlay's blocks as in the input.

use proptest::prelude::*;
use rubra_watermark::Gravity;

use crate::fuzz_findings::assert_unchanged_outside_the_overlay;
use crate::helpers::{JpegSpec, encode_jpeg, photo};

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_watermark_changes_nothing_outside_the_overlay(
        w in 8usize..96,
        h in 8usize..96,
        seed in any::<u64>(),
        quality in 30u8..100,
        sampling in prop_oneof![Just((1u8, 1u8)), Just((2, 1)), Just((2, 2))],
        progressive in any::<bool>(),
        restart in prop_oneof![Just(0u16), 1u16..8],
        gravity in 0usize..9,
        dx in 0i64..24,
        opacity in 0.05f32..1.0,
    ) {
        let spec = JpegSpec { quality, sampling, gray: false, progressive, restart, optimize: false };
        let jpeg = encode_jpeg(&photo(w, h, seed), w, h, spec);
        // An offset that keeps the 8×8 overlay on the picture whatever the gravity (one off
        // it is refused as a placement error, not what this checks).
        let dx = dx % ((w as i64 - 8) / 2 + 1);
        assert_unchanged_outside_the_overlay(&jpeg, (w, h), &[(Gravity::ALL[gravity], dx, opacity)]);
    }
}
