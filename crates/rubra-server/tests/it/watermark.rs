//! `/overlays` and `POST /watermark` against the real app: storage and client isolation,
//! pixel-exactness outside the MCU rectangle, blending accuracy inside, placement, clipping,
//! errors, and remote overlays (revalidation, 304s, allow-list refusals).

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};
use axum::http::header::{ETAG, IF_NONE_MATCH, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use image::ImageEncoder;
use reqwest::Method;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

// ---------- test images ----------

/// Photo-like RGB: gradients, noise and hard edges.
fn photo(w: usize, h: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    let mut px = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let n = (s % 20) as f32 - 10.0;
            let edge = if (x + 2 * y) % 97 < 9 { 0.4 } else { 1.0 };
            let r = (40.0 + 180.0 * x as f32 / w as f32 + n) * edge;
            let g = 60.0 + 150.0 * y as f32 / h as f32 + 20.0 * (x as f32 * 0.07).sin() + n;
            let b = 200.0 - 100.0 * (x * y) as f32 / (w * h) as f32 + n;
            px.extend([r, g, b].map(|c| c.clamp(0.0, 255.0) as u8));
        }
    }
    px
}

/// An RGBA overlay: opaque "letters" on a translucent band; every pixel has alpha > 0, so
/// the changed rectangle is the overlay's rectangle.
fn overlay_rgba(w: usize, h: usize) -> Vec<u8> {
    let mut px = Vec::with_capacity(w * h * 4);
    for y in 0..h {
        for x in 0..w {
            let letter = (x / 9) % 3 != 2 && !(y * 4 / h).is_multiple_of(3) && x % 9 > 1;
            px.extend(if letter {
                [250, 250, 240, 255]
            } else {
                [20, 40, 160, 120]
            });
        }
    }
    px
}

fn png(px: &[u8], w: usize, h: usize, ct: image::ExtendedColorType) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(px, w as u32, h as u32, ct)
        .unwrap();
    out
}

fn solid_overlay(w: usize, h: usize, rgba: [u8; 4]) -> Vec<u8> {
    png(&rgba.repeat(w * h), w, h, image::ExtendedColorType::Rgba8)
}

fn jpeg(
    rgb: &[u8],
    w: usize,
    h: usize,
    quality: u8,
    sampling: jpeg_encoder::SamplingFactor,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, quality);
    enc.set_sampling_factor(sampling);
    enc.encode(rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

/// Decodes to RGB8 (JPEG: the same decoder for input and output).
fn decode_rgb(bytes: &[u8]) -> (Vec<u8>, usize, usize) {
    let img = image::load_from_memory(bytes).unwrap().to_rgb8();
    let (w, h) = img.dimensions();
    (img.into_raw(), w as usize, h as usize)
}

/// Straight-alpha "over" in 8-bit sRGB, the reference the server is compared against.
#[allow(clippy::too_many_arguments)]
fn reference_composite(
    dst: &[u8],
    w: usize,
    h: usize,
    ov: &[u8],
    ow: usize,
    oh: usize,
    (ox, oy): (i64, i64),
    opacity: f32,
) -> Vec<u8> {
    let mut out = dst.to_vec();
    for j in 0..oh as i64 {
        for i in 0..ow as i64 {
            let (x, y) = (ox + i, oy + j);
            if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
                continue;
            }
            let o = &ov[(j as usize * ow + i as usize) * 4..][..4];
            let a = o[3] as f32 / 255.0 * opacity;
            let d = &mut out[(y as usize * w + x as usize) * 3..][..3];
            for c in 0..3 {
                d[c] = (o[c] as f32 * a + d[c] as f32 * (1.0 - a)).round() as u8;
            }
        }
    }
    out
}

// ---------- helpers ----------

