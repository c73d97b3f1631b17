//! CSV jobs through the real app: local disk and S3 with exact sums, cancel, path escapes,
//! sources the operator did not allow, many jobs of one client under the per-client limit,
//! client isolation.
//!
//! Expected sums are computed here from integer cents, independently of the summing engine.

use crate::helpers::{TestApp, assert_error, spawn_app_with};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A generated CSV and its exact expected result.
struct Csv {
    bytes: Vec<u8>,
    rows: u64,
    /// Sums of columns 10 and 20 (1-based), in cents.
    cents: [i128; 2],
}

/// `rows` rows × 25 columns, CRLF, a header; columns 10 and 20 hold numbers written as
/// decimals, quoted decimals, integers, exponents and empty cells; other columns hold text
/// with quotes, delimiters and newlines inside quotes; every 7th row is short (15 columns,
/// so its column 20 counts as empty).
fn gen_csv(rows: u64, seed: u64) -> Csv {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = Vec::new();
    let header: Vec<String> = (1..=25)
        .map(|c| match c {
            10 => "net".to_owned(),
            20 => "gross".to_owned(),
            c => format!("c{c}"),
        })
        .collect();
    out.extend_from_slice(header.join(",").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut cents = [0i128; 2];
    for r in 0..rows {
        let width = if r % 7 == 3 { 15 } else { 25 };
        for c in 1..=width {
            if c > 1 {
                out.push(b',');
            }
            if c == 10 || c == 20 {
                let v = rng.i64(-10_000_000..10_000_000);
                let text = match rng.u8(..6) {
                    0 => String::new(),
                    1 => format!("\"{}\"", decimal(i128::from(v))),
                    2 => format!("{}e-2", v),
                    3 => format!("{}", v / 100),
                    _ => decimal(i128::from(v)),
                };
                let value = match rng_kind(&text) {
                    Kind::Empty => 0,
                    Kind::Integer => i128::from(v / 100) * 100,
                    Kind::Cents => i128::from(v),
                };
                cents[usize::from(c == 20)] += value;
                out.extend_from_slice(text.as_bytes());
            } else {
                let text = match rng.u8(..4) {
                    0 => "\"say \"\"hi\"\", then\r\nleave\"".to_owned(),
                    1 => String::new(),
                    _ => format!("t{}", rng.u32(..1000)),
                };
                out.extend_from_slice(text.as_bytes());
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    Csv {
        bytes: out,
        rows,
        cents,
    }
}

enum Kind {
    Empty,
    Integer,
    Cents,
}

fn rng_kind(text: &str) -> Kind {
    if text.is_empty() {
        Kind::Empty
    } else if text.contains('.') || text.contains('e') {
        Kind::Cents
    } else {
        Kind::Integer
    }
}

/// Cents as an exact decimal string with two places.
fn decimal(cents: i128) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let a = cents.abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

fn expected_result(csv: &Csv) -> Value {
    json!({
        "rows": csv.rows,
        "columns": [
            {"index": 10, "name": "net", "sum": decimal(csv.cents[0])},
            {"index": 20, "name": "gross", "sum": decimal(csv.cents[1])},
        ]
    })
}

async fn submit(app: &TestApp, key: &str, body: Value) -> String {
    let resp = app
        .with_key(key, Method::POST, "/jobs")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{:?}", resp.text().await);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["state"], "queued");
    body["id"].as_str().unwrap().to_owned()
}

async fn get_job(app: &TestApp, key: &str, id: &str) -> Value {
    let resp = app
        .with_key(key, Method::GET, &format!("/jobs/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn get_json(app: &TestApp, key: &str, path: &str) -> Value {
    let resp = app.with_key(key, Method::GET, path).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

/// Polls the job until `done` holds for it, or panics after `within`.
async fn wait_job(
    app: &TestApp,
    key: &str,
    id: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let until = Instant::now() + within;
    loop {
        let job = get_job(app, key, id).await;
        if done(&job) {
            return job;
        }
        assert!(
            Instant::now() < until,
            "job did not get there in time: {job}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn is_final(job: &Value) -> bool {
    matches!(
        job["state"].as_str(),
        Some("succeeded" | "failed" | "canceled")
    )
}

async fn local_app(root: &Path, workers: u32, per_client: u32) -> TestApp {
    let root = root.to_owned();
    spawn_app_with(move |c| {
        c.jobs_local_root = Some(root);
        c.job_workers = Some(workers);
        c.jobs_per_client = Some(per_client);
    })
    .await
}

/// Uploads `data` to `bucket/key` on the S3 server (signed, with the AWS_* test credentials).
async fn upload(endpoint: &str, bucket: &str, key: &str, data: Vec<u8>) {
    let env = rubra_jobs::RunEnv::new(rubra_jobs::S3Config {
        endpoint: Some(endpoint.to_owned()),
        allow_http: true,
        region: None,
    });
    env.s3_store(bucket)
        .unwrap()
        .put(&ObjectPath::from(key), data.into())
        .await
        .unwrap();
}

/// A TCP proxy in front of the S3 server that sends responses at about `bytes_per_sec`,
/// so that jobs run long enough to be watched, canceled and counted.
async fn slow_proxy(upstream: &str, bytes_per_sec: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.trim_start_matches("http://").to_owned();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                });
                let chunk = (bytes_per_sec / 20).max(1);
                let mut buf = vec![0u8; chunk];
                loop {
                    match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if cw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let _ = cw.shutdown().await;
            });
        }
    });
    endpoint
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_from_local_disk_has_exact_sums() {
    let root = tempfile::tempdir().unwrap();
    let csv = gen_csv(20_000, 1);
    std::fs::create_dir(root.path().join("in")).unwrap();
    std::fs::write(root.path().join("in/data.csv"), &csv.bytes).unwrap();
    let app = local_app(root.path(), 2, 2).await;
    let (_, key) = app.create_client("acme").await;
    let id = submit(&app, &key, json!({"source": "in/data.csv"})).await;
    assert!(id.starts_with("job_"), "{id}");
    let job = wait_job(&app, &key, &id, Duration::from_secs(60), is_final).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"], expected_result(&csv));
    assert_eq!(job["source"], "in/data.csv");
    assert_eq!(job["error"], Value::Null);
    assert_eq!(job["progress"]["rows"], csv.rows);
    assert_eq!(job["progress"]["bytes_done"], csv.bytes.len());
    for t in ["created_at", "started_at", "finished_at"] {
        assert!(job[t].as_str().unwrap().ends_with('Z'), "{t}: {job}");
    }
    let active = get_json(&app, &key, "/jobs/active").await;
    assert_eq!(active, json!({"queued": 0, "running": 0}));

    // step, delimiter and header options reach the engine.
    std::fs::write(root.path().join("semi.csv"), b"1;2.5;x\r\n3;-1.25;y\r\n").unwrap();
    let id = submit(
        &app,
        &key,
        json!({"source": "semi.csv", "step": 2, "delimiter": ";", "header": false}),
    )
    .await;
    let job = wait_job(&app, &key, &id, Duration::from_secs(30), is_final).await;
    assert_eq!(
        job["result"],
        json!({"rows": 2, "columns": [{"index": 2, "name": "c2", "sum": "1.25"}]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_number_fails_the_job_naming_row_and_column() {
    let root = tempfile::tempdir().unwrap();
    let mut data = b"a,b\n".to_vec();
    data.extend_from_slice(b"1,2\n3,oops\n");
    std::fs::write(root.path().join("bad.csv"), data).unwrap();
    let app = local_app(root.path(), 1, 2).await;
    let (_, key) = app.create_client("acme").await;
    let id = submit(&app, &key, json!({"source": "bad.csv", "step": 2})).await;
    let job = wait_job(&app, &key, &id, Duration::from_secs(30), is_final).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["attempts"], 1, "a CSV error is final, not retried");
    assert_eq!(job["result"], Value::Null);
    let message = job["error"]["message"].as_str().unwrap();
    assert!(
        job["error"]["code"].as_str().unwrap().starts_with("csv_"),
        "{job}"
    );
    // Named by position; the cell itself is not echoed.
    assert!(
        message.contains("row 2, column 2") && !message.contains("oops"),
        "{message}"
    );
    // A finished job cannot be canceled.
    let resp = app
        .with_key(&key, Method::DELETE, &format!("/jobs/{id}"))
        .send()
        .await
        .unwrap();
    assert_error(resp, 409, "job_finished").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_through_s3_has_exact_sums() {
    let test = "a_job_through_s3_has_exact_sums";
    let Some(bucket) = rubra_testkit::fresh_bucket(test).await else {
        return;
    };
    let csv = gen_csv(30_000, 2);
    upload(
        &bucket.endpoint,
        &bucket.bucket,
        "dir/data.csv",
        csv.bytes.clone(),
    )
    .await;
    let endpoint = bucket.endpoint.clone();
    let allow = bucket.bucket.clone();
    let app = spawn_app_with(move |c| {
        c.jobs_s3_allow = Some(vec![allow]);
        c.s3_endpoint = Some(endpoint);
    })
    .await;
    let (_, key) = app.create_client("acme").await;
    let source = format!("s3://{}/dir/data.csv", bucket.bucket);
    let id = submit(&app, &key, json!({ "source": source })).await;
    let job = wait_job(&app, &key, &id, Duration::from_secs(60), is_final).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"], expected_result(&csv));
    assert_eq!(job["source"], source);

    // A missing object fails for good with its own code.
    let id = submit(
        &app,
        &key,
        json!({ "source": format!("s3://{}/nope.csv", bucket.bucket) }),
    )
    .await;
    let job = wait_job(&app, &key, &id, Duration::from_secs(60), is_final).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "object_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_running_job_within_a_second() {
    let test = "cancel_stops_a_running_job_within_a_second";
    let Some(bucket) = rubra_testkit::fresh_bucket(test).await else {
        return;
    };
    let csv = gen_csv(20_000, 3);
    upload(
        &bucket.endpoint,
        &bucket.bucket,
        "slow.csv",
        csv.bytes.clone(),
    )
    .await;
    // About 8 s for the whole file: far longer than the test waits.
    let proxy = slow_proxy(&bucket.endpoint, csv.bytes.len() / 8).await;
    let allow = bucket.bucket.clone();
    let app = spawn_app_with(move |c| {
        c.jobs_s3_allow = Some(vec![allow]);
        c.s3_endpoint = Some(proxy);
    })
    .await;
    let (_, key) = app.create_client("acme").await;
    let source = format!("s3://{}/slow.csv", bucket.bucket);
    let id = submit(&app, &key, json!({ "source": source })).await;
    // Running, with progress reported by a heartbeat (the size is known from the first
    // response; parsed bytes are counted per 4 MiB batch, so they may still be 0).
    let job = wait_job(&app, &key, &id, Duration::from_secs(10), |j| {
        j["state"] == "running" && !j["progress"]["bytes_total"].is_null()
    })
    .await;
    assert_eq!(job["progress"]["bytes_total"], csv.bytes.len(), "{job}");
    let asked = Instant::now();
    let resp = app
        .with_key(&key, Method::DELETE, &format!("/jobs/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["cancel_requested"], true, "{body}");
    let job = wait_job(&app, &key, &id, Duration::from_secs(5), is_final).await;
    assert_eq!(job["state"], "canceled", "{job}");
    assert_eq!(job["result"], Value::Null);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "stopped in {:?}",
        asked.elapsed()
    );
    assert_eq!(
        get_json(&app, &key, "/jobs/active").await,
        json!({"queued": 0, "running": 0})
    );

    // A queued job is canceled at once (no worker here: it would never start).
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("x.csv"), b"a\n1\n").unwrap();
    let idle = local_app(root.path(), 0, 2).await;
    let (_, key) = idle.create_client("acme").await;
    let id = submit(&idle, &key, json!({"source": "x.csv"})).await;
    let resp = idle
        .with_key(&key, Method::DELETE, &format!("/jobs/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["state"], "canceled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_escapes_and_bad_options_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.csv"), b"a\n1\n").unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.csv"),
        root.path().join("link.csv"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("dir")).unwrap();
    std::fs::create_dir(root.path().join("sub")).unwrap();
    let app = local_app(root.path(), 1, 2).await;
    let (_, key) = app.create_client("acme").await;
    let post = |body: Value| app.with_key(&key, Method::POST, "/jobs").json(&body).send();
    for source in [
        "../secret.csv",
        "sub/../../secret.csv",
        "/etc/passwd",
        "link.csv",
        "dir/secret.csv",
    ] {
        let resp = post(json!({ "source": source })).await.unwrap();
        assert_error(resp, 400, "source_outside_root").await;
    }
    for source in ["", "s3://bucket", "http://example.invalid/x.csv"] {
        let resp = post(json!({ "source": source })).await.unwrap();
        assert_error(resp, 400, "bad_source").await;
    }
    let resp = post(json!({"source": "missing.csv"})).await.unwrap();
    assert_error(resp, 422, "source_not_found").await;
    let resp = post(json!({"source": "sub"})).await.unwrap();
    assert_error(resp, 400, "source_not_a_file").await;
    std::fs::write(root.path().join("ok.csv"), b"a\n1\n").unwrap();
    let resp = post(json!({"source": "ok.csv", "step": 0})).await.unwrap();
    assert_error(resp, 422, "invalid_step").await;
    let resp = post(json!({"source": "ok.csv", "delimiter": "ab"}))
        .await
        .unwrap();
    assert_error(resp, 422, "invalid_delimiter").await;
    let resp = post(json!({"source": "ok.csv", "delimiter": "\""}))
        .await
        .unwrap();
    assert_error(resp, 422, "invalid_delimiter").await;
    let resp = post(json!({"src": "ok.csv"})).await.unwrap();
    assert_error(resp, 422, "invalid_fields").await;
    // Nothing was queued by any of these.
    let list = get_json(&app, &key, "/jobs").await;
    assert_eq!(list["items"], json!([]), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_clients_job_is_not_found() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("x.csv"), b"a\n1\n").unwrap();
    // No workers: the job stays queued, so DELETE would cancel it if it were visible.
    let app = local_app(root.path(), 0, 2).await;
    let (a_id, a) = app.create_client("acme").await;
    let (_, b) = app.create_client("globex").await;
    let id = submit(&app, &a, json!({"source": "x.csv"})).await;
    for method in [Method::GET, Method::DELETE] {
        let resp = app
            .with_key(&b, method, &format!("/jobs/{id}"))
            .send()
            .await
            .unwrap();
        assert_error(resp, 404, "not_found").await;
    }
    let resp = app
        .with_key(&b, Method::GET, "/jobs/job_nothex")
        .send()
        .await
        .unwrap();
    assert_error(resp, 404, "not_found").await;
    assert_eq!(get_json(&app, &b, "/jobs").await["items"], json!([]));
    assert_eq!(
        get_json(&app, &b, "/jobs/active").await,
        json!({"queued": 0, "running": 0})
    );
    assert_eq!(
        get_json(&app, &a, "/jobs/active").await,
        json!({"queued": 1, "running": 0})
    );
    assert_eq!(get_job(&app, &a, &id).await["state"], "queued");
    // Admins see it, and may submit for a client.
    let admin = app.admin_key.clone();
    assert_eq!(get_job(&app, &admin, &id).await["client_id"], a_id);
    let resp = app
        .admin(Method::POST, &format!("/jobs?client={a_id}"))
        .json(&json!({"source": "x.csv"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(
        get_json(&app, &admin, &format!("/jobs/active?client={a_id}")).await,
        json!({"queued": 2, "running": 0})
    );
    // Paging, newest first, and the state filter.
    let page = get_json(&app, &a, "/jobs?limit=1").await;
    let first = page["items"][0]["id"].as_str().unwrap().to_owned();
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let page2 = get_json(&app, &a, &format!("/jobs?limit=1&cursor={cursor}")).await;
    assert_eq!(page2["items"][0]["id"], id);
    assert_ne!(first, id);
    let queued = get_json(&app, &a, "/jobs?state=queued").await;
    assert_eq!(queued["items"].as_array().unwrap().len(), 2);
    let none = get_json(&app, &a, "/jobs?state=succeeded").await;
    assert_eq!(none["items"], json!([]));
    let resp = app
        .with_key(&a, Method::GET, "/jobs?state=done")
        .send()
        .await
        .unwrap();
    assert_error(resp, 400, "invalid_query").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_jobs_of_one_client_run_under_the_limit_and_are_counted() {
    let test = "many_jobs_of_one_client_run_under_the_limit_and_are_counted";
    let Some(bucket) = rubra_testkit::fresh_bucket(test).await else {
        return;
    };
    let mut csvs = Vec::new();
    for i in 0..5u64 {
        let csv = gen_csv(3_000, 10 + i);
        upload(
            &bucket.endpoint,
            &bucket.bucket,
            &format!("{i}.csv"),
            csv.bytes.clone(),
        )
        .await;
        csvs.push(csv);
    }
    let other = gen_csv(3_000, 99);
    upload(
        &bucket.endpoint,
        &bucket.bucket,
        "other.csv",
        other.bytes.clone(),
    )
    .await;
    // Each job takes about 1.5 s through the proxy.
    let proxy = slow_proxy(&bucket.endpoint, csvs[0].bytes.len() * 2 / 3).await;
    let allow = bucket.bucket.clone();
    let app = spawn_app_with(move |c| {
        c.jobs_s3_allow = Some(vec![allow]);
        c.s3_endpoint = Some(proxy);
        c.job_workers = Some(4);
        c.jobs_per_client = Some(2);
    })
    .await;
    let (_, key) = app.create_client("acme").await;
    let (_, other_key) = app.create_client("globex").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let source = format!("s3://{}/{i}.csv", bucket.bucket);
        ids.push(submit(&app, &key, json!({ "source": source })).await);
    }
    // Two of acme's run, three wait — and globex is not starved by them.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let a = get_json(&app, &key, "/jobs/active").await;
        if a == json!({"queued": 3, "running": 2}) {
            break;
        }
        assert!(Instant::now() < until, "never saw 2 running, 3 queued: {a}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let other_id = submit(
        &app,
        &other_key,
        json!({ "source": format!("s3://{}/other.csv", bucket.bucket) }),
    )
    .await;
    wait_job(&app, &other_key, &other_id, Duration::from_secs(5), |j| {
        j["state"] == "running"
    })
    .await;
    assert_eq!(
        get_json(&app, &other_key, "/jobs/active").await,
        json!({"queued": 0, "running": 1})
    );
    // Watch until all are done: never more than two of acme's running, every count adding up.
    let until = Instant::now() + Duration::from_secs(60);
    let mut max_running = 0;
    let succeeded = || async {
        let done = get_json(&app, &key, "/jobs?state=succeeded").await;
        done["items"].as_array().unwrap().len() as u64
    };
    loop {
        // Jobs only move queued → running → succeeded, so the counts read in between two
        // readings of the succeeded ones must add up between them.
        let done_before = succeeded().await;
        let a = get_json(&app, &key, "/jobs/active").await;
        let running = a["running"].as_u64().unwrap();
        let queued = a["queued"].as_u64().unwrap();
        let done_after = succeeded().await;
        max_running = max_running.max(running);
        assert!(
            done_before <= 5 - running - queued && 5 - running - queued <= done_after,
            "{a}: done {done_before}..{done_after}"
        );
        let listed = get_json(&app, &key, "/jobs?state=running").await;
        assert!(listed["items"].as_array().unwrap().len() <= 2, "{listed}");
        if done_after == 5 {
            break;
        }
        assert!(Instant::now() < until, "jobs did not finish: {a}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(max_running, 2);
    for (id, csv) in ids.iter().zip(&csvs) {
        let job = get_job(&app, &key, id).await;
        assert_eq!(job["result"], expected_result(csv), "{id}");
    }
    let job = wait_job(
        &app,
        &other_key,
        &other_id,
        Duration::from_secs(30),
        is_final,
    )
    .await;
    assert_eq!(job["result"], expected_result(&other));
}

/// The attack on the old embedded default: the jobs root was `.`, which holds the data
/// folder, so `{"source": "rubra-data/admin.key", "step": 1}` summed the admin key and
/// `GET /jobs/{id}` showed it as the first column's name. Now no local source is accepted
/// until the operator names a jobs root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_key_through_a_job_is_refused_on_the_embedded_default() {
    // The data folder under the working directory, named relatively, as on the default.
    let cwd = tempfile::tempdir_in(".").unwrap();
    let name = cwd.path().file_name().unwrap().to_str().unwrap().to_owned();
    let data = Path::new(&name).join("rubra-data");
    let app = spawn_app_with({
        let data = data.clone();
        move |c| c.data_dir = Some(data)
    })
    .await;
    assert!(data.join("admin.key").exists(), "the key is on disk");
    let (_, key) = app.create_client("mallory").await;
    let source = data.join("admin.key").display().to_string();
    for source in [source.as_str(), "./x.csv", "../x.csv"] {
        let resp = app
            .with_key(&key, Method::POST, "/jobs")
            .json(&json!({ "source": source, "step": 1 }))
            .send()
            .await
            .unwrap();
        if resp.status() == 202 {
            // The old behaviour: show what the job read.
            let id = resp.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let job = wait_job(&app, &key, &id, Duration::from_secs(30), is_final).await;
            panic!("{source} was accepted: {job}");
        }
        assert_error(resp, 400, "local_sources_disabled").await;
    }
    let list = get_json(&app, &key, "/jobs").await;
    assert_eq!(list["items"], json!([]), "{list}");
}

/// `s3://any-bucket/key` was accepted: a client could read the header line of any object
/// the server's credentials reach. Only the operator's `jobs-s3-allow` entries are readable,
/// checked at submit (403, before anything is fetched or queued).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_or_prefix_outside_the_allow_list_is_refused() {
    let test = "a_bucket_or_prefix_outside_the_allow_list_is_refused";
    let Some(bucket) = rubra_testkit::fresh_bucket(test).await else {
        return;
    };
    let csv = gen_csv(500, 7);
    for key in ["pub/a.csv", "pub-other/a.csv", "secret.csv"] {
        upload(&bucket.endpoint, &bucket.bucket, key, csv.bytes.clone()).await;
    }
    let endpoint = bucket.endpoint.clone();
    let allow = format!("{}/pub/", bucket.bucket);
    let app = spawn_app_with(move |c| {
        c.jobs_s3_allow = Some(vec![allow]);
        c.s3_endpoint = Some(endpoint);
    })
    .await;
    let (_, key) = app.create_client("mallory").await;
    let b = &bucket.bucket;
    for source in [
        format!("s3://{b}/secret.csv"),
        format!("s3://{b}/pub-other/a.csv"),
        format!("s3://{b}-other/pub/a.csv"),
        "s3://any-bucket/key".to_owned(),
    ] {
        let resp = app
            .with_key(&key, Method::POST, "/jobs")
            .json(&json!({ "source": source }))
            .send()
            .await
            .unwrap();
        assert_error(resp, 403, "source_not_allowed").await;
    }
    let list = get_json(&app, &key, "/jobs").await;
    assert_eq!(list["items"], json!([]), "nothing queued: {list}");
    // The allowed prefix works.
    let id = submit(
        &app,
        &key,
        json!({ "source": format!("s3://{b}/pub/a.csv") }),
    )
    .await;
    let job = wait_job(&app, &key, &id, Duration::from_secs(60), is_final).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"], expected_result(&csv));
}

/// A job queued while its bucket was allowed, run by a worker started after the operator
/// narrowed the list: the worker checks again and fails it without fetching (nothing listens
/// on the S3 endpoint; a fetch would end in `download_failed`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_queued_before_the_allow_list_narrowed_fails_with_source_not_allowed() {
    let api = spawn_app_with(|c| {
        c.jobs_s3_allow = Some(vec!["data".into()]);
        c.s3_endpoint = Some("http://127.0.0.1:1".into());
        c.job_workers = Some(0);
    })
    .await;
    let (_, key) = api.create_client("acme").await;
    let id = submit(&api, &key, json!({ "source": "s3://data/secret/a.csv" })).await;
    // A second process on the same database (so not through spawn_app: the admin key
    // exists already), started with the narrowed list.
    let dir = tempfile::tempdir().unwrap();
    let mut args = crate::helpers::test_config(&dir);
    args.database_url = Some(format!(
        "sqlite://{}",
        api.data_dir.join("rubra.db").display()
    ));
    args.jobs_s3_allow = Some(vec!["data/pub/".into()]);
    args.s3_endpoint = Some("http://127.0.0.1:1".into());
    args.job_workers = Some(1);
    let settings = rubra_server::Settings::validate(args).unwrap();
    let telemetry = rubra_telemetry::init(&rubra_telemetry::TelemetryConfig {
        format: rubra_telemetry::LogFormat::Json,
        slow_ms: None,
        filter: "warn".into(),
    })
    .unwrap();
    let worker = rubra_server::Application::build(settings, telemetry)
        .await
        .unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        worker
            .run_until(async move {
                let _ = stopped.await;
            })
            .await
    });
    let job = wait_job(&api, &key, &id, Duration::from_secs(30), is_final).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "source_not_allowed", "{job}");
    assert_eq!(job["attempts"], 1, "final, not retried: {job}");
}

/// A link under the jobs root that leads out of it is refused at submit, whether it names
/// the file or a folder on the way, absolute or relative.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_under_the_jobs_root_pointing_outside_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("admin.key"), b"SECRET\n1\n").unwrap();
    std::os::unix::fs::symlink(outside.path().join("admin.key"), root.path().join("k.csv"))
        .unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("d")).unwrap();
    std::fs::create_dir(root.path().join("in")).unwrap();
    std::os::unix::fs::symlink("../..", root.path().join("in/up")).unwrap();
    let climb = format!(
        "in/up/{}/admin.key",
        outside.path().file_name().unwrap().to_str().unwrap()
    );
    let app = local_app(root.path(), 1, 2).await;
    let (_, key) = app.create_client("mallory").await;
    for source in ["k.csv", "d/admin.key", climb.as_str()] {
        let resp = app
            .with_key(&key, Method::POST, "/jobs")
            .json(&json!({ "source": source, "step": 1 }))
            .send()
            .await
            .unwrap();
        assert_error(resp, 400, "source_outside_root").await;
    }
}
