//! `POST /events` and `GET /stats` over HTTP: validation, all-or-nothing, exact counts,
//! buckets, isolation, admins, and events recorded by `/images` and `/red`.

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};
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
    // The answer lists every bucket, so their number is bounded.
    let resp = app
        .with_key(&key, Method::GET, "/stats?from=0&to=999999999999&bucket=1m")
        .send()
        .await
        .unwrap();
    let msg = assert_error(resp, 422, "too_many_buckets").await;
    assert!(msg.contains("at most 50000"), "{msg}");
    let resp = app
        .with_key(&key, Method::GET, "/stats?from=0&to=3000000000&bucket=1m")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "50 000 buckets are fine");
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

/// The latest instant a client may send: 9999-12-31T23:59:59.999Z.
const MAX_TS: i64 = 253_402_300_799_999;

/// Spawns a server on a runtime of its own (two workers, like the 2-core box it runs on), on
/// `database_url` or the embedded SQLite default. The runtime's thread is never joined: should
/// a handler spin on a worker (the attack these tests pin), the test still gets to fail
/// instead of hanging on that runtime's shutdown.
fn spawn_app_on_own_runtime(database_url: Option<String>) -> TestApp {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("server runtime");
        rt.block_on(async move {
            let app = spawn_app_with(|c| c.database_url = database_url).await;
            tx.send(app).expect("test waits for the app");
            std::future::pending::<()>().await;
        });
    });
    rx.recv().expect("the app starts")
}

/// Sends `GET path` and returns the status, error code, message and how long it took, or
/// `None` when no answer came within `limit`.
async fn timed_get(
    app: &TestApp,
    key: &str,
    path: &str,
    limit: std::time::Duration,
) -> Option<(u16, Value, std::time::Duration)> {
    let started = std::time::Instant::now();
    let send = async {
        let resp = app.with_key(key, Method::GET, path).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().await.unwrap_or(Value::Null))
    };
    let (status, body) = tokio::time::timeout(limit, send).await.ok()?;
    Some((status, body, started.elapsed()))
}

/// The attack: `GET /stats` with instants at the edges of i64 (and just past the year 9999)
/// used to walk the range one day at a time on an async worker — minutes of CPU for
/// `to=i64::MAX`, two such requests stalling a 2-core server — and to answer nonsense such as
/// `"to":"1970-01-01T00:00:00.000Z"`. Each must now be a 422 naming the parameter at once,
/// while `/healthz` and an ordinary `/stats` sent at the same time answer promptly.
async fn assert_edge_ranges_are_refused_while_serving(app: &TestApp) {
    let (_, key) = app.create_client("acme").await;
    let body = json!([
        {"red": 0.9, "ts": 0},
        {"red": 0.2, "ts": DAY0},
        {"red": 0.7, "ts": MAX_TS - 1},
        {"red": 0.1, "ts": MAX_TS},
    ]);
    assert_eq!(post_events(app, &key, "/events", &body).await.status(), 201);
    let bad: [(&str, &str); 10] = [
        ("to=9223372036854775807", "to"),
        ("from=0&to=9223372036854775807", "to"),
        ("from=-9223372036854775808", "from"),
        ("from=-9223372036854775808&to=9223372036854775807", "from"),
        ("from=0&to=100000000000000000", "to"),
        ("from=0&to=100000000000000000&bucket=1d", "to"),
        ("from=-1&to=1000", "from"),
        ("from=0&to=253402300800000", "to"),
        ("from=0&to=10000-01-01T00:00:00Z", "to"),
        ("from=0&to=9999-12-31T23:59:59.999-01:00", "to"),
    ];
    let limit = std::time::Duration::from_secs(10);
    let attacks = bad.map(|(query, _)| {
        let app = &*app;
        let key = key.clone();
        async move { timed_get(app, &key, &format!("/stats?{query}"), limit).await }
    });
    let ordinary = async {
        // Sent a moment after the attacks, so they are already being handled.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let health = async {
            let started = std::time::Instant::now();
            let resp = tokio::time::timeout(limit, app.anon(Method::GET, "/healthz").send())
                .await
                .ok()?
                .ok()?;
            Some((resp.status().as_u16(), started.elapsed()))
        };
        let path = format!("/stats?from={DAY0}&to={}", DAY0 + 3_600_000);
        let stats = timed_get(app, &key, &path, limit);
        tokio::join!(health, stats)
    };
    let (answers, (health, stats)) = tokio::join!(futures_join_all(attacks), ordinary);
    let prompt = std::time::Duration::from_secs(2);
    let health = health.expect("/healthz answered while the attacks ran");
    assert_eq!(health.0, 200);
    assert!(health.1 < prompt, "/healthz took {:?}", health.1);
    let (status, s, took) = stats.expect("an ordinary /stats answered while the attacks ran");
    assert_eq!((status, &s["total"]), (200, &json!(1)), "{s}");
    assert!(took < prompt, "an ordinary /stats took {took:?}");
    for ((query, param), answer) in bad.iter().zip(answers) {
        let (status, body, took) =
            answer.unwrap_or_else(|| panic!("GET /stats?{query}: no answer within {limit:?}"));
        assert_eq!(status, 422, "GET /stats?{query}: {body}");
        assert_eq!(
            body["error"]["code"], "invalid_timestamp",
            "{query}: {body}"
        );
        let msg = body["error"]["message"].as_str().unwrap_or("");
        assert!(msg.starts_with(&format!("{param}:")), "{query}: {msg}");
        assert!(took < prompt, "GET /stats?{query} took {took:?}");
    }
    // The valid extreme, 1970 to the last millisecond of 9999, answers correctly and fast.
    let query = format!("/stats?from=0&to={MAX_TS}&threshold=0.5");
    let (status, s, took) = timed_get(app, &key, &query, limit)
        .await
        .expect("the valid extreme answers");
    assert_eq!(status, 200, "{s}");
    // `to` is exclusive: the event at the very last millisecond lies outside.
    assert_eq!((&s["total"], &s["above"]), (&json!(3), &json!(2)), "{s}");
    assert_eq!(s["from"], "1970-01-01T00:00:00.000Z");
    assert_eq!(s["to"], "9999-12-31T23:59:59.999Z");
    assert!(took < prompt, "{query} took {took:?}");
}

