//! SSE2 versions of the pixel edit's hot loops (x86_64 only: SSE2 is part of its
//! baseline): the 8×8 AAN transforms four lanes at a time, the 2×2 chroma
//! up/downsampling and the YCbCr blend. Every lane does the very operations of
//! the scalar code in `dct` and `edit`, in the same order, so the output is
//! bit-for-bit the scalar code's (the tests compare the two).
//!
//! The only module of this crate allowed `unsafe`: unaligned loads and stores of
//! `__m128` from and to arrays and slices whose length is checked first.
#![allow(unsafe_code)]
// The constants are `dct`'s (libjpeg's digits), so that they round to the same f32.
#![allow(clippy::excessive_precision)]

use std::arch::x86_64::{
    __m128, __m128i, _mm_add_ps, _mm_and_ps, _mm_and_si128, _mm_andnot_ps, _mm_castsi128_ps,
    _mm_cmpeq_epi8, _mm_cmpeq_epi16, _mm_cmpeq_epi32, _mm_cvtepi32_ps, _mm_cvttps_epi32,
    _mm_div_ps, _mm_loadu_ps, _mm_loadu_si128, _mm_max_ps, _mm_min_ps, _mm_movehl_ps,
    _mm_movelh_ps, _mm_movemask_epi8, _mm_mul_ps, _mm_or_ps, _mm_packs_epi16, _mm_packs_epi32,
    _mm_set1_epi8, _mm_set1_epi32, _mm_set1_ps, _mm_setr_ps, _mm_setzero_si128, _mm_shuffle_ps,
    _mm_srai_epi32, _mm_srli_epi32, _mm_storeu_ps, _mm_storeu_si128, _mm_sub_ps,
    _mm_unpackhi_epi16, _mm_unpackhi_ps, _mm_unpacklo_epi16, _mm_unpacklo_ps,
};

use super::dct::{Quant, ZIGZAG};

/// An 8×8 block of f32 as 8 rows of two halves: `v[r][0]` columns 0..4, `v[r][1]`
/// columns 4..8.
type Rows = [[__m128; 2]; 8];

/// Row-major index of the coefficient at natural position `n` in zigzag order.
const UNZIGZAG: [usize; 64] = {
    let mut u = [0usize; 64];
    let mut k = 0;
    while k < 64 {
        u[ZIGZAG[k]] = k;
        k += 1;
    }
    u
};

#[inline]
#[target_feature(enable = "sse2")]
fn add(a: __m128, b: __m128) -> __m128 {
    _mm_add_ps(a, b)
}

#[inline]
#[target_feature(enable = "sse2")]
fn sub(a: __m128, b: __m128) -> __m128 {
    _mm_sub_ps(a, b)
}

#[inline]
#[target_feature(enable = "sse2")]
fn mul(a: __m128, b: __m128) -> __m128 {
    _mm_mul_ps(a, b)
}

#[inline]
#[target_feature(enable = "sse2")]
fn splat(x: f32) -> __m128 {
    _mm_set1_ps(x)
}

#[inline]
#[target_feature(enable = "sse2")]
fn load4(s: &[f32]) -> __m128 {
    let s = &s[..4];
    // SAFETY: `s` holds 4 f32 (checked by the slice above); the load is unaligned.
    unsafe { _mm_loadu_ps(s.as_ptr()) }
}

#[inline]
#[target_feature(enable = "sse2")]
fn store4(d: &mut [f32], v: __m128) {
    let d = &mut d[..4];
    // SAFETY: `d` holds 4 f32 (checked by the slice above); the store is unaligned.
    unsafe { _mm_storeu_ps(d.as_mut_ptr(), v) }
}

/// `x.clamp(0.0, 255.0)` for finite lanes: `clamp` tests `x < min`, then `x > max`.
#[inline]
#[target_feature(enable = "sse2")]
fn clamp255(x: __m128) -> __m128 {
    _mm_min_ps(_mm_max_ps(x, _mm_set1_ps(0.0)), splat(255.0))
}

