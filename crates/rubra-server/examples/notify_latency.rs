//! Benchmark: event → signed webhook received, at a fixed event rate (bench/notify-latency).
//!
//! Starts the real app in-process on the embedded default (SQLite in a temporary folder),
//! creates `SUBS` clients with one webhook subscription each (threshold 0.1) pointing at a
//! local receiver, then sends `RATE` events per second (open loop, round-robin over the
//! clients, so every event makes exactly one notification) for `SECS` seconds: each a
//! one-event `POST /events` (`SOURCE` = `events`, the default) or a small PNG to `POST /red`
//! (`red`). The receiver takes latency = its clock at arrival − the event's `event_ts` (the
//! server's clock when it recorded the event; one machine, one clock, millisecond resolution).
//!
//! `cargo run --release -p rubra-server --example notify_latency -- [RATE] [SECS] [SUBS] [SOURCE]`
#![allow(clippy::unwrap_used, missing_docs)]

use axum::Router;
use axum::routing::post;
use rubra_server::{Application, ConfigArgs, Settings};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn png_half_red() -> Vec<u8> {
    let img = image::RgbaImage::from_fn(10, 10, |x, y| {
        if y * 10 + x < 50 {
            image::Rgba([255, 0, 0, 255])
        } else {
            image::Rgba([128, 128, 128, 255])
        }
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn pct(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return -1;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: u64| raw.get(i).map_or(default, |a| a.parse().unwrap());
    let rate = arg(0, 1000);
    let secs = arg(1, 10);
    let subs = arg(2, 100) as usize;
    let via_red = match raw.get(3).map(String::as_str) {
        None | Some("events") => false,
        Some("red") => true,
        Some(other) => panic!("SOURCE must be events or red, not {other}"),
    };

    // The receiver: latency of every webhook, and the ids seen (to count duplicates).
    type Seen = Arc<Mutex<(Vec<(i64, i64)>, Vec<String>)>>;
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let receiver = Router::new().fallback(post(
        move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                let at = now_ms();
                let v: Value = serde_json::from_slice(&body).unwrap();
                let ts = OffsetDateTime::parse(v["data"]["event_ts"].as_str().unwrap(), &Rfc3339)
                    .unwrap();
                let ts = i64::try_from(ts.unix_timestamp_nanos() / 1_000_000).unwrap();
                let id = headers["webhook-id"].to_str().unwrap().to_owned();
                let mut g = s.lock().unwrap();
                g.0.push((ts, at - ts));
                g.1.push(id);
                axum::http::StatusCode::NO_CONTENT
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::validate(ConfigArgs {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        log_format: Some("json".into()),
        log_filter: Some("error".into()),
        // The receiver is on loopback, which webhooks reach only when listed.
        fetch_allow: Some(vec!["127.0.0.1".into()]),
        // RATE may exceed the default per-client limit when SUBS is small: measure delivery,
        // not the limiter.
        rate_limit_rps: Some(1_000_000),
        rate_limit_burst: Some(1_000_000),
        ..ConfigArgs::default()
    })
    .unwrap();
    let telemetry = rubra_telemetry::init(&rubra_telemetry::TelemetryConfig {
        format: rubra_telemetry::LogFormat::Json,
        slow_ms: None,
        filter: "error".into(),
    })
    .unwrap();
    let app = Application::build(settings, telemetry).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let admin = app.admin_key().unwrap().reveal().to_owned();
    let (_stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        app.run_until(async move {
            let _ = stop_rx.await;
        })
        .await
        .unwrap()
    });

    let http = reqwest::Client::new();
    let mut keys = Vec::new();
    for i in 0..subs {
        let c: Value = http
            .post(format!("{base}/clients"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"name": format!("c{i}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let key = c["api_key"].as_str().unwrap().to_owned();
        let resp = http
            .post(format!("{base}/subscriptions"))
            .bearer_auth(&key)
            .json(&serde_json::json!({"threshold": 0.1,
                "channel": {"type": "webhook", "url": format!("{hook}/{i}")}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        keys.push(key);
    }

    let (path, content_type, body) = if via_red {
        ("red", "image/png", bytes::Bytes::from(png_half_red()))
    } else {
        (
            "events",
            "application/json",
            bytes::Bytes::from_static(br#"[{"red": 0.5}]"#),
        )
    };
    let total = rate * secs;
    let started_ms = now_ms();
    let started = Instant::now();
    let post_lat: Arc<Mutex<Vec<i64>>> = Arc::default();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(512));
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        tick.tick().await;
        let permit = in_flight.clone().acquire_owned().await.unwrap();
        let (http, key, body, base, lat) = (
            http.clone(),
            keys[n as usize % subs].clone(),
            body.clone(),
            base.clone(),
            post_lat.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let resp = http
                .post(format!("{base}/{path}"))
                .bearer_auth(key)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "{}", resp.status());
            lat.lock().unwrap().push(t.elapsed().as_micros() as i64);
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let send_secs = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.lock().unwrap().0.len() < total as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (lat, ids) = seen.lock().unwrap().clone();
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    // The first second warms connection pools and caches; it is left out of the figures.
    let mut steady: Vec<i64> = lat
        .iter()
        .filter(|(ts, _)| *ts >= started_ms + 1_000)
        .map(|(_, l)| *l)
        .collect();
    steady.sort_unstable();
    let mut posts = post_lat.lock().unwrap().clone();
    posts.sort_unstable();
    println!(
        "| source | events | subs | target/s | achieved/s | delivered | duplicates | p50 ms | p90 ms | p99 ms | max ms | POST p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| POST /{path} | {total} | {subs} | {rate} | {:.0} | {} | {} | {} | {} | {} | {} | {:.1} |",
        total as f64 / send_secs,
        distinct.len(),
        ids.len() - distinct.len(),
        pct(&steady, 0.50),
        pct(&steady, 0.90),
        pct(&steady, 0.99),
        steady.last().copied().unwrap_or(-1),
        pct(&posts, 0.99) as f64 / 1000.0,
    );
}
