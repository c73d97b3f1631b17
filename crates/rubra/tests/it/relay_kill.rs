//! The RabbitMQ relay across real processes (DESIGN §12), against the test broker (skipped
//! without `RUBRA_TEST_AMQP_URL`):
//!
//! - two consumers (`serve` and `worker`) on one database; the `serve` one is killed with
//!   `kill -9` mid-stream while the other goes on: every published message reaches the fake
//!   Viber (each id at least once) and the delivery log shows each exactly once as delivered;
//! - the broker is stopped and started again mid-stream: the consumer reconnects and every
//!   message still arrives.
//!
//! Both run on the embedded default (one SQLite file shared by the processes) and, when
//! configured, on PostgreSQL. They restart the shared broker, so they run one at a time.

use crate::helpers::{Proc, create_client, start_api, start_worker};
use axum::Router;
use axum::routing::post;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use rubra_testkit::AmqpBroker;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A fake Viber that records the `tracking_data` (message id) of every call.
async fn fake_viber() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    let app = Router::new().fallback(post(move |body: axum::body::Bytes| {
        let s = s.clone();
        async move {
            let v: Value = serde_json::from_slice(&body).unwrap();
            s.lock()
                .unwrap()
                .push(v["tracking_data"].as_str().unwrap_or("").to_owned());
            r#"{"status":0,"status_message":"ok","message_token":1}"#
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

/// A publisher with confirms on, reconnecting (and declaring the queue) until it can.
async fn publisher(broker: &AmqpBroker) -> (Connection, Channel) {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = async {
            let conn = Connection::connect(&broker.url, ConnectionProperties::default()).await?;
            let ch = conn.create_channel().await?;
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
            let durable = QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            };
            ch.queue_declare(broker.queue.as_str().into(), durable, FieldTable::default())
                .await?;
            Ok::<_, lapin::Error>((conn, ch))
        };
        match attempt.await {
            Ok(p) => return p,
            Err(e) => {
                assert!(Instant::now() < until, "cannot publish: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Publishes message `n` of `client` persistently, retrying (on a new connection) until the
/// broker confirms it.
async fn publish(pubr: &mut (Connection, Channel), broker: &AmqpBroker, client: &str, n: usize) {
    let body = json!({"client_id": client, "id": format!("tx-{n}"),
                      "type": "transaction.status", "text": format!("status {n}")});
    loop {
        let sent = async {
            pubr.1
                .basic_publish(
                    "".into(),
                    broker.queue.as_str().into(),
                    BasicPublishOptions::default(),
                    body.to_string().as_bytes(),
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await?
                .await
        };
        match sent.await {
            Ok(c) if c.is_ack() => return,
            _ => *pubr = publisher(broker).await,
        }
    }
}

fn distinct(seen: &Mutex<Vec<String>>) -> usize {
    seen.lock().unwrap().iter().collect::<HashSet<_>>().len()
}

async fn wait_for_all(seen: &Mutex<Vec<String>>, n: usize, secs: u64) {
    rubra_testkit::eventually(Duration::from_secs(secs), || async {
        match distinct(seen) {
            d if d >= n => Ok(()),
            d => Err(format!("only {d} of {n} messages reached Viber")),
        }
    })
    .await;
}

/// Settings every process of a test shares.
fn common(
    dir: &std::path::Path,
    viber: &str,
    broker: &AmqpBroker,
    db: Option<&str>,
) -> Vec<String> {
    let mut c = vec![
        "--data-dir".to_owned(),
        dir.join("data").display().to_string(),
        "--viber-base-url".to_owned(),
        viber.to_owned(),
        "--amqp-url".to_owned(),
        broker.url.clone(),
        "--amqp-queue".to_owned(),
        broker.queue.clone(),
        "--amqp-prefetch".to_owned(),
        "64".to_owned(),
        // A short call limit makes a short lease: a killed process's notifications are taken
        // over ~31 s later.
        "--notify-timeout-ms".to_owned(),
        "1000".to_owned(),
        "--log-format".to_owned(),
        "json".to_owned(),
    ];
    if let Some(url) = db {
        c.extend(["--database-url".to_owned(), url.to_owned()]);
    }
    c
}

/// Creates the client and its Viber subscription through the API; answers the client id.
async fn subscribe(base: &str, admin: &str) -> String {
    let http = reqwest::Client::new();
    let key = create_client(&http, base, admin, "payments").await;
    let resp = http
        .post(format!("{base}/subscriptions"))
        .bearer_auth(&key)
        .json(&json!({"types": ["transaction.*"],
                      "channel": {"type": "viber", "receiver": "bot", "auth_token": "t"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let clients: Value = http
        .get(format!("{base}/clients"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    clients["items"][0]["id"].as_str().unwrap().to_owned()
}

/// (delivered log rows, distinct notifications among them, notifications, distinct message ids)
async fn log_counts(dir: &std::path::Path, db: Option<&str>) -> (i64, i64, i64, i64) {
    const SQL: &str = "SELECT \
        (SELECT COUNT(*) FROM delivery_attempts WHERE outcome = 'delivered'), \
        (SELECT COUNT(DISTINCT notification_seq) FROM delivery_attempts \
         WHERE outcome = 'delivered'), \
        (SELECT COUNT(*) FROM notifications), \
        (SELECT COUNT(DISTINCT message_id) FROM notifications)";
    match db {
        Some(url) => {
            use sqlx::Connection as _;
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_as(SQL).fetch_one(&mut c).await.unwrap()
        }
        None => {
            use sqlx::Connection as _;
            let path = dir.join("data").join("rubra.db");
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            sqlx::query_as(SQL).fetch_one(&mut c).await.unwrap()
        }
    }
}

const MESSAGES: usize = 1_500;

async fn a_consumer_killed_mid_stream_loses_nothing(db: Option<String>) {
    let Some(broker) = rubra_testkit::amqp_broker("a_consumer_killed_mid_stream") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (viber, seen) = fake_viber().await;
    let common = common(dir.path(), &viber, &broker, db.as_deref());
    let (mut api, base, admin) = start_api(&[], &common);
    let client = subscribe(&base, &admin).await;
    let _worker: Proc = start_worker(&[], &common);
    let mut pubr = publisher(&broker).await;
    let mut killed = false;
    for n in 0..MESSAGES {
        publish(&mut pubr, &broker, &client, n).await;
        if n % 100 == 99 {
            // About 1 000 messages a second.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !killed && n >= MESSAGES / 3 && distinct(&seen) > 100 {
            api.0.kill().unwrap(); // SIGKILL, mid-stream
            api.0.wait().unwrap();
            killed = true;
        }
    }
    assert!(killed, "the consumer was killed mid-stream");
    wait_for_all(&seen, MESSAGES, 120).await;
    // The log of every delivery: exactly one delivered row per notification, one notification
    // per message (redelivered messages were duplicates). It commits with the verdicts.
    let n = MESSAGES as i64;
    rubra_testkit::eventually(Duration::from_secs(30), || async {
        match log_counts(dir.path(), db.as_deref()).await {
            all if all == (n, n, n, n) => Ok(()),
            counts => Err(format!("log counts {counts:?}, want all {n}")),
        }
    })
    .await;
}

async fn the_broker_restarted_mid_stream_loses_nothing(db: Option<String>) {
    let Some(broker) = rubra_testkit::amqp_broker("the_broker_restarted_mid_stream") else {
        return;
    };
    let Some(ctl) = broker.ctl.clone() else {
        eprintln!("SKIPPED the_broker_restarted_mid_stream: no RUBRA_TEST_AMQP_CTL");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (viber, seen) = fake_viber().await;
    let common = common(dir.path(), &viber, &broker, db.as_deref());
    let (_api, base, admin) = start_api(&[], &common);
    let client = subscribe(&base, &admin).await;
    let mut pubr = publisher(&broker).await;
    let half = 300;
    for n in 0..half {
        publish(&mut pubr, &broker, &client, n).await;
    }
    wait_for_all(&seen, 100.min(half), 30).await;
    let ok = std::process::Command::new(&ctl)
        .arg("stop")
        .status()
        .unwrap();
    assert!(ok.success(), "stopping the broker");
    let ok = std::process::Command::new(&ctl)
        .arg("start")
        .status()
        .unwrap();
    assert!(ok.success(), "starting the broker");
    pubr = publisher(&broker).await;
    for n in half..2 * half {
        publish(&mut pubr, &broker, &client, n).await;
    }
    wait_for_all(&seen, 2 * half, 60).await;
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn kill_9_mid_stream_on_sqlite() {
    let _one = crate::helpers::broker_lock();
    runtime().block_on(a_consumer_killed_mid_stream_loses_nothing(None));
}

#[test]
fn kill_9_mid_stream_on_postgres() {
    let _one = crate::helpers::broker_lock();
    runtime().block_on(async {
        let Some(db) = rubra_testkit::fresh_postgres("kill_9_mid_stream_on_postgres").await else {
            return;
        };
        a_consumer_killed_mid_stream_loses_nothing(Some(db)).await;
    });
}

#[test]
fn broker_restart_mid_stream() {
    let _one = crate::helpers::broker_lock();
    runtime().block_on(the_broker_restarted_mid_stream_loses_nothing(None));
}
