//! `/images` and `/red` over HTTP: dedupe, formats, limits, isolation, listing.

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};
use image::{ImageBuffer, Rgba, RgbaImage};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

/// A PNG whose first `red` pixels (of w·h) are pure red and the rest grey: red = red/(w·h).
fn png_with_red(w: u32, h: u32, red: u32) -> Vec<u8> {
    let img: RgbaImage = ImageBuffer::from_fn(w, h, |x, y| {
        if y * w + x < red {
            Rgba([255, 0, 0, 255])
        } else {
            Rgba([128, 128, 128, 255])
        }
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn post_image(app: &TestApp, key: &str, bytes: Vec<u8>, ct: &str) -> reqwest::Response {
    app.with_key(key, Method::POST, "/images")
        .header("content-type", ct)
        .body(bytes)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn upload_measures_exactly_and_dedupes() {
    let app = spawn_app().await;
    let (_, key) = app.create_client("acme").await;
    let png = png_with_red(10, 10, 27);
    let resp = post_image(&app, &key, png.clone(), "image/png").await;
    assert_eq!(resp.status(), 201);
    let first: Value = resp.json().await.unwrap();
    assert_eq!(first["format"], "png");
    assert_eq!(first["width"], 10);
    assert_eq!(first["red"], 0.27);
    assert_eq!(first["bytes"], png.len());
    let sha = first["id"].as_str().unwrap();
    assert_eq!(sha.len(), 64);

    // The same bytes again: 200 and the same body.
    let resp = post_image(&app, &key, png.clone(), "image/png").await;
    assert_eq!(resp.status(), 200);
    let second: Value = resp.json().await.unwrap();
    assert_eq!(first, second);

    // HEAD, GET, info.
    let path = format!("/images/{sha}");
    let head = app
        .with_key(&key, Method::HEAD, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let got = app.with_key(&key, Method::GET, &path).send().await.unwrap();
    assert_eq!(got.headers()["content-type"], "image/png");
    assert_eq!(got.bytes().await.unwrap().as_ref(), png.as_slice());
    let info: Value = app
        .with_key(&key, Method::GET, &format!("{path}/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info, first);
}

#[tokio::test]
async fn content_type_is_only_a_hint() {
    let app = spawn_app().await;
    let (_, key) = app.create_client("acme").await;
    let resp = post_image(&app, &key, png_with_red(4, 4, 4), "image/jpeg").await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["format"], "png");
    assert_eq!(body["red"], 0.25);
}

#[tokio::test]
async fn other_clients_image_is_404() {
    let app = spawn_app().await;
    let (_, key_a) = app.create_client("acme").await;
    let (_, key_b) = app.create_client("globex").await;
    let body: Value = post_image(&app, &key_a, png_with_red(3, 3, 1), "image/png")
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/images/{}", body["id"].as_str().unwrap());
    for method in [Method::GET, Method::DELETE] {
        let resp = app.with_key(&key_b, method, &path).send().await.unwrap();
        assert_error(resp, 404, "not_found").await;
    }
    let head = app
        .with_key(&key_b, Method::HEAD, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 404);
    // Still there for its owner.
    let resp = app
        .with_key(&key_a, Method::GET, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn delete_removes_record_and_bytes() {
    let app = spawn_app().await;
    let (_, key) = app.create_client("acme").await;
    let body: Value = post_image(&app, &key, png_with_red(3, 3, 1), "image/png")
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/images/{}", body["id"].as_str().unwrap());
    let resp = app
        .with_key(&key, Method::DELETE, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = app.with_key(&key, Method::GET, &path).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    // Uploading again creates it anew.
    let resp = post_image(&app, &key, png_with_red(3, 3, 1), "image/png").await;
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn multipart_uploads_several_and_a_bad_part_stores_nothing() {
    let app = spawn_app().await;
    let (_, key) = app.create_client("acme").await;
    let form = Form::new()
        .part("a", Part::bytes(png_with_red(2, 2, 1)).file_name("a.png"))
        .part("b", Part::bytes(png_with_red(2, 2, 2)).file_name("b.png"));
    let resp = app
        .with_key(&key, Method::POST, "/images")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let arr: Value = resp.json().await.unwrap();
    assert_eq!(arr.as_array().unwrap().len(), 2);
    assert_eq!(arr[1]["red"], 0.5);

    let form = Form::new()
        .part("a", Part::bytes(png_with_red(2, 2, 3)).file_name("c.png"))
        .part(
            "b",
            Part::bytes(b"not an image".to_vec()).file_name("d.png"),
        );
    let resp = app
        .with_key(&key, Method::POST, "/images")
        .multipart(form)
        .send()
        .await
        .unwrap();
    let msg = assert_error(resp, 415, "unsupported_image").await;
    assert!(msg.contains("file part 2"), "{msg}");
    let list: Value = app
        .with_key(&key, Method::GET, "/images")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        2,
        "the good part of the bad request was not stored"
    );
}

#[tokio::test]
async fn bombs_corrupt_and_unknown_bytes_are_refused() {
    let app = spawn_app_with(|c| c.max_pixels = Some(1_000_000)).await;
    let (_, key) = app.create_client("acme").await;
    // A valid PNG header announcing 100000×100000 pixels: refused from the header alone.
    let mut bomb = png_with_red(1, 1, 0);
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let resp = post_image(&app, &key, bomb, "image/png").await;
    assert_error(resp, 413, "image_too_large").await;

    let mut truncated = png_with_red(64, 64, 100);
    truncated.truncate(truncated.len() / 2);
    let resp = post_image(&app, &key, truncated, "image/png").await;
    assert_eq!(resp.status(), 400);

    let resp = post_image(&app, &key, b"hello world".to_vec(), "image/png").await;
    assert_error(resp, 415, "unsupported_image").await;

    let resp = post_image(&app, &key, png_with_red(2, 2, 1), "application/json").await;
    assert_error(resp, 415, "unsupported_media_type").await;

    let list: Value = app
        .with_key(&key, Method::GET, "/images")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        list["items"].as_array().unwrap().is_empty(),
        "nothing stored: {list}"
    );
}

#[tokio::test]
async fn red_measures_without_storing() {
    let app = spawn_app().await;
    let (_, key) = app.create_client("acme").await;
    let resp = app
        .with_key(&key, Method::POST, "/red")
        .header("content-type", "image/png")
        .body(png_with_red(5, 4, 5))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["red"], 0.25);
    assert_eq!(body["width"], 5);
    assert_eq!(body["height"], 4);
    let list: Value = app
        .with_key(&key, Method::GET, "/images")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn admin_must_name_the_client() {
    let app = spawn_app().await;
    let (id, _) = app.create_client("acme").await;
    let resp = post_image(&app, &app.admin_key, png_with_red(2, 2, 0), "image/png").await;
    assert_error(resp, 422, "client_required").await;
    let resp = app
        .admin(Method::POST, &format!("/images?client={id}"))
        .header("content-type", "image/png")
        .body(png_with_red(2, 2, 0))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn listing_pages_newest_first() {
    let app = spawn_app().await;
    let (_, key) = app.create_client("acme").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let body: Value = post_image(&app, &key, png_with_red(3, 3, i), "image/png")
            .await
            .json()
            .await
            .unwrap();
        ids.push(body["id"].as_str().unwrap().to_owned());
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/images?limit=2&cursor={c}"),
            None => "/images?limit=2".to_owned(),
        };
        let page: Value = app
            .with_key(&key, Method::GET, &path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);
    let resp = app
        .with_key(&key, Method::GET, "/images?limit=0")
        .send()
        .await
        .unwrap();
    assert_error(resp, 400, "invalid_query").await;
}

#[tokio::test]
async fn get_image_answers_if_none_match_with_304_and_a_range_with_206() {
    let app = spawn_app().await;
    let (_, key) = app.create_client("acme").await;
    let png = png_with_red(16, 16, 40);
    let resp = post_image(&app, &key, png.clone(), "image/png").await;
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/images/{id}");
    let get = |headers: &[(&str, &str)]| {
        let mut req = app.with_key(&key, Method::GET, &path);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send()
    };

    let whole = get(&[]).await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    let etag = whole.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(whole.bytes().await.unwrap(), png);

    for tag in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"x\", {etag}"),
        "*".into(),
    ] {
        let resp = get(&[("if-none-match", &tag)]).await.unwrap();
        assert_eq!(resp.status(), 304, "If-None-Match: {tag}");
        assert_eq!(resp.headers()["etag"], etag.as_str());
        assert!(resp.bytes().await.unwrap().is_empty());
    }
    assert_eq!(
        get(&[("if-none-match", "\"other\"")])
            .await
            .unwrap()
            .status(),
        200
    );

    let n = png.len();
    for (range, from, to) in [
        ("bytes=0-9", 0, 9),
        ("bytes=10-", 10, n - 1),
        ("bytes=-5", n - 5, n - 1),
        (&format!("bytes=3-{}", n + 100) as &str, 3, n - 1),
    ] {
        let resp = get(&[("range", range)]).await.unwrap();
        assert_eq!(resp.status(), 206, "{range}");
        assert_eq!(
            resp.headers()["content-range"],
            format!("bytes {from}-{to}/{n}").as_str()
        );
        assert_eq!(resp.bytes().await.unwrap(), png[from..=to], "{range}");
    }
    let past = get(&[("range", &format!("bytes={n}-"))]).await.unwrap();
    assert_eq!(
        past.headers()["content-range"],
        format!("bytes */{n}").as_str()
    );
    assert_error(past, 416, "range_not_satisfiable").await;
    // Several ranges, a range that is not bytes, or If-Range naming another version: whole.
    for headers in [
        vec![("range", "bytes=0-1,4-5")],
        vec![("range", "lines=1-2")],
        vec![("range", "bytes=0-1"), ("if-range", "\"other\"")],
    ] {
        let resp = get(&headers).await.unwrap();
        assert_eq!(resp.status(), 200, "{headers:?}");
        assert_eq!(resp.bytes().await.unwrap(), png);
    }
}
