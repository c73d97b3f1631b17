//! Through a proxy that fails requests with 503 and 429 and drops connections:
//! every image still arrives exactly once, and the run reports success.

use crate::helpers::{jpeg, png, put, sha256_hex, spawn_server};
use crate::proxy::{self, Faults};
use rubra_upload::upload;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Instant;

#[tokio::test]
async fn every_image_arrives_exactly_once_through_a_faulty_proxy() {
    let server = spawn_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut expected = BTreeSet::new();
    for i in 0..60 {
        let bytes = if i % 3 == 0 {
            jpeg(600 + i)
        } else {
            png(600 + i)
        };
        expected.insert(sha256_hex(&bytes));
        put(dir.path(), &format!("batch{}/pic{i:02}", i % 4), &bytes);
    }
    let upstream = server.base.trim_start_matches("http://").to_owned();
    let faults = Faults {
        unavailable: 20,
        rate_limited: 0,
        drop_mid_request: 5,
        drop_after_forward: 5,
    };
    let (base, counts) = proxy::start(upstream, faults, 0x5EED).await;

    for batch in [1, 5] {
        let mut opts = server.options();
        opts.server = base.clone();
        opts.retries = 12;
        opts.concurrency = 4;
        opts.batch = batch;
        opts.skip_existing = batch == 1; // the second pass posts everything again
        let report = upload(dir.path(), &opts).await.expect("runs");
        assert_eq!(report.exit_code(), 0, "batch {batch}: {}", report.summary());
        assert!(report.failed.is_empty());
        assert!(report.retries > 0, "the proxy should have caused retries");
        assert_eq!(server.image_ids().await, expected, "batch {batch}");
    }
    let (requests, injected) = (
        counts.requests.load(Ordering::Relaxed),
        counts.faults.load(Ordering::Relaxed),
    );
    eprintln!("proxy: {requests} requests, {injected} faults");
    assert!(
        injected * 100 >= requests * 15,
        "{injected} faults in {requests} requests"
    );
}

#[tokio::test]
async fn retry_after_is_honoured_on_429() {
    let server = spawn_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..6 {
        put(dir.path(), &format!("p{i}.png"), &png(700 + i));
    }
    let upstream = server.base.trim_start_matches("http://").to_owned();
    let faults = Faults {
        unavailable: 0,
        rate_limited: 30,
        drop_mid_request: 0,
        drop_after_forward: 0,
    };
    let (base, counts) = proxy::start(upstream, faults, 42).await;
    let mut opts = server.options();
    opts.server = base;
    opts.retries = 10;
    opts.concurrency = 1;
    let t = Instant::now();
    let report = upload(dir.path(), &opts).await.expect("runs");
    assert_eq!(report.exit_code(), 0, "{}", report.summary());
    let limited = counts.rate_limited.load(Ordering::Relaxed);
    assert!(limited > 0, "seed 42 injects at least one 429");
    // One worker, so each Retry-After: 1 is waited out in turn.
    assert!(
        t.elapsed().as_secs_f64() >= limited as f64 * 0.95,
        "{limited} 429s in {:?}",
        t.elapsed()
    );
    assert_eq!(server.image_ids().await.len(), 6);
}
