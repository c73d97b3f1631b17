//! Messages (DESIGN §12): subscriptions by type, one notification per matching subscription
//! in the message's transaction, duplicates by `(client, id)`, all-or-nothing batches.

use rubra_store::{
    Channel, ClaimLimits, ClientId, MessageId, MessageType, NewEvent, NewMessage, NewSubscription,
    Notification, Retained, Scope, Store, Subscription, TypePattern, now_ms,
};
use std::sync::Arc;

crate::both_backends!(
    a_message_notifies_each_subscription_whose_types_match,
    a_repeated_id_is_a_duplicate_and_notifies_nobody_again,
    a_batch_with_one_bad_message_writes_nothing,
    types_only_subscriptions_ignore_red_events_and_keep_their_types,
    message_notifications_carry_what_the_channels_send,
    a_relay_subscription_takes_its_own_cap_and_a_webhook_keeps_the_ordinary_one,
    concurrent_calls_each_get_their_own_answer_and_a_bad_one_fails_alone,
);

async fn subscribe(
    store: &Arc<dyn Store>,
    client: &ClientId,
    threshold: Option<f64>,
    types: &[&str],
    channel: Channel,
) -> Subscription {
    store
        .create_subscription(
            &NewSubscription {
                client_id: client.clone(),
                threshold,
                types: types
                    .iter()
                    .map(|t| TypePattern::parse(t).unwrap())
                    .collect(),
                channel,
                secret: Some("whsec_x".into()),
                limit: 1000,
            },
            &rubra_store::Actor::system(),
        )
        .await
        .unwrap()
}

fn viber() -> Channel {
    Channel::Viber {
        receiver: "bot-default".into(),
        auth_token: "tok".into(),
    }
}

fn message(client: &ClientId, id: &str, kind: &str) -> NewMessage {
    NewMessage {
        client_id: client.clone(),
        id: MessageId::parse(id).unwrap(),
        kind: MessageType::parse(kind).unwrap(),
        text: None,
        payload: None,
        receiver: None,
        received_at: now_ms(),
    }
}

async fn notes(store: &Arc<dyn Store>, client: &ClientId) -> Vec<Notification> {
    store.notifications_after(client, 0, 1000).await.unwrap()
}

