//! A real Rubra server per test (port 0, fresh data folder), a client key, and
//! generated images.

use rubra_server::{Application, ConfigArgs, Settings};
use rubra_upload::Options;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// A running test server and a client's key on it.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client's API key.
    pub key: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Starts a server the way `rubra-server`'s own tests do, and creates a client.
pub async fn spawn_server() -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = ConfigArgs {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        log_format: Some("json".into()),
        log_filter: Some("warn".into()),
        ..ConfigArgs::default()
    };
    let settings = Settings::validate(args).expect("valid test settings");
    let telemetry = rubra_telemetry::init_for_tests().expect("telemetry");
    let app = Application::build(settings, telemetry)
        .await
        .expect("app builds");
    let base = format!("http://{}", app.local_addr());
    let admin = app
        .admin_key()
        .expect("fresh data dir makes an admin key")
        .reveal()
        .to_owned();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        app.run_until(async move {
            let _ = stopped.await;
        })
        .await
        .expect("server runs")
    });
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{base}/clients"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(json!({ "name": "uploader" }).to_string())
        .send()
        .await
        .expect("create client");
    assert_eq!(resp.status(), 201, "create client");
    let body: Value = serde_json::from_slice(&resp.bytes().await.expect("body")).expect("json");
    let key = body["api_key"].as_str().expect("api_key").to_owned();
    TestServer {
        base,
        key,
        http,
        _dir: dir,
        _stop: stop,
    }
}

impl TestServer {
    /// Every image id the client has, as the server lists them (one page of
    /// up to 1000; the tests stay below that). Panics on duplicates.
    pub async fn image_ids(&self) -> BTreeSet<String> {
        let resp = self
            .http
            .get(format!("{}/images?limit=1000", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("list images");
        assert_eq!(resp.status(), 200, "list images");
        let body: Value = serde_json::from_slice(&resp.bytes().await.expect("body")).expect("json");
        let items = body["items"].as_array().expect("items");
        let ids: Vec<String> = items
            .iter()
            .map(|i| i["id"].as_str().expect("id").to_owned())
            .collect();
        let set: BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(
            set.len(),
            ids.len(),
            "the server lists an image twice: {ids:?}"
        );
        set
    }

    /// Uploader options for this server: quiet, quick backoff.
    pub fn options(&self) -> Options {
        let mut o = Options::new(self.base.clone(), self.key.clone());
        o.backoff_base = Duration::from_millis(5);
        o.timeout = Duration::from_secs(20);
        o
    }
}

/// A small PNG of noise, different for every `seed`.
pub fn png(seed: u64) -> Vec<u8> {
    let img = noise(seed, 24, 16);
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode png");
    out.into_inner()
}

/// A small JPEG of noise, different for every `seed`.
pub fn jpeg(seed: u64) -> Vec<u8> {
    let img = noise(seed, 32, 24);
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg)
        .expect("encode jpeg");
    out.into_inner()
}

fn noise(seed: u64, w: u32, h: u32) -> image::RgbImage {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    image::RgbImage::from_fn(w, h, |_, _| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        image::Rgb([s as u8, (s >> 8) as u8, (s >> 16) as u8])
    })
}

/// Lowercase hex SHA-256, as the server names images.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `bytes` to `root/rel`, creating folders.
pub fn put(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, bytes).expect("write");
}
