//! Integration tests: pixel-exactness outside the MCU-aligned rectangle for every
//! JPEG flavour, blending accuracy inside, placement, clipping and corrupt inputs.

mod coding;
mod fuzz_findings;
mod helpers;
mod props;
mod reference_output;

use helpers::*;
use rubra_watermark::{
    Format, Gravity, Options, Overlay, Placement, Route, WatermarkError, Watermarked, watermark,
    watermark_parts, watermark_with,
};

const W: usize = 333;
const H: usize = 257;
const OW: usize = 120;
const OH: usize = 40;

/// MCU size in pixels for a spec.
fn mcu(spec: &JpegSpec) -> (usize, usize) {
    if spec.gray {
        (8, 8)
    } else {
        (8 * spec.sampling.0 as usize, 8 * spec.sampling.1 as usize)
    }
}

/// The rectangle (x0, y0, x1, y1) outside which pixels must not change: the
/// visible overlay pixels' box snapped out to the MCU grid, plus one pixel along
/// subsampled axes (the reference decoder's "fancy" chroma upsampling blends each
/// chroma sample with its neighbour, so a changed chroma sample reaches one pixel
/// past its own block).
fn protected_rect(
    spec: &JpegSpec,
    ov: &Overlay,
    origin: (i64, i64),
    w: usize,
    h: usize,
) -> (usize, usize, usize, usize) {
    let (bx, by, bw, bh) = ov.visible_bounds().expect("visible");
    let x0 = (origin.0 + bx as i64).max(0) as usize;
    let y0 = (origin.1 + by as i64).max(0) as usize;
    let x1 = ((origin.0 + (bx + bw) as i64) as usize).min(w);
    let y1 = ((origin.1 + (by + bh) as i64) as usize).min(h);
    let (mw, mh) = mcu(spec);
    let mx = if mw > 8 { 1 } else { 0 };
    let my = if mh > 8 { 1 } else { 0 };
    (
        (x0 / mw * mw).saturating_sub(mx),
        (y0 / mh * mh).saturating_sub(my),
        (x1.div_ceil(mw) * mw + mx).min(w),
        (y1.div_ceil(mh) * mh + my).min(h),
    )
}

/// Watermark and check that every pixel outside the protected rectangle decodes
/// identically; returns the route and decoded output.
fn check_exact(input: &[u8], spec: &JpegSpec, placement: Placement, ov: &Overlay) -> Route {
    let (before, w, h, ch) = decode_jpeg(input);
    let res = watermark_with(input, ov, &Options::new(placement)).expect("watermark");
    assert_eq!(res.format, Format::Jpeg);
    assert_parts_match(input, ov, &Options::new(placement), &res);
    let (after, w2, h2, ch2) = decode_jpeg(&res.bytes);
    assert_eq!((w, h, ch), (w2, h2, ch2));
    let origin = placement.origin(w as u32, h as u32, ov.width(), ov.height());
    let (x0, y0, x1, y1) = protected_rect(spec, ov, origin, w, h);
    let mut changed_inside = 0;
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) * ch;
            let inside = x >= x0 && x < x1 && y >= y0 && y < y1;
            if inside {
                changed_inside += (before[i..i + ch] != after[i..i + ch]) as usize;
            } else {
                assert_eq!(
                    before[i..i + ch],
                    after[i..i + ch],
                    "pixel ({x},{y}) outside ({x0},{y0})-({x1},{y1}) changed; spec {spec:?}, {placement:?}, route {:?}",
                    res.route
                );
            }
        }
    }
    assert!(
        changed_inside > 0,
        "nothing changed inside; {spec:?} {placement:?}"
    );
    res.route
}

