//! Test images made in code, and a reference red count from libjpeg-turbo's
//! `djpeg` for the JPEG accuracy tests.

#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

use rubra_image::{RedCount, is_red};

pub use crate::reference::{Rng, reference_jpeg, reference_rgb};

/// Red count of interleaved samples by the literal definition (the oracle).
pub fn oracle(px: &[u8], channels: usize) -> RedCount {
    let mut out = RedCount::default();
    for p in px.chunks_exact(channels) {
        if (channels == 4 || channels == 2) && p[channels - 1] < 128 {
            continue;
        }
        out.counted += 1;
        if channels >= 3 && is_red(p[0], p[1], p[2]) {
            out.red += 1;
        }
    }
    out
}

/// An RGBA test picture: red, near-red and non-red blocks at the exact
/// thresholds, noise, and alpha in bands (some below, some at 128).
pub fn mixed_rgba(w: usize, h: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let edge = [
        [255, 0, 0],
        [77, 0, 0],
        [76, 0, 0],
        [200, 100, 100],
        [200, 101, 101],
        [120, 40, 0],
        [120, 0, 41],
        [90, 30, 57],
        [255, 255, 255],
        [30, 200, 40],
    ];
    let mut px = Vec::with_capacity(w * h * 4);
    for y in 0..h {
        for x in 0..w {
            let rgb = if (x / 8 + y / 8) % 3 == 0 {
                edge[(x / 8 + 3 * (y / 8)) % edge.len()]
            } else {
                let v = rng.next_u64();
                [
                    (v >> 8) as u8,
                    (v >> 16) as u8 & 0x7F,
                    (v >> 24) as u8 & 0x7F,
                ]
            };
            let a = match (y * 7 / h.max(1), x % 5) {
                (0, _) => 0,
                (1, 0) => 127,
                (1, 1) => 128,
                _ => 255,
            };
            px.extend_from_slice(&[rgb[0], rgb[1], rgb[2], a]);
        }
    }
    px
}

/// Drops the alpha channel.
pub fn rgb_of(rgba: &[u8]) -> Vec<u8> {
    rgba.chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect()
}

/// A PNG of the given colour type and bit depth (samples big-endian for 16 bits).
pub fn png(
    w: u32,
    h: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
    palette: Option<(&[u8], &[u8])>,
) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(color);
        enc.set_depth(depth);
        if let Some((plte, trns)) = palette {
            enc.set_palette(plte.to_vec());
            if !trns.is_empty() {
                enc.set_trns(trns.to_vec());
            }
        }
        let mut writer = enc.write_header().expect("png header");
        writer.write_image_data(data).expect("png data");
    }
    out
}

/// A JPEG from `jpeg-encoder`.
pub fn jpeg(
    data: &[u8],
    w: u16,
    h: u16,
    color: jpeg_encoder::ColorType,
    progressive: bool,
    app1: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 88);
    enc.set_progressive(progressive);
    if let Some(app1) = app1 {
        enc.add_app_segment(1, app1).expect("app1");
    }
    enc.encode(data, w, h, color).expect("jpeg");
    out
}

/// An EXIF APP1 payload (without the marker and length) holding only an
/// Orientation tag, written by hand: "Exif\0\0", a little-endian TIFF header,
/// one IFD with one entry.
pub fn exif_orientation(orientation: u16) -> Vec<u8> {
    let mut v = b"Exif\0\0".to_vec();
    v.extend_from_slice(b"II*\0");
    v.extend_from_slice(&8u32.to_le_bytes()); // offset of IFD0
    v.extend_from_slice(&1u16.to_le_bytes()); // one entry
    v.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    v.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    v.extend_from_slice(&1u32.to_le_bytes()); // count
    v.extend_from_slice(&orientation.to_le_bytes());
    v.extend_from_slice(&[0, 0]); // value padding
    v.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    v
}

/// `jpegtran ARGS` (libjpeg-turbo) applied to `jpeg`, or `None` (with a
/// message) when `jpegtran` is not installed.
pub fn jpegtran(jpeg: &[u8], args: &[&str]) -> Option<Vec<u8>> {
    let child = Command::new("jpegtran")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("SKIPPED: jpegtran not found; install libjpeg-turbo-progs");
        return None;
    };
    let mut stdin = child.stdin.take().expect("stdin");
    let input = jpeg.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("jpegtran runs");
    writer.join().expect("writer").expect("write to jpegtran");
    assert!(
        out.status.success(),
        "jpegtran failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out.stdout)
}

/// `djpeg -ppm` (libjpeg-turbo's default full-resolution decode) run on `jpeg`:
/// its output and whether all of `jpeg` was written to it (djpeg may stop
/// reading a damaged file early); `None`, with a message, when djpeg is not
/// installed.
fn djpeg_ppm(jpeg: &[u8]) -> Option<(std::process::Output, std::io::Result<()>)> {
    let child = Command::new("djpeg")
        .arg("-ppm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!(
            "SKIPPED: djpeg not found; install libjpeg-turbo-progs to compare with libjpeg-turbo"
        );
        return None;
    };
    let mut stdin = child.stdin.take().expect("stdin");
    let input = jpeg.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("djpeg runs");
    Some((out, writer.join().expect("writer")))
}

/// The red count of libjpeg-turbo's default full-resolution decode
/// (`djpeg -ppm`), or `None` (with a message) when `djpeg` is not installed.
pub fn djpeg_count(jpeg: &[u8]) -> Option<RedCount> {
    let (out, written) = djpeg_ppm(jpeg)?;
    written.expect("write to djpeg");
    assert!(
        out.status.success(),
        "djpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (channels, samples) = parse_pnm(&out.stdout);
    Some(oracle(samples, channels))
}

/// libjpeg-turbo's default full-resolution decode (`djpeg -ppm`) as
/// (channels, samples); `None` when djpeg is not installed (with a message) or
/// refuses the file. A damaged file that djpeg decodes with warnings (exit
/// status 2) counts as decoded.
pub fn djpeg_pixels(jpeg: &[u8]) -> Option<(usize, Vec<u8>)> {
    // A broken pipe (djpeg stopped reading early) is not an error here.
    let (out, _written) = djpeg_ppm(jpeg)?;
    if !matches!(out.status.code(), Some(0 | 2)) || out.stdout.len() < 2 {
        return None;
    }
    let (channels, samples) = parse_pnm(&out.stdout);
    Some((channels, samples.to_vec()))
}

/// Parses a binary PGM (P5) or PPM (P6) with maxval 255: (channels, samples).
fn parse_pnm(b: &[u8]) -> (usize, &[u8]) {
    let channels = match &b[..2] {
        b"P5" => 1,
        b"P6" => 3,
        other => panic!("not a PNM: {other:?}"),
    };
    // Magic, width, height, maxval: four whitespace-separated tokens.
    let mut pos = 2;
    for _ in 0..3 {
        while b[pos].is_ascii_whitespace() {
            pos += 1;
        }
        while !b[pos].is_ascii_whitespace() {
            pos += 1;
        }
    }
    (channels, &b[pos + 1..])
}
