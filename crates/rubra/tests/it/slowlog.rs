//! Issue 9's acceptance test: find the slow function from the logs alone. A real
//! `rubra serve` writes JSON logs to a file while traffic runs; `rubra slowlog` on that file
//! must rank the deliberately slow function (the red meter on a large noisy image) first by
//! self time, with exactly the number of calls made.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::helpers::rubra;

struct Server {
    child: Child,
    base: String,
    admin_key: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `rubra serve` with JSON logs (and slow-span warnings above `slow_ms`) sent to `log`.
fn start_server(data_dir: &std::path::Path, log: &std::path::Path, slow_ms: u64) -> Server {
    let mut child = rubra()
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(["--slow-ms", &slow_ms.to_string(), "--data-dir"])
        .arg(data_dir)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("spawn rubra serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut admin_key = String::new();
    let base = loop {
        let line = lines.next().expect("server printed its address").unwrap();
        if line.starts_with("rbk_") {
            admin_key = line.trim().to_owned();
        }
        if let Some(addr) = line.strip_prefix("rubra listening on ") {
            break addr.trim().to_owned();
        }
    };
    Server {
        child,
        base,
        admin_key,
    }
}

/// A PNG of random pixels: it barely compresses, so decoding it is real work.
fn noisy_png(side: u32) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let img = image::RgbImage::from_fn(side, side, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let [r, g, b, ..] = state.to_le_bytes();
        image::Rgb([r, g, b])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn slowlog_ranks_the_deliberately_slow_function_first_with_its_call_count() {
    const SLOW_CALLS: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("rubra.log");
    let server = start_server(&dir.path().join("data"), &log, 20);
    let body = noisy_png(1500);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let auth = format!("Bearer {}", server.admin_key);
        let created: Value = http
            .post(format!("{}/clients", server.base))
            .header("authorization", &auth)
            .json(&serde_json::json!({"name": "acme"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let key = format!("Bearer {}", created["api_key"].as_str().unwrap());
        // Fast traffic around the slow calls, so the ranking has something to beat.
        for i in 0..SLOW_CALLS * 5 {
            let r = http
                .get(format!("{}/images?limit=5", server.base))
                .header("authorization", &key)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            if i % 5 == 0 {
                let r = http
                    .post(format!("{}/red", server.base))
                    .header("authorization", &key)
                    .header("content-type", "image/png")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "{:?}", r.text().await);
            }
        }
        // /metrics shows the same spans, so a dashboard sees what slowlog sees.
        let metrics = http
            .get(format!("{}/metrics", server.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let count = metrics
            .lines()
            .find(|l| {
                l.starts_with("rubra_span_duration_seconds_count")
                    && l.contains("name=\"image.measure\"")
            })
            .unwrap_or_else(|| panic!("no image.measure histogram in:\n{metrics}"));
        assert!(count.ends_with(&format!(" {SLOW_CALLS}")), "{count}");
    });

    // Span-close lines are written as spans close; wait until every measurement's is there.
    rubra_testkit::eventually_blocking(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&log).unwrap();
        let closes = text
            .lines()
            .filter(|l| l.contains("\"span_close\"") && l.contains("\"image.measure\""))
            .count();
        if closes >= SLOW_CALLS {
            Ok(())
        } else {
            Err(format!(
                "{closes} of {SLOW_CALLS} measurements' span closes logged"
            ))
        }
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("\"slow_span\"") && l.contains("\"image.measure\"")),
        "--slow-ms 20 logs the measurement at WARN"
    );

    let out = rubra()
        .args(["slowlog", "--sort", "self", "--json"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &report["functions"][0];
    assert_eq!(first["name"], "image.measure", "report: {report:#}");
    assert_eq!(first["calls"], SLOW_CALLS as u64, "report: {report:#}");
    let handler = report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "http.images.list")
        .expect("the fast handler is in the report too");
    assert_eq!(handler["calls"], (SLOW_CALLS * 5) as u64);
}
