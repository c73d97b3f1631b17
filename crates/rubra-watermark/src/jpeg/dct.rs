//! 8×8 DCT for the blocks under the overlay: the floating-point AAN factorisation
//! (as in libjpeg's jidctflt/jfdctflt) with the scale factors folded into the
//! (de)quantisation multipliers, checked against the plain matrix definition.

// The constants are libjpeg's, written to the same digits.
#![allow(clippy::excessive_precision)]

/// Natural (row-major) index of the k-th coefficient in zigzag order.
pub(crate) const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// AAN scale factors: cos(kπ/16)·√2 for k > 0, 1 for k = 0.
const AAN: [f64; 8] = [
    1.0,
    1.387_039_845,
    1.306_562_965,
    1.175_875_602,
    1.0,
    0.785_694_958,
    0.541_196_100,
    0.275_899_379,
];

/// Per-quantisation-table multipliers, natural order.
#[derive(Clone)]
pub(crate) struct Quant {
    /// Dequantise and pre-scale for the inverse AAN transform (includes the 1/8).
    pub(super) idct: [f32; 64],
    /// Post-scale and divide by the quantiser after the forward AAN transform.
    pub(super) fdct: [f32; 64],
}

impl Quant {
    /// From a quantisation table in zigzag order.
    pub(crate) fn new(q: &[u16; 64]) -> Self {
        let mut idct = [0f32; 64];
        let mut fdct = [0f32; 64];
        for k in 0..64 {
            let n = ZIGZAG[k];
            let s = AAN[n / 8] * AAN[n % 8];
            idct[n] = (q[k] as f64 * s / 8.0) as f32;
            fdct[n] = (1.0 / (q[k] as f64 * s * 8.0)) as f32;
        }
        Quant { idct, fdct }
    }
}

/// Dequantise and inverse-transform a zigzag block into level-shifted samples
/// (row-major, nominally 0..=255 but unclamped). On x86_64 the edit uses
/// `simd::idct`, which gives the same bits.
#[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
pub(crate) fn idct(coef: &[i16; 64], q: &Quant) -> [f32; 64] {
    let mut ws = [0f32; 64];
    for k in 0..64 {
        let n = ZIGZAG[k];
        ws[n] = coef[k] as f32 * q.idct[n];
    }
    // Columns, then rows.
    for c in 0..8 {
        let v = [
            ws[c],
            ws[8 + c],
            ws[16 + c],
            ws[24 + c],
            ws[32 + c],
            ws[40 + c],
            ws[48 + c],
            ws[56 + c],
        ];
        let o = idct1(v);
        for r in 0..8 {
            ws[r * 8 + c] = o[r];
        }
    }
    let mut out = [0f32; 64];
    for r in 0..8 {
        let mut v = [0f32; 8];
        v.copy_from_slice(&ws[r * 8..r * 8 + 8]);
        let o = idct1(v);
        for c in 0..8 {
            out[r * 8 + c] = o[c] + 128.0;
        }
    }
    out
}

#[inline(always)]
fn idct1(i: [f32; 8]) -> [f32; 8] {
    // Even part.
    let tmp10 = i[0] + i[4];
    let tmp11 = i[0] - i[4];
    let tmp13 = i[2] + i[6];
    let tmp12 = (i[2] - i[6]) * std::f32::consts::SQRT_2 - tmp13;
    let tmp0 = tmp10 + tmp13;
    let tmp3 = tmp10 - tmp13;
    let tmp1 = tmp11 + tmp12;
    let tmp2 = tmp11 - tmp12;
    // Odd part.
    let z13 = i[5] + i[3];
    let z10 = i[5] - i[3];
    let z11 = i[1] + i[7];
    let z12 = i[1] - i[7];
    let tmp7 = z11 + z13;
    let tmp11 = (z11 - z13) * std::f32::consts::SQRT_2;
    let z5 = (z10 + z12) * 1.847_759_065;
    let tmp10 = z5 - z12 * 1.082_392_2;
    let tmp12 = z5 - z10 * 2.613_125_93;
    let tmp6 = tmp12 - tmp7;
    let tmp5 = tmp11 - tmp6;
    let tmp4 = tmp10 - tmp5;
    [
        tmp0 + tmp7,
        tmp1 + tmp6,
        tmp2 + tmp5,
        tmp3 + tmp4,
        tmp3 - tmp4,
        tmp2 - tmp5,
        tmp1 - tmp6,
        tmp0 - tmp7,
    ]
}

