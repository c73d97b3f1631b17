//! `POST /messages` and subscriptions by type (DESIGN §12): Viber with the receiver override
//! and `tracking_data`, webhook and stream bodies, duplicates by id, all-or-nothing batches.

use crate::helpers::{SseReader, TestApp, assert_error, spawn_app_with};
use crate::notify::{Receiver, get_json};
use reqwest::Method;
use rubra_testkit::eventually;
use serde_json::{Value, json};
use std::time::Duration;

const VIBER_OK: &str = r#"{"status":0,"status_message":"ok","message_token":1}"#;

async fn subscribe(app: &TestApp, key: &str, body: Value) -> Value {
    let resp = app
        .with_key(key, Method::POST, "/subscriptions")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "create subscription");
    resp.json().await.unwrap()
}

async fn post_messages(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.with_key(key, Method::POST, "/messages")
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn accepted(app: &TestApp, key: &str, body: &Value) -> Value {
    let resp = post_messages(app, key, body).await;
    assert_eq!(resp.status(), 202, "POST /messages");
    resp.json().await.unwrap()
}

async fn viber_app() -> (TestApp, Receiver) {
    let viber = Receiver::start(|_, _| (200, VIBER_OK.into())).await;
    let base = viber.base.clone();
    let app = spawn_app_with(move |c| {
        c.viber_base_url = Some(base);
        c.fetch_allow = Some(vec!["127.0.0.1".into()]);
    })
    .await;
    (app, viber)
}

#[tokio::test]
async fn messages_reach_viber_with_the_receiver_override_and_tracking_data_once_per_id() {
    let (app, viber) = viber_app().await;
    let (_, key) = app.create_client("pay").await;
    let sub = subscribe(
        &app,
        &key,
        json!({"types": ["transaction.status"],
               "channel": {"type": "viber", "receiver": "bot-default", "auth_token": "tok"}}),
    )
    .await;
    assert_eq!(sub["types"], json!(["transaction.status"]));
    assert_eq!(sub["threshold"], Value::Null);
    // Raw text: the payload's key order and digits are the producer's, and kept.
    let batch = r#"[
        {"id": "tx-1-settled", "type": "transaction.status", "text": "Paid 12.50",
         "receiver": "user-42"},
        {"id": "tx-2-failed", "type": "transaction.status",
         "payload": {"tx": 2, "amount": 3.10000000000000000001}},
        {"id": "other", "type": "payment.refund", "text": "not subscribed"}
    ]"#;
    let resp = app
        .with_key(&key, Method::POST, "/messages")
        .header("content-type", "application/json")
        .body(batch)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"accepted": 3, "duplicates": 0}));
    let got = viber.wait_for(2).await;
    let mut bodies: Vec<Value> = got.iter().map(|r| r.json()).collect();
    bodies.sort_by_key(|b| b["tracking_data"].as_str().unwrap().to_owned());
    assert_eq!(bodies[0]["tracking_data"], "tx-1-settled");
    assert_eq!(bodies[0]["receiver"], "user-42");
    assert_eq!(bodies[0]["text"], "Paid 12.50");
    assert_eq!(bodies[1]["tracking_data"], "tx-2-failed");
    assert_eq!(bodies[1]["receiver"], "bot-default");
    assert_eq!(
        bodies[1]["text"],
        r#"{"tx":2,"amount":3.10000000000000000001}"#
    );
    assert_eq!(got[0].header("x-viber-auth-token"), Some("tok"));

    // The same ids again: accepted, counted as duplicates, sent to nobody.
    let again = json!([
        {"id": "tx-1-settled", "type": "transaction.status", "text": "Paid 12.50"},
        {"id": "tx-2-failed", "type": "transaction.status"},
    ]);
    assert_eq!(
        accepted(&app, &key, &again).await,
        json!({"accepted": 2, "duplicates": 2})
    );
    let path = format!(
        "/notifications?subscription={}",
        sub["id"].as_str().unwrap()
    );
    let log = eventually(Duration::from_secs(10), || async {
        let log = get_json(&app, &key, &path).await;
        (log["items"].as_array().unwrap().len() == 2)
            .then_some(log)
            .ok_or("two delivered attempts in the log")
    })
    .await;
    for item in log["items"].as_array().unwrap() {
        assert_eq!(item["outcome"], "delivered", "{item}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(viber.seen().len(), 2, "duplicates are not sent again");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("rubra_message_queue_to_send_seconds_bucket"),
        "the latency histogram is exported"
    );
}

