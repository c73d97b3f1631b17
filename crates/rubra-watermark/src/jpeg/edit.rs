//! The pixel-domain edit of one MCU: inverse-DCT its blocks, upsample chroma,
//! blend the overlay in RGB, convert back, and re-quantise only the blocks whose
//! footprint the overlay's visible pixels touch. On x86_64 the transforms, the
//! 2×2 chroma resampling and the colour blend run four lanes at a time (`simd`),
//! with the same arithmetic per lane, so the output bytes do not depend on it.

use super::dct::Quant;
#[cfg(not(target_arch = "x86_64"))]
use super::dct::{fdct_quantize, idct};
use super::parse::Frame;
#[cfg(target_arch = "x86_64")]
use super::simd::{fdct_quantize, idct};
use crate::overlay::Overlay;

/// Everything needed to edit MCUs of one image.
pub(crate) struct McuEditor<'a> {
    overlay: &'a Overlay,
    opacity: f32,
    /// Overlay top-left in image coordinates.
    ox: i64,
    oy: i64,
    /// Affected image rectangle (visible overlay pixels ∩ image), exclusive ends.
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
    mcu_w: usize,
    mcu_h: usize,
    /// Per component: sampling factors, block offset within the MCU, quant table.
    comps: Vec<CompInfo>,
    /// Full-resolution planes of one MCU, reused (every sample is overwritten).
    scratch: std::cell::RefCell<Vec<f32>>,
}

struct CompInfo {
    h: usize,
    v: usize,
    /// Subsampling factors relative to the full-resolution grid.
    sx: usize,
    sy: usize,
    first_block: usize,
    q: Quant,
}

impl<'a> McuEditor<'a> {
    /// `None` when no visible overlay pixel lands on the image.
    pub(crate) fn new(
        frame: &Frame,
        qts: &[[u16; 64]],
        overlay: &'a Overlay,
        origin: (i64, i64),
        opacity: f32,
    ) -> Option<Self> {
        let (bx, by, bw, bh) = overlay.visible_bounds()?;
        let x0 = (origin.0 + bx as i64).max(0);
        let y0 = (origin.1 + by as i64).max(0);
        let x1 = (origin.0 + (bx + bw) as i64).min(frame.width as i64);
        let y1 = (origin.1 + (by + bh) as i64).min(frame.height as i64);
        if x1 <= x0 || y1 <= y0 || opacity <= 0.0 {
            return None;
        }
        let (hm, vm) = frame.max_sampling();
        let mut comps = Vec::new();
        let mut first = 0;
        for (i, q) in qts.iter().enumerate().take(frame.comps.len()) {
            let (h, v) = frame.sampling(i);
            comps.push(CompInfo {
                h,
                v,
                sx: hm / h,
                sy: vm / v,
                first_block: first,
                q: Quant::new(q),
            });
            first += h * v;
        }
        Some(McuEditor {
            overlay,
            opacity,
            ox: origin.0,
            oy: origin.1,
            x0: x0 as usize,
            y0: y0 as usize,
            x1: x1 as usize,
            y1: y1 as usize,
            mcu_w: 8 * hm,
            mcu_h: 8 * vm,
            scratch: std::cell::RefCell::new(vec![0f32; 3 * 64 * hm * vm]),
            comps,
        })
    }

    /// MCU columns and rows touched: `(c0, r0, c1, r1)` inclusive.
    pub(crate) fn mcu_range(&self) -> (usize, usize, usize, usize) {
        (
            self.x0 / self.mcu_w,
            self.y0 / self.mcu_h,
            (self.x1 - 1) / self.mcu_w,
            (self.y1 - 1) / self.mcu_h,
        )
    }

