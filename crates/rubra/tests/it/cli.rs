//! The `rubra` binary itself: the README's run command, admin commands, bad configuration.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use crate::helpers::rubra;

/// A `rubra serve` child process, killed on drop.
struct Server {
    child: Child,
    base: String,
    admin_key: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(data_dir: &std::path::Path) -> Server {
    let mut child = rubra()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rubra serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut admin_key = String::new();
    let base = loop {
        let line = lines
            .next()
            .expect("server printed its address")
            .expect("utf-8");
        if line.starts_with("rbk_") {
            admin_key = line.trim().to_owned();
        }
        if let Some(addr) = line.strip_prefix("rubra listening on ") {
            break addr.trim().to_owned();
        }
    };
    Server {
        child,
        base,
        admin_key,
    }
}

#[test]
fn serve_prints_the_admin_key_once_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_server(&data);
    assert!(
        server.admin_key.starts_with("rbk_"),
        "admin key printed on first start"
    );
    let rt = tokio_rt();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let health = http
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        let denied = http
            .get(format!("{}/clients", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(denied.status(), 401);
        let ok = http
            .get(format!("{}/clients", server.base))
            .bearer_auth(&server.admin_key)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
    });
    drop(server);
    // A second start on the same folder keeps the key and prints none.
    let again = start_server(&data);
    assert!(again.admin_key.is_empty());
}

