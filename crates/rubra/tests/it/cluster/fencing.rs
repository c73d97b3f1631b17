//! Fencing at the process level: a process cut off from PostgreSQL past its lease while it holds
//! work, another takes the work over, and once healed the cut one must not write a stale
//! result, verdict or change — every such write carries the lease's token.

use super::support::{args, cluster, db, get_json, node_logs, until};
use crate::helpers::create_client;
use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use rubra_testkit::cluster::Role;
use serde_json::{Value, json};
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
async fn job_row(
    c: &rubra_testkit::cluster::Cluster,
    id: &str,
) -> (String, i32, Option<String>, Option<i64>) {
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
    let key = create_client(&http, &base, c.admin_key().unwrap(), "acme").await;
    // About 8 s a run: the job is mid-way when its worker is cut off.
    c.s3().set_rate(size / 8);
    let worker = args(&["--job-workers", "1", "--jobs-s3-allow", &allow]);
    let first = c.spawn(Role::Worker, &worker);
    let submitted: Value = http
        .post(format!("{base}/jobs"))
        .bearer_auth(&key)
        .json(&json!({"source": format!("s3://{allow}/big.csv")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
