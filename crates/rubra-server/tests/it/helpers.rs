//! `spawn_app`: a real Rubra server on a free port with a fresh data folder, per test.

use reqwest::{Method, RequestBuilder, Response};
use rubra_server::{Application, ConfigArgs, Settings};
use rubra_telemetry::{LogFormat, TelemetryConfig};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use tokio_util_shim::Shutdown;

/// A running test server.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The admin key created at first start.
    pub admin_key: String,
    /// The data folder.
    pub data_dir: PathBuf,
    /// An HTTP client.
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
    _shutdown: Shutdown,
}

/// Settings for a test server: port 0 and a fresh data folder, plus `tweak`.
pub fn test_config(dir: &tempfile::TempDir) -> ConfigArgs {
    ConfigArgs {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        log_format: Some("json".into()),
        log_filter: Some("warn".into()),
        ..ConfigArgs::default()
    }
}

/// Spawns the app on the embedded default (SQLite + local folder).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Spawns the app with adjusted settings.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut ConfigArgs)) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = test_config(&dir);
    tweak(&mut args);
    let settings = Settings::validate(args).expect("valid test settings");
    let data_dir = settings.data_dir.clone();
    let telemetry = rubra_telemetry::init(&TelemetryConfig {
        format: LogFormat::Json,
        slow_ms: None,
        filter: "warn".into(),
    })
    .expect("telemetry");
    let app = Application::build(settings, telemetry)
        .await
        .expect("app builds");
    let base = format!("http://{}", app.local_addr());
    let admin_key = app
        .admin_key()
        .expect("fresh data dir makes an admin key")
        .reveal()
        .to_owned();
    let (shutdown, signal) = Shutdown::new();
    tokio::spawn(async move { app.run_until(signal).await.expect("server runs") });
    TestApp {
        base,
        admin_key,
        data_dir,
        http: reqwest::Client::new(),
        _dir: dir,
        _shutdown: shutdown,
    }
}

impl TestApp {
    /// A request to `path` without any key.
    pub fn anon(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{}", self.base, path))
    }

    /// The text of `GET /metrics` (no key needed). The recorder is the test process's, shared
    /// by every server the tests start.
    pub async fn metrics(&self) -> String {
        self.anon(Method::GET, "/metrics")
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// A request to `path` with `key`.
    pub fn with_key(&self, key: &str, method: Method, path: &str) -> RequestBuilder {
        self.anon(method, path).bearer_auth(key)
    }

    /// A request to `path` with the admin key.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.with_key(&self.admin_key, method, path)
    }

    /// Creates a client through the API; returns (id, api key).
    pub async fn create_client(&self, name: &str) -> (String, String) {
        let resp = self
            .admin(Method::POST, "/clients")
            .json(&json!({ "name": name }))
            .send()
            .await;
        let resp = resp.expect("request");
        assert_eq!(resp.status(), 201, "create client {name}");
        let body: Value = resp.json().await.expect("json");
        (
            body["id"].as_str().unwrap().to_owned(),
            body["api_key"].as_str().unwrap().to_owned(),
        )
    }
}

/// Asserts the error shape and code, and returns the message.
pub async fn assert_error(resp: Response, status: u16, code: &str) -> String {
    assert_eq!(resp.status().as_u16(), status, "status");
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(ct.starts_with("application/json"), "content-type {ct:?}");
    let body: Value = resp.json().await.expect("error body is JSON");
    assert_eq!(body["error"]["code"], code, "{body}");
    body["error"]["message"]
        .as_str()
        .expect("message")
        .to_owned()
}

/// A one-shot shutdown signal for a spawned server, fired on drop.
mod tokio_util_shim {
    use tokio::sync::oneshot;

    /// Dropping this stops the server.
    pub struct Shutdown(#[allow(dead_code)] oneshot::Sender<()>);

    impl Shutdown {
        pub fn new() -> (
            Shutdown,
            impl std::future::Future<Output = ()> + Send + 'static,
        ) {
            let (tx, rx) = oneshot::channel();
            (Shutdown(tx), async move {
                let _ = rx.await;
            })
        }
    }
}

/// Reads Server-Sent Events from one of the API's streams.
pub struct SseReader {
    resp: reqwest::Response,
    buf: String,
}

impl SseReader {
    /// Opens the stream at `path` with `key`, resuming after `last` when given.
    pub async fn open(app: &TestApp, key: &str, path: &str, last: Option<&str>) -> SseReader {
        let mut req = app.with_key(key, Method::GET, path);
        if let Some(l) = last {
            req = req.header("last-event-id", l);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        SseReader {
            resp,
            buf: String::new(),
        }
    }

    /// The next event as (id, data), skipping comments (heartbeats).
    pub async fn next(&mut self) -> (String, Value) {
        let read = async {
            loop {
                while let Some(end) = self.buf.find("\n\n") {
                    let block: String = self.buf.drain(..end + 2).collect();
                    let mut id = None;
                    let mut data = String::new();
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("id:") {
                            id = Some(v.trim().to_owned());
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim_start());
                        }
                    }
                    if let Some(id) = id {
                        return (id, serde_json::from_str(&data).unwrap());
                    }
                }
                let chunk = self.resp.chunk().await.unwrap().expect("stream still open");
                self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("an event within 10 s")
    }
}
