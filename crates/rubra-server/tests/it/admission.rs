//! One client cannot hurt the others: image work beyond the pool, its queue or the pixel
//! budget is refused at once with 503 `overloaded`; streams are capped per client; silent and
//! slow connections are closed; connections beyond the cap wait for a free place.

use crate::helpers::{SseReader, TestApp, assert_error, spawn_app_with};
use image::{ImageBuffer, Rgba, RgbaImage};
use reqwest::Method;
use rubra_server::{ConfigArgs, Settings};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A PNG of `w`×`h` grey pixels: a few KB to send, seconds to decode in a debug build.
fn big_png(w: u32, h: u32) -> Vec<u8> {
    let img: RgbaImage = ImageBuffer::from_pixel(w, h, Rgba([128, 128, 128, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Side of the square test image: big enough that decoding it takes a while.
const SIDE: u32 = 6000;

/// Sends `n` `POST /red` of `png` at once; returns each (status, code, Retry-After, elapsed).
async fn red_flood(
    app: &TestApp,
    key: &str,
    png: &[u8],
    n: usize,
) -> Vec<(u16, String, Option<String>, Duration)> {
    let started = Instant::now();
    let sends = (0..n).map(|_| {
        let req = app
            .with_key(key, Method::POST, "/red")
            .header("content-type", "image/png")
            .body(png.to_vec());
        async move {
            let resp = req.send().await.unwrap();
            let elapsed = started.elapsed();
            let status = resp.status().as_u16();
            let retry = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: serde_json::Value = resp.json().await.unwrap();
            let code = body["error"]["code"].as_str().unwrap_or("").to_owned();
            (status, code, retry, elapsed)
        }
    });
    futures_join_all(sends).await
}

/// Runs the futures concurrently on the test's runtime and collects their outputs in order.
async fn futures_join_all<F, T>(futs: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// Asserts that `results` hold exactly `ok` successes and that every other answer is a fast
/// 503 `overloaded` with `Retry-After`.
fn assert_refused_at_once(results: &[(u16, String, Option<String>, Duration)], ok: usize) {
    let admitted = results.iter().filter(|r| r.0 == 200).count();
    assert_eq!(admitted, ok, "admitted: {results:?}");
    let slowest_ok = results
        .iter()
        .filter(|r| r.0 == 200)
        .map(|r| r.3)
        .max()
        .unwrap();
    for (status, code, retry, elapsed) in results.iter().filter(|r| r.0 != 200) {
        assert_eq!((*status, code.as_str()), (503, "overloaded"), "{results:?}");
        assert_eq!(retry.as_deref(), Some("1"), "Retry-After");
        assert!(
            *elapsed < Duration::from_secs(1) && *elapsed < slowest_ok,
            "refused after {elapsed:?} (the admitted ones took up to {slowest_ok:?})"
        );
    }
}

#[tokio::test]
async fn red_flood_beyond_the_pool_and_its_queue_is_refused_at_once_with_503_overloaded() {
    let app = spawn_app_with(|c| {
        c.admission_slots = Some(1);
        c.admission_queue = Some(1);
        // The whole gate to one client: this is about the pool and its queue, not the share.
        c.admission_client_share = Some(100);
    })
    .await;
    let (_, key) = app.create_client("flood").await;
    let png = big_png(SIDE, SIDE);
    // One runs, one waits, two are refused without waiting for either.
    let results = red_flood(&app, &key, &png, 4).await;
    assert_refused_at_once(&results, 2);
    // The server recovers: the next request is admitted.
    let again = red_flood(&app, &key, &png, 1).await;
    assert_eq!(again[0].0, 200, "{again:?}");
}

#[tokio::test]
async fn decompression_flood_beyond_the_pixel_budget_is_refused_at_once_with_503_overloaded() {
    let pixels = u64::from(SIDE) * u64::from(SIDE);
    let app = spawn_app_with(|c| {
        c.admission_slots = Some(4);
        c.admission_queue = Some(8);
        c.max_pixels = Some(pixels);
        // Room for one image being decoded, not two.
        c.max_decode_pixels_in_flight = Some(pixels + pixels / 2);
    })
    .await;
    let (_, key) = app.create_client("bomber").await;
    let png = big_png(SIDE, SIDE);
    let results = red_flood(&app, &key, &png, 3).await;
    assert_refused_at_once(&results, 1);

    // Uploads and watermarks go through the same gate; a free budget admits them again.
    let resp = app
        .with_key(&key, Method::POST, "/images")
        .header("content-type", "image/png")
        .body(png.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    // One pixel more than max-pixels is refused as too large, not as overloaded.
    let over = big_png(SIDE + 1, SIDE);
    let resp = app
        .with_key(&key, Method::POST, "/red")
        .body(over)
        .send()
        .await
        .unwrap();
    assert_error(resp, 413, "image_too_large").await;
}

#[tokio::test]
async fn upload_and_watermark_floods_are_refused_at_once_with_503_overloaded() {
    let app = spawn_app_with(|c| {
        c.admission_slots = Some(1);
        c.admission_queue = Some(0);
    })
    .await;
    let (_, key) = app.create_client("flood").await;
    let overlay = big_png(8, 8);
    let resp = app
        .with_key(&key, Method::PUT, "/overlays/logo")
        .header("content-type", "image/png")
        .body(overlay)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let png = big_png(SIDE, SIDE);
    // POST /red reaches the decoder without a database round trip first.
    let slow = {
        let req = app
            .with_key(&key, Method::POST, "/red")
            .header("content-type", "image/png")
            .body(png.clone());
        tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
    };
    // While it decodes, an upload, a watermark and an overlay upload find no free slot.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = app
        .with_key(&key, Method::POST, "/images")
        .header("content-type", "image/png")
        .body(png.clone())
        .send()
        .await
        .unwrap();
    assert_error(resp, 503, "overloaded").await;
    let resp = app
        .with_key(&key, Method::POST, "/watermark?overlay=logo")
        .header("content-type", "image/png")
        .body(png.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_error(resp, 503, "overloaded").await;
    let resp = app
        .with_key(&key, Method::PUT, "/overlays/other")
        .header("content-type", "image/png")
        .body(big_png(8, 8))
        .send()
        .await
        .unwrap();
    assert_error(resp, 503, "overloaded").await;
    assert!(
        !slow.is_finished(),
        "the refusals came while the admitted request ran"
    );
    assert_eq!(slow.await.unwrap(), 200);
}

#[test]
fn a_pixel_budget_below_max_pixels_is_refused_at_start_up() {
    let err = Settings::validate(ConfigArgs {
        max_pixels: Some(1000),
        max_decode_pixels_in_flight: Some(999),
        ..ConfigArgs::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("`max-decode-pixels-in-flight`"), "{err}");
    let s = Settings::validate(ConfigArgs::default()).unwrap();
    assert!(s.max_decode_pixels_in_flight >= s.max_pixels);
    assert!(s.admission_queue >= 8 && s.admission_queue >= 4 * s.admission_slots);
    assert_eq!(s.max_streams_per_client, 16);
    assert_eq!(s.admission_client_share, 50);
    for share in [0, 101] {
        let err = Settings::validate(ConfigArgs {
            admission_client_share: Some(share),
            ..ConfigArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("`admission-client-share`"), "{err}");
    }
    assert_eq!(s.header_timeout, Duration::from_secs(10));
}

/// Opens `path` as a stream and answers the response (status and all).
async fn open_stream(app: &TestApp, key: &str, path: &str) -> reqwest::Response {
    app.with_key(key, Method::GET, path).send().await.unwrap()
}

#[tokio::test]
async fn stream_flood_is_capped_per_client_with_429_and_a_closed_stream_frees_its_place() {
    let app = spawn_app_with(|c| {
        c.max_streams_per_client = Some(3);
        c.fetch_allow = Some(vec!["127.0.0.1".into()]);
    })
    .await;
    let (_, a) = app.create_client("a").await;
    let (_, b) = app.create_client("b").await;
    let resp = app
        .with_key(&a, Method::POST, "/watches")
        .json(&json!({"url": "http://127.0.0.1:9/feed.json"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let watch: serde_json::Value = resp.json().await.unwrap();
    let watch_stream = format!("/watches/{}/stream", watch["id"].as_str().unwrap());

    let first = SseReader::open(&app, &a, "/notifications/stream", None).await;
    let _second = SseReader::open(&app, &a, "/notifications/stream", None).await;
    let _third = SseReader::open(&app, &a, &watch_stream, None).await;
    // Both kinds of stream count against the same cap.
    for path in ["/notifications/stream", watch_stream.as_str()] {
        let resp = open_stream(&app, &a, path).await;
        assert_eq!(resp.headers()["retry-after"], "1");
        assert_error(resp, 429, "too_many_streams").await;
    }
    // Another client is not affected.
    let _other = SseReader::open(&app, &b, "/notifications/stream", None).await;

    // Closing one frees its place (once the server sees the connection go).
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let resp = open_stream(&app, &a, "/notifications/stream").await;
        if resp.status() == 200 {
            break;
        }
        assert_error(resp, 429, "too_many_streams").await;
        assert!(
            Instant::now() < deadline,
            "the closed stream was never counted down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads until the server closes the connection; the time it took, or None if it stayed open
/// for `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut sink = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut sink)).await {
        Ok(_) => Some(started.elapsed()), // EOF or reset: closed
        Err(_) => None,
    }
}

#[tokio::test]
async fn slow_loris_a_partial_request_line_is_closed_after_the_header_timeout() {
    let app = spawn_app_with(|c| c.header_timeout_ms = Some(1000)).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut partial = TcpStream::connect(&addr).await.unwrap();
    partial.write_all(b"GET /healthz HT").await.unwrap();
    let mut silent = TcpStream::connect(&addr).await.unwrap();

    // Meanwhile, a normal request on another connection is served at once.
    let started = Instant::now();
    let resp = app.anon(Method::GET, "/healthz").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(started.elapsed() < Duration::from_millis(900));

    for (what, conn) in [("partial", &mut partial), ("silent", &mut silent)] {
        let took = closed_within(conn, Duration::from_secs(5)).await;
        assert!(took.is_some(), "the {what} connection was never closed");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the header timeout"
    );
}

#[tokio::test]
async fn idle_connection_is_closed_after_the_idle_timeout() {
    let app = spawn_app_with(|c| c.idle_timeout_ms = Some(500)).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    // An HTTP/2 connection (prior knowledge) that says nothing after its preface.
    let mut h2 = TcpStream::connect(&addr).await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let took = closed_within(&mut h2, Duration::from_secs(5)).await;
    let took = took.expect("the idle HTTP/2 connection was never closed");
    assert!(took >= Duration::from_millis(400), "closed after {took:?}");
}

#[tokio::test]
async fn connection_flood_beyond_max_connections_waits_and_is_served_once_a_place_frees() {
    let app = spawn_app_with(|c| c.max_connections = Some(2)).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        // Served, and kept alive: the connection holds its place.
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        holders.push(s);
    }
    let extra = {
        let req = app.anon(Method::GET, "/healthz");
        tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()) })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !extra.is_finished(),
        "a third connection was served beyond the cap"
    );
    drop(holders.pop());
    let status = tokio::time::timeout(Duration::from_secs(5), extra)
        .await
        .expect("served once a place freed")
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn shutdown_is_not_held_open_by_streams_or_silent_connections() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::validate(crate::helpers::test_config(&dir)).unwrap();
    let telemetry = rubra_telemetry::init(&rubra_telemetry::TelemetryConfig {
        format: rubra_telemetry::LogFormat::Json,
        slow_ms: None,
        filter: "warn".into(),
    })
    .unwrap();
    let app = rubra_server::Application::build(settings, telemetry)
        .await
        .unwrap();
    let addr = app.local_addr();
    let admin = app.admin_key().unwrap().reveal().to_owned();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let created: serde_json::Value = http
        .post(format!("{base}/clients"))
        .bearer_auth(&admin)
        .json(&json!({"name": "c"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["api_key"].as_str().unwrap();
    let stream = http
        .get(format!("{base}/notifications/stream"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let _silent = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stopped though a stream and a silent connection were open")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(stream);
}

/// Spawns one `POST /red` of `png` for `key`; its status once answered.
fn red_in_background(app: &TestApp, key: &str, png: &[u8]) -> tokio::task::JoinHandle<u16> {
    let req = app
        .with_key(key, Method::POST, "/red")
        .header("content-type", "image/png")
        .body(png.to_vec());
    tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
}

#[tokio::test]
async fn one_client_flooding_the_image_gate_leaves_room_for_another() {
    let pixels = u64::from(SIDE) * u64::from(SIDE);
    let png = big_png(SIDE, SIDE);

    // Places: one slot and three waiting places; the flooder may hold two of the four.
    let app = spawn_app_with(|c| {
        c.admission_slots = Some(1);
        c.admission_queue = Some(3);
        c.max_pixels = Some(pixels);
        c.max_decode_pixels_in_flight = Some(pixels * 10);
    })
    .await;
    let (_, hog) = app.create_client("hog").await;
    let (_, other) = app.create_client("other").await;
    let flood: Vec<_> = (0..4)
        .map(|_| red_in_background(&app, &hog, &png))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let results = red_flood(&app, &other, &png, 1).await;
    assert_eq!(
        results[0].0, 200,
        "the other client was refused: {results:?}"
    );
    let mut statuses = Vec::new();
    for f in flood {
        statuses.push(f.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 503, 503], "the flooder's own requests");

    // Pixels: room for two and a half images; the flooder may hold half of it (or its
    // first image, whatever its size), so the other client's image still fits.
    let app = spawn_app_with(|c| {
        c.admission_slots = Some(4);
        c.admission_queue = Some(8);
        c.max_pixels = Some(pixels);
        c.max_decode_pixels_in_flight = Some(pixels * 5 / 2);
    })
    .await;
    let (_, hog) = app.create_client("hog").await;
    let (_, other) = app.create_client("other").await;
    let flood: Vec<_> = (0..3)
        .map(|_| red_in_background(&app, &hog, &png))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let results = red_flood(&app, &other, &png, 1).await;
    assert_eq!(
        results[0].0, 200,
        "the other client was refused: {results:?}"
    );
    let mut statuses = Vec::new();
    for f in flood {
        statuses.push(f.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 503, 503], "the flooder's own requests");
}

/// Serves `png` at any path on 127.0.0.1; the port and how many GETs it answered.
async fn png_site(png: Vec<u8>) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let gets = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&gets);
    let router = axum::Router::new().fallback(move || {
        let png = png.clone();
        counted.fetch_add(1, Ordering::SeqCst);
        async move { ([("content-type", "image/png")], png) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (port, gets)
}

#[tokio::test]
async fn overlay_url_decodes_pass_the_admission_gate() {
    let pixels = u64::from(SIDE) * u64::from(SIDE);
    let (port, gets) = png_site(big_png(100, 100)).await;
    // Room for the held image and 100 pixels more: the 8×8 body fits, the 100×100 overlay
    // does not.
    let app = spawn_app_with(|c| {
        c.admission_slots = Some(4);
        c.admission_queue = Some(4);
        c.max_pixels = Some(pixels);
        c.max_decode_pixels_in_flight = Some(pixels + 100);
        c.fetch_allow = Some(vec!["127.0.0.1".into()]);
    })
    .await;
    let (_, holder) = app.create_client("holder").await;
    let (_, a) = app.create_client("a").await;
    let held = red_in_background(&app, &holder, &big_png(SIDE, SIDE));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let path = format!("/watermark?overlay_url=http://127.0.0.1:{port}/o.png&x=0&y=0");
    let resp = app
        .with_key(&a, Method::POST, &path)
        .header("content-type", "image/png")
        .body(big_png(8, 8))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    assert_error(resp, 503, "overloaded").await;
    assert!(
        !held.is_finished(),
        "the refusal came while the held image decoded"
    );
    assert_eq!(held.await.unwrap(), 200);

    // Once the budget is free the same overlay is fetched again (nothing was kept from the
    // refused request) and used.
    let resp = app
        .with_key(&a, Method::POST, &path)
        .header("content-type", "image/png")
        .body(big_png(8, 8))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(gets.load(std::sync::atomic::Ordering::SeqCst), 2);
}