#[inline(always)]
fn fdct1(d: [f32; 8]) -> [f32; 8] {
    let tmp0 = d[0] + d[7];
    let tmp7 = d[0] - d[7];
    let tmp1 = d[1] + d[6];
    let tmp6 = d[1] - d[6];
    let tmp2 = d[2] + d[5];
    let tmp5 = d[2] - d[5];
    let tmp3 = d[3] + d[4];
    let tmp4 = d[3] - d[4];
    // Even part.
    let tmp10 = tmp0 + tmp3;
    let tmp13 = tmp0 - tmp3;
    let tmp11 = tmp1 + tmp2;
    let tmp12 = tmp1 - tmp2;
    let o0 = tmp10 + tmp11;
    let o4 = tmp10 - tmp11;
    let z1 = (tmp12 + tmp13) * std::f32::consts::FRAC_1_SQRT_2;
    let o2 = tmp13 + z1;
    let o6 = tmp13 - z1;
    // Odd part.
    let tmp10 = tmp4 + tmp5;
    let tmp11 = tmp5 + tmp6;
    let tmp12 = tmp6 + tmp7;
    let z5 = (tmp10 - tmp12) * 0.382_683_433;
    let z2 = 0.541_196_1 * tmp10 + z5;
    let z4 = 1.306_562_965 * tmp12 + z5;
    let z3 = tmp11 * std::f32::consts::FRAC_1_SQRT_2;
    let z11 = tmp7 + z3;
    let z13 = tmp7 - z3;
    [o0, z11 + z4, o2, z13 - z2, o4, z13 + z2, o6, z11 - z4]
}

/// Forward-transform level-shifted samples and quantise into a zigzag block. On
/// x86_64 the edit uses `simd::fdct_quantize`, which gives the same values.
#[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
pub(crate) fn fdct_quantize(px: &[f32; 64], q: &Quant) -> [i16; 64] {
    let mut ws = [0f32; 64];
    for r in 0..8 {
        let mut v = [0f32; 8];
        for c in 0..8 {
            v[c] = px[r * 8 + c] - 128.0;
        }
        ws[r * 8..r * 8 + 8].copy_from_slice(&fdct1(v));
    }
    for c in 0..8 {
        let v = [
            ws[c],
            ws[8 + c],
            ws[16 + c],
            ws[24 + c],
            ws[32 + c],
            ws[40 + c],
            ws[48 + c],
            ws[56 + c],
        ];
        let o = fdct1(v);
        for r in 0..8 {
            ws[r * 8 + c] = o[r];
        }
    }
    let mut out = [0i16; 64];
    for k in 0..64 {
        let n = ZIGZAG[k];
        let lim = if k == 0 { 2047.0 } else { 1023.0 };
        // Round half away from zero without a libm call (no SSE4.1 baseline).
        let v = ws[n] * q.fdct[n];
        out[k] = (v + 0.5f32.copysign(v)).clamp(-lim, lim) as i16;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `c(u)/2 · cos((2x+1)uπ/16)`.
    fn basis(u: usize, x: usize) -> f64 {
        let cu = if u == 0 {
            std::f64::consts::FRAC_1_SQRT_2
        } else {
            1.0
        };
        cu / 2.0 * ((2 * x + 1) as f64 * u as f64 * std::f64::consts::PI / 16.0).cos()
    }

    fn idct_ref(coef: &[i16; 64], q: &[u16; 64]) -> [f64; 64] {
        let mut f = [0f64; 64];
        for k in 0..64 {
            f[ZIGZAG[k]] = coef[k] as f64 * q[k] as f64;
        }
        let mut out = [0f64; 64];
        for y in 0..8 {
            for x in 0..8 {
                let mut s = 128.0;
                for v in 0..8 {
                    for u in 0..8 {
                        s += basis(v, y) * basis(u, x) * f[v * 8 + u];
                    }
                }
                out[y * 8 + x] = s;
            }
        }
        out
    }

    fn fdct_ref(px: &[f32; 64]) -> [f64; 64] {
        let mut out = [0f64; 64];
        for v in 0..8 {
            for u in 0..8 {
                let mut s = 0.0;
                for y in 0..8 {
                    for x in 0..8 {
                        s += basis(v, y) * basis(u, x) * (px[y * 8 + x] as f64 - 128.0);
                    }
                }
                out[v * 8 + u] = s;
            }
        }
        out
    }

    #[test]
    fn aan_matches_the_definition() {
        let mut seed = 12345u32;
        let mut rnd = || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as i32
        };
        let mut q = [0u16; 64];
        for v in q.iter_mut() {
            *v = (rnd() % 20 + 1) as u16;
        }
        let quant = Quant::new(&q);
        for _ in 0..200 {
            let mut blk = [0i16; 64];
            for v in blk.iter_mut() {
                *v = (rnd() % 15 - 7) as i16;
            }
            let got = idct(&blk, &quant);
            let want = idct_ref(&blk, &q);
            for i in 0..64 {
                assert!((got[i] as f64 - want[i]).abs() < 1e-2, "idct {i}");
            }
            let fwd = fdct_ref(&got);
            let back = fdct_quantize(&got, &quant);
            for k in 0..64 {
                let exact = fwd[ZIGZAG[k]] / q[k] as f64;
                assert!((back[k] as f64 - exact).abs() <= 0.5 + 1e-3, "fdct {k}");
                assert_eq!(back[k], blk[k], "round trip {k}");
            }
        }
    }
}