async fn put_overlay(app: &TestApp, key: &str, name: &str, body: Vec<u8>) -> reqwest::Response {
    app.with_key(key, Method::PUT, &format!("/overlays/{name}"))
        .header("content-type", "image/png")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn post_watermark(app: &TestApp, key: &str, query: &str, body: Vec<u8>) -> reqwest::Response {
    app.with_key(key, Method::POST, &format!("/watermark?{query}"))
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn watermarked(app: &TestApp, key: &str, query: &str, body: Vec<u8>, ct: &str) -> Vec<u8> {
    let resp = post_watermark(app, key, query, body).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap().to_vec();
    assert_eq!(status, 200, "{query}: {}", String::from_utf8_lossy(&bytes));
    assert_eq!(headers["content-type"], ct, "{query}");
    bytes
}

// ---------- /overlays ----------

#[tokio::test]
async fn overlays_are_stored_per_client() {
    let app = spawn_app().await;
    let (a_id, a) = app.create_client("a").await;
    let (_, b) = app.create_client("b").await;
    let logo = png(
        &overlay_rgba(50, 20),
        50,
        20,
        image::ExtendedColorType::Rgba8,
    );

    let resp = put_overlay(&app, &a, "logo", logo.clone()).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (
            body["name"].as_str(),
            body["width"].as_u64(),
            body["height"].as_u64()
        ),
        (Some("logo"), Some(50), Some(20))
    );
    assert_eq!(body["bytes"].as_u64(), Some(logo.len() as u64));
    assert_eq!(
        put_overlay(&app, &a, "logo", logo.clone()).await.status(),
        200
    );
    assert_eq!(
        put_overlay(&app, &a, "beard.v2", logo.clone())
            .await
            .status(),
        201
    );

    let got = app
        .with_key(&a, Method::GET, "/overlays/logo")
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-type"], "image/png");
    assert_eq!(got.bytes().await.unwrap().to_vec(), logo);

    let list: Value = app
        .with_key(&a, Method::GET, "/overlays")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["beard.v2", "logo"]);

    // Client B sees none of it, by name, in its list, or as a watermark.
    let resp = app
        .with_key(&b, Method::GET, "/overlays/logo")
        .send()
        .await
        .unwrap();
    assert_error(resp, 404, "not_found").await;
    let list: Value = app
        .with_key(&b, Method::GET, "/overlays")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], serde_json::json!([]));
    let img = png(&photo(64, 48, 1), 64, 48, image::ExtendedColorType::Rgb8);
    assert_error(
        post_watermark(&app, &b, "overlay=logo", img.clone()).await,
        404,
        "not_found",
    )
    .await;
    let resp = app
        .with_key(&b, Method::DELETE, "/overlays/logo")
        .send()
        .await
        .unwrap();
    assert_error(resp, 404, "not_found").await;

    // Admins name the client.
    let resp = app
        .admin(Method::GET, &format!("/overlays/logo?client={a_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app
        .admin(Method::GET, "/overlays/logo")
        .send()
        .await
        .unwrap();
    assert_error(resp, 422, "client_required").await;

    // Delete: gone for storage and for the cache of this process.
    assert_eq!(
        post_watermark(&app, &a, "overlay=logo&gravity=center", img.clone())
            .await
            .status(),
        200
    );
    let resp = app
        .with_key(&a, Method::DELETE, "/overlays/logo")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = app
        .with_key(&a, Method::DELETE, "/overlays/logo")
        .send()
        .await
        .unwrap();
    assert_error(resp, 404, "not_found").await;
    assert_error(
        post_watermark(&app, &a, "overlay=logo&gravity=center", img).await,
        404,
        "not_found",
    )
    .await;
    let resp = app.anon(Method::GET, "/overlays").send().await.unwrap();
    assert_error(resp, 401, "unauthorized").await;
}

#[tokio::test]
async fn replaced_overlay_is_used_at_once() {
    let app = spawn_app().await;
    let (_, a) = app.create_client("a").await;
    let img = png(
        &[128u8; 32 * 32 * 3],
        32,
        32,
        image::ExtendedColorType::Rgb8,
    );
    put_overlay(&app, &a, "dot", solid_overlay(4, 4, [255, 0, 0, 255])).await;
    let out = watermarked(&app, &a, "overlay=dot&x=0&y=0", img.clone(), "image/png").await;
    assert_eq!(&decode_rgb(&out).0[..3], &[255, 0, 0]);
    put_overlay(&app, &a, "dot", solid_overlay(4, 4, [0, 0, 255, 255])).await;
    let out = watermarked(&app, &a, "overlay=dot&x=0&y=0", img, "image/png").await;
    assert_eq!(&decode_rgb(&out).0[..3], &[0, 0, 255]);
}

#[tokio::test]
async fn bad_overlays_are_refused() {
    let app = spawn_app().await;
    let (_, a) = app.create_client("a").await;
    let ok = solid_overlay(4, 4, [1, 2, 3, 4]);
    for name in ["bad%20name", ".hidden", &"x".repeat(65)] {
        assert_error(
            put_overlay(&app, &a, name, ok.clone()).await,
            400,
            "invalid_overlay_name",
        )
        .await;
    }
    let gif = b"GIF89a\x01\x00\x01\x00".to_vec();
    assert_error(
        put_overlay(&app, &a, "g", gif).await,
        415,
        "unsupported_image",
    )
    .await;
    let resp = app
        .with_key(&a, Method::PUT, "/overlays/t")
        .header("content-type", "text/plain")
        .body(ok.clone())
        .send()
        .await
        .unwrap();
    assert_error(resp, 415, "unsupported_media_type").await;
    let mut corrupt = ok.clone();
    corrupt.truncate(40);
    assert_error(
        put_overlay(&app, &a, "c", corrupt).await,
        400,
        "corrupt_image",
    )
    .await;
    // A header announcing 100000×100000 is refused before decoding.
    let mut bomb = ok[..33].to_vec();
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    assert_error(
        put_overlay(&app, &a, "bomb", bomb).await,
        413,
        "image_too_large",
    )
    .await;
    let big = vec![0u8; 9 * 1024 * 1024];
    assert_error(
        put_overlay(&app, &a, "big", big).await,
        413,
        "overlay_too_large",
    )
    .await;
    // Nothing was stored by any of them.
    let list: Value = app
        .with_key(&a, Method::GET, "/overlays")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], serde_json::json!([]));
}