async fn a_message_notifies_each_subscription_whose_types_match(store: Arc<dyn Store>) {
    let a = store
        .create_client("a", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let b = store
        .create_client("b", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let status = subscribe(&store, &a, None, &["transaction.status"], viber()).await;
    let payment = subscribe(&store, &a, None, &["payment.*"], Channel::Stream).await;
    let both = subscribe(&store, &a, Some(0.5), &["transaction.*", "x"], viber()).await;
    let _red_only = subscribe(&store, &a, Some(0.1), &[], viber()).await;
    let _other = subscribe(&store, &b, None, &["*"], viber()).await;
    let fresh = store
        .insert_messages(&[
            message(&a, "m1", "transaction.status"),
            message(&a, "m2", "payment.refund.late"),
            message(&a, "m3", "payment"),
            message(&a, "m4", "transaction.status.x"),
        ])
        .await
        .unwrap();
    assert_eq!(fresh, [true, true, true, true]);
    let got: Vec<(String, String)> = notes(&store, &a)
        .await
        .into_iter()
        .map(|n| {
            let m = n.message.expect("a message notification");
            (m.id, n.subscription_id.as_str().to_owned())
        })
        .collect();
    let want = [
        ("m1", &status.id),
        ("m1", &both.id),
        ("m2", &payment.id),
        ("m4", &both.id),
    ];
    let mut want: Vec<(String, String)> = want
        .iter()
        .map(|(m, s)| ((*m).to_owned(), s.as_str().to_owned()))
        .collect();
    let mut got = got;
    got.sort();
    want.sort();
    assert_eq!(got, want);
    // Client b's catch-all saw none of client a's messages.
    assert!(notes(&store, &b).await.is_empty());
}

async fn a_repeated_id_is_a_duplicate_and_notifies_nobody_again(store: Arc<dyn Store>) {
    let a = store
        .create_client("a", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let b = store
        .create_client("b", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    subscribe(&store, &a, None, &["t"], viber()).await;
    subscribe(&store, &b, None, &["t"], viber()).await;
    let fresh = store
        .insert_messages(&[message(&a, "x", "t"), message(&a, "x", "t")])
        .await
        .unwrap();
    assert_eq!(fresh, [true, false], "a repeat within one batch");
    let fresh = store
        .insert_messages(&[
            message(&a, "x", "t"),
            message(&a, "y", "t"),
            message(&b, "x", "t"),
        ])
        .await
        .unwrap();
    assert_eq!(fresh, [false, true, true], "ids are per client");
    assert_eq!(notes(&store, &a).await.len(), 2);
    assert_eq!(notes(&store, &b).await.len(), 1);
    // Forgotten ids are new again.
    assert_eq!(
        store
            .delete_expired(Retained::Messages, now_ms() + 1, 1000)
            .await
            .unwrap(),
        3
    );
    let fresh = store
        .insert_messages(&[message(&a, "x", "t")])
        .await
        .unwrap();
    assert_eq!(fresh, [true]);
}

async fn a_batch_with_one_bad_message_writes_nothing(store: Arc<dyn Store>) {
    let a = store
        .create_client("a", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    subscribe(&store, &a, None, &["t"], viber()).await;
    let ghost = ClientId::generate();
    let refused = store
        .insert_messages(&[message(&a, "1", "t"), message(&ghost, "2", "t")])
        .await;
    assert!(refused.is_err(), "a message of no client fails the batch");
    assert!(notes(&store, &a).await.is_empty());
    // Nothing was recorded: the same id is new now.
    let fresh = store
        .insert_messages(&[message(&a, "1", "t")])
        .await
        .unwrap();
    assert_eq!(fresh, [true]);
    assert_eq!(notes(&store, &a).await.len(), 1);
}

async fn types_only_subscriptions_ignore_red_events_and_keep_their_types(store: Arc<dyn Store>) {
    let a = store
        .create_client("a", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let typed = subscribe(&store, &a, None, &["a.*", "b"], viber()).await;
    let got = store
        .get_subscription(&Scope::Client(a.clone()), &typed.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.threshold, None);
    let types: Vec<&str> = got.types.iter().map(TypePattern::as_str).collect();
    assert_eq!(types, ["a.*", "b"]);
    store
        .insert_event(&NewEvent {
            client_id: a.clone(),
            image_id: None,
            red: 1.0,
            ts: now_ms(),
        })
        .await
        .unwrap();
    assert!(notes(&store, &a).await.is_empty(), "red never notifies it");
}

async fn message_notifications_carry_what_the_channels_send(store: Arc<dyn Store>) {
    let a = store
        .create_client("a", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let sub = subscribe(&store, &a, None, &["t"], viber()).await;
    let mut m = message(&a, "tx-81723-settled", "t");
    m.text = Some("Paid".into());
    m.payload = Some(r#"{"amount":12.50000000000000000001}"#.into());
    m.receiver = Some("user-42".into());
    store.insert_messages(&[m.clone()]).await.unwrap();
    let claimed = store
        .claim_notifications(
            "me",
            now_ms(),
            30_000,
            &ClaimLimits {
                total: 10,
                per_subscription: 10,
                per_relay_subscription: 10,
                per_client: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let n = &claimed[0].notification;
    assert_eq!(n.subscription_id, sub.id);
    assert_eq!(n.event_ts, m.received_at);
    let c = n.message.as_ref().unwrap();
    assert_eq!(c.id, "tx-81723-settled");
    assert_eq!(c.kind, "t");
    assert_eq!(c.text.as_deref(), Some("Paid"));
    assert_eq!(c.payload.as_deref(), m.payload.as_deref());
    assert_eq!(c.receiver.as_deref(), Some("user-42"));
}

/// Issue #22: a subscription that carries messages to Viber (`types` and a Viber channel) is
/// capped by `per_relay_subscription`; one with the same types but a webhook (an address the
/// client chose) keeps `per_subscription` (issue #18), and the caps count rows in flight.
async fn a_relay_subscription_takes_its_own_cap_and_a_webhook_keeps_the_ordinary_one(
    store: Arc<dyn Store>,
) {
    let a = store
        .create_client("a", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let bot = subscribe(&store, &a, None, &["t"], viber()).await;
    let hook = Channel::Webhook {
        url: "https://example.com/hook".into(),
    };
    let hook = subscribe(&store, &a, None, &["t"], hook).await;
    let batch: Vec<NewMessage> = (0..30)
        .map(|i| message(&a, &format!("m-{i}"), "t"))
        .collect();
    store.insert_messages(&batch).await.unwrap();
    let limits = ClaimLimits {
        total: 64,
        per_subscription: 4,
        per_relay_subscription: 20,
        per_client: 64,
    };
    let now = now_ms() + 1;
    let claimed = store
        .claim_notifications("w", now, 60_000, &limits)
        .await
        .unwrap();
    let of = |claimed: &[rubra_store::ClaimedNotification], id: &rubra_store::SubscriptionId| {
        claimed
            .iter()
            .filter(|c| &c.notification.subscription_id == id)
            .count()
    };
    assert_eq!(of(&claimed, &bot.id), 20);
    assert_eq!(of(&claimed, &hook.id), 4);
    // Both are at their caps with rows in flight: another process takes nothing more.
    let more = store
        .claim_notifications("other", now, 60_000, &limits)
        .await
        .unwrap();
    assert!(more.is_empty(), "{more:?}");
}

/// Concurrent `insert_messages` calls (on SQLite: one group transaction) are each all or
/// nothing on their own: a call naming no client fails alone, a duplicate across calls is
/// recorded once, and each call gets the answers of its own messages.
async fn concurrent_calls_each_get_their_own_answer_and_a_bad_one_fails_alone(
    store: Arc<dyn Store>,
) {
    let a = store
        .create_client("a", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    subscribe(&store, &a, None, &["t"], viber()).await;
    let ghost = ClientId::generate();
    let mut calls = Vec::new();
    for i in 0..40 {
        let batch = if i == 7 {
            vec![message(&a, "bad-1", "t"), message(&ghost, "bad-2", "t")]
        } else {
            // Every call repeats the id "shared"; call i adds its own two.
            vec![
                message(&a, &format!("own-{i}-a"), "t"),
                message(&a, "shared", "t"),
                message(&a, &format!("own-{i}-b"), "t"),
            ]
        };
        let store = store.clone();
        calls.push(tokio::spawn(
            async move { store.insert_messages(&batch).await },
        ));
    }
    let mut shared_new = 0;
    for (i, call) in calls.into_iter().enumerate() {
        let got = call.await.unwrap();
        if i == 7 {
            assert!(got.is_err(), "the call with a message of no client fails");
            continue;
        }
        let fresh = got.unwrap();
        assert_eq!(fresh.len(), 3, "call {i}");
        assert!(
            fresh[0] && fresh[2],
            "call {i}: its own ids are new: {fresh:?}"
        );
        shared_new += usize::from(fresh[1]);
    }
    assert_eq!(shared_new, 1, "the shared id is new in exactly one call");
    // 39 calls × 2 own ids + the shared one; nothing of the failed call.
    let ids: Vec<String> = notes(&store, &a)
        .await
        .iter()
        .map(|n| n.message.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(ids.len(), 39 * 2 + 1, "{ids:?}");
    assert!(!ids.iter().any(|id| id.starts_with("bad-")));
}
