//! Test inputs generated in code: photo-like RGB content, JPEG encodings in every
//! sampling mode, an RGBA overlay, a reference decoder and a reference composite.

use rubra_watermark::Overlay;

/// Deterministic xorshift noise.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Gradients, noise and a few hard-edged shapes: something that compresses like a photo.
pub fn photo(w: usize, h: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let mut px = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let fx = x as f32 / w as f32;
            let fy = y as f32 / h as f32;
            let n = (rng.next() % 24) as f32 - 12.0;
            let mut r = 40.0 + 180.0 * fx + n;
            let mut g = 60.0 + 150.0 * fy + 20.0 * (x as f32 * 0.05).sin() + n;
            let mut b = 200.0 - 120.0 * fx * fy + 25.0 * (y as f32 * 0.03).cos() + n;
            // Shapes: a disc and a bar.
            let (dx, dy) = (x as f32 - w as f32 * 0.3, y as f32 - h as f32 * 0.4);
            if dx * dx + dy * dy < (h as f32 * 0.2).powi(2) {
                r = 230.0 + n;
                g = 200.0 + n;
                b = 40.0 + n;
            }
            if (x + 2 * y) % (w / 3 + 7) < 12 {
                r *= 0.3;
                g *= 0.3;
                b *= 0.5;
            }
            let i = (y * w + x) * 3;
            px[i] = r.clamp(0.0, 255.0) as u8;
            px[i + 1] = g.clamp(0.0, 255.0) as u8;
            px[i + 2] = b.clamp(0.0, 255.0) as u8;
        }
    }
    px
}

/// How to encode a test JPEG.
#[derive(Debug, Clone, Copy)]
pub struct JpegSpec {
    pub quality: u8,
    /// (h, v) of luma; (1,1) = 4:4:4, (2,1) = 4:2:2, (2,2) = 4:2:0; ignored for gray.
    pub sampling: (u8, u8),
    pub gray: bool,
    pub progressive: bool,
    pub restart: u16,
    pub optimize: bool,
}

impl JpegSpec {
    pub fn baseline(sampling: (u8, u8)) -> Self {
        JpegSpec {
            quality: 90,
            sampling,
            gray: false,
            progressive: false,
            restart: 0,
            optimize: false,
        }
    }
}

pub fn encode_jpeg(rgb: &[u8], w: usize, h: usize, spec: JpegSpec) -> Vec<u8> {
    use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out, spec.quality);
    let sf = match spec.sampling {
        (1, 1) => SamplingFactor::R_4_4_4,
        (2, 1) => SamplingFactor::R_4_2_2,
        _ => SamplingFactor::R_4_2_0,
    };
    enc.set_sampling_factor(sf);
    enc.set_progressive(spec.progressive);
    if spec.restart > 0 {
        enc.set_restart_interval(spec.restart);
    }
    enc.set_optimized_huffman_tables(spec.optimize);
    if spec.gray {
        let luma: Vec<u8> = rgb
            .chunks_exact(3)
            .map(|p| {
                (0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32).round() as u8
            })
            .collect();
        enc.encode(&luma, w as u16, h as u16, ColorType::Luma)
            .expect("encode");
    } else {
        enc.encode(rgb, w as u16, h as u16, ColorType::Rgb)
            .expect("encode");
    }
    out
}

/// Reference decode: libjpeg-turbo's `djpeg` when installed (zune-jpeg misreads
/// some valid multi-scan baseline files), zune-jpeg otherwise (after rewriting the
/// file as one Huffman-coded scan, which zune-jpeg reads whatever the coding was).
/// Returns (pixels, width, height, channels).
pub fn decode_jpeg(data: &[u8]) -> (Vec<u8>, usize, usize, usize) {
    if let Some(r) = djpeg(data) {
        return r;
    }
    // The same libjpeg-turbo decode, linked in through rubra-image.
    let d = rubra_image::decode_jpeg_pixels(data, &rubra_image::Limits::default())
        .expect("reference decode");
    let channels = if d.gray { 1 } else { 3 };
    (d.samples, d.width as usize, d.height as usize, channels)
}