/// Awaits every future, in order (the test crate has no `futures` dependency).
async fn futures_join_all<F: std::future::Future>(futures: [F; 10]) -> Vec<F::Output> {
    let [a, b, c, d, e, f, g, h, i, j] = futures;
    let (a, b, c, d, e, f, g, h, i, j) = tokio::join!(a, b, c, d, e, f, g, h, i, j);
    vec![a, b, c, d, e, f, g, h, i, j]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_at_the_edges_of_i64_is_refused_at_once_while_the_server_keeps_serving() {
    let app = spawn_app_on_own_runtime(None);
    assert_edge_ranges_are_refused_while_serving(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_at_the_edges_of_i64_is_refused_at_once_on_postgres() {
    let test = "stats_at_the_edges_of_i64_is_refused_at_once_on_postgres";
    let Some(db) = rubra_testkit::fresh_postgres(test).await else {
        return;
    };
    let app = spawn_app_on_own_runtime(Some(db));
    assert_edge_ranges_are_refused_while_serving(&app).await;
}

/// The attack: an event stamped past the year 9999 (or before 1970) would be stored and then
/// drive the rollup arithmetic out of range; it is refused, naming `events[i].ts`.
#[tokio::test]
async fn events_with_a_ts_out_of_range_are_refused_naming_events_i_ts() {
    let app = spawn_app().await;
    let (_, key) = app.create_client("acme").await;
    let ok = json!({"red": 0.5, "ts": DAY0});
    for ts in [
        json!(-1),
        json!(i64::MIN),
        json!(i64::MAX),
        json!(MAX_TS + 1),
        json!(100_000_000_000_000_000_i64),
        json!(18_446_744_073_709_551_615_u64),
        json!("10000-01-01T00:00:00Z"),
        json!("9999-12-31T23:59:59.999-01:00"),
        json!("1969-12-31T23:59:59.999Z"),
    ] {
        let body = json!([ok, ok, {"red": 0.5, "ts": ts}]);
        let resp = post_events(&app, &key, "/events", &body).await;
        let msg = assert_error(resp, 422, "invalid_event").await;
        assert!(msg.starts_with("events[2].ts:"), "{ts}: {msg}");
    }
    // The extremes themselves are accepted, and nothing of the refused batches was kept.
    let body = json!([{"red": 0.5, "ts": 0}, {"red": 0.5, "ts": MAX_TS}]);
    assert_eq!(
        post_events(&app, &key, "/events", &body).await.status(),
        201
    );
    let s = stats(&app, &key, &format!("from=0&to={MAX_TS}&threshold=0")).await;
    assert_eq!(s["total"], 1, "{s}");
}
