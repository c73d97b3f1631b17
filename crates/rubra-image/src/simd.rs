//! Run-time dispatch of the counting loops to copies compiled for AVX2 and
//! SSE4.1: one of the two modules allowed `unsafe` (with libjpeg.rs), because calling a
//! `#[target_feature]` function from code without that feature is.

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

#[target_feature(enable = "sse4.1,ssse3")]
fn rgb8_sse41(px: &[u8]) -> RedCount {
    rgb8_kernel(px)
}

#[target_feature(enable = "sse4.1,ssse3")]
fn rgba8_sse41(px: &[u8]) -> RedCount {
    rgba8_kernel(px)
}

/// The RGB8 loop compiled for AVX2; panics if the CPU lacks AVX2.
pub(crate) fn count_rgb8_avx2(px: &[u8]) -> RedCount {
    assert!(std::arch::is_x86_feature_detected!("avx2"));
    // SAFETY: the CPU was just checked to have AVX2, the only feature the
    // callee was compiled for beyond the baseline.
    unsafe { rgb8_avx2(px) }
}

/// The RGBA8 loop compiled for AVX2; panics if the CPU lacks AVX2.
pub(crate) fn count_rgba8_avx2(px: &[u8]) -> RedCount {
    assert!(std::arch::is_x86_feature_detected!("avx2"));
    // SAFETY: the CPU was just checked to have AVX2.
    unsafe { rgba8_avx2(px) }
}

/// The RGB8 loop compiled for SSE4.1; panics if the CPU lacks it.
pub(crate) fn count_rgb8_sse41(px: &[u8]) -> RedCount {
    assert!(is_sse41());
    // SAFETY: the CPU was just checked to have SSE4.1 and SSSE3.
    unsafe { rgb8_sse41(px) }
}

/// The RGBA8 loop compiled for SSE4.1; panics if the CPU lacks it.
pub(crate) fn count_rgba8_sse41(px: &[u8]) -> RedCount {
    assert!(is_sse41());
    // SAFETY: the CPU was just checked to have SSE4.1 and SSSE3.
    unsafe { rgba8_sse41(px) }
}

fn is_sse41() -> bool {
    std::arch::is_x86_feature_detected!("sse4.1") && std::arch::is_x86_feature_detected!("ssse3")
}
