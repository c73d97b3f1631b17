//! Each SSE2 function against the scalar code it replaces, bit for bit, on random inputs.
use super::super::dct;
use super::super::edit::blend_ycc_pixel;
use super::*;

use super::super::xorshift::Rng;

/// A sample: mostly 0..=255, sometimes past either end (an IDCT overshoots).
fn sample(rng: &mut Rng) -> f32 {
    (rng.below(36_000) as f32 - 5_000.0) / 100.0
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn idct_gives_the_scalar_bits() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for round in 0..2_000 {
        let mut q = [0u16; 64];
        for v in q.iter_mut() {
            *v = if round % 3 == 0 {
                rng.below(255) as u16 + 1
            } else {
                rng.below(12) as u16 + 1
            };
        }
        let quant = dct::Quant::new(&q);
        let mut blk = [0i16; 64];
        let nonzero = rng.below(65);
        for (k, v) in blk.iter_mut().enumerate().take(nonzero) {
            let lim = if k == 0 { 2047 } else { 1023 };
            *v = (rng.below(2 * lim + 1) as i64 - lim as i64) as i16;
            if round % 2 == 1 {
                *v /= 64;
            }
        }
        assert_eq!(
            bits(&idct(&blk, &quant)),
            bits(&dct::idct(&blk, &quant)),
            "round {round}"
        );
    }
}

#[test]
fn fdct_quantize_gives_the_scalar_values() {
    let mut rng = Rng(0x0fed_cba9_8765_4321);
    for round in 0..2_000 {
        let mut q = [0u16; 64];
        for v in q.iter_mut() {
            *v = if round % 3 == 0 {
                rng.below(255) as u16 + 1
            } else {
                rng.below(12) as u16 + 1
            };
        }
        let quant = dct::Quant::new(&q);
        let mut px = [0f32; 64];
        for v in px.iter_mut() {
            *v = sample(&mut rng);
        }
        // Extremes that hit the ±1023 / ±2047 clamps with a quantiser of 1.
        if round % 7 == 0 {
            for (i, v) in px.iter_mut().enumerate() {
                *v = if (i / 8 + i) % 2 == 0 {
                    -2000.0
                } else {
                    2000.0
                };
            }
        }
        assert_eq!(
            fdct_quantize(&px, &quant),
            dct::fdct_quantize(&px, &quant),
            "round {round}"
        );
    }
}

#[test]
fn up_and_downsampling_match_the_scalar_loops() {
    let mut rng = Rng(0x5555_aaaa_1234_9876);
    let stride = 32;
    for _ in 0..200 {
        let mut px = [0f32; 64];
        for v in px.iter_mut() {
            *v = sample(&mut rng);
        }
        let at = rng.below(16) * stride + rng.below(16);
        let mut plane = vec![f32::NAN; stride * 32];
        upsample2x2(&px, &mut plane, at, stride);
        for y in 0..16 {
            for x in 0..16 {
                assert_eq!(
                    plane[at + y * stride + x].to_bits(),
                    px[(y / 2) * 8 + x / 2].to_bits()
                );
            }
        }
        for v in plane.iter_mut() {
            *v = sample(&mut rng);
        }
        let got = downsample2x2(&plane, at, stride);
        for y in 0..8 {
            for x in 0..8 {
                let mut s = 0.0f32;
                for dy in 0..2 {
                    for dx in 0..2 {
                        s += plane[at + (2 * y + dy) * stride + 2 * x + dx];
                    }
                }
                assert_eq!(got[y * 8 + x].to_bits(), (s * 0.25).to_bits(), "({x}, {y})");
            }
        }
    }
}

#[test]
fn blend_gives_the_scalar_bits_and_leaves_transparent_pixels_alone() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for round in 0..500 {
        let n = rng.below(40);
        let o = [1.0, 0.5, 0.3, 0.999][round % 4];
        let ov: Vec<[u8; 4]> = (0..n)
            .map(|_| {
                let a = match rng.below(4) {
                    0 => 0,
                    1 => 255,
                    _ => rng.below(256) as u8,
                };
                // Premultiplied: no channel above alpha.
                let c = |r: &mut Rng| r.below(a as usize + 1) as u8;
                [c(&mut rng), c(&mut rng), c(&mut rng), a]
            })
            .collect();
        let mut planes: [Vec<f32>; 3] =
            std::array::from_fn(|_| (0..n).map(|_| sample(&mut rng)).collect());
        let mut want = planes.clone();
        for i in 0..n {
            if ov[i][3] != 0 {
                let [y, cb, cr] = &mut want;
                blend_ycc_pixel(&mut y[i], &mut cb[i], &mut cr[i], &ov[i], o);
            }
        }
        let [y, cb, cr] = &mut planes;
        let done = blend_ycc(y, cb, cr, &ov, o);
        assert_eq!(done, n / 4 * 4);
        for p in 0..3 {
            assert_eq!(
                bits(&planes[p][..done]),
                bits(&want[p][..done]),
                "round {round}, plane {p}"
            );
        }
    }
}

#[test]
fn nonzero_mask_has_a_bit_for_each_non_zero_coefficient() {
    let mut rng = Rng(0x7777_1111_2222_3333);
    for _ in 0..1_000 {
        let mut blk = [0i16; 64];
        for v in blk.iter_mut() {
            if rng.below(3) == 0 {
                *v = (rng.below(65_536) as i32 - 32_768) as i16;
            }
        }
        let want = (0..64).fold(0u64, |m, k| m | (u64::from(blk[k] != 0) << k));
        assert_eq!(nonzero_mask(&blk), want);
    }
}
