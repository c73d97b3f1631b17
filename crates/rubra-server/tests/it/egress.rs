//! Webhooks are requests a client directs at a host of its choosing, so they go through the
//! guarded client: no internal address unless its host is in `--fetch-allow` (checked when the
//! subscription is created and again when connecting), no redirects, no credentials in the
//! URL, a bounded answer, and https only under `--webhook-https-only`.

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};
use crate::notify::{Receiver, get_json, png_with_red, red_event};
use axum::Router;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::IntoResponse;
use reqwest::Method;
use rubra_testkit::eventually;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn create_webhook(app: &TestApp, key: &str, url: &str) -> reqwest::Response {
    app.with_key(key, Method::POST, "/subscriptions")
        .json(&json!({"threshold": 0.1, "channel": {"type": "webhook", "url": url}}))
        .send()
        .await
        .unwrap()
}

/// The delivery log of `sub` once it holds at least `n` attempts, newest first.
async fn attempts(app: &TestApp, key: &str, sub: &Value, n: usize) -> Vec<Value> {
    let path = format!(
        "/notifications?subscription={}",
        sub["id"].as_str().unwrap()
    );
    eventually(Duration::from_secs(10), || async {
        let log = get_json(app, key, &path).await;
        let items = log["items"].as_array().unwrap().clone();
        (items.len() >= n)
            .then_some(items)
            .ok_or(format!("{n} logged attempts"))
    })
    .await
}

fn port_of(base: &str) -> &str {
    base.rsplit(':').next().unwrap()
}