/// `watermark_parts` gives the output of `watermark_with`: the input's first `prefix`
/// bytes, then `rest`, then the input's last `suffix` bytes, by the same route.
fn assert_parts_match(input: &[u8], ov: &Overlay, opts: &Options, whole: &Watermarked) {
    let parts = watermark_parts(input, ov, opts).expect("watermark_parts");
    assert_eq!((parts.route, parts.format), (whole.route, whole.format));
    let (p, r, s) = (parts.prefix, parts.rest.len(), parts.suffix);
    assert_eq!(p + r + s, whole.bytes.len());
    assert!(
        whole.bytes[..p] == input[..p]
            && whole.bytes[p..p + r] == parts.rest[..]
            && whole.bytes[p + r..] == input[input.len() - s..],
        "parts differ from the whole output; route {:?}",
        whole.route
    );
}

fn placements() -> Vec<Placement> {
    vec![
        Placement::gravity(Gravity::SouthEast, 13, 9),
        Placement::gravity(Gravity::NorthWest, 5, 3),
        Placement::gravity(Gravity::Center, 0, 0),
        Placement::Exact { x: -30, y: 100 },
        Placement::Exact { x: 280, y: 230 },
    ]
}

fn exact_case(spec: JpegSpec, expect: Route) {
    let rgb = photo(W, H, 7);
    let input = encode_jpeg(&rgb, W, H, spec);
    let ov = overlay(OW, OH);
    for p in placements() {
        let route = check_exact(&input, &spec, p, &ov);
        assert_eq!(route, expect, "{spec:?} {p:?}");
    }
}

#[test]
fn exact_outside_baseline_420() {
    exact_case(JpegSpec::baseline((2, 2)), Route::JpegFast);
}

#[test]
fn exact_outside_baseline_422() {
    exact_case(JpegSpec::baseline((2, 1)), Route::JpegFast);
}

#[test]
fn exact_outside_baseline_444() {
    exact_case(JpegSpec::baseline((1, 1)), Route::JpegFast);
}

#[test]
fn exact_outside_baseline_gray() {
    exact_case(
        JpegSpec {
            gray: true,
            ..JpegSpec::baseline((1, 1))
        },
        Route::JpegFast,
    );
}

#[test]
fn exact_outside_baseline_restart_intervals() {
    for restart in [1, 3, 7, 40] {
        exact_case(
            JpegSpec {
                restart,
                ..JpegSpec::baseline((2, 2))
            },
            Route::JpegFast,
        );
    }
}

#[test]
fn exact_outside_progressive() {
    for (sampling, gray) in [
        ((2, 2), false),
        ((2, 1), false),
        ((1, 1), false),
        ((1, 1), true),
    ] {
        exact_case(
            JpegSpec {
                progressive: true,
                gray,
                ..JpegSpec::baseline(sampling)
            },
            Route::JpegCoefficients,
        );
    }
}

#[test]
fn exact_outside_progressive_with_restart_intervals() {
    exact_case(
        JpegSpec {
            progressive: true,
            restart: 5,
            ..JpegSpec::baseline((2, 2))
        },
        Route::JpegCoefficients,
    );
}

#[test]
fn exact_outside_optimized_tables() {
    // Optimised tables may lack symbols the edit needs; either route must be exact.
    for sampling in [(2, 2), (1, 1)] {
        let spec = JpegSpec {
            optimize: true,
            ..JpegSpec::baseline(sampling)
        };
        let rgb = photo(W, H, 3);
        let input = encode_jpeg(&rgb, W, H, spec);
        let ov = overlay(OW, OH);
        for p in placements() {
            check_exact(&input, &spec, p, &ov);
        }
    }
}

