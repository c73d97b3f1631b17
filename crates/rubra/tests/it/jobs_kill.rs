//! kill -9 of a `rubra worker` in the middle of a CSV job: once its lease expires another
//! worker process takes the job over and finishes it with the exact result.
//!
//! Real processes on a shared database (a SQLite file, and PostgreSQL when configured) and
//! the test S3 server behind a slow proxy, so the job is still running when the worker dies.

use crate::helpers::{create_client, get, start_api, start_worker};

use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A CSV whose column 10 holds cents written as decimals; returns it and the exact sum.
fn gen_csv(rows: usize) -> (Vec<u8>, String) {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut out = b"c1,c2,c3,c4,c5,c6,c7,c8,c9,amount\n".to_vec();
    let mut cents: i128 = 0;
    for _ in 0..rows {
        let v = rng.i64(-1_000_000..1_000_000);
        cents += i128::from(v);
        let sign = if v < 0 { "-" } else { "" };
        let a = v.abs();
        let line = format!(
            "1,\"x, y\",3,4,5,6,7,8,9,{sign}{}.{:02}\n",
            a / 100,
            a % 100
        );
        out.extend_from_slice(line.as_bytes());
    }
    let sign = if cents < 0 { "-" } else { "" };
    let a = cents.abs();
    (out, format!("{sign}{}.{:02}", a / 100, a % 100))
}

/// A TCP proxy that forwards responses at about `bytes_per_sec`.
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
                let mut buf = vec![0u8; (bytes_per_sec / 20).max(1)];
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

async fn wait_job(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    id: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    rubra_testkit::eventually(within, || async {
        let job = get(http, base, key, &format!("/jobs/{id}")).await;
        if done(&job) {
            Ok(job)
        } else {
            Err(format!("job did not get there in time: {job}"))
        }
    })
    .await
}

async fn killed_worker_job_is_finished_by_another(test: &str, database_url: Option<String>) {
    let Some(bucket) = rubra_testkit::fresh_bucket(test).await else {
        return;
    };
    let (csv, sum) = gen_csv(100_000);
    let store = AmazonS3Builder::from_env()
        .with_endpoint(&bucket.endpoint)
        .with_allow_http(true)
        .with_bucket_name(&bucket.bucket)
        .build()
        .unwrap();
    let size = csv.len();
    store
        .put(&ObjectPath::from("big.csv"), csv.into())
        .await
        .unwrap();
    // About 6 s per run of the job.
    let proxy = slow_proxy(&bucket.endpoint, size / 6).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut common = vec![
        "--data-dir".to_owned(),
        data.display().to_string(),
        "--s3-endpoint".to_owned(),
        proxy,
        "--jobs-s3-allow".to_owned(),
        bucket.bucket.clone(),
        "--log-format".to_owned(),
        "json".to_owned(),
    ];
    if let Some(url) = database_url {
        common.extend(["--database-url".to_owned(), url]);
    }
    let (_api, base, admin) = start_api(&["--job-workers", "0"], &common);
    let http = reqwest::Client::new();
    let key = create_client(&http, &base, &admin, "acme").await;
    let submitted: Value = http
        .post(format!("{base}/jobs"))
        .bearer_auth(&key)
        .json(&json!({"source": format!("s3://{}/big.csv", bucket.bucket)}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = submitted["id"].as_str().unwrap().to_owned();

    let mut first = start_worker(&["--job-workers", "1"], &common);
    wait_job(&http, &base, &key, &id, Duration::from_secs(30), |j| {
        j["state"] == "running" && !j["progress"]["bytes_total"].is_null()
    })
    .await;
    // The second worker starts while the first holds the lease: it must wait for expiry.
    let _second = start_worker(&["--job-workers", "1"], &common);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let job = get(&http, &base, &key, &format!("/jobs/{id}")).await;
    assert_eq!(job["state"], "running", "still mid-job when killed: {job}");
    assert_eq!(job["attempts"], 1);
    first.0.kill().unwrap(); // SIGKILL: no chance to release the lease
    first.0.wait().unwrap();
    let killed_at = Instant::now();

    let job = wait_job(&http, &base, &key, &id, Duration::from_secs(60), |j| {
        matches!(
            j["state"].as_str(),
            Some("succeeded" | "failed" | "canceled")
        )
    })
    .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 2, "taken over once: {job}");
    assert_eq!(
        job["result"],
        json!({"rows": 100_000, "columns": [{"index": 10, "name": "amount", "sum": sum}]})
    );
    assert!(
        killed_at.elapsed() > Duration::from_secs(5),
        "not before the lease expired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_job_on_sqlite_another_worker_finishes_it() {
    killed_worker_job_is_finished_by_another("kill_9_mid_job_on_sqlite", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_job_on_postgres_another_worker_finishes_it() {
    let test = "kill_9_mid_job_on_postgres";
    let Some(url) = rubra_testkit::fresh_postgres(test).await else {
        return;
    };
    killed_worker_job_is_finished_by_another(test, Some(url)).await;
}
