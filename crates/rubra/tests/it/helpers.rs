//! Real `rubra` processes for the multi-process tests: started with shared settings, killed
//! on drop.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The test RabbitMQ broker is shared by the tests of this binary, and some restart it: every
/// test that uses it holds this lock (one at a time). Async tests take it with
/// `BROKER.lock().await`, the others with [`broker_lock`].
pub static BROKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Takes [`BROKER`] from a test that is not async (outside any runtime).
pub fn broker_lock() -> tokio::sync::MutexGuard<'static, ()> {
    BROKER.blocking_lock()
}

/// A child process, killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `rubra` binary built for these tests.
pub fn rubra() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rubra"))
}

/// `rubra ARGS COMMON…`.
pub fn rubra_with(args: &[&str], common: &[String]) -> Command {
    let mut c = rubra();
    c.args(args).args(common);
    c
}

/// Starts `rubra serve --listen 127.0.0.1:0 EXTRA… COMMON…`; returns it, its URL and the
/// admin key it printed.
pub fn start_api(extra: &[&str], common: &[String]) -> (Proc, String, String) {
    let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut child = rubra_with(&args, common)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut key = String::new();
    let base = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if line.starts_with("rbk_") {
            key = line.trim().to_owned();
        }
        if let Some(addr) = line.strip_prefix("rubra listening on ") {
            break addr.trim().to_owned();
        }
    };
    (Proc(child), base, key)
}

/// Starts `rubra worker EXTRA… COMMON…`.
pub fn start_worker(extra: &[&str], common: &[String]) -> Proc {
    let mut args = vec!["worker"];
    args.extend_from_slice(extra);
    Proc(
        rubra_with(&args, common)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// `GET base+path` with `key`, as JSON.
pub async fn get(http: &reqwest::Client, base: &str, key: &str, path: &str) -> Value {
    http.get(format!("{base}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Creates a client named `name` with the admin key; returns its API key.
pub async fn create_client(http: &reqwest::Client, base: &str, admin: &str, name: &str) -> String {
    let client: Value = http
        .post(format!("{base}/clients"))
        .bearer_auth(admin)
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    client["api_key"].as_str().unwrap().to_owned()
}