#[test]
fn admin_create_client_prints_a_working_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = rubra()
        .args(["admin", "create-client", "acme", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = created["api_key"].as_str().unwrap().to_owned();
    let server = start_server(&data);
    tokio_rt().block_on(async {
        let resp = reqwest::Client::new()
            .get(format!("{}/clients", server.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let list: Value = resp.json().await.unwrap();
        assert_eq!(list["items"][0]["name"], "acme");
    });
}

/// Runs `rubra admin ARGS --data-dir DATA`, asserting success; its standard output.
fn admin(data: &std::path::Path, args: &[&str]) -> String {
    let out = rubra()
        .arg("admin")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn admin_makes_lists_and_revokes_keys_and_disables_clients() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let created: Value = serde_json::from_str(&admin(&data, &["create-client", "acme"])).unwrap();
    let (id, first) = (
        created["id"].as_str().unwrap().to_owned(),
        created["api_key"].as_str().unwrap().to_owned(),
    );
    let made: Value = serde_json::from_str(&admin(
        &data,
        &[
            "create-key",
            &id,
            "--name",
            "ops",
            "--expires-at",
            "2999-01-01T00:00:00Z",
        ],
    ))
    .unwrap();
    let ops = made["api_key"].as_str().unwrap().to_owned();
    assert_eq!(made["name"], "ops");
    assert_eq!(made["expires_at"], "2999-01-01T00:00:00.000Z");
    let listed = admin(&data, &["list-keys", &id]);
    assert!(
        !listed.contains(&first) && !listed.contains(&ops),
        "{listed}"
    );
    let keys: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 2);
    let first_id = keys[0]["id"].as_str().unwrap().to_owned();
    admin(&data, &["revoke-key", &id, &first_id]);
    let off: Value = serde_json::from_str(&admin(&data, &["disable-client", &id])).unwrap();
    assert_eq!(off["disabled"], true);
    // As the API shows a client (issue #21): RFC 3339 UTC with ms, not epoch ms.
    for field in ["created_at", "disabled_at"] {
        let t = off[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field}: {off}"));
        assert!(t.len() == 24 && t.ends_with('Z'), "{field}: {t}");
    }

    let server = start_server(&data);
    let get = |key: &str| {
        let url = format!("{}/clients/{id}", server.base);
        let key = key.to_owned();
        async move {
            let resp = reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            (status, body["error"]["code"].as_str().map(str::to_owned))
        }
    };
    tokio_rt().block_on(async {
        assert_eq!(get(&first).await, (401, Some("unauthorized".into())));
        assert_eq!(get(&ops).await, (401, Some("client_disabled".into())));
    });
    let on: Value = serde_json::from_str(&admin(&data, &["enable-client", &id])).unwrap();
    assert_eq!(on["disabled"], false);
    // The running server learns it within its key cache's second.
    tokio_rt().block_on(async {
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        assert_eq!(get(&ops).await.0, 200);
    });
}

#[test]
fn a_bad_setting_exits_2_naming_the_key() {
    let out = rubra()
        .args(["serve", "--listen", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`listen`"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("rubra.toml");
    std::fs::write(&cfg, "slow-ms = \"fast\"\n").unwrap();
    let out = rubra()
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("slow-ms"), "{err}");
}

#[test]
fn environment_variables_configure_like_flags() {
    let out = rubra()
        .args(["serve"])
        .env("RUBRA_DATABASE_URL", "mysql://nope")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RUBRA_DATABASE_URL"));
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn diff_is_wired_with_its_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    std::fs::write(&a, r#"{"price": 1.000001, "n": 12345678901234567890}"#).unwrap();
    std::fs::write(&b, r#"{"price": 1.000004, "n": 12345678901234567890}"#).unwrap();
    let same = rubra().arg("diff").arg(&a).arg(&b).output().unwrap();
    assert_eq!(same.status.code(), Some(0), "within 5 decimal places");
    std::fs::write(&b, r#"{"price": 1.000001, "n": 12345678901234567891}"#).unwrap();
    let differ = rubra().arg("diff").arg(&a).arg(&b).output().unwrap();
    assert_eq!(differ.status.code(), Some(1), "integers compared exactly");
    std::fs::write(&b, "{").unwrap();
    let bad = rubra().arg("diff").arg(&a).arg(&b).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

/// Attack: `rubra diff` on a 100 000-deep document exits 2 with a message naming the depth
/// limit, like any parse error, instead of overflowing the stack and aborting.
#[test]
fn deep_json_attack_diff_of_a_100000_deep_document_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.json");
    let deep = dir.path().join("deep.json");
    std::fs::write(&a, "[]").unwrap();
    let n = 100_000;
    for text in [
        "[".repeat(n) + &"]".repeat(n),
        r#"{"a":"#.repeat(n) + "1" + &"}".repeat(n),
    ] {
        std::fs::write(&deep, text).unwrap();
        let out = rubra().arg("diff").arg(&a).arg(&deep).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("deep.json: line 1, column"), "{err}");
        assert!(err.contains("depth limit of 512 levels"), "{err}");
    }
}

#[test]
fn slowlog_is_wired_and_counts_malformed_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("rubra.log");
    std::fs::write(&log, "not json\n").unwrap();
    let out = rubra()
        .arg("slowlog")
        .arg(&log)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn admin_rotate_secrets_reseals_under_the_new_key_so_the_old_one_can_be_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = rubra()
        .args(["admin", "create-client", "acme", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success());
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = created["api_key"].as_str().unwrap().to_owned();
    let key_file = data.join("secret.key");
    let server = start_server(&data);
    let old = std::fs::read_to_string(&key_file).unwrap();
    let secret = tokio_rt().block_on(async {
        let resp = reqwest::Client::new()
            .post(format!("{}/subscriptions", server.base))
            .bearer_auth(&key)
            .json(&serde_json::json!({"threshold": 0.5,
                   "channel": {"type": "webhook", "url": "https://hooks.test/h"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let sub: Value = resp.json().await.unwrap();
        sub["secret"].as_str().unwrap().to_owned()
    });
    drop(server);

    // A new key goes first; the old one stays listed until everything is re-sealed.
    let new = rubra_store::SecretBox::generate_line();
    let new_id = new.split_once(':').unwrap().0.to_owned();
    std::fs::write(&key_file, format!("{new}\n{old}")).unwrap();
    let out = rubra()
        .args([
            "admin",
            "rotate-secrets",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.starts_with("1 stored secrets re-sealed"), "{said}");

    tokio_rt().block_on(async {
        let url = format!("sqlite://{}", data.join("rubra.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let stored: String = sqlx::query_scalar("SELECT secret FROM subscriptions")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(stored.starts_with(&format!("enc:v1:{new_id}:")), "{stored}");
        assert!(!stored.contains(&secret));
    });

    // The old key removed, the server starts and the subscription is there.
    std::fs::write(&key_file, &new).unwrap();
    let server = start_server(&data);
    tokio_rt().block_on(async {
        let resp = reqwest::Client::new()
            .get(format!("{}/subscriptions", server.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let list: Value = resp.json().await.unwrap();
        assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    });
}

#[test]
fn admin_commands_that_touch_no_secret_run_without_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = rubra()
        .args(["admin", "create-client", "acme", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success());
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = created["api_key"].as_str().unwrap().to_owned();
    let server = start_server(&data);
    tokio_rt().block_on(async {
        let resp = reqwest::Client::new()
            .post(format!("{}/subscriptions", server.base))
            .bearer_auth(&key)
            .json(&serde_json::json!({"threshold": 0.5,
                   "channel": {"type": "webhook", "url": "https://hooks.test/h"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    });
    drop(server);
    // An operator's machine without the key file (it lives with the servers).
    let key_file = data.join("secret.key");
    std::fs::rename(&key_file, dir.path().join("elsewhere.key")).unwrap();
    for args in [&["migrate"][..], &["create-client", "globex"][..]] {
        let out = rubra()
            .arg("admin")
            .args(args)
            .args(["--log-format", "json", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        !key_file.exists(),
        "no key was made by a command that needs none"
    );
}

/// Runs `rubra serve` on a fresh folder with `extra` flags and `RUST_LOG` as given, idle for
/// `idle`; answers its stderr lines from the `listening` event on.
fn idle_log(extra: &[&str], rust_log: Option<&str>, idle: std::time::Duration) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr.log");
    let mut cmd = rubra();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(extra)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("RUST_LOG")
        .env_remove("RUBRA_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()));
    if let Some(v) = rust_log {
        cmd.env("RUST_LOG", v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(Ok(line)) = lines.next() {
        if line.starts_with("rubra listening on ") {
            break;
        }
    }
    std::thread::sleep(idle);
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    let all: Vec<String> = log.lines().map(str::to_owned).collect();
    let start = all
        .iter()
        .position(|l| l.contains("\"listening\""))
        .map_or(0, |i| i + 1);
    all[start..].to_vec()
}

#[test]
fn an_idle_server_writes_no_log_lines_of_polling_that_found_nothing() {
    // It used to write four a second (claim_job and claim_watches span closes at INFO).
    let lines = idle_log(&[], None, std::time::Duration::from_secs(3));
    let noise: Vec<&String> = lines
        .iter()
        .filter(|l| !l.contains("retention sweep done"))
        .collect();
    assert!(
        noise.len() <= 1,
        "{} lines in 3 idle seconds: {noise:#?}",
        noise.len()
    );
}

#[test]
fn the_log_filter_flag_beats_rust_log() {
    let lines = idle_log(
        &["--log-filter", "warn"],
        Some("debug"),
        std::time::Duration::from_millis(1500),
    );
    let below_warn: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("\"level\":\"INFO\"") || l.contains("\"level\":\"DEBUG\""))
        .collect();
    assert!(below_warn.is_empty(), "RUST_LOG=debug won: {below_warn:#?}");
}

/// CI once waited 30 s for a `serve` that never stopped: its queue consumer was stuck
/// connecting to the broker, and a shutdown waits for every worker. A broker (or proxy) that
/// takes the connection and never answers must not keep the process from stopping on
/// SIGTERM.
#[test]
fn a_broker_that_never_answers_does_not_keep_serve_from_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The kernel completes the handshakes of this socket's backlog; nobody ever reads.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let amqp = format!(
        "amqp://127.0.0.1:{}/%2f",
        silent.local_addr().unwrap().port()
    );
    let (mut server, _base, _key) = crate::helpers::start_api(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--amqp-url",
            &amqp,
            "--amqp-queue",
            "rubra-messages",
        ],
        &[],
    );
    // The consumer is connecting by now (it starts before the listener answers).
    std::thread::sleep(std::time::Duration::from_millis(300));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = rubra_testkit::eventually_blocking(std::time::Duration::from_secs(10), || {
        match server.0.try_wait() {
            Ok(Some(status)) => Ok(status),
            _ => Err("serve still running 10 s after SIGTERM"),
        }
    });
    assert!(exited.success(), "serve exited with {exited}");
    drop(silent);
}