/// `dct::idct1` on four lanes.
#[inline]
#[target_feature(enable = "sse2")]
fn idct1(i: [__m128; 8]) -> [__m128; 8] {
    let tmp10 = add(i[0], i[4]);
    let tmp11 = sub(i[0], i[4]);
    let tmp13 = add(i[2], i[6]);
    let tmp12 = sub(mul(sub(i[2], i[6]), splat(std::f32::consts::SQRT_2)), tmp13);
    let tmp0 = add(tmp10, tmp13);
    let tmp3 = sub(tmp10, tmp13);
    let tmp1 = add(tmp11, tmp12);
    let tmp2 = sub(tmp11, tmp12);
    let z13 = add(i[5], i[3]);
    let z10 = sub(i[5], i[3]);
    let z11 = add(i[1], i[7]);
    let z12 = sub(i[1], i[7]);
    let tmp7 = add(z11, z13);
    let tmp11 = mul(sub(z11, z13), splat(std::f32::consts::SQRT_2));
    let z5 = mul(add(z10, z12), splat(1.847_759_065));
    let tmp10 = sub(z5, mul(z12, splat(1.082_392_2)));
    let tmp12 = sub(z5, mul(z10, splat(2.613_125_93)));
    let tmp6 = sub(tmp12, tmp7);
    let tmp5 = sub(tmp11, tmp6);
    let tmp4 = sub(tmp10, tmp5);
    [
        add(tmp0, tmp7),
        add(tmp1, tmp6),
        add(tmp2, tmp5),
        add(tmp3, tmp4),
        sub(tmp3, tmp4),
        sub(tmp2, tmp5),
        sub(tmp1, tmp6),
        sub(tmp0, tmp7),
    ]
}

/// `dct::fdct1` on four lanes.
#[inline]
#[target_feature(enable = "sse2")]
fn fdct1(d: [__m128; 8]) -> [__m128; 8] {
    let tmp0 = add(d[0], d[7]);
    let tmp7 = sub(d[0], d[7]);
    let tmp1 = add(d[1], d[6]);
    let tmp6 = sub(d[1], d[6]);
    let tmp2 = add(d[2], d[5]);
    let tmp5 = sub(d[2], d[5]);
    let tmp3 = add(d[3], d[4]);
    let tmp4 = sub(d[3], d[4]);
    let tmp10 = add(tmp0, tmp3);
    let tmp13 = sub(tmp0, tmp3);
    let tmp11 = add(tmp1, tmp2);
    let tmp12 = sub(tmp1, tmp2);
    let o0 = add(tmp10, tmp11);
    let o4 = sub(tmp10, tmp11);
    let z1 = mul(add(tmp12, tmp13), splat(std::f32::consts::FRAC_1_SQRT_2));
    let o2 = add(tmp13, z1);
    let o6 = sub(tmp13, z1);
    let tmp10 = add(tmp4, tmp5);
    let tmp11 = add(tmp5, tmp6);
    let tmp12 = add(tmp6, tmp7);
    let z5 = mul(sub(tmp10, tmp12), splat(0.382_683_433));
    let z2 = add(mul(splat(0.541_196_1), tmp10), z5);
    let z4 = add(mul(splat(1.306_562_965), tmp12), z5);
    let z3 = mul(tmp11, splat(std::f32::consts::FRAC_1_SQRT_2));
    let z11 = add(tmp7, z3);
    let z13 = sub(tmp7, z3);
    [
        o0,
        add(z11, z4),
        o2,
        sub(z13, z2),
        o4,
        add(z13, z2),
        o6,
        sub(z11, z4),
    ]
}

/// Transpose of a 4×4 block given as rows.
#[inline]
#[target_feature(enable = "sse2")]
fn transpose4(r0: __m128, r1: __m128, r2: __m128, r3: __m128) -> [__m128; 4] {
    let t0 = _mm_unpacklo_ps(r0, r1);
    let t1 = _mm_unpacklo_ps(r2, r3);
    let t2 = _mm_unpackhi_ps(r0, r1);
    let t3 = _mm_unpackhi_ps(r2, r3);
    [
        _mm_movelh_ps(t0, t1),
        _mm_movehl_ps(t1, t0),
        _mm_movelh_ps(t2, t3),
        _mm_movehl_ps(t3, t2),
    ]
}