// ---------- POST /watermark ----------

/// The rectangle outside which a JPEG's pixels must not change: the overlay's rectangle
/// snapped out to the MCU grid, plus one pixel along subsampled axes (fancy upsampling
/// blends each chroma sample with its neighbour).
fn protected(
    rect: (i64, i64, usize, usize),
    mcu: (usize, usize),
    w: usize,
    h: usize,
) -> (usize, usize, usize, usize) {
    let (x, y, ow, oh) = rect;
    let x0 = x.max(0) as usize;
    let y0 = y.max(0) as usize;
    let x1 = ((x + ow as i64) as usize).min(w);
    let y1 = ((y + oh as i64) as usize).min(h);
    let mx = usize::from(mcu.0 > 8);
    let my = usize::from(mcu.1 > 8);
    (
        (x0 / mcu.0 * mcu.0).saturating_sub(mx),
        (y0 / mcu.1 * mcu.1).saturating_sub(my),
        (x1.div_ceil(mcu.0) * mcu.0 + mx).min(w),
        (y1.div_ceil(mcu.1) * mcu.1 + my).min(h),
    )
}

#[tokio::test]
async fn jpeg_is_untouched_outside_the_mcu_rectangle() {
    let app = spawn_app().await;
    let (_, a) = app.create_client("a").await;
    let (w, h, ow, oh) = (333, 257, 120, 40);
    put_overlay(
        &app,
        &a,
        "logo",
        png(
            &overlay_rgba(ow, oh),
            ow,
            oh,
            image::ExtendedColorType::Rgba8,
        ),
    )
    .await;
    let cases = [
        (jpeg_encoder::SamplingFactor::R_4_2_0, (16, 16)),
        (jpeg_encoder::SamplingFactor::R_4_2_2, (16, 8)),
        (jpeg_encoder::SamplingFactor::R_4_4_4, (8, 8)),
    ];
    for (sampling, mcu) in cases {
        let input = jpeg(&photo(w, h, 3), w, h, 90, sampling);
        let resp = post_watermark(
            &app,
            &a,
            "overlay=logo&gravity=southeast&dx=13&dy=9",
            input.clone(),
        )
        .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "image/jpeg");
        assert_eq!(resp.headers()["x-rubra-watermark-route"], "jpeg-fast");
        let out = resp.bytes().await.unwrap().to_vec();
        let (before, ..) = decode_rgb(&input);
        let (after, w2, h2) = decode_rgb(&out);
        assert_eq!((w2, h2), (w, h));
        let origin = ((w - ow - 13) as i64, (h - oh - 9) as i64);
        let (x0, y0, x1, y1) = protected((origin.0, origin.1, ow, oh), mcu, w, h);
        let mut changed = 0;
        for y in 0..h {
            for x in 0..w {
                let i = (y * w + x) * 3;
                if x >= x0 && x < x1 && y >= y0 && y < y1 {
                    changed += usize::from(before[i..i + 3] != after[i..i + 3]);
                } else {
                    assert_eq!(
                        before[i..i + 3],
                        after[i..i + 3],
                        "({x},{y}) changed, {sampling:?}"
                    );
                }
            }
        }
        assert!(
            changed > ow * oh / 2,
            "{sampling:?}: only {changed} pixels changed"
        );
    }
}

