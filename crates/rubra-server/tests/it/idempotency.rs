//! `Idempotency-Key` over HTTP: a retried POST is answered from the first answer and does its
//! work once, on one process and across two processes on PostgreSQL; another request under
//! the same key is refused; keys are per client.

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};

async fn post(
    app: &TestApp,
    base: &str,
    key: &str,
    path: &str,
    idem: &str,
    body: &Value,
) -> reqwest::Response {
    app.http
        .post(format!("{base}{path}"))
        .bearer_auth(key)
        .header("idempotency-key", idem)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn total(app: &TestApp, key: &str) -> u64 {
    let stats: Value = app
        .with_key(key, Method::GET, "/stats?threshold=0")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats["total"].as_u64().unwrap()
}

#[tokio::test]
async fn a_retried_post_with_an_idempotency_key_does_its_work_once() {
    let app = spawn_app().await;
    let (_, key) = app.create_client("acme").await;
    let (_, other) = app.create_client("globex").await;
    let batch = json!([{ "red": 0.9 }, { "red": 0.1 }]);

    let first = post(&app, &app.base, &key, "/events", "retry-1", &batch).await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotency-replayed").is_none());
    let first_body: Value = first.json().await.unwrap();
    let again = post(&app, &app.base, &key, "/events", "retry-1", &batch).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotency-replayed"], "true");
    assert_eq!(again.headers()["content-type"], "application/json");
    assert_eq!(again.json::<Value>().await.unwrap(), first_body);
    assert_eq!(total(&app, &key).await, 2, "the retry recorded nothing");

    // The same key for another request is refused; another client's same key is its own.
    let other_batch = json!([{ "red": 0.5 }]);
    let reused = post(&app, &app.base, &key, "/events", "retry-1", &other_batch).await;
    assert_error(reused, 422, "idempotency_key_reused").await;
    let theirs = post(&app, &app.base, &other, "/events", "retry-1", &other_batch).await;
    assert_eq!(theirs.status(), 201);
    assert_eq!(total(&app, &other).await, 1);

    // A subscription created twice with one key is one subscription.
    let sub = json!({ "threshold": 0.5, "channel": { "type": "stream" } });
    let one: Value = post(&app, &app.base, &key, "/subscriptions", "sub-1", &sub)
        .await
        .json()
        .await
        .unwrap();
    let two: Value = post(&app, &app.base, &key, "/subscriptions", "sub-1", &sub)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["id"], two["id"]);
    let listed: Value = app
        .with_key(&key, Method::GET, "/subscriptions")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    // A refused request's answer is kept too; a key that is not a key is refused.
    let bad = post(
        &app,
        &app.base,
        &key,
        "/events",
        "bad-1",
        &json!([{ "red": 2 }]),
    )
    .await;
    assert_eq!(bad.status(), 422);
    let bad_again = post(
        &app,
        &app.base,
        &key,
        "/events",
        "bad-1",
        &json!([{ "red": 2 }]),
    )
    .await;
    assert_eq!(bad_again.headers()["idempotency-replayed"], "true");
    let long = "k".repeat(256);
    for idem in [long.as_str(), "with space"] {
        let resp = post(&app, &app.base, &key, "/events", idem, &batch).await;
        assert_error(resp, 400, "invalid_idempotency_key").await;
    }
    // Without the header a retry is a second batch, as before.
    for _ in 0..2 {
        let resp = app
            .with_key(&key, Method::POST, "/events")
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
    assert_eq!(total(&app, &key).await, 6);
}

#[tokio::test]
async fn a_retry_sent_to_another_process_is_answered_from_the_first() {
    let Some(db) = rubra_testkit::fresh_postgres("idempotency_two_processes").await else {
        return;
    };
    let one = spawn_app_with(|c| c.database_url = Some(db.clone())).await;
    let (two, _running) = crate::keys::second_process(&db).await;
    let (_, key) = one.create_client("acme").await;
    let batch = json!([{ "red": 0.9 }, { "red": 0.8 }, { "red": 0.1 }]);
    let first = post(&one, &one.base, &key, "/events", "tx-42", &batch).await;
    assert_eq!(first.status(), 201);
    let retried = post(&one, &two, &key, "/events", "tx-42", &batch).await;
    assert_eq!(retried.status(), 201);
    assert_eq!(retried.headers()["idempotency-replayed"], "true");
    assert_eq!(total(&one, &key).await, 3);
}