/// libjpeg-turbo's decode, `None` when `djpeg` is not installed.
pub fn djpeg(data: &[u8]) -> Option<(Vec<u8>, usize, usize, usize)> {
    use std::io::Write;
    let mut child = std::process::Command::new("djpeg")
        .arg("-pnm")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input = data.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().ok()?;
    writer.join().ok()?;
    assert!(out.status.success(), "djpeg failed to decode");
    let d = out.stdout;
    // Parse "P5|P6 <w> <h> 255\n".
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while d[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while !d[i].is_ascii_whitespace() {
            i += 1;
        }
        fields.push(String::from_utf8_lossy(&d[start..i]).into_owned());
    }
    i += 1;
    let ch = if fields[0] == "P5" { 1 } else { 3 };
    let w: usize = fields[1].parse().ok()?;
    let h: usize = fields[2].parse().ok()?;
    Some((d[i..i + w * h * ch].to_vec(), w, h, ch))
}

/// A 500×100-style overlay: a translucent band with opaque "letters" and soft edges.
pub fn overlay_rgba(w: usize, h: usize) -> Vec<u8> {
    let mut px = vec![0u8; w * h * 4];
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) * 4;
            let letter = (x / 12) % 3 != 2 && !(y * 5 / h).is_multiple_of(4) && (x % 12) > 2;
            let (r, g, b, a) = if letter {
                (250, 250, 250, 255)
            } else if y > h / 8 && y < h - h / 8 {
                (20, 40, 160, 110)
            } else {
                (0, 0, 0, 0)
            };
            px[i..i + 4].copy_from_slice(&[r, g, b, a]);
        }
    }
    px
}

pub fn overlay(w: usize, h: usize) -> Overlay {
    Overlay::from_rgba(w as u32, h as u32, overlay_rgba(w, h)).expect("overlay")
}

/// Reference composite: straight-alpha "over" in 8-bit sRGB of `ov` (RGBA) at (x, y).
#[allow(clippy::too_many_arguments)]
pub fn reference_composite(
    dst: &[u8],
    w: usize,
    h: usize,
    ch: usize,
    ov: &[u8],
    ow: usize,
    oh: usize,
    x: i64,
    y: i64,
    opacity: f32,
) -> Vec<u8> {
    let mut out = dst.to_vec();
    for j in 0..oh as i64 {
        for i in 0..ow as i64 {
            let (px, py) = (x + i, y + j);
            if px < 0 || py < 0 || px >= w as i64 || py >= h as i64 {
                continue;
            }
            let o = &ov[((j as usize) * ow + i as usize) * 4..][..4];
            let a = o[3] as f32 / 255.0 * opacity;
            let d = &mut out[(py as usize * w + px as usize) * ch..][..ch];
            if ch == 1 {
                let l = 0.299 * o[0] as f32 + 0.587 * o[1] as f32 + 0.114 * o[2] as f32;
                d[0] = (l * a + d[0] as f32 * (1.0 - a)).round() as u8;
            } else {
                for c in 0..3 {
                    d[c] = (o[c] as f32 * a + d[c] as f32 * (1.0 - a)).round() as u8;
                }
            }
        }
    }
    out
}

/// Is `cjpeg` (libjpeg-turbo-progs) available?
pub fn cjpeg_available() -> bool {
    std::process::Command::new("cjpeg")
        .arg("-version")
        .output()
        .is_ok()
}

/// Encode with cjpeg from a PPM/PGM written to a temp file.
pub fn cjpeg(rgb: &[u8], w: usize, h: usize, args: &[&str], gray: bool) -> Vec<u8> {
    use std::io::Write;
    let mut ppm = Vec::new();
    if gray {
        write!(ppm, "P5\n{w} {h}\n255\n").expect("write");
        ppm.extend(
            rgb.chunks_exact(3)
                .map(|p| (0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32) as u8),
        );
    } else {
        write!(ppm, "P6\n{w} {h}\n255\n").expect("write");
        ppm.extend_from_slice(rgb);
    }
    let mut child = std::process::Command::new("cjpeg")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn cjpeg");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&ppm));
    let out = child.wait_with_output().expect("cjpeg");
    writer.join().expect("join").expect("write ppm");
    assert!(out.status.success(), "cjpeg failed");
    out.stdout
}