/// The response is the library's output byte for byte, though the server sends the
/// input's unchanged head and tail from the request's own buffer (issue #24): at the top,
/// where nearly the whole scan is the tail, at the bottom, where it is the head, and on a
/// file with restart markers.
#[tokio::test]
async fn the_response_is_the_watermarkers_output_head_and_tail_shared() {
    let app = spawn_app().await;
    let (_, a) = app.create_client("a").await;
    let (w, h, ow, oh) = (333, 257, 120, 40);
    let logo = png(
        &overlay_rgba(ow, oh),
        ow,
        oh,
        image::ExtendedColorType::Rgba8,
    );
    put_overlay(&app, &a, "logo", logo.clone()).await;
    let overlay = rubra_watermark::Overlay::from_png(&logo).unwrap();
    let plain = jpeg(
        &photo(w, h, 5),
        w,
        h,
        90,
        jpeg_encoder::SamplingFactor::R_4_2_0,
    );
    let mut restarts = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut restarts, 90);
    enc.set_restart_interval(3);
    enc.encode(
        &photo(w, h, 6),
        w as u16,
        h as u16,
        jpeg_encoder::ColorType::Rgb,
    )
    .unwrap();
    for input in [plain, restarts] {
        for (gravity, placement) in [
            ("northwest", rubra_watermark::Gravity::NorthWest),
            ("southeast", rubra_watermark::Gravity::SouthEast),
            ("center", rubra_watermark::Gravity::Center),
        ] {
            let query = format!("overlay=logo&gravity={gravity}&dx=7&dy=5");
            let got = watermarked(&app, &a, &query, input.clone(), "image/jpeg").await;
            let opts =
                rubra_watermark::Options::new(rubra_watermark::Placement::gravity(placement, 7, 5));
            let want = rubra_watermark::watermark_with(&input, &overlay, &opts).unwrap();
            assert_eq!(want.route, rubra_watermark::Route::JpegFast, "{query}");
            assert!(
                got == want.bytes,
                "{query}: the response is not the library's output"
            );
        }
    }
}

