//! `POST /events` and `GET /stats` over HTTP: validation, all-or-nothing, exact counts,
//! buckets, isolation, admins, and events recorded by `/images` and `/red`.

use crate::helpers::{TestApp, assert_error, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};

const DAY0: i64 = 1_763_856_000_000; // 2025-11-23T00:00:00Z

async fn post_events(app: &TestApp, key: &str, path: &str, body: &Value) -> reqwest::Response {
    app.with_key(key, Method::POST, path)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn stats(app: &TestApp, key: &str, query: &str) -> Value {
    let resp = app
        .with_key(key, Method::GET, &format!("/stats?{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "GET /stats?{query}");
    resp.json().await.unwrap()
}

#[tokio::test]
async fn posted_events_are_counted_exactly() {
    let app = spawn_app().await;
    let (_, key) = app.create_client("acme").await;
    let body = json!([
        {"red": 0.5, "ts": DAY0},                           // == threshold: not above
        {"red": 0.50001, "ts": "2025-11-23T00:00:00.001Z"}, // above
        {"red": 1.0, "ts": "2025-11-23T01:00:00+01:00"},    // = DAY0, above
        {"red": 0.0, "ts": DAY0 + 3_599_999},
        {"red": 0.9, "ts": DAY0 + 3_600_000},               // at `to`: outside
        {"red": 0.7, "ts": DAY0 - 1},                       // before `from`: outside
    ]);
    let resp = post_events(&app, &key, "/events", &body).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"accepted": 6}));
    let s = stats(
        &app,
        &key,
        &format!("from={DAY0}&to=2025-11-23T01:00:00Z&threshold=0.5"),
    )
    .await;
    assert_eq!(s["total"], 4, "{s}");
    assert_eq!(s["above"], 2, "{s}");
    assert_eq!(s["from"], "2025-11-23T00:00:00.000Z");
    assert_eq!(s["to"], "2025-11-23T01:00:00.000Z");
    assert_eq!(s["threshold"], 0.5);
    assert!(s.get("buckets").is_none());
    // A threshold between two close values, and the extremes.
    let s = stats(
        &app,
        &key,
        &format!("from={DAY0}&to={}&threshold=0.500005", DAY0 + 3_600_000),
    )
    .await;
    assert_eq!(
        (s["total"].as_u64(), s["above"].as_u64()),
        (Some(4), Some(2))
    );
    let s = stats(&app, &key, &format!("from=0&to={}&threshold=-1", DAY0 * 2)).await;
    assert_eq!(
        (s["total"].as_u64(), s["above"].as_u64()),
        (Some(6), Some(6))
    );
    let s = stats(&app, &key, &format!("from=0&to={}&threshold=1", DAY0 * 2)).await;
    assert_eq!(s["above"], 0);
    // Without ts an event is stamped now, so the default range (last 24 h) holds it, even when
    // the query runs in the same millisecond (deterministic unit test in routes/stats.rs:
    // default_range_holds_an_event_of_this_millisecond).
    let resp = post_events(&app, &key, "/events", &json!([{"red": 0.9}])).await;
    assert_eq!(resp.status(), 201);
    let s = stats(&app, &key, "").await;
    assert_eq!(
        (s["total"].as_u64(), s["above"].as_u64()),
        (Some(1), Some(1))
    );
}

