//! Fencing at the process level: a process cut off from PostgreSQL past its lease while it holds
//! work, another takes the work over, and once healed the cut one must not write a stale
//! result, verdict or change — every such write carries the lease's token.

use super::support::{
    args, cluster, db, get_json, host_server, make_client, node_logs, post_settled, until,
};
use axum::response::IntoResponse;
use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use rubra_testkit::cluster::{Cluster, Role, Service};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// A CSV whose 10th column holds cents; the exact sum.
fn gen_csv(rows: usize) -> (Vec<u8>, String) {
    let mut rng = fastrand::Rng::with_seed(26);
    let mut out = b"c1,c2,c3,c4,c5,c6,c7,c8,c9,amount\n".to_vec();
    let mut cents: i128 = 0;
    for _ in 0..rows {
        let v = rng.i64(0..1_000_000);
        cents += i128::from(v);
        out.extend_from_slice(format!("1,2,3,4,5,6,7,8,9,{}.{:02}\n", v / 100, v % 100).as_bytes());
    }
    (out, format!("{}.{:02}", cents / 100, cents % 100))
}

/// The job row as the store holds it: (state, attempts, result, finished_at).
async fn job_row(c: &Cluster, id: &str) -> (String, i32, Option<String>, Option<i64>) {
    sqlx::query_as("SELECT state, attempts, result, finished_at FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&mut db(c).await)
        .await
        .unwrap()
}

/// Worker 1 runs a job; it is cut off (every link) past the 10 s lease; worker 2 takes the job
/// over and finishes it; worker 1, healed, finds its lease gone and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_cut_off_past_its_job_lease_writes_no_stale_result() {
    let test = "a_worker_cut_off_past_its_job_lease_writes_no_stale_result";
    let Some(mut c) = cluster(test, false).await else {
        return;
    };
    let (csv, sum) = gen_csv(100_000);
    let size = csv.len() as u64;
    let store = AmazonS3Builder::from_env()
        .with_endpoint(std::env::var("RUBRA_TEST_S3_ENDPOINT").unwrap())
        .with_allow_http(true)
        .with_bucket_name(c.bucket())
        .build()
        .unwrap();
    store
        .put(&ObjectPath::from("big.csv"), csv.into())
        .await
        .unwrap();
    let allow = c.bucket().to_owned();
    let api = c.spawn(
        Role::Serve,
        &args(&["--job-workers", "0", "--jobs-s3-allow", &allow]),
    );
    let base = c.node(api).base();
    let http = reqwest::Client::new();
    let key = make_client(&http, &base, c.admin_key().unwrap(), "acme").await;
    // About 8 s a run: the job is mid-way when its worker is cut off.
    c.s3().set_rate(size / 8);
    let worker = args(&["--job-workers", "1", "--jobs-s3-allow", &allow]);
    let first = c.spawn(Role::Worker, &worker);
    let (status, submitted) = post_settled(
        &http,
        &format!("{base}/jobs"),
        &key,
        &json!({"source": format!("s3://{allow}/big.csv")}),
    )
    .await;
    assert_eq!(status, 202, "{submitted}");
    let id = submitted["id"].as_str().unwrap().to_owned();
    let url = format!("{base}/jobs/{id}");
    until(
        "the first worker to be mid-job",
        Duration::from_secs(30),
        || async {
            let j = get_json(&http, &url, &key).await?;
            (j["state"] == "running" && !j["progress"]["bytes_total"].is_null()).then_some(())
        },
    )
    .await;
    let _second = c.spawn(Role::Worker, &worker);
    c.cut(first);
    until(
        "the job to be taken over",
        Duration::from_secs(40),
        || async {
            let j = get_json(&http, &url, &key).await?;
            (j["attempts"] == 2).then_some(())
        },
    )
    .await;
    c.s3().set_rate(0);
    let done = until("the job to succeed", Duration::from_secs(60), || async {
        let j = get_json(&http, &url, &key).await?;
        (j["state"] != "running").then_some(j)
    })
    .await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        done["result"],
        json!({"rows": 100_000, "columns": [{"index": 10, "name": "amount", "sum": sum}]})
    );
    let row = job_row(&c, &id).await;
    c.heal(first);
    // The healed worker learns that its lease is gone (a refused heartbeat or its own clock).
    until(
        "the healed worker to give the job up",
        Duration::from_secs(60),
        || async {
            let logs = node_logs(&c, first);
            (logs.contains("lease lost") || logs.contains("lease expired without a heartbeat"))
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        job_row(&c, &id).await,
        row,
        "the job row changed after the heal"
    );
    assert!(
        c.node_mut(first).is_running(),
        "the healed worker is still up"
    );
}

/// The changes of watch `id` in order: (seq, old, new).
async fn changes(c: &Cluster, id: &str) -> Vec<(i64, Option<String>, Option<String>)> {
    sqlx::query_as("SELECT seq, old, new FROM watch_changes WHERE watch_id = $1 ORDER BY seq")
        .bind(id)
        .fetch_all(&mut db(c).await)
        .await
        .unwrap()
}