#[tokio::test]
async fn jpeg_blending_is_within_3_of_the_reference() {
    let app = spawn_app().await;
    let (_, a) = app.create_client("a").await;
    let (w, h, ow, oh) = (240, 160, 100, 30);
    let ov = overlay_rgba(ow, oh);
    put_overlay(
        &app,
        &a,
        "logo",
        png(&ov, ow, oh, image::ExtendedColorType::Rgba8),
    )
    .await;
    let input = jpeg(
        &photo(w, h, 5),
        w,
        h,
        100,
        jpeg_encoder::SamplingFactor::R_4_4_4,
    );
    for opacity in [1.0f32, 0.5] {
        let q = format!("overlay=logo&gravity=northwest&dx=21&dy=17&opacity={opacity}");
        let out = watermarked(&app, &a, &q, input.clone(), "image/jpeg").await;
        let (before, ..) = decode_rgb(&input);
        let (after, ..) = decode_rgb(&out);
        let want = reference_composite(&before, w, h, &ov, ow, oh, (21, 17), opacity);
        // ±3 per channel is the target. A q100 JPEG cannot always hold it exactly: YCbCr
        // rounding is amplified by up to 1.772 on the way back to RGB, and libjpeg's own
        // `cjpeg -quality 100 -sample 1x1 -dct float` of this very reference composite misses
        // it by one level on one value in ~9000 (measured). So: no value beyond ±4, and at
        // most 1 in 1000 beyond ±3.
        let (mut worst, mut over3, mut n) = (0, 0, 0);
        for y in 17..17 + oh {
            for x in 21..21 + ow {
                for c in 0..3 {
                    let i = (y * w + x) * 3 + c;
                    let e = (want[i] as i32 - after[i] as i32).abs();
                    worst = worst.max(e);
                    over3 += usize::from(e > 3);
                    n += 1;
                }
            }
        }
        assert!(worst <= 4, "opacity {opacity}: worst error {worst}");
        assert!(
            over3 * 1000 <= n,
            "opacity {opacity}: {over3} of {n} values beyond ±3"
        );
    }
}

#[tokio::test]
async fn png_in_png_out_matches_the_reference() {
    let app = spawn_app().await;
    let (_, a) = app.create_client("a").await;
    let (w, h, ow, oh) = (200, 120, 60, 20);
    let ov = overlay_rgba(ow, oh);
    put_overlay(
        &app,
        &a,
        "logo",
        png(&ov, ow, oh, image::ExtendedColorType::Rgba8),
    )
    .await;
    let rgb = photo(w, h, 9);
    let input = png(&rgb, w, h, image::ExtendedColorType::Rgb8);
    let out = watermarked(
        &app,
        &a,
        "overlay=logo&x=30&y=-5&opacity=0.8",
        input,
        "image/png",
    )
    .await;
    let (got, ..) = decode_rgb(&out);
    let want = reference_composite(&rgb, w, h, &ov, ow, oh, (30, -5), 0.8);
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (*a as i32 - *b as i32).abs())
        .max()
        .unwrap();
    assert!(worst <= 1, "worst error {worst}");
    // Outside the (clipped) overlay nothing changed at all.
    for y in 0..h {
        for x in 0..w {
            if !(30..90).contains(&x) || y >= 15 {
                let i = (y * w + x) * 3;
                assert_eq!(got[i..i + 3], rgb[i..i + 3], "({x},{y})");
            }
        }
    }
}

/// x, y, width, height.
type Rect = (usize, usize, usize, usize);

/// The rectangle of pure red pixels in a decoded PNG: (x, y, w, h).
fn red_rect(rgb: &[u8], w: usize) -> (usize, usize, usize, usize) {
    let red: Vec<(usize, usize)> = rgb
        .chunks_exact(3)
        .enumerate()
        .filter(|(_, p)| *p == [255, 0, 0])
        .map(|(i, _)| (i % w, i / w))
        .collect();
    let x0 = red.iter().map(|p| p.0).min().unwrap();
    let x1 = red.iter().map(|p| p.0).max().unwrap();
    let y0 = red.iter().map(|p| p.1).min().unwrap();
    let y1 = red.iter().map(|p| p.1).max().unwrap();
    assert_eq!(
        red.len(),
        (x1 - x0 + 1) * (y1 - y0 + 1),
        "one solid rectangle"
    );
    (x0, y0, x1 - x0 + 1, y1 - y0 + 1)
}

