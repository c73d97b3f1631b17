//! rubra-watermark on any JPEG or PNG: it either refuses with an error, returns the
//! input itself (no overlay pixel visible), or returns an image of the same format
//! and size that decodes, and for a JPEG that
//! zune-jpeg decodes, every pixel outside the overlay's 16-pixel blocks is
//! unchanged. The first byte picks the placement and opacity.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rubra_watermark::{Format, Gravity, Options, Overlay, Placement, Route, watermark_with};
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

const SIDE: u32 = 8;

fn decode_jpeg(bytes: &[u8]) -> Option<(usize, usize, usize, Vec<u8>)> {
    let options = DecoderOptions::default()
        .set_max_width(1 << 20)
        .set_max_height(1 << 20);
    let mut d = JpegDecoder::new_with_options(zune_core::bytestream::ZCursor::new(bytes), options);
    let pixels = d.decode().ok()?;
    let (w, h) = d.dimensions()?;
    let channels = d.output_colorspace()?.num_components();
    Some((w, h, channels, pixels))
}

/// Whether the header holds an APP0 segment of length 6 (a 4-byte body), which
/// zune-jpeg 0.5.15 misreads: it reads 5 bytes of any APP0 longer than 5 (looking
/// for "AVI1"), one past the segment, loses the next marker and then refuses the
/// file (say "Number of components cannot be zero"). djpeg reads it ("Unknown APP0
/// marker"), and T.81 leaves APPn bodies to the application.
fn has_app0_of_length_6(jpeg: &[u8]) -> bool {
    let mut i = 2;
    while let Some(&[0xFF, m, hi, lo]) = jpeg.get(i..i + 4) {
        if m == 0xDA {
            break;
        }
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if m == 0xE0 && len == 6 {
            return true;
        }
        i += 2 + len;
    }
    false
}

/// Whether libjpeg-turbo's `djpeg` (the reference decoder) decodes `bytes`, with
/// or without warnings (exit 0 or 2); `false` when it is not installed.
fn djpeg_decodes(bytes: &[u8]) -> bool {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let Ok(mut child) = Command::new("djpeg")
        .arg("-pnm")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let Some(mut stdin) = child.stdin.take() else {
        return false;
    };
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let status = child.wait();
    let _ = writer.join();
    matches!(status.ok().and_then(|s| s.code()), Some(0 | 2))
}

/// djpeg's pixels of `bytes` and their channel count, `None` when it refuses them
/// (exit 2 is "decoded, with warnings") or is not installed.
fn djpeg_pixels(bytes: &[u8]) -> Option<(Vec<u8>, usize)> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("djpeg")
        .arg("-pnm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().ok()?;
    writer.join().ok()?.ok()?;
    if !matches!(out.status.code(), Some(0 | 2)) {
        return None;
    }
    // "P5|P6 <w> <h> 255" and one whitespace byte, then the samples.
    let d = out.stdout;
    let mut fields = 0;
    let mut i = 0;
    while fields < 4 {
        while d.get(i)?.is_ascii_whitespace() {
            i += 1;
        }
        while !d.get(i)?.is_ascii_whitespace() {
            i += 1;
        }
        fields += 1;
    }
    let channels = if d.starts_with(b"P5") { 1 } else { 3 };
    Some((d.get(i + 1..)?.to_vec(), channels))
}

fuzz_target!(|input: &[u8]| {
    let Some((&pick, image)) = input.split_first() else {
        return;
    };
    let rgba: Vec<u8> = (0..SIDE * SIDE)
        .flat_map(|i| [255, 0, 0, (i * 4) as u8])
        .collect();
    let overlay = Overlay::from_rgba(SIDE, SIDE, rgba).expect("overlay");
    let gravity = [
        Gravity::North,
        Gravity::South,
        Gravity::East,
        Gravity::West,
        Gravity::NorthEast,
        Gravity::NorthWest,
    ];
    let placement = Placement::gravity(
        gravity[usize::from(pick) % gravity.len()],
        i64::from(pick >> 4),
        0,
    );
    let options = Options {
        opacity: f32::from(pick) / 255.0,
        max_pixels: 1 << 20,
        ..Options::new(placement)
    };
    let Ok(out) = watermark_with(image, &overlay, &options) else {
        return;
    };
    if out.route == Route::Unchanged {
        // No visible overlay pixel lands on the image: the client gets its own bytes back,
        // whether or not zune-jpeg reads them (it refuses DAC segments, for one).
        assert!(
            out.bytes == image,
            "an unchanged output differs from the input"
        );
        return;
    }
    match out.format {
        Format::Png => {
            let a = image::load_from_memory(image).expect("a watermarked PNG was readable");
            let b = image::load_from_memory(&out.bytes).expect("the output PNG decodes");
            assert_eq!((a.width(), a.height()), (b.width(), b.height()));
        }
        Format::Jpeg => {
            let Some((w, h, c, after)) = decode_jpeg(&out.bytes) else {
                // A zune-jpeg bug, or a file it refuses as it refused the input (it
                // refuses a 1×4-sampled Cr under 2×2 luma, which libjpeg decodes): not a
                // corrupt output, the reference decides.
                assert!(
                    (has_app0_of_length_6(&out.bytes) || decode_jpeg(image).is_none())
                        && djpeg_decodes(&out.bytes),
                    "the output JPEG decodes"
                );
                return;
            };
            let Some((w0, h0, c0, before)) = decode_jpeg(image) else {
                return;
            };
            assert_eq!((w, h), (w0, h0));
            if c != c0 || !matches!(out.route, Route::JpegFast | Route::JpegCoefficients) {
                return;
            }
            // Blocks are at most 16 pixels; upsampled chroma may reach one more block.
            let (ox, oy) = placement.origin(w as u32, h as u32, SIDE, SIDE);
            let (x0, x1) = (
                (ox.div_euclid(16) - 1) * 16,
                ((ox + i64::from(SIDE)).div_euclid(16) + 2) * 16,
            );
            let (y0, y1) = (
                (oy.div_euclid(16) - 1) * 16,
                ((oy + i64::from(SIDE)).div_euclid(16) + 2) * 16,
            );
            let outside = |x: usize, y: usize| {
                let (xi, yi) = (x as i64, y as i64);
                !((x0..x1).contains(&xi) && (y0..y1).contains(&yi))
            };
            let changed = |before: &[u8], after: &[u8], c: usize| {
                (0..h)
                    .flat_map(|y| (0..w).map(move |x| (x, y)))
                    .find(|&(x, y)| {
                        let i = (y * w + x) * c;
                        outside(x, y) && before[i..i + c] != after[i..i + c]
                    })
            };
            if let Some((x, y)) = changed(&before, &after, c) {
                // zune-jpeg reads some damaged files (entropy-coded data after a
                // table segment that ends a short scan) otherwise than libjpeg-turbo;
                // the reference decides then.
                let reference = djpeg_pixels(image).zip(djpeg_pixels(&out.bytes));
                let Some(((b, cb), (a, ca))) = reference else {
                    panic!("pixel ({x}, {y}) changed, route {:?}", out.route);
                };
                assert!(
                    cb == ca && b.len() == w * h * cb && a.len() == b.len(),
                    "djpeg decodes input and output to other shapes"
                );
                assert_eq!(
                    changed(&b, &a, cb),
                    None,
                    "pixel changed for zune-jpeg (first at ({x}, {y})) and for djpeg, route {:?}",
                    out.route
                );
            }
        }
    }
});
