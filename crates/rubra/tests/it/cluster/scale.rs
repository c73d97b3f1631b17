//! Throughput against the number of `worker` processes (1, 2, 4) for CSV jobs and webhook
//! deliveries, with the CPU of each process and of PostgreSQL (`bench/chaos/scale.sh`,
//! ignored in the test suite).

use super::support::{args, cluster, db, host_server, make_client, post_settled, until};
use axum::response::IntoResponse;
use rubra_testkit::cluster::Role;
use serde_json::json;
use std::time::{Duration, Instant};

/// Runs `JOBS` jobs, then `EVENTS` deliveries, on 1 serve (API, `--job-workers 0`) + `k`
/// workers; prints one row per workload.
async fn run(k: usize) {
    const JOBS: usize = 32;
    const EVENTS: usize = 4000;
    let Some(mut c) = cluster("throughput_by_workers", false).await else {
        return;
    };
    let root = c.dir().join("jobs");
    std::fs::create_dir_all(&root).unwrap();
    let mut csv = b"c1,c2,c3,c4,c5,c6,c7,c8,c9,amount\n".to_vec();
    for _ in 0..200_000 {
        csv.extend_from_slice(b"1,2,3,4,5,6,7,8,9,0.50\n");
    }
    std::fs::write(root.join("t.csv"), &csv).unwrap();
    let (hook, seen) = host_server(&c, |_, _| async { "ok".into_response() }).await;
    let common = args(&[
        "--jobs-local-root",
        &root.display().to_string(),
        "--jobs-per-client",
        "64",
        "--fetch-allow",
        &hook,
    ]);
    let mut front = common.clone();
    front.extend(args(&["--job-workers", "0"]));
    let s0 = c.spawn(Role::Serve, &front);
    let workers: Vec<usize> = (0..k).map(|_| c.spawn(Role::Worker, &common)).collect();
    let base = c.node(s0).base();
    let http = reqwest::Client::new();
    let key = make_client(&http, &base, c.admin_key().unwrap(), "acme").await;
    let sub = json!({"threshold": 0.5, "channel": {"type": "webhook", "url": format!("http://{hook}/h")}});
    assert_eq!(
        post_settled(&http, &format!("{base}/subscriptions"), &key, &sub)
            .await
            .0,
        201
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    let cpu = |c: &rubra_testkit::cluster::Cluster| {
        let mut v: Vec<f64> = std::iter::once(s0)
            .chain(workers.iter().copied())
            .map(|i| c.node(i).cpu_secs())
            .collect();
        v.push(c.postgres_cpu_secs());
        v
    };
    let row = |what: &str, n: usize, secs: f64, before: &[f64], after: &[f64]| {
        let d: Vec<String> = before
            .iter()
            .zip(after)
            .map(|(b, a)| format!("{:.2}", a - b))
            .collect();
        let (pg, procs) = d.split_last().unwrap();
        println!(
            "| {what} | {k} | {n} | {secs:.2} | {:.1} | serve {} ; workers {} | {pg} |",
            n as f64 / secs,
            procs[0],
            procs[1..].join(" "),
        );
    };

    let before = cpu(&c);
    let t = Instant::now();
    for _ in 0..JOBS {
        let (status, _) = post_settled(
            &http,
            &format!("{base}/jobs"),
            &key,
            &json!({"source": "t.csv"}),
        )
        .await;
        assert_eq!(status, 202);
    }
    until("every job done", Duration::from_secs(600), || async {
        let (open,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM jobs WHERE state <> 'succeeded'")
                .fetch_one(&mut db(&c).await)
                .await
                .ok()?;
        (open == 0).then_some(())
    })
    .await;
    row(
        "CSV jobs (200k rows, 4.6 MB, local disk)",
        JOBS,
        t.elapsed().as_secs_f64(),
        &before,
        &cpu(&c),
    );

    let before = cpu(&c);
    let t = Instant::now();
    for _ in 0..EVENTS / 100 {
        let batch: Vec<_> = (0..100).map(|_| json!({"red": 0.9})).collect();
        assert_eq!(
            post_settled(&http, &format!("{base}/events"), &key, &json!(batch))
                .await
                .0,
            201
        );
    }
    until(
        "every delivery received",
        Duration::from_secs(600),
        || async { (seen.lock().unwrap().len() >= EVENTS).then_some(()) },
    )
    .await;
    row(
        "webhook deliveries",
        EVENTS,
        t.elapsed().as_secs_f64(),
        &before,
        &cpu(&c),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: bench/chaos/scale.sh"]
async fn throughput_by_workers() {
    println!(
        "| workload | workers | items | seconds | per second | CPU-s per process | CPU-s PostgreSQL |"
    );
    println!("|---|---|---|---|---|---|---|");
    for k in [1, 2, 4] {
        run(k).await;
    }
}