#[tokio::test]
async fn every_gravity_offsets_sizes_and_clipping() {
    let app = spawn_app().await;
    let (_, a) = app.create_client("a").await;
    put_overlay(&app, &a, "red", solid_overlay(10, 6, [255, 0, 0, 255])).await;
    let (w, h) = (64, 48);
    let img = png(&[100u8; 64 * 48 * 3], w, h, image::ExtendedColorType::Rgb8);
    let cases: &[(&str, Rect)] = &[
        ("gravity=north&dx=2&dy=3", (29, 3, 10, 6)),
        ("gravity=south&dx=2&dy=3", (29, 39, 10, 6)),
        ("gravity=east&dx=2&dy=3", (52, 24, 10, 6)),
        ("gravity=west&dx=2&dy=3", (2, 24, 10, 6)),
        ("gravity=northeast&dx=2&dy=3", (52, 3, 10, 6)),
        ("gravity=northwest&dx=2&dy=3", (2, 3, 10, 6)),
        ("gravity=southeast&dx=2&dy=3", (52, 39, 10, 6)),
        ("gravity=southwest&dx=2&dy=3", (2, 39, 10, 6)),
        ("gravity=center&dx=2&dy=3", (29, 24, 10, 6)),
        ("gravity=centre", (27, 21, 10, 6)),
        ("", (54, 42, 10, 6)), // south-east by default
        ("x=5&y=7", (5, 7, 10, 6)),
        ("x=0&y=0&scale=2", (0, 0, 20, 12)),
        ("x=0&y=0&width=5", (0, 0, 5, 3)),
        // Partly outside: clipped.
        ("x=-4&y=-2", (0, 0, 6, 4)),
        ("x=60&y=45", (60, 45, 4, 3)),
        ("gravity=southeast&dx=-7&dy=-4", (61, 46, 3, 2)),
    ];
    for (q, want) in cases {
        let q = format!("overlay=red&{q}");
        let out = watermarked(&app, &a, &q, img.clone(), "image/png").await;
        let (rgb, ..) = decode_rgb(&out);
        assert_eq!(red_rect(&rgb, w), *want, "{q}");
    }
    // Entirely outside: 422.
    for q in [
        "x=64&y=0",
        "x=-10&y=0",
        "gravity=southeast&dy=48",
        "x=0&y=-6",
    ] {
        let resp = post_watermark(&app, &a, &format!("overlay=red&{q}"), img.clone()).await;
        assert_error(resp, 422, "overlay_outside_image").await;
    }
}

