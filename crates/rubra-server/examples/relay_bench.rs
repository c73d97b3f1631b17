//! Benchmark of the message relay (bench/relay): published → received by a fake Viber.
//!
//! Starts the real app in-process (SQLite in a temporary folder, or `DB` = a PostgreSQL URL)
//! consuming a fresh RabbitMQ queue (`RUBRA_BENCH_AMQP_URL`), one client with one Viber
//! subscription by type pointing at a local fake Viber, then sends `RATE` messages per second
//! (open loop) for `SECS` seconds: published to the queue (`SOURCE` = `amqp`), or POSTed to
//! `/messages` one per request (`http`) or in arrays of N (`http:N`). `SOURCE` = `naive`
//! publishes to the queue like `amqp` but runs `bench/relay/naive_consumer.py` (pika →
//! requests → one SQLite commit per message) instead of Rubra, against the same fake Viber, for
//! comparison. Each message's payload carries the sender's clock in µs; the fake Viber takes
//! latency = its clock at arrival − that (one machine, one clock).
//!
//! Prints one table row: sent, received (distinct ids), p50/p99/max latency over the steady
//! part (after the first second), the largest backlog (published, not yet received) sampled
//! every second, the backlog when sending stopped and how long it took to drain. A rate is
//! sustained when the backlog does not grow (stays within about a second of messages).
//!
//! `cargo run --release -p rubra-server --example relay_bench -- [SOURCE] [RATE] [SECS] [DB]`
#![allow(clippy::unwrap_used, missing_docs)]

use axum::Router;
use axum::routing::post;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use rubra_server::{Application, ConfigArgs, Settings};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_us() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros(),
    )
    .unwrap()
}