#[test]
fn missing_huffman_symbol_falls_back_to_optimal_tables() {
    // A smooth image with optimised tables has no large-magnitude AC symbols; the
    // hard-edged overlay needs them.
    let mut rgb = vec![0u8; W * H * 3];
    for (i, p) in rgb.chunks_exact_mut(3).enumerate() {
        let (x, y) = (i % W, i / W);
        p.copy_from_slice(&[(x / 3) as u8, (y / 2) as u8, 128]);
    }
    let spec = JpegSpec {
        optimize: true,
        ..JpegSpec::baseline((2, 2))
    };
    let input = encode_jpeg(&rgb, W, H, spec);
    if std::env::var_os("WM_DUMP").is_some() {
        std::fs::write("/tmp/wm_in.jpg", &input).expect("dump");
        let out = watermark(
            &input,
            &overlay(OW, OH),
            Placement::gravity(Gravity::SouthEast, 10, 10),
            1.0,
        )
        .expect("wm");
        std::fs::write("/tmp/wm_out.jpg", &out).expect("dump");
    }
    let route = check_exact(
        &input,
        &spec,
        Placement::gravity(Gravity::SouthEast, 10, 10),
        &overlay(OW, OH),
    );
    assert_eq!(route, Route::JpegCoefficients);
    if std::env::var_os("WM_DUMP").is_some() {
        std::fs::write("/tmp/wm_in.jpg", &input).expect("dump");
        let out = watermark(
            &input,
            &overlay(OW, OH),
            Placement::gravity(Gravity::SouthEast, 10, 10),
            1.0,
        )
        .expect("wm");
        std::fs::write("/tmp/wm_out.jpg", &out).expect("dump");
    }
}

#[test]
fn exact_outside_cjpeg_variants() {
    if !cjpeg_available() {
        eprintln!("SKIPPED: cjpeg not found (apt-get install -y libjpeg-turbo-progs)");
        return;
    }
    let rgb = photo(W, H, 11);
    let ov = overlay(OW, OH);
    let cases: &[(&[&str], JpegSpec, bool, Route)] = &[
        (
            &["-quality", "90", "-sample", "2x2"],
            JpegSpec::baseline((2, 2)),
            false,
            Route::JpegFast,
        ),
        (
            &["-quality", "90", "-sample", "2x1"],
            JpegSpec::baseline((2, 1)),
            false,
            Route::JpegFast,
        ),
        (
            &["-quality", "90", "-sample", "1x1"],
            JpegSpec::baseline((1, 1)),
            false,
            Route::JpegFast,
        ),
        (
            &["-quality", "90", "-restart", "2"],
            JpegSpec::baseline((2, 2)),
            false,
            Route::JpegFast,
        ),
        (
            &["-quality", "75", "-progressive", "-sample", "2x2"],
            JpegSpec::baseline((2, 2)),
            false,
            Route::JpegCoefficients,
        ),
        (
            &["-quality", "75", "-progressive", "-sample", "2x1"],
            JpegSpec::baseline((2, 1)),
            false,
            Route::JpegCoefficients,
        ),
        (
            &["-quality", "95", "-progressive", "-sample", "1x1"],
            JpegSpec::baseline((1, 1)),
            false,
            Route::JpegCoefficients,
        ),
        (
            &["-quality", "90", "-grayscale"],
            JpegSpec {
                gray: true,
                ..JpegSpec::baseline((1, 1))
            },
            true,
            Route::JpegFast,
        ),
        (
            &["-quality", "90", "-grayscale", "-progressive"],
            JpegSpec {
                gray: true,
                ..JpegSpec::baseline((1, 1))
            },
            true,
            Route::JpegCoefficients,
        ),
    ];
    for (args, spec, gray, route) in cases {
        let input = cjpeg(&rgb, W, H, args, *gray);
        for p in placements() {
            let got = check_exact(&input, spec, p, &ov);
            assert_eq!(got, *route, "{args:?} {p:?}");
        }
    }
    // Optimised tables: route depends on the tables; exactness must hold.
    let spec = JpegSpec::baseline((2, 2));
    let input = cjpeg(&rgb, W, H, &["-quality", "90", "-optimize"], false);
    for p in placements() {
        check_exact(&input, &spec, p, &ov);
    }
}