#[tokio::test]
async fn bad_requests_are_refused_with_the_right_status() {
    let app = spawn_app().await;
    let (_, a) = app.create_client("a").await;
    put_overlay(&app, &a, "red", solid_overlay(10, 6, [255, 0, 0, 255])).await;
    let good_jpeg = jpeg(
        &photo(64, 48, 2),
        64,
        48,
        90,
        jpeg_encoder::SamplingFactor::R_4_2_0,
    );
    // Corrupt bodies: 400.
    let mut truncated = good_jpeg.clone();
    truncated.truncate(good_jpeg.len() / 3);
    let mut garbage_png = b"\x89PNG\r\n\x1a\n".to_vec();
    garbage_png.extend_from_slice(&[7u8; 100]);
    let header_only = good_jpeg[..good_jpeg.len().min(200)].to_vec();
    for body in [
        truncated,
        garbage_png,
        header_only,
        vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 2],
    ] {
        let resp = post_watermark(&app, &a, "overlay=red", body).await;
        assert_error(resp, 400, "corrupt_image").await;
    }
    // Not JPEG or PNG: 415, by bytes or by Content-Type.
    let resp = post_watermark(
        &app,
        &a,
        "overlay=red",
        b"GIF89a\x01\x00\x01\x00....".to_vec(),
    )
    .await;
    assert_error(resp, 415, "unsupported_image").await;
    let resp = app
        .with_key(&a, Method::POST, "/watermark?overlay=red")
        .header("content-type", "text/plain")
        .body(good_jpeg.clone())
        .send()
        .await
        .unwrap();
    assert_error(resp, 415, "unsupported_media_type").await;
    // Unknown overlay: 404.
    let resp = post_watermark(&app, &a, "overlay=nope", good_jpeg.clone()).await;
    assert_error(resp, 404, "not_found").await;
    // Bad parameters: 400.
    for q in [
        "",
        "overlay=red&overlay_url=http://127.0.0.1/x.png",
        "overlay=red&gravity=up",
        "overlay=red&opacity=2",
        "overlay=red&x=3",
        "overlay=red&scale=2&width=4",
        "overlay=red&dx=abc",
    ] {
        let resp = post_watermark(&app, &a, q, good_jpeg.clone()).await;
        assert_eq!(resp.status(), 400, "{q}");
    }
    let resp = post_watermark(&app, &a, "overlay=red", Vec::new()).await;
    assert_error(resp, 400, "empty_body").await;
}

#[tokio::test]
async fn too_many_pixels_are_refused_before_decoding() {
    let app = spawn_app_with(|c| c.max_pixels = Some(1000)).await;
    let (_, a) = app.create_client("a").await;
    put_overlay(&app, &a, "red", solid_overlay(10, 6, [255, 0, 0, 255])).await;
    let img = jpeg(
        &photo(64, 48, 2),
        64,
        48,
        90,
        jpeg_encoder::SamplingFactor::R_4_2_0,
    );
    assert_error(
        post_watermark(&app, &a, "overlay=red", img).await,
        413,
        "image_too_large",
    )
    .await;
}

// ---------- remote overlays ----------

/// A site serving one overlay whose content and ETag the test changes; counts what it sends.
#[derive(Default)]
struct Site {
    content: Mutex<(Vec<u8>, String)>,
    requests: AtomicUsize,
    full: AtomicUsize,
    not_modified: AtomicUsize,
    bytes_sent: AtomicUsize,
}

impl Site {
    fn set(&self, png: Vec<u8>, etag: &str) {
        *self.content.lock().unwrap() = (png, format!("\"{etag}\""));
    }
    fn counts(&self) -> (usize, usize, usize, usize) {
        let l = |a: &AtomicUsize| a.load(Ordering::SeqCst);
        (
            l(&self.requests),
            l(&self.full),
            l(&self.not_modified),
            l(&self.bytes_sent),
        )
    }
}

async fn site() -> (Arc<Site>, u16) {
    use axum::extract::State;
    let site = Arc::new(Site::default());
    async fn beard(State(s): State<Arc<Site>>, h: HeaderMap) -> axum::response::Response {
        s.requests.fetch_add(1, Ordering::SeqCst);
        let (body, etag) = s.content.lock().unwrap().clone();
        if h.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
            s.not_modified.fetch_add(1, Ordering::SeqCst);
            return (StatusCode::NOT_MODIFIED, [(ETAG, etag)]).into_response();
        }
        s.full.fetch_add(1, Ordering::SeqCst);
        s.bytes_sent.fetch_add(body.len(), Ordering::SeqCst);
        ([(ETAG, etag)], body).into_response()
    }
    async fn elsewhere(State(s): State<Arc<Site>>) -> axum::response::Response {
        s.requests.fetch_add(1, Ordering::SeqCst);
        (
            StatusCode::FOUND,
            [(LOCATION, "http://10.255.255.1/beard.png")],
        )
            .into_response()
    }
    let app = axum::Router::new()
        .route("/beard.png", axum::routing::get(beard))
        .route("/moved.png", axum::routing::get(elsewhere))
        .with_state(Arc::clone(&site));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (site, port)
}