#[inline]
#[target_feature(enable = "sse2")]
fn transpose8(v: &Rows) -> Rows {
    let mut t = [[_mm_set1_ps(0.0); 2]; 8];
    for (bi, h) in [(0usize, 0usize), (0, 1), (4, 0), (4, 1)] {
        let q = transpose4(v[bi][h], v[bi + 1][h], v[bi + 2][h], v[bi + 3][h]);
        // Sub-block (rows bi.., half h) lands at rows 4h.., half bi/4.
        for (j, x) in q.into_iter().enumerate() {
            t[4 * h + j][bi / 4] = x;
        }
    }
    t
}

/// `idct1` (`inverse`) or `fdct1` on the two halves of a block given as 8
/// vectors of rows.
#[inline]
#[target_feature(enable = "sse2")]
fn pass(v: &Rows, inverse: bool) -> Rows {
    let mut out = [[_mm_set1_ps(0.0); 2]; 8];
    for h in 0..2 {
        let i = [
            v[0][h], v[1][h], v[2][h], v[3][h], v[4][h], v[5][h], v[6][h], v[7][h],
        ];
        let o = if inverse { idct1(i) } else { fdct1(i) };
        for r in 0..8 {
            out[r][h] = o[r];
        }
    }
    out
}

/// Fully transparent pixels (`skip` lanes) keep their `old` samples.
#[inline]
#[target_feature(enable = "sse2")]
fn pick(skip: __m128, old: __m128, new: __m128) -> __m128 {
    _mm_or_ps(_mm_and_ps(skip, old), _mm_andnot_ps(skip, new))
}

/// `dct::idct`: dequantise and inverse-transform a zigzag block into level-shifted
/// samples, row-major.
#[target_feature(enable = "sse2")]
fn idct_sse2(coef: &[i16; 64], q: &Quant) -> [f32; 64] {
    let mut nat = [0i16; 64];
    for (n, c) in nat.iter_mut().enumerate() {
        *c = coef[UNZIGZAG[n]];
    }
    let mut ws: Rows = [[_mm_set1_ps(0.0); 2]; 8];
    for (r, row) in ws.iter_mut().enumerate() {
        // SAFETY: `nat[8r..8r+8]` is 8 i16 = 16 bytes; the load is unaligned.
        let w: __m128i = unsafe { _mm_loadu_si128(nat[8 * r..8 * r + 8].as_ptr().cast()) };
        // Sign-extend to i32: the i16 in the high half of each 32-bit lane, shifted down.
        let lo = _mm_srai_epi32(_mm_unpacklo_epi16(_mm_setzero_si128(), w), 16);
        let hi = _mm_srai_epi32(_mm_unpackhi_epi16(_mm_setzero_si128(), w), 16);
        row[0] = mul(_mm_cvtepi32_ps(lo), load4(&q.idct[8 * r..]));
        row[1] = mul(_mm_cvtepi32_ps(hi), load4(&q.idct[8 * r + 4..]));
    }
    // Columns (lanes are columns), then rows (lanes are rows, after a transpose).
    let ws = pass(&ws, true);
    let ws = pass(&transpose8(&ws), true);
    let ws = transpose8(&ws);
    let mut out = [0f32; 64];
    for (r, row) in ws.iter().enumerate() {
        store4(&mut out[8 * r..], add(row[0], splat(128.0)));
        store4(&mut out[8 * r + 4..], add(row[1], splat(128.0)));
    }
    out
}

