//! Decompression bombs, truncated and corrupt input: refused quickly, with the
//! right error, and never a panic.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use image::ExtendedColorType;
use rubra_image::{Error, ImageFormat, Limits, measure, probe, probe_within};

use crate::helpers::*;

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A 100000×100000 RGB PNG of a few hundred bytes: a valid header, a tiny
/// zlib stream of zeros (that would inflate to 30 GB) and IEND.
fn png_bomb() -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut v, b"IHDR", &ihdr);
    // zlib header + a fixed-Huffman block of a few literal zeros, never finished.
    chunk(
        &mut v,
        b"IDAT",
        &[0x78, 0x9C, 0x63, 0x60, 0x60, 0x60, 0x00, 0x00],
    );
    chunk(&mut v, b"IEND", &[]);
    v
}

fn assert_fast<T>(f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    eprintln!("refused in {took:?}");
    // Microseconds in practice; the margin is for a busy CI machine. Decoding
    // 10^10 pixels would take minutes and 30 GB.
    assert!(took < Duration::from_millis(250), "took {took:?}");
    out
}

#[test]
fn png_bomb_is_refused_from_its_header_in_milliseconds() {
    let bomb = png_bomb();
    assert!(bomb.len() < 200);
    let info = probe(&bomb).unwrap();
    assert_eq!((info.width, info.height), (100_000, 100_000));
    let err = assert_fast(|| measure(&bomb, &Limits::default()).unwrap_err());
    match err {
        Error::TooLarge {
            width,
            height,
            limit,
        } => {
            assert_eq!((width, height, limit), (100_000, 100_000, 50_000_000));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err_status(&bomb, &Limits::default()), 413);
    assert!(matches!(
        probe_within(&bomb, &Limits::default()),
        Err(Error::TooLarge { .. })
    ));
}

fn err_status(bytes: &[u8], limits: &Limits) -> u16 {
    measure(bytes, limits).unwrap_err().http_status()
}

#[test]
fn decoder_guard_holds_when_the_pixel_limit_is_raised() {
    // A caller that lifts the pixel limit still has the allocation bound: the
    // decoder refuses to allocate 30 GB instead of trying.
    let mut limits = Limits::with_max_pixels(u64::MAX);
    limits.max_alloc = 64 << 20;
    let err = assert_fast(|| measure(&png_bomb(), &limits).unwrap_err());
    assert!(matches!(err, Error::TooLarge { .. }), "{err:?}");
}

#[test]
fn configurable_pixel_limit() {
    let px = vec![200u8; 100 * 100 * 3];
    let bytes = crate::helpers::png(
        100,
        100,
        png::ColorType::Rgb,
        png::BitDepth::Eight,
        &px,
        None,
    );
    assert!(measure(&bytes, &Limits::with_max_pixels(10_000)).is_ok());
    assert_eq!(err_status(&bytes, &Limits::with_max_pixels(9_999)), 413);
}

#[test]
fn jpeg_gif_and_webp_bombs_are_refused_from_their_headers() {
    // JPEG: SOF0 of 65535×65535 after a tiny valid-looking header.
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xC0, 0, 17, 8, 0xFF, 0xFF, 0xFF, 0xFF, 3];
    jpeg.extend_from_slice(&[1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    jpeg.extend_from_slice(&[
        0xFF, 0xDA, 0, 12, 3, 1, 0, 2, 0x11, 3, 0x11, 0, 63, 0, 0, 0xFF, 0xD9,
    ]);
    assert_eq!(probe(&jpeg).unwrap().format, ImageFormat::Jpeg);
    assert!(matches!(
        assert_fast(|| measure(&jpeg, &Limits::default())),
        Err(Error::TooLarge { .. })
    ));

    // GIF: a 10×10 screen whose first frame is 65535×65535.
    let mut gif = b"GIF89a\x0a\0\x0a\0\0\0\0".to_vec();
    gif.extend_from_slice(&[
        0x2C, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 2, 2, 0x4C, 0x01, 0, 0x3B,
    ]);
    assert!(matches!(
        assert_fast(|| measure(&gif, &Limits::default())),
        Err(Error::TooLarge { .. })
    ));

    // WebP: an extended (VP8X) canvas of 16384×16384.
    let mut webp = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
    webp.extend_from_slice(&[0xFF, 0x3F, 0, 0xFF, 0x3F, 0]);
    let len = (webp.len() - 8) as u32;
    webp[4..8].copy_from_slice(&len.to_le_bytes());
    let info = probe(&webp).unwrap();
    assert_eq!((info.width, info.height), (16384, 16384));
    assert!(matches!(
        assert_fast(|| measure(&webp, &Limits::default())),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn unknown_bytes_are_unsupported() {
    for bytes in [
        &b"hello"[..],
        b"",
        b"BM\x36\0\0\0\0\0\0\0",
        b"<svg xmlns=",
        b"\0\0\0\x0cjP  ",
    ] {
        let err = measure(bytes, &Limits::default()).unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
        assert_eq!((err.http_status(), err.code()), (415, "unsupported_image"));
    }
}

/// One small valid file of every format.
fn samples() -> Vec<(&'static str, Vec<u8>)> {
    let (w, h) = (40u16, 30u16);
    let rgba = mixed_rgba(w.into(), h.into(), 9);
    let rgb = rgb_of(&rgba);
    let mut webp = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
        .encode(&rgba, w.into(), h.into(), ExtendedColorType::Rgba8)
        .unwrap();
    let mut gif = Vec::new();
    image::codecs::gif::GifEncoder::new(&mut gif)
        .encode(&rgba, w.into(), h.into(), ExtendedColorType::Rgba8)
        .unwrap();
    vec![
        (
            "jpeg",
            jpeg(&rgb, w, h, jpeg_encoder::ColorType::Rgb, false, None),
        ),
        (
            "progressive jpeg",
            jpeg(&rgb, w, h, jpeg_encoder::ColorType::Rgb, true, None),
        ),
        (
            "png",
            png(
                w.into(),
                h.into(),
                png::ColorType::Rgba,
                png::BitDepth::Eight,
                &rgba,
                None,
            ),
        ),
        ("gif", gif),
        ("webp lossless", webp),
        (
            "webp lossy",
            include_bytes!("../fixtures/half_red_lossy.webp").to_vec(),
        ),
        (
            "webp lossy alpha",
            include_bytes!("../fixtures/red_alpha_lossy.webp").to_vec(),
        ),
        ("cmyk jpeg", include_bytes!("../fixtures/cmyk.jpg").to_vec()),
    ]
}

fn no_panic(what: &str, bytes: &[u8]) -> Result<rubra_image::RedReport, Error> {
    match catch_unwind(AssertUnwindSafe(|| measure(bytes, &Limits::default()))) {
        Ok(r) => r,
        Err(_) => panic!("{what}: measure panicked"),
    }
}

#[test]
fn truncated_files_are_refused_and_never_panic() {
    for (name, bytes) in samples() {
        assert!(no_panic(name, &bytes).is_ok(), "{name} measures whole");
        for cut in (0..bytes.len()).step_by(1.max(bytes.len() / 300)) {
            let result = no_panic(name, &bytes[..cut]);
            // GIF: a cut after the first frame still measures that frame.
            if name != "gif" {
                let err = result.expect_err(&format!("{name} cut at {cut} of {}", bytes.len()));
                assert!(
                    matches!(
                        err,
                        Error::Truncated | Error::Corrupt(_) | Error::Unsupported(_)
                    ),
                    "{name} cut at {cut}: {err:?}"
                );
                if cut >= 30 {
                    assert_eq!(err.http_status(), 400, "{name} cut at {cut}: {err:?}");
                }
            }
        }
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    let mut rng = Rng::new(77);
    for (name, bytes) in samples() {
        for round in 0..300 {
            let mut bad = bytes.clone();
            let flips = 1 + rng.below(4);
            for _ in 0..flips {
                let at = rng.below(bad.len() as u32) as usize;
                bad[at] = if round % 3 == 0 {
                    rng.below(256) as u8
                } else {
                    bad[at] ^ 0xFF
                };
            }
            if let Err(e) = no_panic(name, &bad) {
                assert!(matches!(e.http_status(), 400 | 413 | 415), "{name}: {e:?}");
            }
        }
    }
}

#[test]
fn error_statuses_and_codes() {
    let too_large = Error::TooLarge {
        width: 1,
        height: 2,
        limit: 1,
    };
    assert_eq!(
        (too_large.http_status(), too_large.code()),
        (413, "image_too_large")
    );
    assert_eq!(
        (Error::Truncated.http_status(), Error::Truncated.code()),
        (400, "truncated_image")
    );
    let corrupt = Error::Corrupt("x".into());
    assert_eq!(
        (corrupt.http_status(), corrupt.code()),
        (400, "corrupt_image")
    );
    assert!(too_large.to_string().contains("1x2"));
}
