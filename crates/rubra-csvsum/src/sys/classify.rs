//! Classifies a 64-byte block into bit masks of delimiters, newlines and quotes.
//!
//! On x86-64 this calls SSE2 intrinsics, which Rust marks as
//! `#[target_feature]` functions even though SSE2 is part of the x86-64
//! baseline. Other targets use a portable loop.

/// One bit per byte of a 64-byte block (bit `i` = byte `i`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BlockMasks {
    /// Bytes equal to the field delimiter.
    pub delim: u64,
    /// `\n` bytes.
    pub newline: u64,
    /// `"` bytes.
    pub quote: u64,
}

/// A way to classify blocks; the scanner is compiled once per implementation.
pub(crate) trait Classifier {
    /// Classifies `block` for the given delimiter.
    fn classify(block: &[u8; 64], delimiter: u8) -> BlockMasks;

    /// Position of the `n`-th (0-based) set bit of `x`, which has more than `n`.
    #[inline(always)]
    fn select(mut x: u64, n: u32) -> u32 {
        for _ in 0..n {
            x &= x - 1;
        }
        x.trailing_zeros()
    }
}

/// Something that scans input with a given [`Classifier`].
pub(crate) trait BlockScan {
    /// Scans `data`, classifying blocks with `C`.
    fn scan_blocks<C: Classifier>(&mut self, data: &[u8]);
}

/// Runs `s.scan_blocks` with the best classifier this CPU supports.
#[inline]
pub(crate) fn scan<S: BlockScan>(s: &mut S, data: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    match best() {
        Best::Avx2Pdep => {
            // SAFETY: `best` checked at run time that the CPU has AVX2, BMI1,
            // BMI2, LZCNT and POPCNT, all that `scan_avx2_pdep` requires.
            unsafe { scan_avx2_pdep(s, data) };
            return;
        }
        Best::Avx2 => {
            // SAFETY: `best` checked at run time that the CPU has AVX2, BMI1,
            // LZCNT and POPCNT, all that `scan_avx2` requires.
            unsafe { scan_avx2(s, data) };
            return;
        }
        Best::Baseline => {}
    }
    s.scan_blocks::<Baseline>(data);
}

#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Best {
    Baseline,
    Avx2,
    /// AVX2 and a fast `pdep` (not AMD before Zen 3, where it is microcoded).
    Avx2Pdep,
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn best() -> Best {
    use std::sync::OnceLock;
    static BEST: OnceLock<Best> = OnceLock::new();
    *BEST.get_or_init(|| {
        if !has_avx2() {
            return Best::Baseline;
        }
        if !std::is_x86_feature_detected!("bmi2") {
            return Best::Avx2;
        }
        // CPUID leaf 0 gives the vendor, leaf 1 the family.
        let vendor = std::arch::x86_64::__cpuid(0);
        let amd = vendor.ebx == u32::from_le_bytes(*b"Auth");
        let eax = std::arch::x86_64::__cpuid(1).eax;
        let family = ((eax >> 8) & 0xf) + ((eax >> 20) & 0xff);
        if amd && family < 0x19 {
            Best::Avx2
        } else {
            Best::Avx2Pdep
        }
    })
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("bmi1")
        && std::is_x86_feature_detected!("lzcnt")
        && std::is_x86_feature_detected!("popcnt")
}

/// The scanner compiled for AVX2 (and hardware `popcnt`/`tzcnt`/`lzcnt`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,lzcnt,popcnt")]
fn scan_avx2<S: BlockScan>(s: &mut S, data: &[u8]) {
    s.scan_blocks::<Avx2>(data);
}

/// The scanner compiled for AVX2 and BMI2, selecting bits with `pdep`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt")]
fn scan_avx2_pdep<S: BlockScan>(s: &mut S, data: &[u8]) {
    s.scan_blocks::<Avx2Pdep>(data);
}

/// AVX2 classification plus `pdep` bit selection. Use only where `best()`
/// returned `Best::Avx2Pdep`.
#[cfg(target_arch = "x86_64")]
pub(crate) struct Avx2Pdep;

#[cfg(target_arch = "x86_64")]
impl Classifier for Avx2Pdep {
    #[inline(always)]
    fn classify(block: &[u8; 64], delimiter: u8) -> BlockMasks {
        Avx2::classify(block, delimiter)
    }

