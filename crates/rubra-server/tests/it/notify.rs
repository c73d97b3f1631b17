//! Subscriptions and notification delivery over HTTP: signed webhooks checked by a local
//! receiver with the Standard Webhooks verifier, retries with one id, pausing, a fake Viber,
//! the SSE stream with replay, client isolation, and two instances sharing PostgreSQL.

use crate::helpers::{SseReader, TestApp, assert_error, spawn_app_with};
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use image::{ImageBuffer, Rgba, RgbaImage};
use reqwest::Method;
use rubra_notify::WebhookSecret;
use rubra_notify::signing::{ReceivedHeaders, verify};
use rubra_testkit::eventually;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A 10×10 PNG whose red level is exactly `k`/100.
pub(crate) fn png_with_red(k: u32) -> Vec<u8> {
    let img: RgbaImage = ImageBuffer::from_fn(10, 10, |x, y| {
        if y * 10 + x < k {
            Rgba([255, 0, 0, 255])
        } else {
            Rgba([128, 128, 128, 255])
        }
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Records an event with red = k/100 through `POST /red`.
pub(crate) async fn red_event(app: &TestApp, key: &str, k: u32) {
    let resp = app
        .with_key(key, Method::POST, "/red")
        .header("content-type", "image/png")
        .body(png_with_red(k))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "POST /red");
}

async fn subscribe(app: &TestApp, key: &str, threshold: f64, channel: Value) -> Value {
    let resp = app
        .with_key(key, Method::POST, "/subscriptions")
        .json(&json!({ "threshold": threshold, "channel": channel }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "create subscription");
    resp.json().await.unwrap()
}

pub(crate) async fn get_json(app: &TestApp, key: &str, path: &str) -> Value {
    let resp = app.with_key(key, Method::GET, path).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET {path}");
    resp.json().await.unwrap()
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) path: String,
    headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The `webhook-signature` header: one or more space-separated signatures.
    pub(crate) fn signature(&self) -> Option<&str> {
        self.header("webhook-signature")
    }

    /// Checks the Standard Webhooks signature with `secret`.
    pub(crate) fn verify(&self, secret: &str) -> Result<(), rubra_notify::VerifyError> {
        let secret = WebhookSecret::parse(secret).unwrap();
        let now = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
        .unwrap();
        let headers = ReceivedHeaders {
            id: self.header("webhook-id"),
            timestamp: self.header("webhook-timestamp"),
            signature: self.header("webhook-signature"),
        };
        verify(&secret, headers, &self.body, now, 300)
    }
}

/// A local HTTP receiver on port 0 that records every POST and answers `respond(n)` for the
/// n-th (0-based) request, as a status and a body.
pub(crate) struct Receiver {
    pub(crate) base: String,
    seen: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub(crate) async fn start(
        respond: impl Fn(usize, &Received) -> (u16, String) + Send + Sync + 'static,
    ) -> Receiver {
        let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
        let count = Arc::new(AtomicUsize::new(0));
        let respond = Arc::new(respond);
        let s = seen.clone();
        let app = Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| {
                let (s, count, respond) = (s.clone(), count.clone(), respond.clone());
                async move {
                    let got = Received {
                        path: uri.path().to_owned(),
                        headers,
                        body: body.to_vec(),
                    };
                    let n = count.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = respond(n, &got);
                    s.lock().unwrap().push(got);
                    (StatusCode::from_u16(status).unwrap(), body)
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { base, seen }
    }

    pub(crate) fn seen(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }

    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Received> {
        eventually(Duration::from_secs(10), || async {
            let seen = self.seen();
            (seen.len() >= n)
                .then_some(seen)
                .ok_or(format!("{n} requests at the receiver"))
        })
        .await
    }
}

/// Webhook receivers in these tests listen on 127.0.0.1, which only a `--fetch-allow` entry
/// lets webhooks reach.
async fn fast_retries_app() -> TestApp {
    spawn_app_with(|c| {
        c.fetch_allow = Some(vec!["127.0.0.1".into()]);
        c.notify_retry_ms = Some("50,50,50,50,50".into());
        c.notify_timeout_ms = Some(2_000);
    })
    .await
}

#[tokio::test]
async fn webhook_is_signed_so_a_standard_webhooks_verifier_accepts_it() {
    let app = fast_retries_app().await;
    let (client, key) = app.create_client("acme").await;
    let rx = Receiver::start(|_, _| (204, String::new())).await;
    let sub = subscribe(
        &app,
        &key,
        0.5,
        json!({"type": "webhook", "url": format!("{}/hook", rx.base)}),
    )
    .await;
    let secret = sub["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{sub}");
    assert_eq!(
        sub["channel"],
        json!({"type": "webhook", "url": format!("{}/hook", rx.base)})
    );
    red_event(&app, &key, 80).await;
    let got = rx.wait_for(1).await;
    let r = &got[0];
    assert_eq!(r.path, "/hook");
    r.verify(secret).unwrap();
    let body = r.json();
    assert_eq!(body["type"], "red.threshold_exceeded");
    assert_eq!(body["data"]["red"], 0.8);
    assert_eq!(body["data"]["threshold"], 0.5);
    assert_eq!(body["data"]["client_id"], client);
    assert_eq!(body["data"]["subscription_id"], sub["id"]);
    assert_eq!(r.header("webhook-id"), body["data"]["id"].as_str());
    // A tampered body does not verify with the same headers.
    let mut tampered = r.clone();
    tampered.body = br#"{"type":"red.threshold_exceeded"}"#.to_vec();
    assert_eq!(
        tampered.verify(secret),
        Err(rubra_notify::VerifyError::NoMatch)
    );
    // The secret is shown once only.
    let again = get_json(
        &app,
        &key,
        &format!("/subscriptions/{}", sub["id"].as_str().unwrap()),
    )
    .await;
    assert!(again.get("secret").is_none(), "{again}");
}

#[tokio::test]
async fn retries_use_the_same_webhook_id_after_the_receiver_fails_twice() {
    let app = fast_retries_app().await;
    let (_, key) = app.create_client("acme").await;
    let rx = Receiver::start(|n, _| {
        if n < 2 {
            (500, "down".into())
        } else {
            (200, "ok".into())
        }
    })
    .await;
    let sub = subscribe(&app, &key, 0.1, json!({"type": "webhook", "url": rx.base})).await;
    let secret = sub["secret"].as_str().unwrap();
    red_event(&app, &key, 50).await;
    let got = rx.wait_for(3).await;
    let ids: Vec<_> = got
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    assert_eq!(ids, [ids[0].clone(), ids[0].clone(), ids[0].clone()]);
    assert!(ids[0].starts_with("ntf_"));
    for r in &got {
        r.verify(secret).unwrap();
    }
    // The delivery log has every attempt, newest first.
    let path = format!(
        "/notifications?subscription={}",
        sub["id"].as_str().unwrap()
    );
    let log = eventually(Duration::from_secs(10), || async {
        let log = get_json(&app, &key, &path).await;
        (log["items"].as_array().unwrap().len() == 3)
            .then_some(log)
            .ok_or("three logged attempts")
    })
    .await;
    let items = log["items"].as_array().unwrap();
    let summary: Vec<_> = items
        .iter()
        .map(|i| {
            (
                i["attempt"].as_i64().unwrap(),
                i["outcome"].as_str().unwrap(),
                i["status_code"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (3, "delivered", 200),
            (2, "retrying", 500),
            (1, "retrying", 500)
        ]
    );
    assert!(
        items
            .iter()
            .all(|i| i["notification_id"] == ids[0].as_str())
    );
    assert_eq!(items[1]["error"], "HTTP 500");
    assert!(items[0]["latency_ms"].as_i64().unwrap() >= 0);
    // Nothing more is sent once delivered.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.seen().len(), 3);
}

#[tokio::test]
async fn a_failing_endpoint_pauses_its_subscription_and_resume_delivers_what_was_held() {
    let app = spawn_app_with(|c| {
        c.fetch_allow = Some(vec!["127.0.0.1".into()]);
        c.notify_retry_ms = Some("20,20,20,20,20,20,20,20".into());
        c.notify_pause_after = Some(3);
    })
    .await;
    let (_, key) = app.create_client("acme").await;
    let healthy = Arc::new(AtomicBool::new(false));
    let h = healthy.clone();
    let rx = Receiver::start(move |_, _| {
        if h.load(Ordering::SeqCst) {
            (200, String::new())
        } else {
            (503, String::new())
        }
    })
    .await;
    let sub = subscribe(&app, &key, 0.1, json!({"type": "webhook", "url": rx.base})).await;
    let path = format!("/subscriptions/{}", sub["id"].as_str().unwrap());
    red_event(&app, &key, 50).await;
    let paused = eventually(Duration::from_secs(10), || async {
        let s = get_json(&app, &key, &path).await;
        (s["state"] == "paused")
            .then_some(s)
            .ok_or("the subscription to pause")
    })
    .await;
    let reason = paused["paused_reason"].as_str().unwrap();
    assert!(
        reason.contains("3 consecutive") && reason.contains("HTTP 503"),
        "{reason}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.seen().len(), 3, "no attempts while paused");
    // A new event while paused is held, not sent.
    red_event(&app, &key, 60).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.seen().len(), 3);
    healthy.store(true, Ordering::SeqCst);
    let resp = app
        .with_key(&key, Method::POST, &format!("{path}/resume"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resumed: Value = resp.json().await.unwrap();
    assert_eq!(resumed["state"], "active");
    assert_eq!(resumed["paused_reason"], Value::Null);
    let got = rx.wait_for(5).await;
    let ids: std::collections::HashSet<_> = got[3..]
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "both held notifications delivered");
}

#[tokio::test]
async fn a_client_pauses_its_subscription_and_resume_delivers_what_was_held() {
    let app = spawn_app_with(|c| {
        c.fetch_allow = Some(vec!["127.0.0.1".into()]);
    })
    .await;
    let (_, key) = app.create_client("acme").await;
    let rx = Receiver::start(|_, _| (200, String::new())).await;
    let sub = subscribe(&app, &key, 0.1, json!({"type": "webhook", "url": rx.base})).await;
    let path = format!("/subscriptions/{}", sub["id"].as_str().unwrap());
    let resp = app
        .with_key(&key, Method::POST, &format!("{path}/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let paused: Value = resp.json().await.unwrap();
    assert_eq!(paused["state"], "paused");
    assert_eq!(paused["paused_reason"], "paused by its client");
    red_event(&app, &key, 60).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.seen().len(), 0, "nothing is sent while paused");
    // Another client cannot pause or resume it.
    let (_, other) = app.create_client("other").await;
    for action in ["pause", "resume"] {
        let resp = app
            .with_key(&other, Method::POST, &format!("{path}/{action}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{action}");
    }
    let resp = app
        .with_key(&key, Method::POST, &format!("{path}/resume"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        rx.wait_for(1).await.len(),
        1,
        "the held notification is delivered"
    );
}

#[tokio::test]
async fn viber_gets_the_token_and_body_and_a_nonzero_status_is_a_failure() {
    let viber = Receiver::start(|n, r| {
        let ok_token = r.header("x-viber-auth-token") == Some("bot-token");
        if n == 0 || !ok_token {
            (
                200,
                r#"{"status":2,"status_message":"invalidAuthToken"}"#.into(),
            )
        } else {
            (
                200,
                r#"{"status":0,"status_message":"ok","message_token":1}"#.into(),
            )
        }
    })
    .await;
    let base = viber.base.clone();
    let app = spawn_app_with(move |c| {
        c.notify_retry_ms = Some("50,50,50".into());
        c.viber_base_url = Some(base);
    })
    .await;
    let (_, key) = app.create_client("acme").await;
    let sub = subscribe(
        &app,
        &key,
        0.5,
        json!({"type": "viber", "receiver": "user-1", "auth_token": "bot-token"}),
    )
    .await;
    assert_eq!(sub["channel"]["auth_token"], "***", "{sub}");
    assert!(sub.get("secret").is_none());
    red_event(&app, &key, 75).await;
    let got = viber.wait_for(2).await;
    for r in &got {
        assert_eq!(r.path, "/pa/send_message");
        assert_eq!(r.header("x-viber-auth-token"), Some("bot-token"));
        let body = r.json();
        assert_eq!(body["receiver"], "user-1");
        assert_eq!(body["min_api_version"], 1);
        assert_eq!(body["sender"]["name"], "Rubra");
        assert_eq!(body["type"], "text");
        assert!(body["text"].as_str().unwrap().contains("0.7500"), "{body}");
    }
    let path = format!(
        "/notifications?subscription={}",
        sub["id"].as_str().unwrap()
    );
    let log = eventually(Duration::from_secs(10), || async {
        let log = get_json(&app, &key, &path).await;
        (log["items"].as_array().unwrap().len() == 2)
            .then_some(log)
            .ok_or("two logged Viber attempts")
    })
    .await;
    let items = log["items"].as_array().unwrap();
    assert_eq!(items[1]["outcome"], "retrying");
    assert_eq!(items[1]["status_code"], 200);
    assert_eq!(items[1]["error"], "viber status 2: invalidAuthToken");
    assert_eq!(items[0]["outcome"], "delivered");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(viber.seen().len(), 2);
}

#[tokio::test]
async fn an_event_notifies_each_subscription_it_strictly_exceeds_exactly_once() {
    let app = fast_retries_app().await;
    let (_, key) = app.create_client("acme").await;
    let rx = Receiver::start(|_, _| (200, String::new())).await;
    for (t, p) in [(0.5, "a"), (0.7, "b"), (0.8, "c"), (0.9, "d")] {
        subscribe(
            &app,
            &key,
            t,
            json!({"type": "webhook", "url": format!("{}/{p}", rx.base)}),
        )
        .await;
    }
    red_event(&app, &key, 80).await; // 0.8: exceeds 0.5 and 0.7, not 0.8 (equal) nor 0.9
    red_event(&app, &key, 70).await; // 0.7: exceeds 0.5 only
    rx.wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut by_path: HashMap<String, usize> = HashMap::new();
    for r in rx.seen() {
        *by_path.entry(r.path).or_default() += 1;
    }
    assert_eq!(
        by_path,
        HashMap::from([("/a".to_owned(), 2), ("/b".to_owned(), 1)])
    );
}

#[tokio::test]
async fn subscriptions_validate_and_are_isolated_between_clients() {
    let app = fast_retries_app().await;
    let (_, a) = app.create_client("a").await;
    let (_, b) = app.create_client("b").await;
    let bad = |threshold: Value, channel: Value| {
        app.with_key(&a, Method::POST, "/subscriptions")
            .json(&json!({"threshold": threshold, "channel": channel}))
            .send()
    };
    let stream = json!({"type": "stream"});
    assert_error(
        bad(json!(1.5), stream.clone()).await.unwrap(),
        422,
        "invalid_threshold",
    )
    .await;
    assert_error(
        bad(json!(-0.1), stream.clone()).await.unwrap(),
        422,
        "invalid_threshold",
    )
    .await;
    assert_error(
        bad(json!(0.5), json!({"type": "webhook", "url": "ftp://x/y"}))
            .await
            .unwrap(),
        422,
        "invalid_channel",
    )
    .await;
    assert_error(
        bad(
            json!(0.5),
            json!({"type": "viber", "receiver": "", "auth_token": "t"}),
        )
        .await
        .unwrap(),
        422,
        "invalid_channel",
    )
    .await;
    assert_error(
        bad(json!(0.5), json!({"type": "pigeon"})).await.unwrap(),
        422,
        "invalid_fields",
    )
    .await;
    let sub = subscribe(&app, &a, 0.5, stream).await;
    let path = format!("/subscriptions/{}", sub["id"].as_str().unwrap());
    for method in [Method::GET, Method::DELETE] {
        let resp = app.with_key(&b, method, &path).send().await.unwrap();
        assert_error(resp, 404, "not_found").await;
    }
    let resp = app
        .with_key(&b, Method::POST, &format!("{path}/resume"))
        .send()
        .await
        .unwrap();
    assert_error(resp, 404, "not_found").await;
    assert_eq!(
        get_json(&app, &b, "/subscriptions").await["items"],
        json!([])
    );
    assert_eq!(
        get_json(&app, &a, "/subscriptions").await["items"][0]["id"],
        sub["id"]
    );
    let resp = app
        .with_key(&a, Method::GET, "/subscriptions/sub_nothex")
        .send()
        .await
        .unwrap();
    assert_error(resp, 404, "not_found").await;
    let resp = app
        .with_key(&a, Method::DELETE, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = app.with_key(&a, Method::GET, &path).send().await.unwrap();
    assert_error(resp, 404, "not_found").await;
}

#[tokio::test]
async fn the_stream_replays_what_was_missed_after_a_disconnect_and_shows_only_own_events() {
    // A short request time limit: a stream must outlive it.
    let app = spawn_app_with(|c| c.request_timeout_ms = Some(500)).await;
    let (a_id, a) = app.create_client("a").await;
    let (_, b) = app.create_client("b").await;
    subscribe(&app, &a, 0.1, json!({"type": "stream"})).await;
    subscribe(&app, &b, 0.1, json!({"type": "stream"})).await;
    red_event(&app, &a, 20).await; // before the stream opens: not sent to a new stream
    let mut s = SseReader::open(&app, &a, "/notifications/stream", None).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    red_event(&app, &a, 30).await;
    red_event(&app, &b, 90).await;
    red_event(&app, &a, 40).await;
    let (id1, n1) = s.next().await;
    let (id2, n2) = s.next().await;
    assert_eq!(
        (n1["data"]["red"].as_f64(), n2["data"]["red"].as_f64()),
        (Some(0.3), Some(0.4))
    );
    assert_eq!(n1["data"]["seq"].to_string(), id1);
    drop(s);
    red_event(&app, &a, 50).await;
    red_event(&app, &b, 95).await;
    red_event(&app, &a, 60).await;
    let mut s = SseReader::open(&app, &a, "/notifications/stream", Some(&id2)).await;
    let (id3, n3) = s.next().await;
    let (id4, n4) = s.next().await;
    assert_eq!(
        (n3["data"]["red"].as_f64(), n4["data"]["red"].as_f64()),
        (Some(0.5), Some(0.6))
    );
    let ids: Vec<i64> = [&id1, &id2, &id3, &id4]
        .iter()
        .map(|i| i.parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    for n in [&n1, &n2, &n3, &n4] {
        assert_eq!(n["data"]["client_id"], a_id.as_str());
    }
    // Live after the replay.
    red_event(&app, &a, 70).await;
    let (_, n5) = s.next().await;
    assert_eq!(n5["data"]["red"].as_f64(), Some(0.7));
}

/// Two app instances on one PostgreSQL database (the second has no admin key of its own).
struct Instance {
    base: String,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Starts an instance on `db`; instances sharing a database share the secret key file
/// `key_file` (made by the first).
async fn start_instance(db: &str, key_file: &std::path::Path) -> (Instance, Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = crate::helpers::test_config(&dir);
    args.database_url = Some(db.to_owned());
    if !key_file.exists() {
        std::fs::write(key_file, rubra_store::SecretBox::generate_line()).unwrap();
    }
    args.secret_key_file = Some(key_file.to_owned());
    args.fetch_allow = Some(vec!["127.0.0.1".into()]);
    let settings = rubra_server::Settings::validate(args).unwrap();
    let telemetry = rubra_telemetry::init(&rubra_telemetry::TelemetryConfig {
        format: rubra_telemetry::LogFormat::Json,
        slow_ms: None,
        filter: "warn".into(),
    })
    .unwrap();
    let app = rubra_server::Application::build(settings, telemetry)
        .await
        .unwrap();
    let base = format!("http://{}", app.local_addr());
    let admin = app.admin_key().map(|k| k.reveal().to_owned());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        app.run_until(async move {
            let _ = rx.await;
        })
        .await
        .unwrap()
    });
    (
        Instance {
            base,
            _dir: dir,
            _stop: stop,
        },
        admin,
    )
}

#[tokio::test]
async fn two_instances_on_postgres_deliver_each_notification_once() {
    let Some(db) = rubra_testkit::fresh_postgres("two_instances_deliver_once").await else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("secret.key");
    let (one, admin) = start_instance(&db, &key_file).await;
    let (two, none) = start_instance(&db, &key_file).await;
    let admin = admin.expect("the first instance made the admin key");
    assert!(none.is_none());
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{}/clients", one.base))
        .bearer_auth(&admin)
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["api_key"].as_str().unwrap().to_owned();
    let rx = Receiver::start(|_, _| (200, String::new())).await;
    let sub: Value = http
        .post(format!("{}/subscriptions", two.base))
        .bearer_auth(&key)
        .json(&json!({"threshold": 0.1, "channel": {"type": "webhook", "url": rx.base}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = sub["secret"].as_str().unwrap().to_owned();
    let events = 40;
    for i in 0..events {
        let base = if i % 2 == 0 { &one.base } else { &two.base };
        let resp = http
            .post(format!("{base}/red"))
            .bearer_auth(&key)
            .header("content-type", "image/png")
            .body(png_with_red(50))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let got = rx.wait_for(events).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_after = rx.seen();
    assert_eq!(got_after.len(), got.len(), "no duplicate deliveries");
    let mut ids: Vec<_> = got_after
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    for r in &got_after {
        r.verify(&secret).unwrap();
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), events);
}

#[tokio::test]
async fn the_stream_on_postgres_replays_at_least_once_after_a_disconnect() {
    let Some(db) = rubra_testkit::fresh_postgres("stream_replay_on_postgres").await else {
        return;
    };
    let app = spawn_app_with(|c| c.database_url = Some(db)).await;
    let (a_id, a) = app.create_client("a").await;
    let (_, b) = app.create_client("b").await;
    subscribe(&app, &a, 0.1, json!({"type": "stream"})).await;
    subscribe(&app, &b, 0.1, json!({"type": "stream"})).await;
    let mut s = SseReader::open(&app, &a, "/notifications/stream", None).await;
    red_event(&app, &a, 30).await;
    red_event(&app, &a, 40).await;
    let (_, n1) = s.next().await;
    let (id2, n2) = s.next().await;
    assert_eq!(
        (n1["data"]["red"].as_f64(), n2["data"]["red"].as_f64()),
        (Some(0.3), Some(0.4))
    );
    drop(s);
    red_event(&app, &a, 50).await;
    red_event(&app, &b, 95).await;
    red_event(&app, &a, 60).await;
    // Within the settle window the replay may repeat what was already seen (at-least-once),
    // but it brings everything missed, in seq order, and only this client's.
    let mut s = SseReader::open(&app, &a, "/notifications/stream", Some(&id2)).await;
    let mut reds = Vec::new();
    let mut last = 0i64;
    while !reds.contains(&60) {
        let (id, n) = s.next().await;
        let seq: i64 = id.parse().unwrap();
        assert!(seq > last, "seq order");
        last = seq;
        assert_eq!(n["data"]["client_id"], a_id.as_str());
        reds.push((n["data"]["red"].as_f64().unwrap() * 100.0).round() as i64);
    }
    assert!(reds.ends_with(&[50, 60]), "{reds:?}");
    assert!(
        reds.iter().all(|r| [30, 40, 50, 60].contains(r)),
        "{reds:?}"
    );
}

#[tokio::test]
async fn a_watch_naming_a_subscription_sends_its_changes_as_a_signed_webhook() {
    let app = spawn_app_with(|c| c.fetch_allow = Some(vec!["127.0.0.1".into()])).await;
    let (_, key) = app.create_client("bookmaker").await;
    let (_, other) = app.create_client("other").await;
    // The watched source: a document the test changes.
    let doc = Arc::new(Mutex::new(r#"{"odds":{"home":1.85}}"#.to_owned()));
    let d = doc.clone();
    let source = Router::new().route(
        "/odds",
        axum::routing::get(move || {
            let d = d.clone();
            async move { d.lock().unwrap().clone() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/odds", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, source).await.unwrap() });

    let rx = Receiver::start(|_, _| (200, String::new())).await;
    let sub = subscribe(
        &app,
        &key,
        0.5,
        json!({"type": "webhook", "url": format!("{}/hook", rx.base)}),
    )
    .await;
    let sub_id = sub["id"].as_str().unwrap();
    // Only a subscription of the same client may be named.
    let resp = app
        .with_key(&other, Method::POST, "/watches")
        .json(&json!({"url": url, "subscription_id": sub_id}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 422, "invalid_subscription").await;
    let resp = app
        .with_key(&key, Method::POST, "/watches")
        .json(&json!({"url": url, "interval_ms": 100, "subscription_id": sub_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let watch: Value = resp.json().await.unwrap();
    assert_eq!(watch["subscription_id"], sub_id);
    let id = watch["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(10), || async {
        let w = get_json(&app, &key, &format!("/watches/{id}")).await;
        w["baseline_at"]
            .is_string()
            .then_some(())
            .ok_or("the baseline")
    })
    .await;
    assert!(rx.seen().is_empty(), "the baseline is not a change");

    *doc.lock().unwrap() = r#"{"odds":{"home":1.90},"live":true}"#.to_owned();
    let got = rx.wait_for(1).await;
    got[0].verify(sub["secret"].as_str().unwrap()).unwrap();
    let body = got[0].json();
    assert_eq!(body["type"], "watch.changed", "{body}");
    assert_eq!(body["data"]["watch_id"], id.as_str());
    assert_eq!(
        body["data"]["changes"],
        json!([
            {"seq": 1, "path": "/odds/home", "op": "replace", "old": 1.85, "new": 1.9},
            {"seq": 2, "path": "/live", "op": "add", "old": null, "new": true},
        ])
    );
    // One notification per poll that found changes, recorded in the delivery log.
    let log = eventually(Duration::from_secs(10), || async {
        let log = get_json(&app, &key, "/notifications").await;
        (!log["items"].as_array().unwrap().is_empty())
            .then_some(log)
            .ok_or("the delivery log")
    })
    .await;
    assert_eq!(log["items"][0]["outcome"], "delivered", "{log}");
}

/// A receiver that answers every POST with 200 after `delay`, counting what it got.
async fn slow_receiver(delay: Duration) -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let app = Router::new().fallback(move || {
        let c = c.clone();
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            StatusCode::OK
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, count)
}

/// Issue #18: one client's slow endpoints once held all 128 delivery slots, so another client's
/// webhook waited for them to answer. Ten subscriptions of the noisy client to an endpoint
/// that takes 6 s each get 40 notifications: without caps they would fill every slot.
#[tokio::test]
async fn a_slow_endpoint_of_one_client_does_not_delay_another_clients_webhook() {
    let app = spawn_app_with(|c| {
        c.fetch_allow = Some(vec!["127.0.0.1".into()]);
        c.notify_timeout_ms = Some(20_000);
    })
    .await;
    let (_, noisy) = app.create_client("noisy").await;
    let (_, polite) = app.create_client("polite").await;
    let (slow, slow_count) = slow_receiver(Duration::from_secs(6)).await;
    for _ in 0..10 {
        subscribe(&app, &noisy, 0.1, json!({"type": "webhook", "url": slow})).await;
    }
    let rx = Receiver::start(|_, _| (204, String::new())).await;
    subscribe(
        &app,
        &polite,
        0.1,
        json!({"type": "webhook", "url": rx.base}),
    )
    .await;
    let batch: Vec<Value> = (0..40).map(|_| json!({"red": 0.9})).collect();
    let resp = app
        .with_key(&noisy, Method::POST, "/events")
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "POST /events");
    // The flood has taken what it may: 16 per subscription, 64 (half the slots) in all.
    let held = eventually(Duration::from_secs(5), || async {
        let n = slow_count.load(Ordering::SeqCst);
        (n >= 64)
            .then_some(n)
            .ok_or("the noisy client's deliveries to start")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let held_now = slow_count.load(Ordering::SeqCst);
    assert!(
        (64..=64 + 8).contains(&held_now),
        "the noisy client holds {held_now} slots (first seen {held}); its share is 64"
    );
    let started = Instant::now();
    red_event(&app, &polite, 50).await;
    rx.wait_for(1).await;
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(2),
        "the polite client's webhook took {waited:?} behind the slow endpoint"
    );
    // The operator sees it: deliveries in flight (this process's recorder is shared with other
    // tests' servers, so at least the noisy client's 64) and the outbox depth.
    let metrics = app.metrics().await;
    let gauge = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
    };
    let in_flight = gauge("rubra_notify_in_flight").expect("rubra_notify_in_flight");
    assert!(in_flight >= 64.0, "{in_flight}");
    assert!(gauge("rubra_notifications_pending").is_some(), "{metrics}");
    assert!(gauge("rubra_jobs_queued").is_some(), "{metrics}");
}
