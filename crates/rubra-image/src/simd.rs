//! Runtime dispatch of the counting loops to AVX2 copies of them: the only
//! module allowed `unsafe`, because calling a `#[target_feature]` function is.

#![allow(unsafe_code)]

use crate::red::{RedCount, rgb8_kernel, rgba8_kernel};

#[target_feature(enable = "avx2")]
fn rgb8_avx2(px: &[u8]) -> RedCount {
    rgb8_kernel(px)
}

#[target_feature(enable = "avx2")]
fn rgba8_avx2(px: &[u8]) -> RedCount {
    rgba8_kernel(px)
}

/// The RGB8 loop compiled for AVX2. The caller must have checked that the CPU
/// has AVX2.
pub(crate) fn count_rgb8_avx2(px: &[u8]) -> RedCount {
    debug_assert!(std::arch::is_x86_feature_detected!("avx2"));
    // SAFETY: only called after `is_x86_feature_detected!("avx2")` returned
    // true, so the CPU executes the AVX2 instructions of `rgb8_avx2`.
    unsafe { rgb8_avx2(px) }
}

/// The RGBA8 loop compiled for AVX2. The caller must have checked that the
/// CPU has AVX2.
pub(crate) fn count_rgba8_avx2(px: &[u8]) -> RedCount {
    debug_assert!(std::arch::is_x86_feature_detected!("avx2"));
    // SAFETY: as above, only called once AVX2 was detected at run time.
    unsafe { rgba8_avx2(px) }
}
