//! `/watches`: validation and isolation, exact change sets with JSON Pointer paths, conditional
//! polls, a source that goes down and comes back, and the SSE stream's replay.
//!
//! The JSON source is a small local HTTP server whose document the test sets; it answers
//! `If-None-Match` with 304 and counts what it served.

use crate::helpers::{SseReader, TestApp, assert_error, spawn_app_with};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A JSON document served with a strong ETag (its version).
#[derive(Default)]
struct Source {
    doc: Mutex<(String, u64)>,
    down: AtomicBool,
    full: AtomicU64,
    not_modified: AtomicU64,
    token_seen: AtomicBool,
}

impl Source {
    async fn start(doc: Value) -> (Arc<Source>, String) {
        let src = Arc::new(Source::default());
        src.set(doc);
        let app = Router::new()
            .route("/doc", get(serve))
            .with_state(src.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/doc", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (src, url)
    }

    fn set(&self, doc: Value) {
        let mut d = self.doc.lock().unwrap();
        d.0 = doc.to_string();
        d.1 += 1;
    }

    /// Sets the document as raw text (numbers exactly as written).
    fn set_text(&self, text: &str) {
        let mut d = self.doc.lock().unwrap();
        d.0 = text.to_owned();
        d.1 += 1;
    }
}

async fn serve(State(src): State<Arc<Source>>, headers: HeaderMap) -> Response {
    if src.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if headers.get("x-token").is_some_and(|v| v == "t0ken") {
        src.token_seen.store(true, Ordering::SeqCst);
    }
    let (body, version) = src.doc.lock().unwrap().clone();
    let etag = format!("\"v{version}\"");
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        src.not_modified.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    src.full.fetch_add(1, Ordering::SeqCst);
    (
        [
            (header::ETAG, etag),
            (header::CONTENT_TYPE, "application/json".to_owned()),
        ],
        body,
    )
        .into_response()
}

async fn app_with_source_allowed() -> TestApp {
    spawn_app_with(|c| {
        c.fetch_allow = Some(vec!["127.0.0.1".into()]);
        c.max_watches_per_client = Some(3);
    })
    .await
}

async fn create(app: &TestApp, key: &str, body: Value) -> Value {
    let resp = app
        .with_key(key, Method::POST, "/watches")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "create watch {body}");
    resp.json().await.unwrap()
}