#[tokio::test]
async fn webhook_to_loopback_is_refused_without_fetch_allow() {
    let app = spawn_app().await;
    let (_, key) = app.create_client("acme").await;
    let rx = Receiver::start(|_, _| (200, String::new())).await;
    let port = port_of(&rx.base);
    for url in [
        format!("{}/hook", rx.base),
        format!("http://localhost:{port}/hook"),
        format!("http://LocalHost.:{port}/hook"),
        format!("http://api.localhost:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        format!("http://2130706433:{port}/hook"),
        format!("http://0x7f.1:{port}/hook"),
        format!("http://0.0.0.0:{port}/hook"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[fd00:ec2::254]/latest/meta-data/".to_owned(),
        "http://10.0.0.1/hook".to_owned(),
        "http://192.168.1.1/hook".to_owned(),
        "http://100.64.0.1/hook".to_owned(),
        "http://255.255.255.255/hook".to_owned(),
        "http://224.0.0.1/hook".to_owned(),
        "http://[fe80::1]/hook".to_owned(),
    ] {
        let resp = create_webhook(&app, &key, &url).await;
        let msg = assert_error(resp, 422, "url_not_allowed").await;
        assert!(msg.contains("--fetch-allow"), "{url}: {msg}");
    }
    assert_eq!(
        get_json(&app, &key, "/subscriptions").await["items"],
        json!([])
    );
    red_event(&app, &key, 90).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rx.seen().is_empty());
}

#[tokio::test]
async fn webhook_to_loopback_is_delivered_with_fetch_allow() {
    let app = spawn_app_with(|c| {
        c.fetch_allow = Some(vec!["127.0.0.1".into()]);
        c.notify_retry_ms = Some("50,50".into());
    })
    .await;
    let (_, key) = app.create_client("acme").await;
    let rx = Receiver::start(|_, _| (204, String::new())).await;
    let resp = create_webhook(&app, &key, &format!("{}/hook", rx.base)).await;
    assert_eq!(resp.status(), 201);
    let sub: Value = resp.json().await.unwrap();
    // Only the listed host: the same address by another name is still refused.
    let url = format!("http://localhost:{}/hook", port_of(&rx.base));
    assert_error(
        create_webhook(&app, &key, &url).await,
        422,
        "url_not_allowed",
    )
    .await;
    red_event(&app, &key, 90).await;
    let got = rx.wait_for(1).await;
    assert_eq!(got[0].path, "/hook");
    let log = attempts(&app, &key, &sub, 1).await;
    assert_eq!(log[0]["outcome"], "delivered");
}

#[tokio::test]
async fn webhook_url_with_credentials_is_refused() {
    let app = spawn_app_with(|c| c.fetch_allow = Some(vec!["127.0.0.1".into()])).await;
    let (_, key) = app.create_client("acme").await;
    for url in [
        "https://user:pass@hooks.example.com/x",
        "https://user@hooks.example.com/x",
        "http://a:b@127.0.0.1:9/x",
    ] {
        let msg = assert_error(
            create_webhook(&app, &key, url).await,
            422,
            "url_not_allowed",
        )
        .await;
        assert!(msg.contains("credentials"), "{url}: {msg}");
    }
}

#[tokio::test]
async fn webhook_https_only_refuses_plain_http_except_fetch_allow_hosts() {
    let app = spawn_app_with(|c| {
        c.webhook_https_only = Some(true);
        c.fetch_allow = Some(vec!["127.0.0.1".into(), "*.example.org".into()]);
    })
    .await;
    let (_, key) = app.create_client("acme").await;
    for url in ["http://hooks.example.com/x", "http://a.example.org/x"] {
        let msg = assert_error(
            create_webhook(&app, &key, url).await,
            422,
            "url_not_allowed",
        )
        .await;
        assert!(msg.contains("https"), "{url}: {msg}");
    }
    let resp = create_webhook(&app, &key, "https://hooks.example.com/x").await;
    assert_eq!(resp.status(), 201);
    let resp = create_webhook(&app, &key, "http://127.0.0.1:9/x").await;
    assert_eq!(resp.status(), 201, "a listed host may use http");
    // Without the setting, plain http to a public host is fine.
    let app = spawn_app().await;
    let (_, key) = app.create_client("acme").await;
    let resp = create_webhook(&app, &key, "http://hooks.example.com/x").await;
    assert_eq!(resp.status(), 201);
}

/// A receiver answering every POST with `status` and `Location: {to}{path}`; counts requests.
async fn redirector(status: StatusCode, to: String) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = Arc::clone(&hits);
    let app = Router::new().fallback(move |uri: axum::http::Uri| {
        let (h, to) = (Arc::clone(&h), to.clone());
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            (status, [(LOCATION, format!("{to}{}", uri.path()))]).into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, hits)
}

#[tokio::test]
async fn webhook_redirect_to_a_second_receiver_is_not_followed() {
    let app = spawn_app_with(|c| {
        c.fetch_allow = Some(vec!["127.0.0.1".into()]);
        c.notify_retry_ms = Some("60000".into());
    })
    .await;
    let (_, key) = app.create_client("acme").await;
    let second = Receiver::start(|_, _| (200, String::new())).await;
    let mut subs = Vec::new();
    for status in [StatusCode::FOUND, StatusCode::TEMPORARY_REDIRECT] {
        let (first, hits) = redirector(status, second.base.clone()).await;
        let resp = create_webhook(&app, &key, &format!("{first}/hook")).await;
        assert_eq!(resp.status(), 201);
        subs.push((status, resp.json::<Value>().await.unwrap(), hits));
    }
    red_event(&app, &key, 90).await;
    for (status, sub, hits) in &subs {
        let log = attempts(&app, &key, sub, 1).await;
        assert_eq!(log[0]["outcome"], "retrying", "{log:?}");
        assert_eq!(log[0]["status_code"], status.as_u16());
        let error = log[0]["error"].as_str().unwrap();
        assert!(error.contains("redirect"), "{error}");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        second.seen().is_empty(),
        "the redirect target was called: {:?}",
        second.seen()
    );
}

/// A raw HTTP/1.1 receiver answering every request with a 200 of `len` bytes, written in 16
/// KiB pieces (64 KiB at once, then one piece every 10 ms); `written` counts what the socket
/// took. Writing stops when the peer goes away.
async fn huge_answer(len: usize, written: Arc<AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let written = Arc::clone(&written);
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let body_len = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if req.len() >= end + 4 + body_len {
                            break;
                        }
                    }
                }
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n");
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let piece = vec![b'x'; 16 * 1024];
                let mut sent = 0;
                while sent < len {
                    let n = piece.len().min(len - sent);
                    if sock.write_all(&piece[..n]).await.is_err() {
                        return;
                    }
                    sent += n;
                    written.fetch_add(n, Ordering::SeqCst);
                    if sent >= 64 * 1024 {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            });
        }
    });
    base
}

