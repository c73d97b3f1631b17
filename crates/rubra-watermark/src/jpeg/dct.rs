//! Separable floating-point 8×8 DCT (inverse and forward) with (de)quantisation.
//! Accuracy matters more than speed here: only blocks under the overlay go through it.

use std::sync::LazyLock;

/// Natural (row-major) index of the k-th coefficient in zigzag order.
pub(crate) const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// `COS[u][x] = c(u)/2 · cos((2x+1)uπ/16)`.
static COS: LazyLock<[[f32; 8]; 8]> = LazyLock::new(|| {
    let mut c = [[0f32; 8]; 8];
    for (u, row) in c.iter_mut().enumerate() {
        let cu = if u == 0 {
            std::f64::consts::FRAC_1_SQRT_2
        } else {
            1.0
        };
        for (x, v) in row.iter_mut().enumerate() {
            *v = (cu / 2.0 * ((2 * x + 1) as f64 * u as f64 * std::f64::consts::PI / 16.0).cos())
                as f32;
        }
    }
    c
});

/// Dequantise and inverse-transform a zigzag block into level-shifted samples
/// (row-major, nominally 0..=255 but unclamped).
pub(crate) fn idct(coef: &[i16; 64], q: &[u16; 64]) -> [f32; 64] {
    let c = &*COS;
    let mut f = [0f32; 64];
    for k in 0..64 {
        f[ZIGZAG[k]] = coef[k] as f32 * q[k] as f32;
    }
    // tmp[v][x] = Σu F[v][u] C[u][x]
    let mut tmp = [0f32; 64];
    for v in 0..8 {
        for u in 0..8 {
            let fv = f[v * 8 + u];
            if fv != 0.0 {
                for x in 0..8 {
                    tmp[v * 8 + x] += fv * c[u][x];
                }
            }
        }
    }
    // out[y][x] = Σv C[v][y] tmp[v][x]
    let mut out = [128f32; 64];
    for v in 0..8 {
        for y in 0..8 {
            let cv = c[v][y];
            for x in 0..8 {
                out[y * 8 + x] += cv * tmp[v * 8 + x];
            }
        }
    }
    out
}

/// Forward-transform level-shifted samples and quantise into a zigzag block.
pub(crate) fn fdct_quantize(px: &[f32; 64], q: &[u16; 64]) -> [i16; 64] {
    let c = &*COS;
    // tmp[y][u] = Σx f[y][x] C[u][x]
    let mut tmp = [0f32; 64];
    for y in 0..8 {
        for u in 0..8 {
            let mut s = 0.0;
            for x in 0..8 {
                s += (px[y * 8 + x] - 128.0) * c[u][x];
            }
            tmp[y * 8 + u] = s;
        }
    }
    // F[v][u] = Σy C[v][y] tmp[y][u]
    let mut f = [0f32; 64];
    for v in 0..8 {
        for y in 0..8 {
            let cv = c[v][y];
            for u in 0..8 {
                f[v * 8 + u] += cv * tmp[y * 8 + u];
            }
        }
    }
    let mut out = [0i16; 64];
    for k in 0..64 {
        let v = (f[ZIGZAG[k]] / q[k] as f32).round();
        let lim = if k == 0 { 2047.0 } else { 1023.0 };
        out[k] = v.clamp(-lim, lim) as i16;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_identity_on_quantised_blocks() {
        let q = [3u16; 64];
        let mut blk = [0i16; 64];
        for (k, v) in blk.iter_mut().enumerate() {
            *v = ((k as i16 * 7) % 23) - 11;
        }
        let px = idct(&blk, &q);
        assert_eq!(fdct_quantize(&px, &q), blk);
    }
}