/// `dct::fdct_quantize`: forward-transform level-shifted samples (row-major) and
/// quantise into a zigzag block.
#[target_feature(enable = "sse2")]
fn fdct_quantize_sse2(px: &[f32; 64], q: &Quant) -> [i16; 64] {
    let mut v: Rows = [[_mm_set1_ps(0.0); 2]; 8];
    for (r, row) in v.iter_mut().enumerate() {
        row[0] = sub(load4(&px[8 * r..]), splat(128.0));
        row[1] = sub(load4(&px[8 * r + 4..]), splat(128.0));
    }
    // Rows (lanes are rows, after a transpose), then columns (lanes are columns).
    let ws = pass(&transpose8(&v), false);
    let ws = pass(&transpose8(&ws), false);
    let sign = _mm_castsi128_ps(_mm_set1_epi32(i32::MIN));
    let mut nat = [0i16; 64];
    for (r, row) in ws.iter().enumerate() {
        let mut half = [_mm_setzero_si128(); 2];
        for h in 0..2 {
            let lim = if r == 0 && h == 0 {
                _mm_setr_ps(2047.0, 1023.0, 1023.0, 1023.0)
            } else {
                splat(1023.0)
            };
            let x = mul(row[h], load4(&q.fdct[8 * r + 4 * h..]));
            // x + 0.5·sign(x), clamped to ±lim, truncated: as the scalar code.
            let t = add(x, _mm_or_ps(splat(0.5), _mm_and_ps(x, sign)));
            let neg = sub(_mm_set1_ps(0.0), lim);
            half[h] = _mm_cvttps_epi32(_mm_min_ps(_mm_max_ps(t, neg), lim));
        }
        // SAFETY: `nat[8r..8r+8]` is 8 i16 = 16 bytes; the store is unaligned.
        unsafe {
            _mm_storeu_si128(
                nat[8 * r..8 * r + 8].as_mut_ptr().cast(),
                _mm_packs_epi32(half[0], half[1]),
            );
        }
    }
    let mut out = [0i16; 64];
    for (k, o) in out.iter_mut().enumerate() {
        *o = nat[ZIGZAG[k]];
    }
    out
}

/// Replicates an 8×8 block (row-major) into a 16×16 area of `plane` (row stride
/// `stride`) starting at `at`: the 2×2 upsampling of `edit`.
#[target_feature(enable = "sse2")]
fn upsample2x2_sse2(px: &[f32; 64], plane: &mut [f32], at: usize, stride: usize) {
    for y in 0..8 {
        let a = load4(&px[8 * y..]);
        let b = load4(&px[8 * y + 4..]);
        let out = [
            _mm_unpacklo_ps(a, a),
            _mm_unpackhi_ps(a, a),
            _mm_unpacklo_ps(b, b),
            _mm_unpackhi_ps(b, b),
        ];
        for dy in 0..2 {
            let d = at + (2 * y + dy) * stride;
            let row = &mut plane[d..d + 16];
            for (j, v) in out.iter().enumerate() {
                store4(&mut row[4 * j..], *v);
            }
        }
    }
}

/// The mean of each 2×2 of a 16×16 area of `plane` (row stride `stride`) from
/// `at`, summed in the scalar code's order (top left, top right, bottom left,
/// bottom right) and scaled by 1/4.
#[target_feature(enable = "sse2")]
fn downsample2x2_sse2(plane: &[f32], at: usize, stride: usize) -> [f32; 64] {
    let mut px = [0f32; 64];
    for y in 0..8 {
        let t = &plane[at + 2 * y * stride..][..16];
        let b = &plane[at + (2 * y + 1) * stride..][..16];
        for h in 0..2 {
            let (t0, t1) = (load4(&t[8 * h..]), load4(&t[8 * h + 4..]));
            let (b0, b1) = (load4(&b[8 * h..]), load4(&b[8 * h + 4..]));
            let s = add(_mm_shuffle_ps(t0, t1, 0x88), _mm_shuffle_ps(t0, t1, 0xDD));
            let s = add(s, _mm_shuffle_ps(b0, b1, 0x88));
            let s = add(s, _mm_shuffle_ps(b0, b1, 0xDD));
            store4(&mut px[8 * y + 4 * h..], mul(s, splat(0.25)));
        }
    }
    px
}