#[tokio::test]
async fn a_bad_event_refuses_the_whole_batch_naming_it() {
    let app = spawn_app().await;
    let (_, key) = app.create_client("acme").await;
    let ok = |i: i64| json!({"red": 0.9, "ts": DAY0 + i});
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            json!([ok(0), ok(1), ok(2), {"red": 1.5, "ts": DAY0}]),
            422,
            "invalid_event",
            "events[3]",
        ),
        (
            json!([ok(0), {"red": -0.1}]),
            422,
            "invalid_event",
            "events[1]",
        ),
        (
            json!([ok(0), ok(1), {"red": 0.2, "ts": "yesterday"}]),
            422,
            "invalid_event",
            "events[2]",
        ),
        (
            json!([ok(0), {"red": "high"}]),
            422,
            "invalid_event",
            "events[1]",
        ),
        (
            json!([ok(0), {"ts": DAY0}]),
            422,
            "invalid_event",
            "events[1]",
        ),
        (
            json!([ok(0), {"red": 0.2, "ts": 1.5}]),
            422,
            "invalid_event",
            "events[1]",
        ),
        (
            json!([{"red": 0.2, "image_id": "nope"}]),
            422,
            "invalid_event",
            "events[0]",
        ),
        (
            json!([{"red": 0.2, "colour": "red"}]),
            422,
            "invalid_event",
            "events[0]",
        ),
        (
            json!([{"red": 0.2, "ts": -5}]),
            422,
            "invalid_event",
            "events[0]",
        ),
        (json!({"red": 0.2}), 422, "invalid_events", "array"),
    ];
    for (body, status, code, needle) in cases {
        let resp = post_events(&app, &key, "/events", &body).await;
        let msg = assert_error(resp, status, code).await;
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    let too_many: Vec<Value> = (0..10_001).map(ok).collect();
    let resp = post_events(&app, &key, "/events", &json!(too_many)).await;
    assert_error(resp, 422, "too_many_events").await;
    let resp = app
        .with_key(&key, Method::POST, "/events")
        .header("content-type", "application/json")
        .body("[{\"red\": 0.5,")
        .send()
        .await
        .unwrap();
    assert_error(resp, 400, "malformed_json").await;
    let resp = app
        .with_key(&key, Method::POST, "/events")
        .header("content-type", "text/plain")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_error(resp, 415, "unsupported_media_type").await;
    // Nothing of the refused batches was recorded.
    let s = stats(&app, &key, &format!("from=0&to={}&threshold=0", DAY0 * 2)).await;
    assert_eq!(s["total"], 0, "{s}");
    // The largest batch is fine.
    let max: Vec<Value> = (0..10_000).map(ok).collect();
    let resp = post_events(&app, &key, "/events", &json!(max)).await;
    assert_eq!(resp.status(), 201);
    let s = stats(&app, &key, &format!("from=0&to={}&threshold=0.5", DAY0 * 2)).await;
    assert_eq!(
        (s["total"].as_u64(), s["above"].as_u64()),
        (Some(10_000), Some(10_000))
    );
}

