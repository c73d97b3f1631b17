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
    let metrics = app
        .anon(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
