//! rubra-image's header probe against the `image` crate's (PNG, GIF, WebP) and
//! zune-jpeg's (JPEG): when both read the dimensions of the same bytes, they agree
//! on format, width and height; the red meter never panics and reports a level
//! within [0, 1] over at most every pixel.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use rubra_image::{ImageFormat, Limits, measure, probe};

fuzz_target!(|input: &[u8]| {
    let ours = probe(input);
    let theirs = image::ImageReader::new(Cursor::new(input))
        .with_guessed_format()
        .ok()
        .and_then(|r| Some((r.format()?, r.into_dimensions().ok()?)));
    if let (Ok(info), Some((format, (w, h)))) = (&ours, theirs) {
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
    if let Ok(info) = &ours
        && info.format == ImageFormat::Jpeg
    {
        let mut d = zune_jpeg::JpegDecoder::new(zune_core::bytestream::ZCursor::new(input));
        if d.decode_headers().is_ok()
            && let Some((w, h)) = d.dimensions()
        {
            assert_eq!((info.width as usize, info.height as usize), (w, h), "JPEG");
        }
    }
    if let Ok(report) = measure(input, &Limits::with_max_pixels(1 << 20)) {
        assert!((0.0..=1.0).contains(&report.red), "{report:?}");
        assert!(report.red_pixels <= report.counted_pixels);
        assert!(report.counted_pixels <= u64::from(report.width) * u64::from(report.height));
        if let Ok(info) = ours {
            assert_eq!((info.width, info.height), (report.width, report.height));
        }
    }
});