#[test]
fn blending_accuracy_inside_jpeg() {
    let rgb = photo(W, H, 5);
    let spec = JpegSpec {
        quality: 100,
        ..JpegSpec::baseline((1, 1))
    };
    let input = encode_jpeg(&rgb, W, H, spec);
    let ov_px = overlay_rgba(OW, OH);
    let ov = Overlay::from_rgba(OW as u32, OH as u32, ov_px.clone()).expect("overlay");
    for opacity in [1.0, 0.6] {
        let p = Placement::gravity(Gravity::SouthEast, 20, 20);
        let out = watermark(&input, &ov, p, opacity).expect("watermark");
        let (before, w, h, ch) = decode_jpeg(&input);
        let (after, ..) = decode_jpeg(&out);
        let (x, y) = p.origin(w as u32, h as u32, OW as u32, OH as u32);
        let want = reference_composite(&before, w, h, ch, &ov_px, OW, OH, x, y, opacity);
        let mut worst = 0;
        for j in 0..OH {
            for i in 0..OW {
                let k = ((y as usize + j) * w + x as usize + i) * ch;
                for c in 0..ch {
                    worst = worst.max((want[k + c] as i32 - after[k + c] as i32).abs());
                }
            }
        }
        assert!(worst <= 3, "max error {worst} at opacity {opacity}");
    }
}

#[test]
fn blending_accuracy_inside_png() {
    let rgb = photo(W, H, 9);
    for alpha in [false, true] {
        let (png, ch) = if alpha {
            let rgba: Vec<u8> = rgb
                .chunks_exact(3)
                .flat_map(|p| [p[0], p[1], p[2], 255])
                .collect();
            (encode_png(&rgba, W, H, image::ExtendedColorType::Rgba8), 4)
        } else {
            (encode_png(&rgb, W, H, image::ExtendedColorType::Rgb8), 3)
        };
        let src: Vec<u8> = if alpha {
            rgb.chunks_exact(3)
                .flat_map(|p| [p[0], p[1], p[2], 255])
                .collect()
        } else {
            rgb.clone()
        };
        let ov_px = overlay_rgba(OW, OH);
        let ov = Overlay::from_rgba(OW as u32, OH as u32, ov_px.clone()).expect("overlay");
        for g in Gravity::ALL {
            let p = Placement::gravity(g, 7, 5);
            let out = watermark(&png, &ov, p, 0.8).expect("watermark");
            let got = image::load_from_memory(&out).expect("png").into_bytes();
            let (x, y) = p.origin(W as u32, H as u32, OW as u32, OH as u32);
            let want = reference_composite(&src, W, H, ch, &ov_px, OW, OH, x, y, 0.8);
            assert_eq!(got.len(), want.len());
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (*a as i32 - *b as i32).abs())
                .max()
                .unwrap_or(0);
            assert!(worst <= 1, "{g:?}: max error {worst}");
        }
    }
}

fn encode_png(px: &[u8], w: usize, h: usize, ct: image::ExtendedColorType) -> Vec<u8> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(px, w as u32, h as u32, ct)
        .expect("png");
    out
}

#[test]
fn every_gravity_lands_where_expected() {
    let (iw, ih, ow, oh) = (300u32, 200u32, 50u32, 20u32);
    let cases = [
        (Gravity::North, (135, 5)),
        (Gravity::South, (135, 175)),
        (Gravity::East, (240, 95)),
        (Gravity::West, (10, 95)),
        (Gravity::NorthEast, (240, 5)),
        (Gravity::NorthWest, (10, 5)),
        (Gravity::SouthEast, (240, 175)),
        (Gravity::SouthWest, (10, 175)),
        (Gravity::Center, (135, 95)),
    ];
    for (g, want) in cases {
        let got = Placement::gravity(g, 10, 5).origin(iw, ih, ow, oh);
        assert_eq!(got, want, "{g:?}");
    }
    for name in ["north", "SouthEast", "south_west", "centre", "center", "ne"] {
        assert!(name.parse::<Gravity>().is_ok(), "{name}");
    }
    assert!("up".parse::<Gravity>().is_err());
    // And on a real JPEG every gravity takes the fast path and stays exact.
    let rgb = photo(W, H, 2);
    let spec = JpegSpec::baseline((2, 2));
    let input = encode_jpeg(&rgb, W, H, spec);
    let ov = overlay(OW, OH);
    for g in Gravity::ALL {
        assert_eq!(
            check_exact(&input, &spec, Placement::gravity(g, 3, 4), &ov),
            Route::JpegFast
        );
    }
}

