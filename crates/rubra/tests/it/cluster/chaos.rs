//! The chaos soak (`bench/chaos/run.sh [MINUTES]`, ignored in the test suite): a mixed workload
//! against 3 `serve` + 2 `worker` processes while a driver kills, pauses, cuts off and restores
//! a random process every few seconds, restarts PostgreSQL once, takes S3 away for 30 s once
//! and the broker for 10 s once; then every invariant is checked and printed.

use super::support::{
    args, cluster, db, host_server, make_client, own_client_id, post_settled, until,
};
use axum::response::IntoResponse;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use rubra_testkit::cluster::{Cluster, Role, Service};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the load saw, shared by its tasks.
#[derive(Default)]
struct Tally {
    /// Stored images: id → bytes.
    images: Mutex<HashMap<String, Vec<u8>>>,
    /// Events accepted through `POST /events` (each batch settled by its Idempotency-Key).
    events: AtomicU64,
    /// Events of batches that never settled (answered 409 in use until the tries ran out).
    events_unknown: AtomicU64,
    /// `/red` calls answered 200, and those whose answer was lost (recorded or not).
    red_ok: AtomicU64,
    red_unknown: AtomicU64,
    /// Messages published and confirmed by the broker.
    messages: AtomicU64,
    /// Jobs submitted: URL and the expected sum.
    jobs: Mutex<Vec<(String, String)>>,
    /// Answers by status (5xx and 429 only), and failed requests.
    statuses: Mutex<BTreeMap<u16, u64>>,
    errors: AtomicU64,
    /// Faults injected, by kind.
    faults: Mutex<BTreeMap<&'static str, u64>>,
}

impl Tally {
    fn status(&self, s: u16) {
        if s >= 500 || s == 429 || s == 409 {
            *self.statuses.lock().unwrap().entry(s).or_default() += 1;
        }
    }
    fn fault(&self, kind: &'static str) {
        *self.faults.lock().unwrap().entry(kind).or_default() += 1;
    }
}

/// The API bases of the serve nodes.
struct Api {
    bases: Vec<String>,
}

impl Api {
    fn pick(&self) -> &str {
        &self.bases[fastrand::usize(..self.bases.len())]
    }
}