    /// Blend the overlay into MCU (`mx`, `my`), whose blocks are given in MCU order.
    pub(crate) fn edit(&self, mx: usize, my: usize, blocks: &mut [[i16; 64]]) {
        let (mw, mh) = (self.mcu_w, self.mcu_h);
        let (px0, py0) = (mx * mw, my * mh);
        // Intersection in MCU-relative coordinates.
        let ix0 = self.x0.max(px0) - px0;
        let iy0 = self.y0.max(py0) - py0;
        let ix1 = self.x1.min(px0 + mw).saturating_sub(px0);
        let iy1 = self.y1.min(py0 + mh).saturating_sub(py0);
        if ix1 <= ix0 || iy1 <= iy0 {
            return;
        }
        // Full-resolution planes for the MCU (at most 32×32 each).
        let n = mw * mh;
        let mut scratch = self.scratch.borrow_mut();
        let (p0, rest) = scratch.split_at_mut(n);
        let (p1, p2) = rest.split_at_mut(n);
        let planes = [p0, p1, &mut p2[..n]];
        for (ci, c) in self.comps.iter().enumerate() {
            let plane = &mut *planes[ci];
            for by in 0..c.v {
                for bx in 0..c.h {
                    let px = idct(&blocks[c.first_block + by * c.h + bx], &c.q);
                    let (x0, y0) = (bx * 8 * c.sx, by * 8 * c.sy);
                    if c.sx == 1 && c.sy == 1 {
                        for y in 0..8 {
                            let d = (y0 + y) * mw + x0;
                            plane[d..d + 8].copy_from_slice(&px[y * 8..y * 8 + 8]);
                        }
                    } else if cfg!(target_arch = "x86_64") && c.sx == 2 && c.sy == 2 {
                        #[cfg(target_arch = "x86_64")]
                        super::simd::upsample2x2(&px, plane, y0 * mw + x0, mw);
                    } else {
                        for y in 0..8 {
                            for x in 0..8 {
                                let v = px[y * 8 + x];
                                for dy in 0..c.sy {
                                    let d = (y0 + y * c.sy + dy) * mw + x0 + x * c.sx;
                                    plane[d..d + c.sx].fill(v);
                                }
                            }
                        }
                    }
                }
            }
        }
        let o = self.opacity;
        let gray = self.comps.len() == 1;
        let [q0, q1, q2] = planes;
        for y in iy0..iy1 {
            let iy = (py0 + y) as i64 - self.oy;
            let ixs = (px0 + ix0) as i64 - self.ox;
            let row = self.overlay.row(ixs as u32, iy as u32, (ix1 - ix0) as u32);
            let i0 = y * mw + ix0;
            if gray {
                for (i, p) in (i0..).zip(row) {
                    if p[3] != 0 {
                        let a = p[3] as f32 * o / 255.0;
                        let (sr, sg, sb) = (p[0] as f32 * o, p[1] as f32 * o, p[2] as f32 * o);
                        let yv = q0[i].clamp(0.0, 255.0);
                        q0[i] = super::super::blend::luma(sr, sg, sb) + yv * (1.0 - a);
                    }
                }
                continue;
            }
            #[cfg(target_arch = "x86_64")]
            let done = super::simd::blend_ycc(&mut q0[i0..], &mut q1[i0..], &mut q2[i0..], row, o);
            #[cfg(not(target_arch = "x86_64"))]
            let done = 0;
            for (i, p) in (i0 + done..).zip(&row[done..]) {
                if p[3] != 0 {
                    blend_ycc_pixel(&mut q0[i], &mut q1[i], &mut q2[i], p, o);
                }
            }
        }
        let planes = [q0, q1, q2];
        // Re-quantise the blocks whose footprint intersects the blended area.
        for (ci, c) in self.comps.iter().enumerate() {
            let plane = &*planes[ci];
            let (fw, fh) = (8 * c.sx, 8 * c.sy);
            for by in 0..c.v {
                for bx in 0..c.h {
                    let (fx0, fy0) = (bx * fw, by * fh);
                    if fx0 >= ix1 || fx0 + fw <= ix0 || fy0 >= iy1 || fy0 + fh <= iy0 {
                        continue;
                    }
                    #[cfg(target_arch = "x86_64")]
                    if c.sx == 2 && c.sy == 2 {
                        let px = super::simd::downsample2x2(plane, fy0 * mw + fx0, mw);
                        blocks[c.first_block + by * c.h + bx] = fdct_quantize(&px, &c.q);
                        continue;
                    }
                    let mut px = [0f32; 64];
                    if c.sx == 1 && c.sy == 1 {
                        // The general sum below, `0.0 + v` scaled by 1, is `v`: the
                        // planes hold no -0.0 (an IDCT sample ends in `+ 128`, a
                        // blended one is a sum of terms that are not negative).
                        for y in 0..8 {
                            let row = (fy0 + y) * mw + fx0;
                            px[y * 8..y * 8 + 8].copy_from_slice(&plane[row..row + 8]);
                        }
                        blocks[c.first_block + by * c.h + bx] = fdct_quantize(&px, &c.q);
                        continue;
                    }
                    let scale = 1.0 / (c.sx * c.sy) as f32;
                    for y in 0..8 {
                        for x in 0..8 {
                            let mut s = 0.0;
                            for dy in 0..c.sy {
                                let row = (fy0 + y * c.sy + dy) * mw + fx0 + x * c.sx;
                                for dx in 0..c.sx {
                                    s += plane[row + dx];
                                }
                            }
                            px[y * 8 + x] = s * scale;
                        }
                    }
                    blocks[c.first_block + by * c.h + bx] = fdct_quantize(&px, &c.q);
                }
            }
        }
    }
}

/// The "over" blend of one premultiplied overlay pixel `p` (opacity `o` still to
/// apply, alpha not 0) into full-resolution Y, Cb and Cr samples, in RGB.
#[inline]
pub(super) fn blend_ycc_pixel(y: &mut f32, cb: &mut f32, cr: &mut f32, p: &[u8; 4], o: f32) {
    let a = p[3] as f32 * o / 255.0;
    let (sr, sg, sb) = (p[0] as f32 * o, p[1] as f32 * o, p[2] as f32 * o);
    let (yy, cbv, crv) = (*y, *cb - 128.0, *cr - 128.0);
    let r = (yy + 1.402 * crv).clamp(0.0, 255.0);
    let g = (yy - 0.344_136 * cbv - 0.714_136 * crv).clamp(0.0, 255.0);
    let b = (yy + 1.772 * cbv).clamp(0.0, 255.0);
    let r = sr + r * (1.0 - a);
    let g = sg + g * (1.0 - a);
    let b = sb + b * (1.0 - a);
    *y = 0.299 * r + 0.587 * g + 0.114 * b;
    *cb = -0.168_736 * r - 0.331_264 * g + 0.5 * b + 128.0;
    *cr = 0.5 * r - 0.418_688 * g - 0.081_312 * b + 128.0;
}