#[test]
fn clipping_partly_outside() {
    let rgb = photo(W, H, 4);
    let spec = JpegSpec::baseline((2, 2));
    let input = encode_jpeg(&rgb, W, H, spec);
    let ov = overlay(OW, OH);
    for p in [
        Placement::Exact { x: -100, y: -20 },
        Placement::Exact {
            x: W as i64 - 10,
            y: H as i64 - 10,
        },
        Placement::gravity(Gravity::SouthEast, -60, -25),
    ] {
        check_exact(&input, &spec, p, &ov);
    }
}

#[test]
fn fully_outside_is_an_error() {
    let rgb = photo(64, 48, 4);
    let jpeg = encode_jpeg(&rgb, 64, 48, JpegSpec::baseline((2, 2)));
    let png = encode_png(&rgb, 64, 48, image::ExtendedColorType::Rgb8);
    let ov = overlay(OW, OH);
    for input in [&jpeg, &png] {
        for p in [
            Placement::Exact { x: 64, y: 0 },
            Placement::Exact {
                x: -(OW as i64),
                y: 0,
            },
            Placement::gravity(Gravity::SouthEast, 0, 48),
        ] {
            let err = watermark(input, &ov, p, 1.0).expect_err("outside");
            assert!(matches!(err, WatermarkError::OutsideImage), "{err}");
            assert_eq!(err.http_status(), 422);
        }
    }
}

#[test]
fn transparent_overlay_or_zero_opacity_returns_input() {
    let rgb = photo(64, 48, 4);
    let jpeg = encode_jpeg(&rgb, 64, 48, JpegSpec::baseline((2, 2)));
    let ov = overlay(OW, OH);
    let out = watermark(&jpeg, &ov, Placement::Exact { x: 0, y: 0 }, 0.0).expect("ok");
    assert_eq!(out, jpeg);
    let opts = Options {
        opacity: 0.0,
        ..Options::new(Placement::Exact { x: 0, y: 0 })
    };
    let parts = watermark_parts(&jpeg, &ov, &opts).expect("ok");
    assert_eq!((parts.prefix, parts.rest.len()), (jpeg.len(), 0));
    assert_eq!(parts.route, Route::Unchanged);
}

#[test]
fn corrupt_inputs_error_without_panicking() {
    let rgb = photo(120, 90, 8);
    let ov = overlay(60, 20);
    let p = Placement::gravity(Gravity::SouthEast, 3, 3);
    let inputs = [
        encode_jpeg(&rgb, 120, 90, JpegSpec::baseline((2, 2))),
        encode_jpeg(
            &rgb,
            120,
            90,
            JpegSpec {
                restart: 2,
                ..JpegSpec::baseline((2, 1))
            },
        ),
        encode_jpeg(
            &rgb,
            120,
            90,
            JpegSpec {
                progressive: true,
                ..JpegSpec::baseline((2, 2))
            },
        ),
        encode_png(&rgb, 120, 90, image::ExtendedColorType::Rgb8),
    ];
    for input in &inputs {
        for cut in (0..input.len()).step_by(7) {
            if let Err(e) = watermark(&input[..cut], &ov, p, 1.0) {
                assert!(matches!(e.http_status(), 400 | 415), "{e}");
            }
        }
        let mut rng = Rng(99);
        for _ in 0..300 {
            let mut bad = input.clone();
            for _ in 0..3 {
                let i = (rng.next() as usize) % bad.len();
                bad[i] = rng.next() as u8;
            }
            let _ = watermark(&bad, &ov, p, 1.0);
        }
    }
    let err = watermark(b"GIF89a....", &ov, p, 1.0).expect_err("gif");
    assert_eq!(err.http_status(), 415);
    let err = watermark(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 2], &ov, p, 1.0).expect_err("trunc");
    assert_eq!(err.http_status(), 400);
}