#[tokio::test]
async fn clients_are_isolated_and_admins_see_one_or_all() {
    let app = spawn_app().await;
    let (a, key_a) = app.create_client("acme").await;
    let (b, key_b) = app.create_client("globex").await;
    let ev = |red: f64, i: i64| json!({"red": red, "ts": DAY0 + i});
    assert_eq!(
        post_events(&app, &key_a, "/events", &json!([ev(0.9, 0), ev(0.1, 1)]))
            .await
            .status(),
        201
    );
    assert_eq!(
        post_events(&app, &key_b, "/events", &json!([ev(0.9, 2)]))
            .await
            .status(),
        201
    );
    // Admins name the client per event or for the whole batch.
    let resp = post_events(
        &app,
        &app.admin_key,
        "/events",
        &json!([{"red": 0.8, "ts": DAY0 + 3, "client_id": a}, {"red": 0.3, "ts": DAY0 + 4, "client_id": b}]),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let resp = post_events(
        &app,
        &app.admin_key,
        &format!("/events?client={b}"),
        &json!([ev(0.95, 5)]),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let resp = post_events(&app, &app.admin_key, "/events", &json!([ev(0.95, 5)])).await;
    assert_error(resp, 422, "client_required").await;
    let resp = post_events(
        &app,
        &app.admin_key,
        "/events",
        &json!([{"red": 0.1, "client_id": "cl_0000000000000000"}]),
    )
    .await;
    assert_error(resp, 422, "invalid_event").await;
    // A client key cannot write for another client.
    let resp = post_events(
        &app,
        &key_a,
        "/events",
        &json!([{"red": 0.1, "client_id": b}]),
    )
    .await;
    assert_error(resp, 422, "invalid_event").await;

    let range = format!("from={DAY0}&to={}&threshold=0.5", DAY0 + 60_000);
    let s = stats(&app, &key_a, &range).await;
    assert_eq!(
        (s["total"].as_u64(), s["above"].as_u64()),
        (Some(3), Some(2)),
        "{s}"
    );
    assert_eq!(s["client"], a);
    let s = stats(&app, &key_b, &range).await;
    assert_eq!(
        (s["total"].as_u64(), s["above"].as_u64()),
        (Some(3), Some(2)),
        "{s}"
    );
    let s = stats(&app, &app.admin_key, &range).await;
    assert_eq!(
        (s["total"].as_u64(), s["above"].as_u64()),
        (Some(6), Some(4)),
        "{s}"
    );
    assert_eq!(s["client"], Value::Null);
    let s = stats(&app, &app.admin_key, &format!("{range}&client={a}")).await;
    assert_eq!(
        (s["total"].as_u64(), s["above"].as_u64()),
        (Some(3), Some(2)),
        "{s}"
    );
    // Another client's id is a 404, like a missing one.
    for (key, q) in [
        (&key_a, format!("{range}&client={b}")),
        (
            &app.admin_key,
            format!("{range}&client=cl_0000000000000000"),
        ),
    ] {
        let resp = app
            .with_key(key, Method::GET, &format!("/stats?{q}"))
            .send()
            .await
            .unwrap();
        assert_error(resp, 404, "not_found").await;
    }
}

#[tokio::test]
async fn buckets_are_aligned_with_empty_ones_and_partial_now() {
    let app = spawn_app().await;
    let (_, key) = app.create_client("acme").await;
    let body = json!([
        {"red": 0.9, "ts": DAY0 + 30 * 60_000},
        {"red": 0.2, "ts": DAY0 + 2 * 3_600_000 + 1},
    ]);
    assert_eq!(
        post_events(&app, &key, "/events", &body).await.status(),
        201
    );
    let s = stats(
        &app,
        &key,
        &format!(
            "from=2025-11-23T00:15:00Z&to={}&threshold=0.5&bucket=1h",
            DAY0 + 3 * 3_600_000
        ),
    )
    .await;
    assert_eq!(s["bucket"], "1h");
    assert_eq!(
        s["buckets"],
        json!([
            {"start": "2025-11-23T00:00:00.000Z", "total": 1, "above": 1, "partial": false},
            {"start": "2025-11-23T01:00:00.000Z", "total": 0, "above": 0, "partial": false},
            {"start": "2025-11-23T02:00:00.000Z", "total": 1, "above": 0, "partial": false},
        ])
    );
    // Around now: the bucket holding now (and any later one) is partial, earlier ones not.
    let now = rubra_store::now_ms();
    let s = stats(
        &app,
        &key,
        &format!(
            "from={}&to={}&bucket=1m",
            now - 5 * 60_000,
            now + 2 * 60_000
        ),
    )
    .await;
    let buckets = s["buckets"].as_array().unwrap();
    assert!((7..=8).contains(&buckets.len()), "{s}");
    let mut prev: Option<i64> = None;
    for b in buckets {
        let start = parse_api_instant(b["start"].as_str().unwrap());
        assert_eq!(start % 60_000, 0);
        if let Some(p) = prev {
            assert_eq!(start - p, 60_000);
        }
        prev = Some(start);
        let after = rubra_store::now_ms();
        if start + 60_000 <= now {
            assert_eq!(b["partial"], false, "{b}");
        } else if start + 60_000 > after {
            assert_eq!(b["partial"], true, "{b}");
        }
    }
    for bad in [
        "bucket=2h",
        "threshold=abc",
        "threshold=NaN",
        "from=yesterday",
        "from=10&to=5",
    ] {
        let resp = app
            .with_key(&key, Method::GET, &format!("/stats?{bad}"))
            .send()
            .await
            .unwrap();
        assert_error(resp, 400, "invalid_query").await;
    }
    let resp = app
        .with_key(&key, Method::GET, "/stats?from=0&to=999999999999&bucket=1m")
        .send()
        .await
        .unwrap();
    assert_error(resp, 400, "invalid_query").await;
}

/// Epoch ms of the RFC 3339 instants this API writes (`YYYY-MM-DDTHH:MM:SS.mmmZ`).
fn parse_api_instant(s: &str) -> i64 {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + n(11, 13)) * 60 + n(14, 16)) * 60_000 + n(17, 19) * 1000 + n(20, 23)
}

#[tokio::test]
async fn images_and_red_record_events() {
    let app = spawn_app().await;
    let (_, key) = app.create_client("acme").await;
    let png = |n: u8| {
        let img = image::RgbaImage::from_fn(2, 2, |x, y| {
            if (y * 2 + x) < u32::from(n) {
                image::Rgba([255, 0, 0, 255])
            } else {
                image::Rgba([128, 128, 128, 255])
            }
        });
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    };
    for (path, n) in [("/images", 3), ("/images", 3), ("/red", 1)] {
        let resp = app
            .with_key(&key, Method::POST, path)
            .header("content-type", "image/png")
            .body(png(n))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}");
    }
    // The duplicate upload recorded nothing: one event at 0.75, one at 0.25.
    let s = stats(&app, &key, "threshold=0.5").await;
    assert_eq!(
        (s["total"].as_u64(), s["above"].as_u64()),
        (Some(2), Some(1)),
        "{s}"
    );
}