fn pct(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return -1.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// The log filter: errors only, unless `RUBRA_BENCH_LOG` says otherwise (for example
/// `error,sqlx::query=debug` logs every statement with its time, to count them).
fn log_filter() -> String {
    std::env::var("RUBRA_BENCH_LOG").unwrap_or_else(|_| "error".to_owned())
}

/// The naive consumer's process, killed when the run ends or panics (else it would outlive
/// the benchmark, consuming a queue nobody publishes to).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the fake Viber saw: (sent at µs, latency µs) and the tracking ids.
#[derive(Default)]
struct Seen {
    lat: Vec<(i64, i64)>,
    ids: Vec<String>,
}

#[tokio::main]
async fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    // `http:N` POSTs arrays of N messages.
    let (source, batch) = match raw.first().map_or("amqp", String::as_str).split_once(':') {
        Some((s, n)) => (s.to_owned(), n.parse::<u64>().unwrap().clamp(1, 1000)),
        None => (raw.first().map_or("amqp", String::as_str).to_owned(), 1),
    };
    let rate: u64 = raw.get(1).map_or(100, |a| a.parse().unwrap());
    let secs: u64 = raw.get(2).map_or(10, |a| a.parse().unwrap());
    let db = raw.get(3).cloned().filter(|d| d != "sqlite");
    let amqp = std::env::var("RUBRA_BENCH_AMQP_URL")
        .or_else(|_| std::env::var("RUBRA_TEST_AMQP_URL"))
        .expect("set RUBRA_BENCH_AMQP_URL to a RabbitMQ amqp:// URL");
    let queue = format!("rubra-bench-{}", rubra_store::random_id(4));

    let seen: Arc<Mutex<Seen>> = Arc::default();
    let s = seen.clone();
    let viber = Router::new().fallback(post(move |body: axum::body::Bytes| {
        let s = s.clone();
        async move {
            let at = now_us();
            let v: Value = serde_json::from_slice(&body).unwrap();
            let p: Value = serde_json::from_str(v["text"].as_str().unwrap()).unwrap();
            let t = p["t"].as_i64().unwrap();
            let mut g = s.lock().unwrap();
            g.lat.push((t, at - t));
            g.ids.push(v["tracking_data"].as_str().unwrap().to_owned());
            r#"{"status":0,"status_message":"ok","message_token":1}"#
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let viber_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, viber).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let mut naive = None;
    let (client, key, base, http) = if source == "naive" {
        let child = std::process::Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../bench/relay/naive_consumer.py"
            ))
            .args([&amqp, &queue, &viber_base])
            .arg(dir.path().join("naive.db"))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        naive = Some(KillOnDrop(child));
        let none = String::new();
        (
            "cl_0000000000000000".to_owned(),
            none.clone(),
            none,
            reqwest::Client::new(),
        )
    } else {
        start_rubra(&dir, db.clone(), viber_base, amqp.clone(), queue.clone()).await
    };

    let conn = Connection::connect(&amqp, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue.as_str().into(), durable, FieldTable::default())
        .await
        .unwrap();
    // Let the consumer attach before the clock starts.
    let attach = if naive.is_some() { 2_000 } else { 500 };
    tokio::time::sleep(Duration::from_millis(attach)).await;

    let total = rate * secs;
    let started_us = now_us();
    let started = Instant::now();
    // The backlog (published, not yet at the fake Viber) sampled every second: a rate is
    // sustained when it does not grow.
    let published = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (published, seen) = (published.clone(), seen.clone());
        tokio::spawn(async move {
            let mut max = 0u64;
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                let got = seen.lock().unwrap().ids.len() as u64;
                let out = published.load(Ordering::Relaxed);
                max = max.max(out.saturating_sub(got));
                if out >= total {
                    return max;
                }
            }
        })
    };
    // Requests in flight, each on its own connection: below Rubra's connections per address
    // (`--max-connections-per-ip`, 256), which closes further ones at accept.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(128));
    // One tick per message, or per POST of `batch` messages.
    let per_tick = if source == "http" { batch } else { 1 };
    let ticks = total.div_ceil(per_tick);
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 * per_tick / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    for k in 0..ticks {
        tick.tick().await;
        let t = now_us();
        let first = k * per_tick;
        let msgs: Vec<Value> = (first..(first + per_tick).min(total))
            .map(|n| {
                json!({"id": format!("tx-{n}"), "type": "transaction.status",
                       "receiver": format!("user-{}", n % 1000),
                       "payload": {"t": t, "n": n, "status": "settled"}})
            })
            .collect();
        let count = msgs.len() as u64;
        if source == "http" {
            let permit = in_flight.clone().acquire_owned().await.unwrap();
            let (http, base, key) = (http.clone(), base.clone(), key.clone());
            let body = if batch == 1 {
                msgs.into_iter().next().unwrap()
            } else {
                Value::Array(msgs)
            };
            tasks.push(tokio::spawn(async move {
                let resp = http
                    .post(format!("{base}/messages"))
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 202);
                drop(permit);
            }));
        } else {
            // `amqp` and `naive`: one persistent message per tick on the queue.
            for mut msg in msgs {
                msg["client_id"] = json!(client);
                channel
                    .basic_publish(
                        "".into(),
                        queue.as_str().into(),
                        BasicPublishOptions::default(),
                        msg.to_string().as_bytes(),
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await
                    .unwrap();
            }
        }
        published.fetch_add(count, Ordering::Relaxed);
    }
    for t in tasks {
        t.await.unwrap();
    }
    let send_secs = started.elapsed().as_secs_f64();
    let backlog = total as usize - seen.lock().unwrap().ids.len().min(total as usize);
    let drain = Instant::now();
    let deadline = drain + Duration::from_secs(60);
    while seen.lock().unwrap().ids.len() < total as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drain_s = drain.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(naive);
    let backlog_max = sampler.await.unwrap();
    let g = seen.lock().unwrap();
    let distinct: HashSet<&String> = g.ids.iter().collect();
    let mut steady: Vec<i64> = g
        .lat
        .iter()
        .filter(|(t, _)| *t >= started_us + 1_000_000)
        .map(|(_, l)| *l)
        .collect();
    steady.sort_unstable();
    // Messages per second end to end: received over the time from the start to the last one.
    let last_us = g.lat.iter().map(|(t, l)| t + l).max().unwrap_or(started_us);
    let through = distinct.len() as f64 / ((last_us - started_us).max(1) as f64 / 1e6);
    let cap = std::env::var("RUBRA_BENCH_PER_SUBSCRIPTION")
        .map(|c| format!(", cap {c}"))
        .unwrap_or_default()
        + &std::env::var("RUBRA_BENCH_PER_RELAY_SUBSCRIPTION")
            .map(|c| format!(", relay cap {c}"))
            .unwrap_or_default();
    println!(
        "| source | db | target/s | sent/s | sent | received | through/s | p50 ms | p99 ms | max ms | backlog max | backlog at end | drain s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {rate} | {:.0} | {total} | {} | {through:.0} | {:.2} | {:.2} | {:.2} | {backlog_max} | {backlog} | {drain_s:.2} |",
        match (source.as_str(), batch) {
            ("http", 1) => "http (1 per POST)".to_owned(),
            ("http", n) => format!("http ({n} per POST)"),
            (s, _) => s.to_owned(),
        },
        match (source.as_str(), &db) {
            ("naive", _) => "sqlite, 1 commit/msg".to_owned(),
            (_, Some(_)) => format!("postgres{cap}"),
            _ => format!("sqlite{cap}"),
        },
        total as f64 / send_secs,
        distinct.len(),
        pct(&steady, 0.50),
        pct(&steady, 0.99),
        steady.last().map_or(-1.0, |l| *l as f64 / 1000.0),
    );
}