/// A watch's poller is cut off from PostgreSQL (it can still fetch the source) past its 2 s
/// lease; another process takes the watch over; healed, the first records no change: every
/// change follows from the one before (no version recorded twice, none skipped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poller_cut_off_past_its_watch_lease_records_no_stale_change() {
    let test = "a_poller_cut_off_past_its_watch_lease_records_no_stale_change";
    let Some(mut c) = cluster(test, false).await else {
        return;
    };
    // The document changes every 300 ms: {"v": <time / 300 ms>}.
    let (source, seen) = host_server(&c, |_, _| async {
        let v = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            / 300;
        axum::Json(json!({ "v": v as u64 })).into_response()
    })
    .await;
    let common = args(&["--fetch-allow", &source, "--watch-lease-ms", "2000"]);
    let mut api_args = common.clone();
    api_args.extend(args(&["--watch-capacity", "0"]));
    let api = c.spawn(Role::Serve, &api_args);
    let base = c.node(api).base();
    let http = reqwest::Client::new();
    let key = make_client(&http, &base, c.admin_key().unwrap(), "acme").await;
    let w1 = c.spawn(Role::Worker, &common);
    let w2 = c.spawn(Role::Worker, &common);
    let (status, watch) = post_settled(
        &http,
        &format!("{base}/watches"),
        &key,
        &json!({"url": format!("http://{source}/odds"), "interval_ms": 100}),
    )
    .await;
    assert_eq!(status, 201, "{watch}");
    let id = watch["id"].as_str().unwrap().to_owned();
    let n = until("three changes", Duration::from_secs(30), || async {
        let ch = changes(&c, &id).await;
        (ch.len() >= 3).then_some(ch.len())
    })
    .await;
    let holder = *seen.lock().unwrap().last().unwrap();
    assert!(holder == w1 || holder == w2, "polled by node {holder}");
    let other = if holder == w1 { w2 } else { w1 };
    c.cut_from(holder, Service::Postgres);
    let mark = seen.lock().unwrap().len();
    until(
        "the other worker to take the watch over",
        Duration::from_secs(30),
        || async {
            let taken = seen.lock().unwrap()[mark..].contains(&other);
            (taken && changes(&c, &id).await.len() >= n + 5).then_some(())
        },
    )
    .await;
    c.heal_from(holder, Service::Postgres);
    until(
        "the healed poller to give the watch up",
        Duration::from_secs(60),
        || async {
            node_logs(&c, holder)
                .contains("watch lease lost")
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = changes(&c, &id).await;
    for pair in all.windows(2) {
        assert_eq!(pair[1].0, pair[0].0 + 1, "seqs in a row: {all:?}");
        assert_eq!(
            pair[1].1, pair[0].2,
            "each change follows the last: {all:?}"
        );
    }
}

/// The delivery worker holding a notification is cut off from PostgreSQL while its webhook call
/// is answered 200, past the delivery lease (the call limit + 30 s); another process delivers
/// it again and records it; healed, the first's verdict changes nothing (if it reaches the
/// database, its attempt is logged `superseded`): the notification is delivered once in the
/// log, by the process that held the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deliverer_cut_off_past_its_lease_records_no_stale_verdict() {
    let test = "a_deliverer_cut_off_past_its_lease_records_no_stale_verdict";
    let Some(mut c) = cluster(test, false).await else {
        return;
    };
    // The first call waits for the test's word (the caller is cut off meanwhile); later ones
    // are answered at once.
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let (first_tx, mut first_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (hook, seen) = host_server(&c, move |node, _| {
        let (mut go, first, calls) = (go_rx.clone(), first_tx.clone(), calls.clone());
        async move {
            if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                let _ = first.send(node);
                let _ = go.wait_for(|g| *g).await;
            }
            "ok".into_response()
        }
    })
    .await;
    let common = args(&["--fetch-allow", &hook, "--notify-timeout-ms", "3000"]);
    let api = c.spawn(Role::Serve, &common);
    let base = c.node(api).base();
    let http = reqwest::Client::new();
    let key = make_client(&http, &base, c.admin_key().unwrap(), "acme").await;
    let _worker = c.spawn(Role::Worker, &common);
    let sub = json!({"threshold": 0.5, "channel": {"type": "webhook", "url": format!("http://{hook}/hook")}});
    let (status, r) = post_settled(&http, &format!("{base}/subscriptions"), &key, &sub).await;
    assert_eq!(status, 201, "{r}");
    let (status, r) = post_settled(
        &http,
        &format!("{base}/events"),
        &key,
        &json!([{"red": 0.9}]),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    let holder = tokio::time::timeout(Duration::from_secs(30), first_rx.recv())
        .await
        .expect("the webhook was called")
        .unwrap();
    c.cut_from(holder, Service::Postgres);
    go_tx.send_replace(true);
    let state = || async {
        let (state,): (String,) = sqlx::query_as("SELECT state FROM notifications")
            .fetch_one(&mut db(&c).await)
            .await
            .unwrap();
        state
    };
    until(
        "another process to deliver it",
        Duration::from_secs(90),
        || async {
            let other = seen.lock().unwrap().iter().skip(1).any(|n| *n != holder);
            (other && state().await == "delivered").then_some(())
        },
    )
    .await;
    let log = || async {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT attempt, outcome FROM delivery_attempts ORDER BY id")
                .fetch_all(&mut db(&c).await)
                .await
                .unwrap();
        rows
    };
    let before = log().await;
    c.heal_from(holder, Service::Postgres);
    // The healed process's verdict reaches the database or fails for good within its retries.
    until(
        "the healed process to settle its verdict",
        Duration::from_secs(90),
        || async {
            let l = node_logs(&c, holder);
            (l.contains("recording deliveries failed") || log().await.len() > before.len())
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(state().await, "delivered");
    // Delivered once in the log, by a lease holder's attempt (the taker's, 2 or later); the
    // cut-off holder's attempt 1, if its verdict reached the database at all, is `superseded`.
    let log = log().await;
    let delivered: Vec<i64> = log
        .iter()
        .filter(|(_, o)| o == "delivered")
        .map(|(a, _)| *a)
        .collect();
    assert_eq!(delivered.len(), 1, "logged delivered once: {log:?}");
    assert!(delivered[0] >= 2, "by the taker's attempt: {log:?}");
    assert!(
        log.iter().all(|(a, o)| *a != 1 || o == "superseded"),
        "the stale attempt is logged superseded: {log:?}"
    );
}
