//! The reference image of the RED benchmark, generated so that nothing binary
//! has to be kept in the repository: a 1980×1280 JPEG at quality 90 of
//! "real-looking" content (gradients, soft shapes, red patches, sensor-like
//! noise) that compresses to about 900 KB, like a photo.

#![allow(dead_code)]

/// Width of the reference image.
pub const WIDTH: u16 = 1980;
/// Height of the reference image.
pub const HEIGHT: u16 = 1280;

/// A small deterministic PRNG (xorshift64*), so every run makes the same bytes.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value but 0 works; 0 is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A value in `0..n`.
    pub fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }
}

/// The reference picture as interleaved RGB8 samples.
pub fn reference_rgb(width: usize, height: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    // Soft discs: centre, radius, colour.
    let discs: Vec<(f32, f32, f32, [f32; 3])> = (0..40)
        .map(|i| {
            let red = i % 3 == 0;
            let colour = if red {
                [
                    180.0 + rng.below(75) as f32,
                    rng.below(60) as f32,
                    rng.below(60) as f32,
                ]
            } else {
                [
                    rng.below(256) as f32,
                    rng.below(256) as f32,
                    rng.below(256) as f32,
                ]
            };
            (
                rng.below(width as u32) as f32,
                rng.below(height as u32) as f32,
                20.0 + rng.below(220) as f32,
                colour,
            )
        })
        .collect();
    let mut px = vec![0u8; width * height * 3];
    for y in 0..height {
        for x in 0..width {
            let fx = x as f32 / width as f32;
            let fy = y as f32 / height as f32;
            // Sky-like vertical gradient with a warm horizontal tint and ripples.
            let mut c = [
                60.0 + 120.0 * fx + 20.0 * (fy * 17.0).sin(),
                90.0 + 100.0 * fy + 15.0 * (fx * 23.0 + fy * 5.0).sin(),
                200.0 - 120.0 * fy + 25.0 * (fx * 9.0).cos(),
            ];
            for &(cx, cy, r, col) in &discs {
                let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
                // Anti-aliased edge, textured interior.
                let a = ((r - d) / 3.0).clamp(0.0, 1.0) * 0.85;
                if a > 0.0 {
                    let tex = 12.0 * ((x as f32 * 0.31).sin() * (y as f32 * 0.27).cos());
                    for k in 0..3 {
                        c[k] = c[k] * (1.0 - a) + (col[k] + tex) * a;
                    }
                }
            }
            let i = (y * width + x) * 3;
            let n = rng.next_u64();
            for k in 0..3 {
                // Sensor-like noise: what makes a photo cost ~900 KB at q90.
                let noise = ((n >> (k * 16)) & 0xFF) as f32 / 255.0 - 0.5;
                px[i + k] = (c[k] + noise * 30.0).clamp(0.0, 255.0) as u8;
            }
        }
    }
    px
}

/// The reference JPEG: [`reference_rgb`] at 1980×1280, quality 90, 4:2:0.
pub fn reference_jpeg() -> Vec<u8> {
    let rgb = reference_rgb(usize::from(WIDTH), usize::from(HEIGHT), 0x5EED);
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 90);
    // 4:2:0 like cameras, phones and Pillow's default (jpeg-encoder would pick
    // 4:4:4 at quality 90).
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    encoder
        .encode(&rgb, WIDTH, HEIGHT, jpeg_encoder::ColorType::Rgb)
        .expect("encoding to memory cannot fail");
    out
}