/// Blends overlay pixels `ov` (premultiplied, opacity `o` still to apply) into
/// the full-resolution Y, Cb and Cr samples `y`, `cb`, `cr` (at least as long as
/// `ov`), four at a time as `edit`'s per-pixel code does; returns how many pixels
/// it did (a multiple of 4: the caller does the rest).
#[target_feature(enable = "sse2")]
fn blend_ycc_sse2(y: &mut [f32], cb: &mut [f32], cr: &mut [f32], ov: &[[u8; 4]], o: f32) -> usize {
    let n = ov.len() / 4 * 4;
    let (y, cb, cr) = (&mut y[..n], &mut cb[..n], &mut cr[..n]);
    let ov = &ov[..n];
    let ov_ = splat(o);
    let byte = _mm_set1_epi32(0xFF);
    for i in (0..n).step_by(4) {
        let p = &ov[i..i + 4];
        // SAFETY: `p` is 4 pixels of 4 bytes = 16 bytes; the load is unaligned.
        let w: __m128i = unsafe { _mm_loadu_si128(p.as_ptr().cast()) };
        let alpha = _mm_srli_epi32(w, 24);
        let skip = _mm_castsi128_ps(_mm_cmpeq_epi32(alpha, _mm_setzero_si128()));
        let r8 = _mm_cvtepi32_ps(_mm_and_si128(w, byte));
        let g8 = _mm_cvtepi32_ps(_mm_and_si128(_mm_srli_epi32(w, 8), byte));
        let b8 = _mm_cvtepi32_ps(_mm_and_si128(_mm_srli_epi32(w, 16), byte));
        let a = _mm_div_ps(mul(_mm_cvtepi32_ps(alpha), ov_), splat(255.0));
        let (sr, sg, sb) = (mul(r8, ov_), mul(g8, ov_), mul(b8, ov_));
        let yy0 = load4(&y[i..]);
        let cb0 = load4(&cb[i..]);
        let cr0 = load4(&cr[i..]);
        let (yy, cbv, crv) = (yy0, sub(cb0, splat(128.0)), sub(cr0, splat(128.0)));
        let r = clamp255(add(yy, mul(splat(1.402), crv)));
        let g = clamp255(sub(
            sub(yy, mul(splat(0.344_136), cbv)),
            mul(splat(0.714_136), crv),
        ));
        let b = clamp255(add(yy, mul(splat(1.772), cbv)));
        let inv = sub(splat(1.0), a);
        let r = add(sr, mul(r, inv));
        let g = add(sg, mul(g, inv));
        let b = add(sb, mul(b, inv));
        let ny = add(
            add(mul(splat(0.299), r), mul(splat(0.587), g)),
            mul(splat(0.114), b),
        );
        let ncb = add(
            add(
                sub(mul(splat(-0.168_736), r), mul(splat(0.331_264), g)),
                mul(splat(0.5), b),
            ),
            splat(128.0),
        );
        let ncr = add(
            sub(
                sub(mul(splat(0.5), r), mul(splat(0.418_688), g)),
                mul(splat(0.081_312), b),
            ),
            splat(128.0),
        );
        store4(&mut y[i..], pick(skip, yy0, ny));
        store4(&mut cb[i..], pick(skip, cb0, ncb));
        store4(&mut cr[i..], pick(skip, cr0, ncr));
    }
    n
}

/// [`idct_sse2`], callable without `unsafe`.
#[inline]
pub(crate) fn idct(coef: &[i16; 64], q: &Quant) -> [f32; 64] {
    // SAFETY: SSE2 is part of the x86_64 baseline, so the CPU has it.
    unsafe { idct_sse2(coef, q) }
}

/// [`fdct_quantize_sse2`], callable without `unsafe`.
#[inline]
pub(crate) fn fdct_quantize(px: &[f32; 64], q: &Quant) -> [i16; 64] {
    // SAFETY: SSE2 is part of the x86_64 baseline, so the CPU has it.
    unsafe { fdct_quantize_sse2(px, q) }
}

/// [`upsample2x2_sse2`], callable without `unsafe`.
#[inline]
pub(crate) fn upsample2x2(px: &[f32; 64], plane: &mut [f32], at: usize, stride: usize) {
    // SAFETY: SSE2 is part of the x86_64 baseline, so the CPU has it.
    unsafe { upsample2x2_sse2(px, plane, at, stride) }
}

/// [`downsample2x2_sse2`], callable without `unsafe`.
#[inline]
pub(crate) fn downsample2x2(plane: &[f32], at: usize, stride: usize) -> [f32; 64] {
    // SAFETY: SSE2 is part of the x86_64 baseline, so the CPU has it.
    unsafe { downsample2x2_sse2(plane, at, stride) }
}

