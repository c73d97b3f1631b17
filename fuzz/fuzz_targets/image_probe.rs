//! rubra-image's header probe against two other readers: the `image` crate's
//! (PNG, GIF, WebP; zune-jpeg for JPEG) and the `imagesize` crate's (headers
//! only): when both read the same bytes, they agree on format, width and height
//! (where zune-jpeg reads another JPEG size, libjpeg's `djpeg -v` decides).
//! The red meter never panics and reports a level within [0, 1] over at most every
//! pixel, and for an 8-bit PNG, GIF or WebP the `image` crate decodes, exactly the
//! red and counted pixels of that decode under DESIGN §4's definition (`is_red`,
//! alpha ≥ 128).
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use rubra_image::{ImageFormat, Limits, is_red, measure, probe};

/// The size of the frame header libjpeg-turbo's `djpeg -v` reports reading ("Start
/// Of Frame 0xc2: width=W, height=H, ..."), `None` when it reports none (it stopped
/// before one) or is not installed.
fn djpeg_frame_size(jpeg: &[u8]) -> Option<(u32, u32)> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("djpeg")
        .arg("-v")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input = jpeg.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().ok()?;
    let _ = writer.join();
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text.lines().find(|l| l.starts_with("Start Of Frame"))?;
    let field = |name: &str| -> Option<u32> {
        let rest = &line[line.find(name)? + name.len()..];
        rest.split(',').next()?.trim().parse().ok()
    };
    Some((field("width=")?, field("height=")?))
}

fuzz_target!(|input: &[u8]| {
    let ours = probe(input);
    let theirs = image::ImageReader::new(Cursor::new(input))
        .with_guessed_format()
        .ok()
        .and_then(|r| Some((r.format()?, r.into_dimensions().ok()?)));
    if let (Ok(info), Some((format, (w, h)))) = (&ours, theirs) {
        // image-webp 0.2.4 reads a lossless (VP8L) width and height as
        // `(1 + field) & 0x3FFF`, 0 where the 14-bit field is 0x3FFF; the size is the
        // field plus one (RFC 9649 3.2.1), 16384, as rubra-image reads it.
        let vp8l = |n: u32| if n == 0 { 16384 } else { n };
        let (w, h) = if input.get(12..16) == Some(b"VP8L".as_slice()) {
            (vp8l(w), vp8l(h))
        } else {
            (w, h)
        };
        let same = matches!(
            (info.format, format),
            (ImageFormat::Png, image::ImageFormat::Png)
                | (ImageFormat::Gif, image::ImageFormat::Gif)
                | (ImageFormat::WebP, image::ImageFormat::WebP)
                | (ImageFormat::Jpeg, image::ImageFormat::Jpeg)
        );
        assert!(same, "{info:?} vs {format:?}");
        assert_eq!((info.width, info.height), (w, h), "{format:?}");
    }
    if let (Ok(info), Ok(kind), Ok(size)) = (
        &ours,
        imagesize::image_type(input),
        imagesize::blob_size(input),
    ) {
        use imagesize::ImageType;
        let same = matches!(
            (info.format, &kind),
            (ImageFormat::Png, ImageType::Png)
                | (ImageFormat::Gif, ImageType::Gif)
                | (ImageFormat::WebP, ImageType::Webp)
                | (ImageFormat::Jpeg, ImageType::Jpeg)
        );
        assert!(same, "{info:?} vs imagesize {kind:?}");
        // imagesize 0.15 keeps the two scaling bits on top of a lossy VP8 frame's
        // 14-bit width and height (RFC 6386 9.1); the size is the 14 bits, as the
        // image crate and rubra-image read it.
        // (A WebP only: a JPEG's APPn segment may hold "VP8 " at that offset too.)
        let size = if kind == ImageType::Webp && input.get(12..16) == Some(b"VP8 ".as_slice()) {
            (size.width & 0x3FFF, size.height & 0x3FFF)
        } else {
            (size.width, size.height)
        };
        assert_eq!(
            (info.width as usize, info.height as usize),
            size,
            "imagesize {kind:?}"
        );
    }
    if let Ok(info) = &ours
        && info.format == ImageFormat::Jpeg
    {
        let mut d = zune_jpeg::JpegDecoder::new(zune_core::bytestream::ZCursor::new(input));
        if d.decode_headers().is_ok()
            && let Some((w, h)) = d.dimensions()
            && (info.width as usize, info.height as usize) != (w, h)
        {
            // zune-jpeg misreads some headers (it reads 5 bytes of any APP0 longer
            // than 5, one past an APP0 of length 6, and loses the next marker): the
            // reference, libjpeg, decides. When djpeg names no frame (it stops
            // earlier, or is not installed), the sizes are not compared; `measure`
            // below must still not report zune-jpeg's.
            if let Some(size) = djpeg_frame_size(input) {
                assert_eq!(
                    (info.width, info.height),
                    size,
                    "JPEG: the probe vs djpeg (zune-jpeg reads {w}x{h})"
                );
            }
        }
    }
    if let Ok(report) = measure(input, &Limits::with_max_pixels(1 << 20)) {
        assert!((0.0..=1.0).contains(&report.red), "{report:?}");
        assert!(report.red_pixels <= report.counted_pixels);
        assert!(report.counted_pixels <= u64::from(report.width) * u64::from(report.height));
        if let Ok(info) = ours {
            assert_eq!((info.width, info.height), (report.width, report.height));
        }
        if report.format != ImageFormat::Jpeg
            && let Ok(img) = image::load_from_memory(input)
            && matches!(
                img.color(),
                image::ColorType::L8
                    | image::ColorType::La8
                    | image::ColorType::Rgb8
                    | image::ColorType::Rgba8
            )
        {
            let rgba = img.to_rgba8();
            assert_eq!((rgba.width(), rgba.height()), (report.width, report.height));
            let (mut red, mut counted) = (0u64, 0u64);
            for p in rgba.pixels() {
                if p[3] >= 128 {
                    counted += 1;
                    red += u64::from(is_red(p[0], p[1], p[2]));
                }
            }
            assert_eq!(
                (red, counted),
                (report.red_pixels, report.counted_pixels),
                "{:?} {:?}",
                report.format,
                img.color()
            );
        }
    }
});