#[tokio::test]
async fn webhook_answering_10_mb_is_recorded_promptly_without_reading_it() {
    let app = spawn_app_with(|c| c.fetch_allow = Some(vec!["127.0.0.1".into()])).await;
    let (_, key) = app.create_client("acme").await;
    let written = Arc::new(AtomicUsize::new(0));
    let base = huge_answer(10 * 1024 * 1024, Arc::clone(&written)).await;
    let resp = create_webhook(&app, &key, &format!("{base}/hook")).await;
    assert_eq!(resp.status(), 201);
    let sub: Value = resp.json().await.unwrap();
    red_event(&app, &key, 90).await;
    // Writing all 10 MB at the receiver's pace takes ~6 s; the attempt is logged long before.
    let log = tokio::time::timeout(Duration::from_secs(3), attempts(&app, &key, &sub, 1))
        .await
        .expect("the attempt is recorded within 3 s");
    assert_eq!(log[0]["outcome"], "delivered", "{log:?}");
    assert_eq!(log[0]["status_code"], 200);
    assert!(log[0]["latency_ms"].as_i64().unwrap() < 1000, "{log:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n = written.load(Ordering::SeqCst);
    assert!(n < 2 * 1024 * 1024, "the receiver could write {n} bytes");
}

/// Starts the app on `dir` (a data folder that may already hold a database); answers its base
/// URL, admin key (first start only), a stop signal and the task running it.
async fn start_on(
    dir: &tempfile::TempDir,
    fetch_allow: Option<Vec<String>>,
) -> (
    String,
    Option<String>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let mut args = crate::helpers::test_config(dir);
    args.fetch_allow = fetch_allow;
    args.notify_retry_ms = Some("60000".into());
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
    let task = tokio::spawn(async move {
        app.run_until(async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (base, admin, stop, task)
}

#[tokio::test]
async fn a_webhook_to_an_address_no_longer_allowed_is_refused_at_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let rx = Receiver::start(|_, _| (200, String::new())).await;
    // Created while 127.0.0.1 was allowed…
    let (base, admin, stop, task) = start_on(&dir, Some(vec!["127.0.0.1".into()])).await;
    let created: Value = http
        .post(format!("{base}/clients"))
        .bearer_auth(admin.unwrap())
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["api_key"].as_str().unwrap().to_owned();
    let sub: Value = http
        .post(format!("{base}/subscriptions"))
        .bearer_auth(&key)
        .json(&json!({"threshold": 0.1, "channel": {"type": "webhook", "url": rx.base}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stop.send(()).unwrap();
    task.await.unwrap();
    // …and delivered after a restart without it.
    let (base, _, _stop, _task) = start_on(&dir, None).await;
    let resp = http
        .post(format!("{base}/red"))
        .bearer_auth(&key)
        .header("content-type", "image/png")
        .body(png_with_red(90))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let path = format!(
        "/notifications?subscription={}",
        sub["id"].as_str().unwrap()
    );
    let log = eventually(Duration::from_secs(10), || async {
        let log: Value = http
            .get(format!("{base}{path}"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = log["items"].as_array().unwrap().clone();
        (!items.is_empty())
            .then_some(items)
            .ok_or("a logged attempt")
    })
    .await;
    assert_eq!(log[0]["outcome"], "retrying");
    assert_eq!(log[0]["status_code"], Value::Null);
    let error = log[0]["error"].as_str().unwrap();
    assert!(error.starts_with("address not allowed"), "{error}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rx.seen().is_empty());
}

#[test]
fn fetch_allow_entries_may_carry_a_port_and_a_bad_one_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let with = |entries: &[&str]| {
        let mut args = crate::helpers::test_config(&dir);
        args.fetch_allow = Some(entries.iter().map(|e| (*e).to_owned()).collect());
        rubra_server::Settings::validate(args)
    };
    with(&[
        "127.0.0.1:8080",
        "[::1]:9000",
        "hooks.internal",
        "*.example.com:443",
    ])
    .unwrap();
    for bad in [
        "127.0.0.1:99999",
        "hooks.internal:0",
        "[::1]:x",
        "http://a.b/",
        "",
    ] {
        let err = with(&[bad]).unwrap_err().to_string();
        assert!(err.contains("fetch-allow"), "{bad}: {err}");
    }
}
