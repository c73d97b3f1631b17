//! Alpha "over" compositing of a premultiplied overlay onto 8-bit pixel buffers.

use crate::overlay::Overlay;
use crate::placement::ClippedRect;

/// Luma of an RGB triple (JFIF / BT.601 weights), used for grayscale targets.
#[inline]
pub(crate) fn luma(r: f32, g: f32, b: f32) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

/// Composite onto an interleaved 8-bit buffer of `width` pixels per row with
/// `channels` ∈ {1 (gray), 2 (gray+alpha), 3 (RGB), 4 (RGBA)}.
pub(crate) fn blend_into(
    buf: &mut [u8],
    width: u32,
    channels: usize,
    overlay: &Overlay,
    rect: &ClippedRect,
    opacity: f32,
) {
    let o = opacity;
    for j in 0..rect.height {
        let ov = overlay.row(rect.overlay_x, rect.overlay_y + j, rect.width);
        let start = ((rect.y + j) as usize * width as usize + rect.x as usize) * channels;
        let row = &mut buf[start..start + rect.width as usize * channels];
        for (d, p) in row.chunks_exact_mut(channels).zip(ov) {
            if p[3] == 0 {
                continue;
            }
            let a = p[3] as f32 * o / 255.0;
            let src = [p[0] as f32 * o, p[1] as f32 * o, p[2] as f32 * o];
            match channels {
                1 | 2 => {
                    let s = luma(src[0], src[1], src[2]);
                    over(d, &[s], a, channels == 2);
                }
                _ => over(d, &src, a, channels == 4),
            }
        }
    }
}

/// `d` holds the colour channels (then alpha when `has_alpha`); `src` is the
/// premultiplied source colour scaled by opacity; `a` its effective alpha in [0, 1].
#[inline]
fn over(d: &mut [u8], src: &[f32], a: f32, has_alpha: bool) {
    let n = src.len();
    if has_alpha {
        let ad = d[n] as f32 / 255.0;
        let out_a = a + ad * (1.0 - a);
        if out_a <= 0.0 {
            return;
        }
        for c in 0..n {
            let v = (src[c] + d[c] as f32 * ad * (1.0 - a)) / out_a;
            d[c] = (v + 0.5).clamp(0.0, 255.0) as u8;
        }
        d[n] = (out_a * 255.0 + 0.5).clamp(0.0, 255.0) as u8;
    } else {
        for c in 0..n {
            let v = src[c] + d[c] as f32 * (1.0 - a);
            d[c] = (v + 0.5).clamp(0.0, 255.0) as u8;
        }
    }
}
