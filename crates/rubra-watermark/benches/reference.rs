//! The reference benchmark inputs, generated in code: a 1980×1280 q90 4:2:0 JPEG
//! of photo-like content (gradients, noise, shapes; about 900 KB) and a 500×100
//! RGBA overlay (opaque "letters" on a translucent band). Shared by the divan
//! bench and `examples/make_reference.rs` (which feeds bench/watermark/compare.sh).

/// Reference image size.
pub const W: usize = 1980;
/// Reference image height.
pub const H: usize = 1280;
/// Overlay size.
pub const OW: usize = 500;
/// Overlay height.
pub const OH: usize = 100;

/// Photo-like RGB pixels.
pub fn photo() -> Vec<u8> {
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut px = vec![0u8; W * H * 3];
    for y in 0..H {
        for x in 0..W {
            let fx = x as f32 / W as f32;
            let fy = y as f32 / H as f32;
            // Smooth-ish texture: low-amplitude noise plus ripples, like foliage/sky.
            let n = (next() % 25) as f32 - 12.0;
            let t = 18.0 * ((x as f32 * 0.11).sin() * (y as f32 * 0.07).cos());
            let mut r = 50.0 + 170.0 * fx + n + t;
            let mut g = 70.0 + 140.0 * fy + 30.0 * (x as f32 * 0.013).sin() + n * 0.8 + t;
            let mut b = 190.0 - 120.0 * fx * fy + 25.0 * (y as f32 * 0.021).cos() + n * 0.6;
            let (dx, dy) = (x as f32 - W as f32 * 0.3, y as f32 - H as f32 * 0.45);
            if dx * dx + dy * dy < (H as f32 * 0.22).powi(2) {
                r = 225.0 + n;
                g = 190.0 + n + t;
                b = 50.0 + n;
            }
            if (x + 2 * y) % 317 < 14 || (3 * x + y) % 503 < 9 {
                r *= 0.35;
                g *= 0.35;
                b *= 0.5;
            }
            let i = (y * W + x) * 3;
            px[i] = r.clamp(0.0, 255.0) as u8;
            px[i + 1] = g.clamp(0.0, 255.0) as u8;
            px[i + 2] = b.clamp(0.0, 255.0) as u8;
        }
    }
    px
}

/// The reference JPEG (q90, 4:2:0, standard Huffman tables, no restart markers).
pub fn jpeg() -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 90);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
    enc.encode(&photo(), W as u16, H as u16, jpeg_encoder::ColorType::Rgb)
        .expect("encode reference JPEG");
    out
}

/// Straight RGBA overlay pixels.
pub fn overlay_rgba() -> Vec<u8> {
    let mut px = vec![0u8; OW * OH * 4];
    for y in 0..OH {
        for x in 0..OW {
            let letter =
                (x / 20) % 3 != 2 && (20..80).contains(&y) && (x % 20) > 3 && (x + y) % 7 != 0;
            let v: [u8; 4] = if letter {
                [250, 250, 250, 230]
            } else if (10..90).contains(&y) {
                [20, 30, 120, 120]
            } else {
                [0, 0, 0, 0]
            };
            px[(y * OW + x) * 4..][..4].copy_from_slice(&v);
        }
    }
    px
}

/// The overlay as a PNG file.
pub fn overlay_png() -> Vec<u8> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(
            &overlay_rgba(),
            OW as u32,
            OH as u32,
            image::ExtendedColorType::Rgba8,
        )
        .expect("encode overlay PNG");
    out
}
