//! Upload pacing (issue #18): a client sending request bodies faster than
//! `rate-limit-upload-bytes-per-sec` has them read at that rate — its requests still
//! answered, not reset — while another client's uploads go at full speed.

use crate::helpers::spawn_app_with;
use reqwest::Method;
use serde_json::Value;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_client_flooding_uploads_is_read_at_its_byte_rate_and_others_are_not() {
    let app = spawn_app_with(|c| {
        c.rate_limit_upload_bytes_per_sec = Some(1 << 20);
        c.rate_limit_upload_burst_bytes = Some(1 << 20);
    })
    .await;
    let (flood, flood_key) = app.create_client("flood").await;
    let (polite, polite_key) = app.create_client("polite").await;
    // One request each first, so both keys are in the key cache (pacing starts there).
    for (id, key) in [(&flood, &flood_key), (&polite, &polite_key)] {
        let resp = app
            .with_key(key, Method::GET, &format!("/clients/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let upload = |key: String, bytes: usize| {
        let req = app
            .with_key(&key, Method::POST, "/red")
            .header("content-type", "image/jpeg")
            .body(vec![0x5a_u8; bytes]);
        async move {
            let started = Instant::now();
            let resp = req.send().await.expect("an answer, not a reset");
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.expect("a JSON error body");
            (started.elapsed(), status, body)
        }
    };
    // 4 MiB at 1 MiB/s after a 1 MiB burst: about 3 s; 512 KiB of the other client: at once.
    let (flooded, calm) = tokio::join!(
        upload(flood_key.clone(), 4 << 20),
        upload(polite_key.clone(), 512 << 10)
    );
    for (took, status, body) in [&flooded, &calm] {
        assert!(
            (400..500).contains(status),
            "{status} after {took:?}: {body}"
        );
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    assert!(
        flooded.0 >= Duration::from_millis(2_500),
        "4 MiB at 1 MiB/s took only {:?}",
        flooded.0
    );
    assert!(
        calm.0 < Duration::from_millis(2_000),
        "the other client's 512 KiB took {:?}",
        calm.0
    );
    assert!(app.metrics().await.contains("rubra_upload_pauses_total"));
}
