//! Per-client quotas: one client's pile of subscriptions or jobs is refused with 409
//! `quota_exceeded` naming the quota, and never takes a place from another client.

use crate::helpers::{TestApp, assert_error, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};

async fn post(app: &TestApp, key: &str, path: &str, body: Value) -> reqwest::Response {
    app.with_key(key, Method::POST, path)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn subscriptions_past_the_quota_are_refused_and_a_deleted_one_frees_its_place() {
    let app = spawn_app_with(|c| c.max_subscriptions_per_client = Some(2)).await;
    let (_, a) = app.create_client("a").await;
    let (_, b) = app.create_client("b").await;
    let stream = json!({"threshold": 0.5, "channel": {"type": "stream"}});
    let first: Value = post(&app, &a, "/subscriptions", stream.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        post(&app, &a, "/subscriptions", stream.clone())
            .await
            .status(),
        201
    );
    let msg = assert_error(
        post(&app, &a, "/subscriptions", stream.clone()).await,
        409,
        "quota_exceeded",
    )
    .await;
    assert!(
        msg.contains("max-subscriptions-per-client") && msg.contains('2'),
        "{msg}"
    );
    // Another client has its own quota.
    assert_eq!(
        post(&app, &b, "/subscriptions", stream.clone())
            .await
            .status(),
        201
    );
    // A deleted subscription no longer counts.
    let id = first["id"].as_str().unwrap();
    let resp = app
        .with_key(&a, Method::DELETE, &format!("/subscriptions/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(post(&app, &a, "/subscriptions", stream).await.status(), 201);
    let metrics = app.metrics().await;
    assert!(metrics.contains("reason=\"quota_exceeded\""), "{metrics}");
}

#[tokio::test]
async fn queued_jobs_past_the_quota_are_refused_and_a_canceled_one_frees_its_place() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.csv"), "x\n1\n").unwrap();
    let dir = root.path().to_owned();
    // No job workers: every job stays queued.
    let app = spawn_app_with(move |c| {
        c.jobs_local_root = Some(dir);
        c.job_workers = Some(0);
        c.max_jobs_per_client = Some(2);
    })
    .await;
    let (_, a) = app.create_client("a").await;
    let (_, b) = app.create_client("b").await;
    let job = json!({"source": "a.csv", "step": 1});
    let first: Value = post(&app, &a, "/jobs", job.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(post(&app, &a, "/jobs", job.clone()).await.status(), 202);
    let msg = assert_error(
        post(&app, &a, "/jobs", job.clone()).await,
        409,
        "quota_exceeded",
    )
    .await;
    assert!(
        msg.contains("max-jobs-per-client") && msg.contains('2'),
        "{msg}"
    );
    assert_eq!(post(&app, &b, "/jobs", job.clone()).await.status(), 202);
    let id = first["id"].as_str().unwrap();
    let resp = app
        .with_key(&a, Method::DELETE, &format!("/jobs/{id}"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(post(&app, &a, "/jobs", job).await.status(), 202);
}

async fn patch_client(app: &TestApp, id: &str, body: Value) -> Value {
    let resp = app
        .admin(Method::PATCH, &format!("/clients/{id}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "PATCH /clients/{id}");
    resp.json().await.unwrap()
}

#[tokio::test]
async fn an_admin_sets_one_clients_own_quota_and_null_returns_it_to_the_default() {
    let app = spawn_app_with(|c| c.max_subscriptions_per_client = Some(1)).await;
    let (a_id, a) = app.create_client("a").await;
    let (_, b) = app.create_client("b").await;
    let stream = json!({"threshold": 0.5, "channel": {"type": "stream"}});
    let client = patch_client(&app, &a_id, json!({"quotas": {"subscriptions": 3}})).await;
    assert_eq!(client["quotas"], json!({"subscriptions": 3}), "{client}");
    for _ in 0..3 {
        assert_eq!(
            post(&app, &a, "/subscriptions", stream.clone())
                .await
                .status(),
            201
        );
    }
    let msg = assert_error(
        post(&app, &a, "/subscriptions", stream.clone()).await,
        409,
        "quota_exceeded",
    )
    .await;
    assert!(msg.contains("3"), "{msg}");
    // The other client keeps the default of 1.
    assert_eq!(
        post(&app, &b, "/subscriptions", stream.clone())
            .await
            .status(),
        201
    );
    assert_error(
        post(&app, &b, "/subscriptions", stream.clone()).await,
        409,
        "quota_exceeded",
    )
    .await;
    // Other parts of the client are left alone; null clears the override.
    let client = patch_client(&app, &a_id, json!({"rate_limit_rps": 50})).await;
    assert_eq!(client["quotas"], json!({"subscriptions": 3}), "{client}");
    let client = patch_client(&app, &a_id, json!({"quotas": {"subscriptions": null}})).await;
    assert_eq!(client["quotas"], json!({}), "{client}");
    assert_eq!(client["rate_limit_rps"], 50, "{client}");
    // Unknown quotas and negative values are refused, naming the problem.
    for bad in [
        json!({"quotas": {"images": 3}}),
        json!({"quotas": {"jobs": -1}}),
    ] {
        let resp = app
            .admin(Method::PATCH, &format!("/clients/{a_id}"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 422, "{bad}");
    }
    // A client cannot raise its own quota.
    let resp = app
        .with_key(&a, Method::PATCH, &format!("/clients/{a_id}"))
        .json(&json!({"quotas": {"subscriptions": 1000}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

fn tiny_png(seed: u8, side: u32) -> Vec<u8> {
    // Noise, so the PNG does not compress: its size grows with `side`.
    let mut x = u32::from(seed).wrapping_mul(0x9E37_79B9) | 1;
    let img = image::RgbaImage::from_fn(side, side, |_, _| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        image::Rgba(x.to_le_bytes())
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn put_png(app: &TestApp, key: &str, name: &str, body: Vec<u8>) -> reqwest::Response {
    app.with_key(key, Method::PUT, &format!("/overlays/{name}"))
        .header("content-type", "image/png")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn overlays_past_the_count_or_bytes_quota_are_refused_and_a_replacement_is_not_counted_twice()
{
    let small = tiny_png(1, 8);
    let big = tiny_png(2, 64); // 64×64×4 bytes of noise: about 16 KiB.
    let limit = u64::try_from(2 * small.len() + big.len() / 2).unwrap();
    let app = spawn_app_with(move |c| {
        c.max_overlays_per_client = Some(2);
        c.max_overlay_bytes_per_client = Some(limit);
    })
    .await;
    let (b_id, a) = app.create_client("a").await;
    assert_eq!(put_png(&app, &a, "one", small.clone()).await.status(), 201);
    assert_eq!(put_png(&app, &a, "two", small.clone()).await.status(), 201);
    let msg = assert_error(
        put_png(&app, &a, "three", small.clone()).await,
        409,
        "quota_exceeded",
    )
    .await;
    assert!(msg.contains("max-overlays-per-client"), "{msg}");
    // Replacing one is not a new overlay…
    assert_eq!(put_png(&app, &a, "two", small.clone()).await.status(), 200);
    // …but a replacement too big for the bytes quota is refused, and the old one stays.
    let msg = assert_error(put_png(&app, &a, "two", big).await, 409, "quota_exceeded").await;
    assert!(msg.contains("max-overlay-bytes-per-client"), "{msg}");
    let resp = app
        .with_key(&a, Method::GET, "/overlays/two")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), small.as_slice());
    // An admin lifts the count for this client.
    patch_client(&app, &b_id, json!({"quotas": {"overlays": 3}})).await;
    assert_eq!(put_png(&app, &a, "three", small).await.status(), 201);
}

/// Issue #18: one `POST /events` once wrote events × subscriptions notification rows in one
/// transaction (10⁷ with the defaults), holding the single writer while every other tenant's
/// writes waited. Past 100 000 the batch is refused whole, before any row is written.
#[tokio::test]
async fn a_batch_whose_fan_out_passes_the_bound_is_refused_and_writes_nothing() {
    let app = spawn_app_with(|_| {}).await;
    let (_, a) = app.create_client("a").await;
    let stream = json!({"threshold": 0.0, "channel": {"type": "stream"}});
    for _ in 0..11 {
        assert_eq!(
            post(&app, &a, "/subscriptions", stream.clone())
                .await
                .status(),
            201
        );
    }
    // 10 000 events above 11 thresholds: 110 000 notifications.
    let batch: Vec<Value> = (0..10_000).map(|_| json!({"red": 0.5})).collect();
    let msg = assert_error(
        post(&app, &a, "/events", Value::Array(batch)).await,
        422,
        "too_many_notifications",
    )
    .await;
    assert!(
        msg.contains("100000") && msg.contains("smaller batches"),
        "{msg}"
    );
    let stats = app
        .with_key(&a, Method::GET, "/stats")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        stats["total"], 0,
        "nothing of the refused batch was written: {stats}"
    );
    // A batch within the bound goes through.
    let batch: Vec<Value> = (0..100).map(|_| json!({"red": 0.5})).collect();
    assert_eq!(
        post(&app, &a, "/events", Value::Array(batch))
            .await
            .status(),
        201
    );
}

async fn upload(app: &TestApp, key: &str, body: Vec<u8>) -> reqwest::Response {
    app.with_key(key, Method::POST, "/images")
        .header("content-type", "image/png")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn images_past_the_stored_bytes_quota_are_refused_and_a_delete_frees_their_bytes() {
    let (one, two, three) = (tiny_png(3, 8), tiny_png(4, 8), tiny_png(5, 8));
    let limit = u64::try_from(one.len() + two.len() + three.len() / 2).unwrap();
    let app = spawn_app_with(move |c| c.max_image_bytes_per_client = Some(limit)).await;
    let (a_id, a) = app.create_client("a").await;
    let (_, b) = app.create_client("b").await;
    let first: Value = upload(&app, &a, one.clone()).await.json().await.unwrap();
    assert_eq!(upload(&app, &a, two).await.status(), 201);
    let msg = assert_error(upload(&app, &a, three.clone()).await, 409, "quota_exceeded").await;
    assert!(msg.contains("max-image-bytes-per-client"), "{msg}");
    // The same image again stores nothing new: not refused.
    assert_eq!(upload(&app, &a, one).await.status(), 200);
    // Another client has its own quota.
    assert_eq!(upload(&app, &b, three.clone()).await.status(), 201);
    let id = first["id"].as_str().unwrap();
    let resp = app
        .with_key(&a, Method::DELETE, &format!("/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(upload(&app, &a, three.clone()).await.status(), 201);
    // Full again; an admin raises this client's quota.
    assert_error(
        upload(&app, &a, tiny_png(6, 8)).await,
        409,
        "quota_exceeded",
    )
    .await;
    patch_client(&app, &a_id, json!({"quotas": {"image_bytes": 1_000_000}})).await;
    assert_eq!(upload(&app, &a, tiny_png(6, 8)).await.status(), 201);
}