#[test]
fn too_large_is_refused_from_the_header() {
    let rgb = photo(64, 48, 4);
    let jpeg = encode_jpeg(&rgb, 64, 48, JpegSpec::baseline((2, 2)));
    let opts = Options {
        max_pixels: 1000,
        ..Options::new(Placement::Exact { x: 0, y: 0 })
    };
    let err = watermark_with(&jpeg, &overlay(10, 10), &opts).expect_err("too large");
    assert_eq!(err.http_status(), 413);
}

#[test]
fn overlay_helpers() {
    let ov = overlay(OW, OH);
    let half = ov.scaled(0.5).expect("scale");
    assert_eq!((half.width(), half.height()), (60, 20));
    let w = ov.resized_to_width(300).expect("width");
    assert_eq!((w.width(), w.height()), (300, 100));
    assert!(ov.scaled(0.0).is_err());
    assert!(ov.with_opacity(1.5).is_err());
    let faded = ov.with_opacity(0.0).expect("opacity");
    assert_eq!(faded.visible_bounds(), None);
    let png = encode_png(
        &overlay_rgba(OW, OH),
        OW,
        OH,
        image::ExtendedColorType::Rgba8,
    );
    let from_png = Overlay::from_png(&png).expect("png");
    assert_eq!(from_png.visible_bounds(), ov.visible_bounds());
    assert!(Overlay::from_png(b"not a png").is_err());
}

#[test]
fn png_garbage_after_the_signature_is_corrupt_not_too_large() {
    let mut bad = b"\x89PNG\r\n\x1a\n".to_vec();
    bad.extend_from_slice(&[7u8; 100]);
    let err =
        watermark(&bad, &overlay(8, 8), Placement::Exact { x: 0, y: 0 }, 1.0).expect_err("garbage");
    assert_eq!(err.http_status(), 400, "{err}");
}

#[test]
fn blending_accuracy_inside_gray_and_progressive_jpeg() {
    // The ±3 check of blending_accuracy_inside_jpeg, on the two other decoders' paths:
    // grayscale (luma only) and progressive (the coefficient route).
    let rgb = photo(W, H, 6);
    let ov_px = overlay_rgba(OW, OH);
    let ov = Overlay::from_rgba(OW as u32, OH as u32, ov_px.clone()).expect("overlay");
    for spec in [
        JpegSpec {
            quality: 100,
            gray: true,
            ..JpegSpec::baseline((1, 1))
        },
        JpegSpec {
            quality: 100,
            progressive: true,
            ..JpegSpec::baseline((1, 1))
        },
    ] {
        let input = encode_jpeg(&rgb, W, H, spec);
        let p = Placement::gravity(Gravity::NorthWest, 17, 11);
        let out = watermark(&input, &ov, p, 0.7).expect("watermark");
        let (before, w, h, ch) = decode_jpeg(&input);
        let (after, ..) = decode_jpeg(&out);
        let want = reference_composite(&before, w, h, ch, &ov_px, OW, OH, 17, 11, 0.7);
        let mut worst = 0;
        for j in 0..OH {
            for i in 0..OW {
                let k = ((11 + j) * w + 17 + i) * ch;
                for c in 0..ch {
                    worst = worst.max((want[k + c] as i32 - after[k + c] as i32).abs());
                }
            }
        }
        assert!(worst <= 3, "{spec:?}: max error {worst}");
    }
}
