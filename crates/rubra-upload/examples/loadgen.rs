//! A plain load generator for the benchmark: posts every image under DIR as a
//! raw body with C connections, no hashing, no HEAD, no retries:
//! `loadgen URL KEY DIR C`. Prints files/s and MB/s.

use std::sync::{Arc, Mutex};

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let (url, key, dir) = (a[0].clone(), a[1].clone(), std::path::PathBuf::from(&a[2]));
    let c: usize = a.get(3).and_then(|s| s.parse().ok()).unwrap_or(8);
    let mut files = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p)
            } else {
                files.push(p)
            }
        }
    }
    // Read everything first: the server alone is measured, not the disk.
    let bodies: Vec<(bytes::Bytes, &str)> = files
        .iter()
        .map(|p| {
            let b = std::fs::read(p).expect("read");
            let ct = if b.starts_with(&[0xFF, 0xD8]) {
                "image/jpeg"
            } else {
                "image/png"
            };
            (bytes::Bytes::from(b), ct)
        })
        .collect();
    let total: usize = bodies.iter().map(|(b, _)| b.len()).sum();
    let n = bodies.len();
    let queue = Arc::new(Mutex::new(bodies));
    let http = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .build()
        .expect("client");
    let t = std::time::Instant::now();
    let workers: Vec<_> = (0..c)
        .map(|_| {
            let (q, http, url, key) = (Arc::clone(&queue), http.clone(), url.clone(), key.clone());
            tokio::spawn(async move {
                loop {
                    let Some((b, ct)) = q.lock().expect("lock").pop() else {
                        break;
                    };
                    let r = http
                        .post(format!("{url}/images"))
                        .bearer_auth(&key)
                        .header("content-type", ct)
                        .body(b)
                        .send()
                        .await
                        .expect("send");
                    assert!(r.status().is_success(), "{}", r.status());
                    let _ = r.bytes().await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("worker");
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{n} files {:.1} MB in {s:.2} s: {:.0} files/s {:.1} MB/s",
        total as f64 / 1e6,
        n as f64 / s,
        total as f64 / 1e6 / s
    );
}