#[tokio::test]
async fn remote_overlay_is_revalidated_and_a_change_is_used_at_once() {
    let (site, port) = site().await;
    let red = solid_overlay(8, 8, [255, 0, 0, 255]);
    site.set(red.clone(), "v1");
    let app = spawn_app_with(|c| c.fetch_allow = Some(vec!["127.0.0.1".into()])).await;
    let (_, a) = app.create_client("a").await;
    let img = png(&[90u8; 32 * 32 * 3], 32, 32, image::ExtendedColorType::Rgb8);
    let q = format!("overlay_url=http://127.0.0.1:{port}/beard.png&x=0&y=0");

    let out = watermarked(&app, &a, &q, img.clone(), "image/png").await;
    assert_eq!(&decode_rgb(&out).0[..3], &[255, 0, 0]);
    assert_eq!(site.counts(), (1, 1, 0, red.len()));

    // Unchanged: each use revalidates, the site answers 304, no byte of the PNG is sent again.
    for _ in 0..3 {
        let out = watermarked(&app, &a, &q, img.clone(), "image/png").await;
        assert_eq!(&decode_rgb(&out).0[..3], &[255, 0, 0]);
    }
    assert_eq!(site.counts(), (4, 1, 3, red.len()));

    // Changed (new body, new ETag): the very next request uses it.
    let blue = solid_overlay(8, 8, [0, 0, 255, 255]);
    site.set(blue.clone(), "v2");
    let out = watermarked(&app, &a, &q, img.clone(), "image/png").await;
    assert_eq!(&decode_rgb(&out).0[..3], &[0, 0, 255]);
    assert_eq!(site.counts(), (5, 2, 3, red.len() + blue.len()));

    // Something that is not a PNG at the URL: 422, and no overlay is kept from it.
    site.set(b"<html>moved</html>".to_vec(), "v3");
    let resp = post_watermark(&app, &a, &q, img).await;
    assert_error(resp, 422, "remote_overlay_unusable").await;
}

#[tokio::test]
async fn overlay_urls_off_the_allow_list_are_403() {
    let (site, port) = site().await;
    site.set(solid_overlay(8, 8, [255, 0, 0, 255]), "v1");
    let app = spawn_app_with(|c| c.fetch_allow = Some(vec!["127.0.0.1".into()])).await;
    let (_, a) = app.create_client("a").await;
    let img = png(&[90u8; 32 * 32 * 3], 32, 32, image::ExtendedColorType::Rgb8);
    for url in [
        format!("http://localhost:{port}/beard.png"),
        format!("http://127.0.0.2:{port}/beard.png"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/beard.png".to_owned(),
        "https://example.com/beard.png".to_owned(),
        // On the list, but redirecting off it.
        format!("http://127.0.0.1:{port}/moved.png"),
    ] {
        let q = format!("overlay_url={url}");
        let resp = post_watermark(&app, &a, &q, img.clone()).await;
        assert_error(resp, 403, "fetch_forbidden").await;
    }
    // Only the redirect itself reached the site.
    assert_eq!(site.counts().0, 1);
    let resp = post_watermark(&app, &a, "overlay_url=ftp://127.0.0.1/x.png", img.clone()).await;
    assert_error(resp, 400, "invalid_url").await;

    // With no allow-list at all, nothing may be fetched.
    let closed = spawn_app().await;
    let (_, c) = closed.create_client("c").await;
    let q = format!("overlay_url=http://127.0.0.1:{port}/beard.png");
    assert_error(
        post_watermark(&closed, &c, &q, img).await,
        403,
        "fetch_forbidden",
    )
    .await;
    assert_eq!(site.counts().0, 1);
}