async fn watch(app: &TestApp, key: &str, id: &str) -> Value {
    let resp = app
        .with_key(key, Method::GET, &format!("/watches/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Waits until the watch satisfies `done`; returns it.
async fn wait_for(app: &TestApp, key: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let w = watch(app, key, id).await;
        if done(&w) {
            return w;
        }
        assert!(Instant::now() < deadline, "watch never got there: {w}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn changes(app: &TestApp, key: &str, id: &str, query: &str) -> Value {
    let resp = app
        .with_key(key, Method::GET, &format!("/watches/{id}/changes{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// `op path old new` per change, values as compact JSON.
fn lines(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{} {} {} {}", c["op"], c["path"], c["old"], c["new"]))
        .collect()
}

#[tokio::test]
async fn watches_are_validated_scoped_and_limited() {
    let app = app_with_source_allowed().await;
    let (_, a) = app.create_client("a").await;
    let (_, b) = app.create_client("b").await;
    let (_, url) = Source::start(json!({"v": 1})).await;
    let post = |key: &str, body: Value| {
        app.with_key(key, Method::POST, "/watches")
            .json(&body)
            .send()
    };
    for (body, status, code) in [
        (
            json!({"url": url, "interval_ms": 99}),
            422,
            "invalid_interval",
        ),
        (json!({"url": "ftp://127.0.0.1/x"}), 400, "invalid_url"),
        (
            json!({"url": "http://10.1.2.3/odds"}),
            403,
            "fetch_forbidden",
        ),
        (
            json!({"url": url, "pointer": "games"}),
            422,
            "invalid_pointer",
        ),
        (
            json!({"url": url, "headers": {"Host": "elsewhere"}}),
            422,
            "invalid_header",
        ),
        (
            json!({"url": url, "headers": {"x-bad": "a\nb"}}),
            422,
            "invalid_header",
        ),
        (json!({"url": url, "bogus": 1}), 422, "invalid_fields"),
    ] {
        assert_error(post(&a, body.clone()).await.unwrap(), status, code).await;
    }

    let w = create(
        &app,
        &a,
        json!({"url": url, "headers": {"x-token": "t0ken"}}),
    )
    .await;
    let id = w["id"].as_str().unwrap();
    assert_eq!(w["interval_ms"], 1000);
    assert_eq!(
        w["headers"],
        json!(["x-token"]),
        "values are not shown back"
    );
    assert_eq!(w["status"], "pending");
    let listed: Value = app
        .with_key(&a, Method::GET, "/watches")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    // Another client sees nothing of it.
    for (method, path) in [
        (Method::GET, format!("/watches/{id}")),
        (Method::GET, format!("/watches/{id}/changes")),
        (Method::GET, format!("/watches/{id}/stream")),
        (Method::DELETE, format!("/watches/{id}")),
    ] {
        let resp = app.with_key(&b, method, &path).send().await.unwrap();
        assert_error(resp, 404, "not_found").await;
    }
    let theirs: Value = app
        .with_key(&b, Method::GET, "/watches")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["items"], json!([]));

    // The limit (3 here) counts the client's own watches.
    create(&app, &a, json!({"url": url})).await;
    create(&app, &a, json!({"url": url})).await;
    let msg = assert_error(
        post(&a, json!({"url": url})).await.unwrap(),
        409,
        "quota_exceeded",
    )
    .await;
    assert!(
        msg.contains("max-watches-per-client") && msg.contains('3'),
        "{msg}"
    );
    create(&app, &b, json!({"url": url})).await;

    let resp = app
        .with_key(&a, Method::DELETE, &format!("/watches/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "{}", resp.text().await.unwrap());
    let resp = app
        .with_key(&a, Method::GET, &format!("/watches/{id}"))
        .send()
        .await
        .unwrap();
    assert_error(resp, 404, "not_found").await;
}

#[tokio::test]
async fn changes_are_recorded_exactly_with_json_pointer_paths() {
    let app = app_with_source_allowed().await;
    let (_, key) = app.create_client("a").await;
    let (src, url) = Source::start(json!({})).await;
    src.set_text(
        r#"{"game": 7, "odds": {"home": 1.85, "draw": 3.40, "away": 4.20},
            "markets": [{"id": "ou2.5", "over": 1.9}]}"#,
    );
    let w = create(
        &app,
        &key,
        json!({"url": url, "interval_ms": 100, "headers": {"x-token": "t0ken"}}),
    )
    .await;
    let id = w["id"].as_str().unwrap();
    let w = wait_for(&app, &key, id, |w| w["baseline_at"].is_string()).await;
    assert_eq!(w["status"], "ok");
    assert_eq!(
        w["last_seq"], 0,
        "the first document is the baseline, not a change"
    );
    assert!(
        src.token_seen.load(Ordering::SeqCst),
        "the watch's header was sent"
    );

    // Unchanged polls are conditional: 304s, no new changes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while src.not_modified.load(Ordering::SeqCst) < 3 {
        assert!(Instant::now() < deadline, "no conditional polls");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(src.full.load(Ordering::SeqCst), 1);

    // Numbers are compared as written: 3.40 -> 3.4 is no change, 1.85 -> 1.90 is one.
    src.set_text(
        r#"{"game": 7, "odds": {"home": 1.90, "draw": 3.4, "away": 4.20},
            "markets": [{"id": "ou2.5", "over": 1.9}, {"id": "btts", "yes": 1.72}]}"#,
    );
    wait_for(&app, &key, id, |w| w["last_seq"] == 2).await;
    src.set_text(
        r#"{"game": 7, "odds": {"home": 1.90, "draw": 3.4, "away": 4.25},
            "markets": [{"id": "ou2.5", "over": 1.9}]}"#,
    );
    wait_for(&app, &key, id, |w| w["last_seq"] == 4).await;

    // Values are sent exactly as the source wrote them (serde_json below would show 1.9).
    let raw = app
        .with_key(&key, Method::GET, &format!("/watches/{id}/changes"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(raw.contains(r#""old":1.85,"new":1.90}"#), "{raw}");
    assert!(raw.contains(r#""old":4.20,"new":4.25}"#), "{raw}");
    let page = changes(&app, &key, id, "").await;
    assert_eq!(
        lines(&page),
        [
            r#""replace" "/odds/home" 1.85 1.9"#,
            r#""add" "/markets/1" null {"id":"btts","yes":1.72}"#,
            r#""replace" "/odds/away" 4.2 4.25"#,
            r#""remove" "/markets/1" {"id":"btts","yes":1.72} null"#,
        ]
    );
    let seqs: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert!(page["next_cursor"].is_null(), "the page was not full");
    assert!(page["items"][0]["ts"].as_str().unwrap().ends_with('Z'));

    // Paging with cursor= (or since=) and limit=.
    let p1 = changes(&app, &key, id, "?cursor=1&limit=2").await;
    assert_eq!(lines(&p1).len(), 2);
    assert_eq!(p1["items"][0]["seq"], 2);
    assert_eq!(p1["next_cursor"], "3");
    let p2 = changes(&app, &key, id, "?cursor=3").await;
    assert_eq!(lines(&p2).len(), 1);
    let p2_since = changes(&app, &key, id, "?since=3").await;
    assert_eq!(p2_since, p2);
    let p3 = changes(&app, &key, id, "?cursor=4").await;
    assert_eq!(p3["items"], json!([]));
    assert!(p3["next_cursor"].is_null());
}

#[tokio::test]
async fn pointer_and_key_select_and_match_arrays() {
    let app = app_with_source_allowed().await;
    let (_, key) = app.create_client("a").await;
    let (src, url) = Source::start(json!({
        "updated": 1,
        "games": [{"id": 1, "home": 1.5}, {"id": 2, "home": 2.5}]
    }))
    .await;
    let w = create(
        &app,
        &key,
        json!({"url": url, "interval_ms": 100, "pointer": "/games", "key": "id"}),
    )
    .await;
    let id = w["id"].as_str().unwrap();
    wait_for(&app, &key, id, |w| w["baseline_at"].is_string()).await;
    // Outside the pointer: not watched. Inside: matched by id, not position.
    src.set(json!({
        "updated": 2,
        "games": [{"id": 2, "home": 2.75}, {"id": 1, "home": 1.5}]
    }));
    wait_for(&app, &key, id, |w| w["last_seq"] == 1).await;
    let page = changes(&app, &key, id, "").await;
    assert_eq!(lines(&page), [r#""replace" "/games/1/home" 2.5 2.75"#]);
}

#[tokio::test]
async fn a_source_that_goes_down_shows_the_error_and_comes_back_without_phantom_changes() {
    let app = app_with_source_allowed().await;
    let (_, key) = app.create_client("a").await;
    let (src, url) = Source::start(json!({"odds": {"home": 2.0}})).await;
    let w = create(&app, &key, json!({"url": url, "interval_ms": 100})).await;
    let id = w["id"].as_str().unwrap();
    wait_for(&app, &key, id, |w| w["baseline_at"].is_string()).await;

    src.down.store(true, Ordering::SeqCst);
    let w = wait_for(&app, &key, id, |w| {
        w["consecutive_failures"].as_u64() >= Some(2)
    })
    .await;
    assert_eq!(w["status"], "failing");
    let error = w["last_error"].as_str().unwrap();
    assert!(error.contains("503"), "{error}");
    assert!(w["last_error_at"].is_string());

    src.down.store(false, Ordering::SeqCst);
    let w = wait_for(&app, &key, id, |w| w["status"] == "ok").await;
    assert_eq!(w["last_seq"], 0, "an outage is not a change: {w}");
    assert!(w["last_error"].is_null());

    src.set(json!({"odds": {"home": 2.1}}));
    wait_for(&app, &key, id, |w| w["last_seq"] == 1).await;
    let page = changes(&app, &key, id, "").await;
    assert_eq!(lines(&page), [r#""replace" "/odds/home" 2.0 2.1"#]);
}

#[tokio::test]
async fn the_stream_sends_changes_live_and_replays_after_last_event_id() {
    // A short request time limit: a stream must outlive it.
    let app = spawn_app_with(|c| {
        c.fetch_allow = Some(vec!["127.0.0.1".into()]);
        c.request_timeout_ms = Some(500);
    })
    .await;
    let (_, key) = app.create_client("a").await;
    let (src, url) = Source::start(json!({"n": 0})).await;
    let w = create(&app, &key, json!({"url": url, "interval_ms": 100})).await;
    let id = w["id"].as_str().unwrap();
    wait_for(&app, &key, id, |w| w["baseline_at"].is_string()).await;

    let mut live = SseReader::open(&app, &key, &format!("/watches/{id}/stream"), None).await;
    for n in 1..=3 {
        src.set(json!({ "n": n }));
        wait_for(&app, &key, id, |w| w["last_seq"] == n).await;
    }
    for n in 1..=3 {
        let (seq, data) = live.next().await;
        assert_eq!(seq, n.to_string());
        assert_eq!(data["path"], "/n");
        assert_eq!(data["new"], n);
    }
    drop(live);

    // Reconnecting after seq 1 replays 2 and 3, then goes on live.
    let mut again = SseReader::open(&app, &key, &format!("/watches/{id}/stream"), Some("1")).await;
    assert_eq!(again.next().await.0, "2");
    assert_eq!(again.next().await.0, "3");
    src.set(json!({"n": 4}));
    let (seq, data) = again.next().await;
    assert_eq!(seq, "4");
    assert_eq!(
        (data["op"].as_str(), data["old"].as_i64()),
        (Some("replace"), Some(3))
    );

    let resp = app
        .with_key(&key, Method::GET, &format!("/watches/{id}/stream"))
        .header("last-event-id", "abc")
        .send()
        .await
        .unwrap();
    assert_error(resp, 400, "invalid_last_event_id").await;
}

/// Attack: a watched source that serves a 100 000-deep document (`[[[[…]]]]` or
/// `{"a":{"a":…}}`) fails the poll with an error naming the depth limit, and the server keeps
/// serving (a stack overflow in the poller would abort this whole test binary).
#[tokio::test]
async fn deep_json_attack_a_100000_deep_source_fails_the_watch_and_the_server_keeps_serving() {
    let app = app_with_source_allowed().await;
    let (_, key) = app.create_client("a").await;
    let n = 100_000;
    // A source that starts deep, and one that turns deep after a good baseline.
    let (deep, deep_url) = Source::start(json!({})).await;
    deep.set_text(&("[".repeat(n) + &"]".repeat(n)));
    let (turns, turns_url) = Source::start(json!({"a": 1})).await;
    let first = create(&app, &key, json!({"url": deep_url, "interval_ms": 100})).await;
    let later = create(&app, &key, json!({"url": turns_url, "interval_ms": 100})).await;
    let later_id = later["id"].as_str().unwrap();
    wait_for(&app, &key, later_id, |w| w["baseline_at"].is_string()).await;
    turns.set_text(&(r#"{"a":"#.repeat(n) + "1" + &"}".repeat(n)));
    for id in [first["id"].as_str().unwrap(), later_id] {
        let w = wait_for(&app, &key, id, |w| {
            w["consecutive_failures"].as_u64() >= Some(2)
        })
        .await;
        assert_eq!(w["status"], "failing", "{w}");
        let error = w["last_error"].as_str().unwrap();
        assert!(error.contains("depth limit of 100 levels"), "{error}");
        assert!(error.contains("json_too_deep"), "{error}");
        assert_eq!(w["last_seq"], 0, "{w}");
    }
    let health = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // Back to a shallow document: compared with the last good one, no phantom changes.
    turns.set(json!({"a": 2}));
    wait_for(&app, &key, later_id, |w| w["last_seq"] == 1).await;
    let page = changes(&app, &key, later_id, "").await;
    assert_eq!(lines(&page), [r#""replace" "/a" 1 2"#]);
}