#[tokio::test]
async fn webhooks_and_streams_get_id_type_ts_payload_and_text() {
    let (app, _viber) = viber_app().await;
    let (_, key) = app.create_client("pay").await;
    let rx = Receiver::start(|_, _| (204, String::new())).await;
    let hook = subscribe(
        &app,
        &key,
        json!({"types": ["payment.*"],
               "channel": {"type": "webhook", "url": format!("{}/hook", rx.base)}}),
    )
    .await;
    subscribe(
        &app,
        &key,
        json!({"types": ["payment.*"], "channel": {"type": "stream"}}),
    )
    .await;
    let mut stream = SseReader::open(&app, &key, "/notifications/stream", None).await;
    // A number no f64 holds: it must arrive with every digit.
    let message = r#"{"id": "p-1", "type": "payment.refund.late", "text": "Refunded",
                      "payload": {"amount": 12345678901234567890123}}"#;
    let resp = app
        .with_key(&key, Method::POST, "/messages")
        .header("content-type", "application/json")
        .body(message)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let got = rx.wait_for(1).await;
    got[0].verify(hook["secret"].as_str().unwrap()).unwrap();
    let body = String::from_utf8(got[0].body.clone()).unwrap();
    assert!(
        body.contains(r#""amount":12345678901234567890123"#),
        "{body}"
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["id"], "p-1");
    assert_eq!(body["type"], "payment.refund.late");
    assert_eq!(body["text"], "Refunded");
    assert!(body["ts"].as_str().unwrap().ends_with('Z'), "{body}");
    let (_, event) = stream.next().await;
    assert_eq!(event["id"], "p-1");
    assert_eq!(event["type"], "payment.refund.late");
    assert_eq!(event["payload"], body["payload"]);
}

#[tokio::test]
async fn a_batch_with_one_bad_message_is_refused_whole() {
    let (app, viber) = viber_app().await;
    let (_, key) = app.create_client("pay").await;
    subscribe(
        &app,
        &key,
        json!({"types": ["t"], "channel": {"type": "viber", "receiver": "u", "auth_token": "x"}}),
    )
    .await;
    let bad = json!([{"id": "a", "type": "t"}, {"id": "b", "type": "not a type"}]);
    let msg = assert_error(
        post_messages(&app, &key, &bad).await,
        422,
        "invalid_message",
    )
    .await;
    assert!(msg.contains("messages[1].type"), "{msg}");
    let unknown = json!([{"type": "t", "colour": "red"}]);
    let msg = assert_error(
        post_messages(&app, &key, &unknown).await,
        422,
        "invalid_message",
    )
    .await;
    assert!(msg.contains("messages[0]"), "{msg}");
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"id": i.to_string(), "type": "t"}))
        .collect();
    assert_error(
        post_messages(&app, &key, &json!(too_many)).await,
        422,
        "too_many_messages",
    )
    .await;
    let resp = app
        .with_key(&key, Method::POST, "/messages")
        .header("content-type", "application/json")
        .body("[{")
        .send()
        .await
        .unwrap();
    assert_error(resp, 400, "malformed_json").await;
    // Nothing of the refused batch was recorded: "a" is new now.
    assert_eq!(
        accepted(&app, &key, &json!({"id": "a", "type": "t"})).await,
        json!({"accepted": 1, "duplicates": 0})
    );
    viber.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(viber.seen().len(), 1);
}

#[tokio::test]
async fn subscriptions_need_a_threshold_or_valid_types_and_clients_only_send_their_own() {
    let (app, _viber) = viber_app().await;
    let (_, key) = app.create_client("pay").await;
    let (other, _) = app.create_client("other").await;
    let stream = json!({"type": "stream"});
    for (body, code) in [
        (json!({"channel": stream}), "invalid_subscription"),
        (json!({"types": [], "channel": stream}), "invalid_types"),
        (json!({"types": ["a*"], "channel": stream}), "invalid_types"),
        (
            json!({"types": ["a.*.b"], "channel": stream}),
            "invalid_types",
        ),
    ] {
        let resp = app
            .with_key(&key, Method::POST, "/subscriptions")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_error(resp, 422, code).await;
    }
    let both = subscribe(
        &app,
        &key,
        json!({"threshold": 0.5, "types": ["*"], "channel": stream}),
    )
    .await;
    assert_eq!(both["threshold"], 0.5);
    assert_eq!(both["types"], json!(["*"]));
    let foreign = json!({"type": "t", "client_id": other});
    let msg = assert_error(
        post_messages(&app, &key, &foreign).await,
        422,
        "invalid_message",
    )
    .await;
    assert!(msg.contains("client_id"), "{msg}");
    // An admin names the client.
    let resp = app
        .admin(Method::POST, "/messages")
        .json(&json!({"type": "t"}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 422, "client_required").await;
    let resp = app
        .admin(Method::POST, "/messages")
        .json(&json!({"type": "t", "client_id": other}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
}

#[tokio::test]
async fn a_client_flooding_messages_gets_429_and_another_is_served() {
    let app = spawn_app_with(|c| {
        c.rate_limit_messages_per_sec = Some(1_000);
        c.rate_limit_messages_burst = Some(1_000);
    })
    .await;
    let (_, flood) = app.create_client("flood").await;
    let (_, polite) = app.create_client("polite").await;
    let batch: Vec<Value> = (0..1_000)
        .map(|i| json!({ "id": format!("m{i}"), "type": "transaction.status" }))
        .collect();
    let resp = post_messages(&app, &flood, &json!(batch)).await;
    assert_eq!(resp.status(), 202);
    // The bucket is (nearly) empty: the next full batch is refused whole, with when to retry.
    let more: Vec<Value> = (0..1_000)
        .map(|i| json!({ "id": format!("n{i}"), "type": "transaction.status" }))
        .collect();
    let resp = post_messages(&app, &flood, &json!(more)).await;
    assert!(resp.headers().contains_key("retry-after"));
    assert_error(resp, 429, "rate_limited").await;
    // Another client's bucket is its own.
    let resp = post_messages(&app, &polite, &json!([{ "id": "p1", "type": "t" }])).await;
    assert_eq!(resp.status(), 202);
}