    #[inline(always)]
    fn select(x: u64, n: u32) -> u32 {
        // SAFETY: `Avx2Pdep` is only used after `best()` returned
        // `Best::Avx2Pdep`, i.e. the CPU supports BMI2: by `scan_avx2_pdep`,
        // and by tests that check `best()` first.
        unsafe { select_pdep(x, n) }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi1,bmi2")]
#[inline]
fn select_pdep(x: u64, n: u32) -> u32 {
    std::arch::x86_64::_pdep_u64(1u64 << n, x).trailing_zeros()
}

/// SSE2 on x86-64 (always there), a portable loop elsewhere.
pub(crate) struct Baseline;

impl Classifier for Baseline {
    #[inline(always)]
    fn classify(block: &[u8; 64], delimiter: u8) -> BlockMasks {
        classify(block, delimiter)
    }
}

/// AVX2: two 32-byte compares per character class. Use only where AVX2 was
/// detected at run time.
#[cfg(target_arch = "x86_64")]
pub(crate) struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Classifier for Avx2 {
    #[inline(always)]
    fn classify(block: &[u8; 64], delimiter: u8) -> BlockMasks {
        // SAFETY: `Avx2` is only used after `has_avx2` (directly or through
        // `best`) confirmed the CPU supports AVX2: by `scan_avx2`,
        // `Avx2Pdep`, and tests that check first.
        unsafe { classify_avx2(block, delimiter) }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn classify_avx2(block: &[u8; 64], delimiter: u8) -> BlockMasks {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_set1_epi8,
    };
    let p = block.as_ptr();
    // SAFETY: both 32-byte loads lie inside the 64-byte block, and
    // `loadu` has no alignment requirement.
    let (a, b) = unsafe {
        (
            _mm256_loadu_si256(p.cast::<__m256i>()),
            _mm256_loadu_si256(p.add(32).cast::<__m256i>()),
        )
    };
    let bits = |c: __m256i| -> u64 {
        let lo = _mm256_movemask_epi8(_mm256_cmpeq_epi8(a, c)) as u32 as u64;
        let hi = _mm256_movemask_epi8(_mm256_cmpeq_epi8(b, c)) as u32 as u64;
        lo | hi << 32
    };
    BlockMasks {
        delim: bits(_mm256_set1_epi8(delimiter as i8)),
        newline: bits(_mm256_set1_epi8(b'\n' as i8)),
        quote: bits(_mm256_set1_epi8(b'"' as i8)),
    }
}

/// Classifies `block` for the given delimiter with the baseline instructions.
#[inline(always)]
pub(crate) fn classify(block: &[u8; 64], delimiter: u8) -> BlockMasks {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        // SAFETY: `classify_sse2` only requires SSE2, and this branch is compiled
        // only when SSE2 is enabled for the whole build (it is part of the
        // x86-64 baseline), so the CPU running this code supports it.
        unsafe { classify_sse2(block, delimiter) }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        classify_portable(block, delimiter)
    }
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "sse2")]
#[inline]
fn classify_sse2(block: &[u8; 64], delimiter: u8) -> BlockMasks {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set_epi64x, _mm_set1_epi8};
    let vd = _mm_set1_epi8(delimiter as i8);
    let vn = _mm_set1_epi8(b'\n' as i8);
    let vq = _mm_set1_epi8(b'"' as i8);
    let mut m = BlockMasks::default();
    for i in 0..4 {
        let at = i * 16;
        let lo = u64::from_le_bytes(word(block, at));
        let hi = u64::from_le_bytes(word(block, at + 8));
        // Compiles to one unaligned 16-byte load.
        let v = _mm_set_epi64x(hi as i64, lo as i64);
        let d = _mm_movemask_epi8(_mm_cmpeq_epi8(v, vd)) as u32 as u64 & 0xffff;
        let n = _mm_movemask_epi8(_mm_cmpeq_epi8(v, vn)) as u32 as u64 & 0xffff;
        let q = _mm_movemask_epi8(_mm_cmpeq_epi8(v, vq)) as u32 as u64 & 0xffff;
        m.delim |= d << at;
        m.newline |= n << at;
        m.quote |= q << at;
    }
    m
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn word(block: &[u8; 64], at: usize) -> [u8; 8] {
    let mut w = [0u8; 8];
    w.copy_from_slice(&block[at..at + 8]);
    w
}

/// The reference classifier, used on other targets and to test the fast one.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
pub(crate) fn classify_portable(block: &[u8; 64], delimiter: u8) -> BlockMasks {
    let mut m = BlockMasks::default();
    for (i, &b) in block.iter().enumerate() {
        let bit = 1u64 << i;
        if b == delimiter {
            m.delim |= bit;
        }
        if b == b'\n' {
            m.newline |= bit;
        }
        if b == b'"' {
            m.quote |= bit;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_classifier_matches_portable_one() {
        let mut block = [0u8; 64];
        let alphabet = b",;\n\"a1\r.";
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            for b in block.iter_mut() {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                *b = alphabet[(x >> 16) as usize % alphabet.len()];
            }
            for d in [b',', b';', b'\t'] {
                assert_eq!(classify(&block, d), classify_portable(&block, d));
                #[cfg(target_arch = "x86_64")]
                if has_avx2() {
                    assert_eq!(Avx2::classify(&block, d), classify_portable(&block, d));
                }
            }
        }
    }

    #[test]
    fn every_selector_finds_the_nth_set_bit() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for n in 0..x.count_ones() {
                let want = Baseline::select(x, n);
                assert_eq!((x >> want) & 1, 1);
                assert_eq!((x & ((1u64 << want) - 1)).count_ones(), n);
                #[cfg(target_arch = "x86_64")]
                if best() == Best::Avx2Pdep {
                    assert_eq!(Avx2Pdep::select(x, n), want);
                }
            }
        }
    }
}