/// Sends `make()` to random serves until one answers something other than 503 / an error;
/// `None` after `tries`.
async fn settle(
    tally: &Tally,
    api: &Api,
    tries: usize,
    make: impl Fn(&str) -> reqwest::RequestBuilder,
) -> Option<reqwest::Response> {
    for _ in 0..tries {
        match make(api.pick())
            .timeout(Duration::from_secs(8))
            .send()
            .await
        {
            // 409 idempotency_key_in_use: the first try with this key is still running (or
            // its process died holding it): ask again.
            Ok(r) if r.status() == 503 || r.status() == 429 || r.status() == 409 => {
                tally.status(r.status().as_u16());
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Ok(r) => {
                tally.status(r.status().as_u16());
                return Some(r);
            }
            Err(_) => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
    None
}

fn png(seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let img = image::RgbImage::from_fn(24, 24, |_, _| {
        image::Rgb([rng.u8(..), rng.u8(..), rng.u8(..)])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Uploads, retried with the same bytes until settled (the same bytes again: 200, no event).
async fn uploads(tally: Arc<Tally>, api: Arc<Api>, key: String, stop: Arc<AtomicBool>) {
    let http = reqwest::Client::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let img = png(n);
        let r = settle(&tally, &api, 1000, |b| {
            http.post(format!("{b}/images"))
                .bearer_auth(&key)
                .header("content-type", "image/png")
                .body(img.clone())
        })
        .await;
        if let Some(r) = r
            && (r.status() == 201 || r.status() == 200)
        {
            let id = r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned();
            tally.images.lock().unwrap().insert(id, img);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Event batches with an Idempotency-Key each, retried until settled; some above 0.8 (a
/// webhook subscription makes notifications of them).
async fn events(tally: Arc<Tally>, api: Arc<Api>, key: String, stop: Arc<AtomicBool>) {
    let http = reqwest::Client::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let batch: Vec<Value> = (0..20)
            .map(|i| json!({"red": if i == 0 { 0.9 } else { 0.3 }}))
            .collect();
        let idem = format!("chaos-ev-{n}");
        let r = settle(&tally, &api, 200, |b| {
            http.post(format!("{b}/events"))
                .bearer_auth(&key)
                .header("idempotency-key", &idem)
                .json(&batch)
        })
        .await;
        match r {
            Some(r) if r.status() == 201 => {
                tally.events.fetch_add(20, Ordering::Relaxed);
            }
            // Never settled (its key stayed in use): recorded or not, nobody can tell.
            None => {
                tally.events_unknown.fetch_add(20, Ordering::Relaxed);
            }
            Some(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `/red` calls (not retried: no idempotency; a lost answer is counted as unknown).
async fn red(tally: Arc<Tally>, api: Arc<Api>, key: String, stop: Arc<AtomicBool>) {
    let http = reqwest::Client::new();
    let img = png(0);
    while !stop.load(Ordering::Relaxed) {
        let r = http
            .post(format!("{}/red", api.pick()))
            .bearer_auth(&key)
            .header("content-type", "image/png")
            .body(img.clone())
            .timeout(Duration::from_secs(8))
            .send()
            .await;
        match r {
            Ok(r) if r.status() == 200 => {
                tally.red_ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => tally.status(r.status().as_u16()),
            Err(_) => {
                tally.red_unknown.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Messages published to the queue (persistent, confirmed), 20 a second.
async fn messages(
    tally: Arc<Tally>,
    url: String,
    queue: String,
    client: String,
    stop: Arc<AtomicBool>,
) {
    let connect = || async {
        let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        ch.queue_declare(queue.as_str().into(), durable, FieldTable::default())
            .await?;
        Ok::<_, lapin::Error>((conn, ch))
    };
    let mut pubr = None;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if pubr.is_none() {
            pubr = connect().await.ok();
            if pubr.is_none() {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        }
        let (_, ch) = pubr.as_ref().unwrap();
        let body = json!({"client_id": client, "id": format!("chaos-m-{}", n + 1),
                          "type": "chaos.tick", "text": "tick"});
        let sent = async {
            ch.basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                body.to_string().as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await?
            .await
        };
        match sent.await {
            Ok(c) if c.is_ack() => {
                n += 1;
                tally.messages.store(n, Ordering::Relaxed);
            }
            _ => pubr = None,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A CSV job every 10 s, from S3 or from disk in turn.
async fn jobs(
    tally: Arc<Tally>,
    api: Arc<Api>,
    key: String,
    bucket: String,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let src = if n.is_multiple_of(2) {
            format!("s3://{bucket}/jobs.csv")
        } else {
            "jobs.csv".to_owned()
        };
        let idem = format!("chaos-job-{n}");
        let r = settle(&tally, &api, 1000, |b| {
            http.post(format!("{b}/jobs"))
                .bearer_auth(&key)
                .header("idempotency-key", &idem)
                .json(&json!({ "source": src }))
        })
        .await;
        if let Some(r) = r
            && r.status() == 202
        {
            let id = r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned();
            tally.jobs.lock().unwrap().push((id, "25000.00".to_owned()));
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

/// Picks a process and a fault every few seconds, restores it a few seconds later; restarts
/// PostgreSQL once at a third of the run, S3 away 30 s at half, the broker 10 s at two thirds.
async fn driver(c: Arc<Mutex<Cluster>>, tally: Arc<Tally>, minutes: f64, stop: Arc<AtomicBool>) {
    let start = Instant::now();
    let total = Duration::from_secs_f64(minutes * 60.0);
    let (mut pg_done, mut s3_done, mut mq_done) = (false, false, false);
    while start.elapsed() < total {
        let t = start.elapsed().as_secs_f64() / total.as_secs_f64();
        if !pg_done && t > 0.33 {
            pg_done = true;
            tally.fault("postgres restart (5 s down)");
            c.lock().unwrap().stop_postgres();
            tokio::time::sleep(Duration::from_secs(5)).await;
            c.lock().unwrap().start_postgres();
            continue;
        }
        if !s3_done && t > 0.5 {
            s3_done = true;
            tally.fault("s3 refusing 30 s");
            c.lock().unwrap().s3().set_down(true);
            tokio::time::sleep(Duration::from_secs(30)).await;
            c.lock().unwrap().s3().set_down(false);
            continue;
        }
        if !mq_done && t > 0.66 {
            mq_done = true;
            tally.fault("broker away 10 s");
            if let Some(p) = c.lock().unwrap().amqp() {
                p.set_down(true);
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
            if let Some(p) = c.lock().unwrap().amqp() {
                p.set_down(false);
            }
            continue;
        }
        let n = c.lock().unwrap().len();
        let i = fastrand::usize(..n);
        let hold = Duration::from_millis(fastrand::u64(2_000..15_000));
        match fastrand::u8(..4) {
            0 => {
                tally.fault("kill -9 + restart");
                c.lock().unwrap().kill(i);
                tokio::time::sleep(Duration::from_millis(fastrand::u64(1_000..5_000))).await;
                let c2 = c.clone();
                // A restarted serve is waited for until it listens: off the runtime.
                tokio::task::spawn_blocking(move || c2.lock().unwrap().restart(i))
                    .await
                    .unwrap();
            }
            1 => {
                tally.fault("SIGSTOP/SIGCONT");
                c.lock().unwrap().pause(i);
                tokio::time::sleep(hold).await;
                c.lock().unwrap().resume(i);
            }
            2 => {
                tally.fault("link cut/heal");
                c.lock().unwrap().cut(i);
                tokio::time::sleep(hold).await;
                c.lock().unwrap().heal(i);
            }
            _ => {
                tally.fault("cut from postgres/heal");
                c.lock().unwrap().cut_from(i, Service::Postgres);
                tokio::time::sleep(hold).await;
                c.lock().unwrap().heal_from(i, Service::Postgres);
            }
        }
        tokio::time::sleep(Duration::from_millis(fastrand::u64(1_000..4_000))).await;
    }
    stop.store(true, Ordering::Relaxed);
}

/// Follows changes `(path, old, new)` in order: answers how many do not start from the value
/// the last change at their path left (a change recorded twice, or one lost), and the last
/// value at each path. A change at a path forgets what is known below and above it (a
/// replaced parent changes its children without a change of their own).
fn chain(
    changes: impl Iterator<Item = (String, Option<Value>, Option<Value>)>,
) -> (usize, HashMap<String, Option<Value>>) {
    let mut last: HashMap<String, Option<Value>> = HashMap::new();
    let mut breaks = 0;
    for (path, old, new) in changes {
        if let Some(prev) = last.get(&path)
            && *prev != old
        {
            breaks += 1;
            eprintln!("chain break at {path}: last {prev:?}, this change's old {old:?}");
        }
        last.retain(|k, _| {
            !(k.starts_with(&format!("{path}/")) || path.starts_with(&format!("{k}/")))
        });
        last.insert(path, new);
    }
    (breaks, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the chaos soak: bench/chaos/run.sh [MINUTES]"]
async fn chaos_soak() {
    let minutes: f64 = std::env::var("RUBRA_CHAOS_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(2.0);
    let _broker = crate::helpers::BROKER.lock().await;
    let Some(mut c) = cluster("chaos_soak", true).await else {
        return;
    };
    let bucket = c.bucket().to_owned();
    let mut csv = b"c1,c2,c3,c4,c5,c6,c7,c8,c9,amount\n".to_vec();
    for _ in 0..20_000 {
        csv.extend_from_slice(b"1,2,3,4,5,6,7,8,9,1.25\n");
    }
    let jobs_root = c.dir().join("jobs");
    std::fs::create_dir_all(&jobs_root).unwrap();
    std::fs::write(jobs_root.join("jobs.csv"), &csv).unwrap();
    AmazonS3Builder::from_env()
        .with_endpoint(std::env::var("RUBRA_TEST_S3_ENDPOINT").unwrap())
        .with_allow_http(true)
        .with_bucket_name(&bucket)
        .build()
        .unwrap()
        .put(&ObjectPath::from("jobs.csv"), csv.into())
        .await
        .unwrap();
    // The webhook receiver: the id of every call (a notification's or a message's).
    let hooked: Arc<Mutex<Vec<String>>> = Arc::default();
    let h = hooked.clone();
    let (hook, _) = host_server(&c, move |_, body| {
        let h = h.clone();
        async move {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let id = v["data"]["id"]
                .as_str()
                .or(v["id"].as_str())
                .unwrap_or("")
                .to_owned();
            h.lock().unwrap().push(id);
            "ok".into_response()
        }
    })
    .await;
    let sim = rubra_simulate::OddsSim::start(rubra_simulate::OddsConfig {
        listen: std::net::SocketAddr::from((c.host_ip(), 0)),
        games: 5,
        seed: 26,
        ..rubra_simulate::OddsConfig::default()
    })
    .await
    .unwrap();
    let sim_host = sim
        .game_url(1)
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let common = args(&[
        "--fetch-allow",
        &format!("{hook},{sim_host}"),
        "--jobs-local-root",
        &jobs_root.display().to_string(),
        "--jobs-s3-allow",
        &bucket,
        "--notify-timeout-ms",
        "2000",
        "--watch-lease-ms",
        "3000",
        "--rate-limit-anonymous-rps",
        "1000",
    ]);
    for _ in 0..3 {
        c.spawn(Role::Serve, &common);
    }
    for _ in 0..2 {
        c.spawn(Role::Worker, &common);
    }
    let api = Arc::new(Api {
        bases: (0..3).map(|i| c.node(i).base()).collect(),
    });
    let http = reqwest::Client::new();
    let admin = c.admin_key().unwrap().to_owned();
    let ev_key = make_client(&http, &api.bases[0], &admin, "ev").await;
    let red_key = make_client(&http, &api.bases[0], &admin, "red").await;
    let msg_key = make_client(&http, &api.bases[0], &admin, "msg").await;
    let msg_id = own_client_id(&http, &api.bases[0], &msg_key).await;
    for (key, sub) in [
        (
            &ev_key,
            json!({"threshold": 0.8, "channel": {"type": "webhook", "url": format!("http://{hook}/ev")}}),
        ),
        (
            &msg_key,
            json!({"types": ["chaos.*"], "channel": {"type": "webhook", "url": format!("http://{hook}/msg")}}),
        ),
    ] {
        let url = format!("{}/subscriptions", api.bases[0]);
        let (status, _) = post_settled(&http, &url, key, &sub).await;
        assert_eq!(status, 201);
    }
    let mut watch_ids = Vec::new();
    for g in 1..=5 {
        let url = format!("{}/watches", api.bases[0]);
        let body = json!({"url": sim.game_url(g), "interval_ms": 500});
        let (status, r) = post_settled(&http, &url, &ev_key, &body).await;
        assert_eq!(status, 201);
        watch_ids.push(r["id"].as_str().unwrap().to_owned());
    }

    let c = Arc::new(Mutex::new(c));
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (amqp_url, queue) = {
        let env_url = std::env::var("RUBRA_TEST_AMQP_URL").unwrap();
        (env_url, c.lock().unwrap().amqp_url_and_queue().unwrap().1)
    };
    let started = Instant::now();
    let load = vec![
        tokio::spawn(uploads(
            tally.clone(),
            api.clone(),
            ev_key.clone(),
            stop.clone(),
        )),
        tokio::spawn(events(
            tally.clone(),
            api.clone(),
            ev_key.clone(),
            stop.clone(),
        )),
        tokio::spawn(red(
            tally.clone(),
            api.clone(),
            red_key.clone(),
            stop.clone(),
        )),
        tokio::spawn(messages(
            tally.clone(),
            amqp_url,
            queue,
            msg_id.clone(),
            stop.clone(),
        )),
        tokio::spawn(jobs(
            tally.clone(),
            api.clone(),
            ev_key.clone(),
            bucket.clone(),
            stop.clone(),
        )),
    ];
    driver(c.clone(), tally.clone(), minutes, stop.clone()).await;
    for l in load {
        l.await.unwrap();
    }
    let ran = started.elapsed();
    // Everything back: every process up, linked and running.
    let mut c = Arc::into_inner(c)
        .expect("the driver is done")
        .into_inner()
        .unwrap();
    {
        for i in 0..c.len() {
            c.heal(i);
            c.heal_from(i, Service::Postgres);
            if c.is_paused(i) {
                c.resume(i);
            }
            if !c.node_mut(i).is_running() {
                c.restart(i);
            }
        }
    }
    sim.pause();

    // The invariants, once the work has drained (leases run out: up to ~35 s).
    let mut pg = db(&c).await;
    let tally = &*tally;
    let settle_for = Duration::from_secs(240);
    let notif_total: i64 = until("every notification delivered", settle_for, || async {
        let (pending, total): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*) FILTER (WHERE state <> 'delivered'), COUNT(*) FROM notifications",
        )
        .fetch_one(&mut db(&c).await)
        .await
        .ok()?;
        let (notes_m,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM notifications WHERE message_id IS NOT NULL")
                .fetch_one(&mut db(&c).await)
                .await
                .ok()?;
        let msgs = tally.messages.load(Ordering::Relaxed) as i64;
        (pending == 0 && notes_m >= msgs).then_some(total)
    })
    .await;
    until("every job finished", settle_for, || async {
        let (open,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')")
                .fetch_one(&mut db(&c).await)
                .await
                .ok()?;
        (open == 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut report = Vec::<(String, bool)>::new();
    // Images: every accepted one stored and readable, byte for byte.
    let images = tally.images.lock().unwrap().clone();
    let mut bad_images = 0;
    for (id, bytes) in &images {
        let got = http
            .get(format!("{}/images/{id}", api.bases[0]))
            .bearer_auth(&ev_key)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        if got.as_ref() != bytes.as_slice() {
            bad_images += 1;
        }
    }
    report.push((
        format!(
            "images accepted {}, stored and readable {}",
            images.len(),
            images.len() - bad_images
        ),
        bad_images == 0,
    ));
    // Events: /stats counts every accepted event once (events + first uploads for "ev").
    let stats = |key: String| {
        let http = http.clone();
        let base = api.bases[1].clone();
        async move {
            let s: Value = http
                .get(format!(
                    "{base}/stats?from=0&to=9999999999999&threshold=0.5"
                ))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            s["total"].as_u64().unwrap()
        }
    };
    let ev_expected = tally.events.load(Ordering::Relaxed) + images.len() as u64;
    let ev_total = stats(ev_key.clone()).await;
    let ev_unknown = tally.events_unknown.load(Ordering::Relaxed);
    report.push((
        format!(
            "events accepted (batches + uploads) {ev_expected} (+{ev_unknown} never settled), counted by /stats {ev_total}"
        ),
        ev_total >= ev_expected && ev_total <= ev_expected + ev_unknown,
    ));
    let (red_ok, red_unknown) = (
        tally.red_ok.load(Ordering::Relaxed),
        tally.red_unknown.load(Ordering::Relaxed),
    );
    let red_total = stats(red_key.clone()).await;
    report.push((
        format!("/red answered {red_ok} (+{red_unknown} answers lost), counted {red_total}"),
        red_total >= red_ok && red_total <= red_ok + red_unknown,
    ));
    // Notifications: each delivered at least once to the receiver, logged delivered once.
    let seen: HashSet<String> = hooked.lock().unwrap().iter().cloned().collect();
    let ids: Vec<(i64, Option<String>)> =
        sqlx::query_as("SELECT seq, message_id FROM notifications")
            .fetch_all(&mut pg)
            .await
            .unwrap();
    let missing = ids
        .iter()
        .filter(|(seq, m)| {
            let id = m.clone().unwrap_or_else(|| format!("ntf_{seq}"));
            !seen.contains(&id)
        })
        .count();
    report.push((
        format!(
            "notifications {notif_total}, received by the webhook at least once {}",
            ids.len() - missing
        ),
        missing == 0,
    ));
    let (logged, distinct): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT notification_seq) FROM delivery_attempts WHERE outcome = 'delivered'")
        .fetch_one(&mut pg).await.unwrap();
    report.push((
        format!(
            "delivery log: delivered rows {logged} for {distinct} notifications (of {notif_total})"
        ),
        logged == distinct && distinct == notif_total,
    ));
    let msgs = tally.messages.load(Ordering::Relaxed) as i64;
    let (msg_notes, msg_distinct): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT message_id) FROM notifications WHERE message_id IS NOT NULL")
        .fetch_one(&mut pg).await.unwrap();
    report.push((
        format!("messages published {msgs}, notifications {msg_notes} ({msg_distinct} distinct)"),
        msg_notes == msgs && msg_distinct == msgs,
    ));
    // Jobs: each succeeded once with the right sum.
    let jobs = tally.jobs.lock().unwrap().clone();
    let mut good = 0;
    let mut attempts_over_1 = 0;
    for (id, sum) in &jobs {
        let (state, result, attempts): (String, Option<String>, i32) =
            sqlx::query_as("SELECT state, result, attempts FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_one(&mut pg)
                .await
                .unwrap();
        let r: Value = result
            .as_deref()
            .map(|r| serde_json::from_str(r).unwrap())
            .unwrap_or(Value::Null);
        if state == "succeeded" && r["columns"][0]["sum"] == sum.as_str() {
            good += 1;
        }
        if attempts > 1 {
            attempts_over_1 += 1;
        }
    }
    report.push((format!("jobs {}, succeeded with the right sum {good} ({attempts_over_1} taken over or retried)", jobs.len()), good == jobs.len()));
    // Watches: per path, each recorded change follows the one before (none twice), and the
    // last recorded value is the simulator's.
    let truth = sim.changes();
    let mut breaks = 0;
    let mut recorded = 0;
    let mut stale_end = 0;
    for (g, id) in watch_ids.iter().enumerate() {
        let game = u32::try_from(g + 1).unwrap();
        let rows: Vec<(i64, String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT seq, path, old, new FROM watch_changes WHERE watch_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&mut pg)
        .await
        .unwrap();
        recorded += rows.len();
        let parse = |v: Option<String>| v.map(|s| serde_json::from_str::<Value>(&s).unwrap());
        let (b, got) = chain(
            rows.into_iter()
                .map(|(_, path, old, new)| (path, parse(old), parse(new))),
        );
        breaks += b;
        let (_, want) = chain(
            truth
                .iter()
                .filter(|ch| ch.game == game)
                .map(|ch| (ch.path.clone(), ch.old.clone(), ch.new.clone())),
        );
        stale_end += got
            .iter()
            .filter(|(path, v)| want.get(*path).is_some_and(|w| w != *v))
            .count();
    }
    report.push((format!("odds changes made {}, recorded {recorded}; broken chains {breaks}, last values differing {stale_end}", truth.len()),
        breaks == 0 && stale_end == 0));
    let statuses = tally.statuses.lock().unwrap().clone();
    let other_5xx: u64 = statuses
        .iter()
        .filter(|(s, _)| **s >= 500 && **s != 503)
        .map(|(_, n)| n)
        .sum();
    report.push((
        format!(
            "answers 5xx/429/409 by status {statuses:?}, requests failed (timeouts, resets) {}",
            tally.errors.load(Ordering::Relaxed)
        ),
        other_5xx == 0,
    ));

    println!(
        "\n== chaos soak: {:.1} min, 3 serve + 2 worker",
        ran.as_secs_f64() / 60.0
    );
    println!("faults injected: {:?}", tally.faults.lock().unwrap());
    for (line, ok) in &report {
        println!("{} {line}", if *ok { "OK  " } else { "FAIL" });
    }
    assert!(report.iter().all(|(_, ok)| *ok), "an invariant failed");
}