/// [`blend_ycc_sse2`], callable without `unsafe`.
#[inline]
pub(crate) fn blend_ycc(
    y: &mut [f32],
    cb: &mut [f32],
    cr: &mut [f32],
    ov: &[[u8; 4]],
    o: f32,
) -> usize {
    // SAFETY: SSE2 is part of the x86_64 baseline, so the CPU has it.
    unsafe { blend_ycc_sse2(y, cb, cr, ov, o) }
}

/// Bit `k` set for each non-zero coefficient `blk[k]` (any order; bit 0 too).
#[target_feature(enable = "sse2")]
fn nonzero_mask_sse2(blk: &[i16; 64]) -> u64 {
    let mut mask = 0u64;
    for (i, c) in blk.chunks_exact(16).enumerate() {
        // SAFETY: `c` is 16 i16 = two 16-byte halves; the loads are unaligned.
        let (a, b): (__m128i, __m128i) = unsafe {
            (
                _mm_loadu_si128(c.as_ptr().cast()),
                _mm_loadu_si128(c[8..].as_ptr().cast()),
            )
        };
        let zero = _mm_setzero_si128();
        let z = _mm_packs_epi16(_mm_cmpeq_epi16(a, zero), _mm_cmpeq_epi16(b, zero));
        let nz = !(_mm_movemask_epi8(z) as u32) & 0xFFFF;
        mask |= u64::from(nz) << (16 * i);
    }
    mask
}

/// [`nonzero_mask_sse2`], callable without `unsafe`.
#[inline]
pub(crate) fn nonzero_mask(blk: &[i16; 64]) -> u64 {
    // SAFETY: SSE2 is part of the x86_64 baseline, so the CPU has it.
    unsafe { nonzero_mask_sse2(blk) }
}

/// Appends `raw`'s bytes up to its first 0xFF (or all of them) to `out`; returns how many.
/// For de-stuffing entropy-coded data, where a 0xFF comes every few hundred bytes: one
/// pass that compares and stores 16 bytes at a time (a `memchr` and a copy a run spent
/// most of their time starting up).
pub(crate) fn append_until_ff(raw: &[u8], out: &mut Vec<u8>) -> usize {
    out.reserve(raw.len());
    // SAFETY: SSE2 is part of the x86_64 baseline, so the CPU has it; `out` has room
    // for `raw.len()` more bytes.
    unsafe { append_until_ff_sse2(raw, out) }
}

/// [`append_until_ff`]; `out` must have spare capacity for `raw.len()` bytes.
#[target_feature(enable = "sse2")]
unsafe fn append_until_ff_sse2(raw: &[u8], out: &mut Vec<u8>) -> usize {
    let ff = _mm_set1_epi8(-1);
    // The spare capacity's own pointer: writes through it may reach past `out.len()`.
    let dst = out.spare_capacity_mut().as_mut_ptr().cast::<u8>();
    let mut n = 0;
    while n + 16 <= raw.len() {
        // SAFETY: `raw[n..n + 16]` is in bounds; the store writes `dst[n..n + 16]`,
        // within the spare capacity of `raw.len()` bytes, and the bytes it writes
        // past the ones kept are left as spare capacity.
        let m = unsafe {
            let v = _mm_loadu_si128(raw.as_ptr().add(n).cast());
            _mm_storeu_si128(dst.add(n).cast(), v);
            _mm_movemask_epi8(_mm_cmpeq_epi8(v, ff))
        };
        if m != 0 {
            n += m.trailing_zeros() as usize;
            // SAFETY: the first `n` bytes after the old length are written.
            unsafe { out.set_len(out.len() + n) };
            return n;
        }
        n += 16;
    }
    let rest = raw[n..]
        .iter()
        .position(|&b| b == 0xFF)
        .unwrap_or(raw.len() - n);
    // SAFETY: the first `n` bytes after the old length are written.
    unsafe { out.set_len(out.len() + n) };
    out.extend_from_slice(&raw[n..n + rest]);
    n + rest
}

#[cfg(test)]
mod tests;
