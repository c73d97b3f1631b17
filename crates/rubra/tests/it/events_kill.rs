//! A `rubra serve` killed with SIGKILL right after answering `POST /events` loses neither the
//! accepted events nor their notifications (the outbox is written in the same transaction).

use serde_json::{Value, json};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::str::FromStr;

use crate::helpers::rubra;

/// A `rubra serve` child process, killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(data_dir: &Path) -> Server {
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
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("server printed its address").unwrap();
        if let Some(addr) = line.strip_prefix("rubra listening on ") {
            break addr.trim().to_owned();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, base }
}

const BATCHES: i64 = 40;
const PER_BATCH: i64 = 500;
const T0: i64 = 1_763_856_000_000;

fn red(batch: i64, i: i64) -> f64 {
    ((batch * 7919 + i * 104_729) % 1000) as f64 / 1000.0
}

async fn sqlite(data: &Path) -> sqlx::SqliteConnection {
    SqliteConnectOptions::from_str(&format!("sqlite://{}", data.join("rubra.db").display()))
        .unwrap()
        .busy_timeout(std::time::Duration::from_secs(10))
        .connect()
        .await
        .unwrap()
}

#[test]
fn sigkill_after_201_loses_no_event_and_no_notification() {
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
    let client = created["id"].as_str().unwrap().to_owned();
    let key = created["api_key"].as_str().unwrap().to_owned();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut db = sqlite(&data).await;
        sqlx::query(
            "INSERT INTO subscriptions (id, client_id, threshold, channel_type, channel, created_at) \
             VALUES ('sub_kill', $1, 0.6, 'stream', '{\"type\":\"stream\"}', 0)",
        )
        .bind(&client)
        .execute(&mut db)
        .await
        .unwrap();
        db.close().await.unwrap();
    });

    let mut server = start_server(&data);
    let base = server.base.clone();
    // Four senders in parallel; the server is killed the moment the 12th 201 arrives, while
    // other batches are still in flight.
    let accepted: Vec<i64> = rt.block_on(async {
        let http = reqwest::Client::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for sender in 0..4 {
            let (http, base, key, tx) = (http.clone(), base.clone(), key.clone(), tx.clone());
            tokio::spawn(async move {
                for batch in (sender..BATCHES).step_by(4) {
                    let body: Vec<Value> = (0..PER_BATCH)
                        .map(|i| json!({"red": red(batch, i), "ts": T0 + batch * 10_000 + i}))
                        .collect();
                    let resp = http
                        .post(format!("{base}/events"))
                        .bearer_auth(&key)
                        .json(&body)
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status() == 201 => {
                            if tx.send(batch).is_err() {
                                return;
                            }
                        }
                        _ => return,
                    }
                }
            });
        }
        drop(tx);
        let mut accepted = Vec::new();
        while let Some(batch) = rx.recv().await {
            accepted.push(batch);
            if accepted.len() == 12 {
                server.child.kill().unwrap(); // SIGKILL
                break;
            }
        }
        accepted
    });
    server.child.wait().unwrap();
    drop(server);
    assert_eq!(accepted.len(), 12);

    let server = start_server(&data);
    rt.block_on(async {
        let http = reqwest::Client::new();
        let mut db = sqlite(&data).await;
        for batch in 0..BATCHES {
            let (from, to) = (T0 + batch * 10_000, T0 + (batch + 1) * 10_000);
            let s: Value = http
                .get(format!(
                    "{}/stats?from={from}&to={to}&threshold=0.6",
                    server.base
                ))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let expected_above = (0..PER_BATCH).filter(|&i| red(batch, i) > 0.6).count() as i64;
            let total = s["total"].as_i64().unwrap();
            let above = s["above"].as_i64().unwrap();
            let notes: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM notifications WHERE event_ts >= $1 AND event_ts < $2",
            )
            .bind(from)
            .bind(to)
            .fetch_one(&mut db)
            .await
            .unwrap();
            if accepted.contains(&batch) {
                assert_eq!(total, PER_BATCH, "accepted batch {batch} lost events");
                assert_eq!(above, expected_above, "batch {batch}");
                assert_eq!(
                    notes, expected_above,
                    "accepted batch {batch} lost notifications"
                );
            } else {
                // Unanswered batches are all there or not at all, never half.
                assert!(total == 0 || total == PER_BATCH, "batch {batch}: {total}");
                assert_eq!(notes, if total == 0 { 0 } else { expected_above });
            }
        }
    });
}
