//! The RabbitMQ source (DESIGN §12), against the test broker (skipped without
//! `RUBRA_TEST_AMQP_URL`): messages published to the queue reach a fake Viber once per id, a
//! body that is not a message is dead-lettered, and the queue is declared when missing.

use crate::helpers::{TestApp, spawn_app_with};
use crate::notify::{Receiver, get_json};
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use reqwest::Method;
use rubra_testkit::AmqpBroker;
use rubra_testkit::eventually;
use serde_json::{Value, json};
use std::time::Duration;

const VIBER_OK: &str = r#"{"status":0,"status_message":"ok","message_token":1}"#;

/// A publishing channel with confirms on.
pub(crate) async fn publisher(url: &str) -> (Connection, Channel) {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    (conn, channel)
}

/// Publishes `body` persistently to `queue` and waits for the broker's confirm.
pub(crate) async fn publish(channel: &Channel, queue: &str, body: &[u8]) {
    channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
}

/// Declares `queue` durable with a dead-letter queue `{queue}.dead` (as an operator would).
async fn declare_with_dead_letters(channel: &Channel, queue: &str) -> String {
    let dead = format!("{queue}.dead");
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(dead.as_str().into(), durable, FieldTable::default())
        .await
        .unwrap();
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(dead.as_str().into()),
    );
    channel
        .queue_declare(queue.into(), durable, args)
        .await
        .unwrap();
    dead
}

async fn relay_app(broker: &AmqpBroker, viber: &Receiver) -> TestApp {
    let (url, queue, base) = (broker.url.clone(), broker.queue.clone(), viber.base.clone());
    spawn_app_with(move |c| {
        c.viber_base_url = Some(base);
        c.amqp_url = Some(url);
        c.amqp_queue = Some(queue);
    })
    .await
}

#[tokio::test]
async fn queue_messages_reach_viber_once_per_id_and_a_poison_message_is_dead_lettered() {
    let test = "queue_messages_reach_viber_once_per_id";
    let Some(broker) = rubra_testkit::amqp_broker(test) else {
        return;
    };
    let (_conn, channel) = publisher(&broker.url).await;
    let dead = declare_with_dead_letters(&channel, &broker.queue).await;
    let viber = Receiver::start(|_, _| (200, VIBER_OK.into())).await;
    let app = relay_app(&broker, &viber).await;
    let (client, key) = app.create_client("pay").await;
    let resp = app
        .with_key(&key, Method::POST, "/subscriptions")
        .json(&json!({"types": ["transaction.*"],
                      "channel": {"type": "viber", "receiver": "bot", "auth_token": "t"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let sub: Value = resp.json().await.unwrap();

    for i in 0..50 {
        let body = json!({"client_id": client, "id": format!("tx-{i}"),
                          "type": "transaction.status", "text": format!("status {i}"),
                          "receiver": format!("user-{i}")});
        publish(&channel, &broker.queue, body.to_string().as_bytes()).await;
    }
    // Not JSON, no client, a client that does not exist: each rejected, none requeued.
    publish(&channel, &broker.queue, b"{not json").await;
    publish(&channel, &broker.queue, br#"{"type":"transaction.status"}"#).await;
    let ghost = json!({"client_id": "cl_00000000000000ff", "type": "transaction.status"});
    publish(&channel, &broker.queue, ghost.to_string().as_bytes()).await;
    // A redelivered id (as after a crash before the ack) is a duplicate.
    let again = json!({"client_id": client, "id": "tx-7", "type": "transaction.status"});
    publish(&channel, &broker.queue, again.to_string().as_bytes()).await;

    let got = viber.wait_for(50).await;
    let mut tracking: Vec<String> = got
        .iter()
        .map(|r| r.json()["tracking_data"].as_str().unwrap().to_owned())
        .collect();
    tracking.sort();
    tracking.dedup();
    assert_eq!(tracking.len(), 50, "each id once");
    for r in &got {
        let body = r.json();
        let i = body["tracking_data"]
            .as_str()
            .unwrap()
            .trim_start_matches("tx-");
        assert_eq!(body["receiver"], format!("user-{i}"));
        assert_eq!(body["text"], format!("status {i}"));
    }
    let dead_letters = eventually(Duration::from_secs(10), || async {
        let mut bodies = Vec::new();
        while let Some(m) = channel
            .basic_get(dead.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            bodies.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
        }
        (!bodies.is_empty())
            .then_some(bodies)
            .ok_or("three dead letters")
    })
    .await;
    let mut all = dead_letters;
    if all.len() < 3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        while let Some(m) = channel
            .basic_get(dead.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            all.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
        }
    }
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all.contains(&"{not json".to_owned()), "{all:?}");
    let path = format!(
        "/notifications?subscription={}",
        sub["id"].as_str().unwrap()
    );
    eventually(Duration::from_secs(10), || async {
        let log = get_json(&app, &key, &path).await;
        let items = log["items"].as_array().unwrap().clone();
        (items.len() == 50 && items.iter().all(|i| i["outcome"] == "delivered"))
            .then_some(())
            .ok_or("fifty delivered attempts in the log")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(viber.seen().len(), 50, "the duplicate was not sent");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("rubra_messages_rejected_total{"),
        "rejections are counted"
    );
}

#[tokio::test]
async fn a_missing_queue_is_declared_durable() {
    let Some(broker) = rubra_testkit::amqp_broker("a_missing_queue_is_declared_durable") else {
        return;
    };
    let viber = Receiver::start(|_, _| (200, VIBER_OK.into())).await;
    let app = relay_app(&broker, &viber).await;
    let (client, key) = app.create_client("pay").await;
    let resp = app
        .with_key(&key, Method::POST, "/subscriptions")
        .json(&json!({"types": ["*"],
                      "channel": {"type": "viber", "receiver": "bot", "auth_token": "t"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let (_conn, channel) = publisher(&broker.url).await;
    // The queue exists (Rubra declared it): a passive declare succeeds.
    eventually(Duration::from_secs(10), || async {
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let (_c, ch) = publisher(&broker.url).await;
        ch.queue_declare(broker.queue.as_str().into(), passive, FieldTable::default())
            .await
            .ok()
            .ok_or("the queue to exist")
    })
    .await;
    let body = json!({"client_id": client, "type": "a.b"});
    publish(&channel, &broker.queue, body.to_string().as_bytes()).await;
    let got = viber.wait_for(1).await;
    assert!(
        got[0].json()["tracking_data"]
            .as_str()
            .unwrap()
            .starts_with("sha256-"),
        "a message without id is named by its body"
    );
}