/// Starts Rubra in-process consuming `queue`, with one client and its Viber subscription by
/// type; answers (client id, its key, the API's URL, an HTTP client).
async fn start_rubra(
    dir: &tempfile::TempDir,
    db: Option<String>,
    viber_base: String,
    amqp: String,
    queue: String,
) -> (String, String, String, reqwest::Client) {
    let settings = Settings::validate(ConfigArgs {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        database_url: db,
        log_format: Some("json".into()),
        log_filter: Some(log_filter()),
        viber_base_url: Some(viber_base),
        amqp_url: Some(amqp),
        amqp_queue: Some(queue),
        rate_limit_rps: Some(1_000_000),
        rate_limit_burst: Some(1_000_000),
        // `--notify-max-in-flight-per-subscription` (default 16), to measure its effect.
        notify_max_in_flight_per_subscription: std::env::var("RUBRA_BENCH_PER_SUBSCRIPTION")
            .ok()
            .map(|v| v.parse().unwrap()),
        // `--notify-max-in-flight-per-relay-subscription` (default 128): the cap of the bench's
        // Viber subscription by type.
        notify_max_in_flight_per_relay_subscription: std::env::var(
            "RUBRA_BENCH_PER_RELAY_SUBSCRIPTION",
        )
        .ok()
        .map(|v| v.parse().unwrap()),
        ..ConfigArgs::default()
    })
    .unwrap();
    let telemetry = rubra_telemetry::init(&rubra_telemetry::TelemetryConfig {
        format: rubra_telemetry::LogFormat::Json,
        slow_ms: None,
        filter: log_filter(),
    })
    .unwrap();
    let app = Application::build(settings, telemetry).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let admin = app.admin_key().unwrap().reveal().to_owned();
    tokio::spawn(async move { app.run_until(std::future::pending()).await.unwrap() });

    let http = reqwest::Client::new();
    let c: Value = http
        .post(format!("{base}/clients"))
        .bearer_auth(&admin)
        .json(&json!({"name": "payments"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client = c["id"].as_str().unwrap().to_owned();
    let key = c["api_key"].as_str().unwrap().to_owned();
    let resp = http
        .post(format!("{base}/subscriptions"))
        .bearer_auth(&key)
        .json(&json!({"types": ["transaction.status"],
                      "channel": {"type": "viber", "receiver": "bot", "auth_token": "t"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    (client, key, base, http)
}
