//! Subscriptions, the notification outbox, leases, verdicts, pausing and the delivery log.

use rubra_store::{
    Channel, ClaimLimits, ClientId, DeliveryAttempt, DeliveryVerdict, LogPage, NewEvent,
    NewSubscription, Scope, Store, Subscription, SubscriptionState, Verdict, now_ms,
};
use std::collections::HashSet;
use std::sync::Arc;

crate::both_backends!(
    subscriptions_are_scoped_and_soft_deleted,
    an_event_makes_one_notification_per_exceeded_subscription,
    claims_are_exclusive_and_an_expired_lease_is_taken_over,
    concurrent_claimers_never_share_a_notification,
    verdicts_move_notifications_and_a_lost_lease_changes_nothing,
    a_batch_of_verdicts_is_recorded_as_one_by_one,
    a_stale_delivered_verdict_is_not_recorded_and_its_attempt_is_logged_superseded,
    a_stale_verdict_in_a_logged_batch_is_superseded_and_the_rest_of_the_batch_recorded,
    repeated_failures_pause_and_resume_releases_held_notifications,
    a_client_pauses_its_subscription_and_its_notifications_are_held_until_resumed,
    deleting_a_subscription_cancels_its_undelivered_notifications,
    delivery_log_is_written_in_batches_and_read_in_pages,
    replay_cursors,
    a_subscription_backlog_holds_only_its_share_of_delivery_slots,
    a_client_holds_only_its_share_while_another_client_waits,
);

fn webhook() -> Channel {
    Channel::Webhook {
        url: "http://127.0.0.1:9/hook".into(),
    }
}

async fn subscribe(
    store: &Arc<dyn Store>,
    client: &ClientId,
    threshold: f64,
    channel: Channel,
) -> Subscription {
    store
        .create_subscription(
            &NewSubscription {
                client_id: client.clone(),
                threshold: Some(threshold),
                types: Vec::new(),
                channel,
                secret: Some("whsec_x".into()),
                limit: 1000,
            },
            &rubra_store::Actor::system(),
        )
        .await
        .unwrap()
}

async fn event(store: &Arc<dyn Store>, client: &ClientId, red: f64) {
    store
        .insert_event(&NewEvent {
            client_id: client.clone(),
            image_id: None,
            red,
            ts: now_ms(),
        })
        .await
        .unwrap();
}

async fn subscriptions_are_scoped_and_soft_deleted(store: Arc<dyn Store>) {
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
    let viber = Channel::Viber {
        receiver: "r".into(),
        auth_token: "t".into(),
    };
    let s1 = subscribe(&store, &a, 0.5, webhook()).await;
    let s2 = subscribe(&store, &a, 0.7, viber.clone()).await;
    let s3 = subscribe(&store, &b, 0.1, Channel::Stream).await;
    assert!(s1.id.as_str().starts_with("sub_"));
    let got = store
        .get_subscription(&Scope::Client(a.clone()), &s2.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.channel, viber);
    assert_eq!(got.threshold, Some(0.7));
    assert_eq!(got.state, SubscriptionState::Active);
    assert_eq!(
        store
            .get_subscription(&Scope::Client(b.clone()), &s1.id)
            .await
            .unwrap(),
        None
    );
    let ids = |subs: Vec<Subscription>| subs.into_iter().map(|s| s.id).collect::<Vec<_>>();
    let of_a = store
        .list_subscriptions(&Scope::Client(a.clone()))
        .await
        .unwrap();
    // Oldest first; subscriptions created in the same millisecond are ordered by id.
    let mut expected = [s1.clone(), s2.clone()];
    expected.sort_by(|x, y| (x.created_at, x.id.as_str()).cmp(&(y.created_at, y.id.as_str())));
    assert_eq!(ids(of_a), expected.map(|s| s.id));
    assert_eq!(
        store.list_subscriptions(&Scope::All).await.unwrap().len(),
        3
    );
    // Another client cannot delete it; its owner can, once.
    let b_scope = Scope::Client(b.clone());
    assert!(
        !store
            .delete_subscription(&b_scope, &s1.id, &rubra_store::Actor::system())
            .await
            .unwrap()
    );
    let a_scope = Scope::Client(a.clone());
    assert!(
        store
            .delete_subscription(&a_scope, &s1.id, &rubra_store::Actor::system())
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_subscription(&a_scope, &s1.id, &rubra_store::Actor::system())
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_subscription(&a_scope, &s1.id).await.unwrap(),
        None
    );
    assert_eq!(
        ids(store.list_subscriptions(&a_scope).await.unwrap()),
        [s2.id]
    );
    assert_eq!(
        ids(store.list_subscriptions(&b_scope).await.unwrap()),
        [s3.id]
    );
}

async fn an_event_makes_one_notification_per_exceeded_subscription(store: Arc<dyn Store>) {
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
    let low = subscribe(&store, &a, 0.5, webhook()).await;
    let _equal = subscribe(&store, &a, 0.8, webhook()).await;
    let _high = subscribe(&store, &a, 0.9, webhook()).await;
    let stream = subscribe(&store, &a, 0.5, Channel::Stream).await;
    let _other = subscribe(&store, &b, 0.0, webhook()).await;
    // Strictly greater: 0.8 does not exceed the 0.8 subscription.
    event(&store, &a, 0.8).await;
    event(&store, &a, 0.5).await;
    let notes = store.notifications_after(&a, 0, 100).await.unwrap();
    let got: Vec<_> = notes
        .iter()
        .map(|n| (n.subscription_id.clone(), n.state.as_str(), n.red))
        .collect();
    assert_eq!(
        got,
        [
            (low.id.clone(), "pending", 0.8),
            (stream.id.clone(), "stream", 0.8)
        ]
    );
    assert!(notes[0].seq < notes[1].seq);
    assert_eq!(store.notifications_after(&b, 0, 100).await.unwrap(), []);
    // Only the webhook row is for workers; the stream row has nothing to send.
    let claimed = store
        .claim_notifications("w", now_ms(), 30_000, &ClaimLimits::total(10))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].subscription.id, low.id);
    assert_eq!(claimed[0].notification.attempts, 1);
}

async fn claims_are_exclusive_and_an_expired_lease_is_taken_over(store: Arc<dyn Store>) {
    let a = store
        .create_client("a", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    subscribe(&store, &a, 0.1, webhook()).await;
    for _ in 0..3 {
        event(&store, &a, 0.9).await;
    }
    let now = now_ms() + 1;
    let first = store
        .claim_notifications("one", now, 1_000, &ClaimLimits::total(2))
        .await
        .unwrap();
    let second = store
        .claim_notifications("two", now, 1_000, &ClaimLimits::total(10))
        .await
        .unwrap();
    assert_eq!((first.len(), second.len()), (2, 1));
    assert!(
        store
            .claim_notifications("three", now, 1_000, &ClaimLimits::total(10))
            .await
            .unwrap()
            .is_empty()
    );
    // The next thing due is the end of those leases.
    assert_eq!(
        store.next_due_notification().await.unwrap(),
        Some(now + 1_000)
    );
    // Nobody recorded anything: after the leases end, another worker takes all three over.
    let later = store
        .claim_notifications("three", now + 1_000, 1_000, &ClaimLimits::total(10))
        .await
        .unwrap();
    let seqs: HashSet<i64> = later.iter().map(|c| c.notification.seq).collect();
    let before: HashSet<i64> = first
        .iter()
        .chain(&second)
        .map(|c| c.notification.seq)
        .collect();
    assert_eq!(seqs, before);
    assert!(later.iter().all(|c| c.notification.attempts == 2));
}

async fn concurrent_claimers_never_share_a_notification(store: Arc<dyn Store>) {
    let a = store
        .create_client("a", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    subscribe(&store, &a, 0.1, webhook()).await;
    subscribe(&store, &a, 0.2, webhook()).await;
    for _ in 0..50 {
        event(&store, &a, 0.9).await;
    }
    let now = now_ms() + 1;
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim_notifications(&format!("w{w}"), now, 60_000, &ClaimLimits::total(7))
                    .await
                    .unwrap();
                if got.is_empty() {
                    break mine;
                }
                mine.extend(got.into_iter().map(|c| c.notification.seq));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 100, "every notification claimed once");
    assert_eq!(distinct.len(), 100);
}

async fn verdicts_move_notifications_and_a_lost_lease_changes_nothing(store: Arc<dyn Store>) {
    let a = store
        .create_client("a", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let sub = subscribe(&store, &a, 0.1, webhook()).await;
    for _ in 0..3 {
        event(&store, &a, 0.9).await;
    }
    let now = now_ms() + 1;
    let c = store
        .claim_notifications("me", now, 60_000, &ClaimLimits::total(3))
        .await
        .unwrap();
    let (n1, n2, n3) = (&c[0].notification, &c[1].notification, &c[2].notification);
    let rec = store
        .record_delivery("me", n1, Verdict::Delivered, None, 10)
        .await
        .unwrap();
    assert!(rec.applied && !rec.paused);
    // Not our lease: ignored.
    let rec = store
        .record_delivery("thief", n2, Verdict::RetryAt(now), Some("x"), 10)
        .await
        .unwrap();
    assert!(!rec.applied);
    let retry_at = now + 5_000;
    let rec = store
        .record_delivery("me", n2, Verdict::RetryAt(retry_at), Some("HTTP 500"), 10)
        .await
        .unwrap();
    assert!(rec.applied);
    store
        .record_delivery("me", n3, Verdict::Failed, Some("HTTP 500"), 10)
        .await
        .unwrap();
    let states: Vec<_> = store
        .notifications_after(&a, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.state)
        .collect();
    assert_eq!(states, ["delivered", "pending", "failed"]);
    let sub = store
        .get_subscription(&Scope::All, &sub.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.consecutive_failures, 2);
    // The retry is due at its time, not before.
    assert!(
        store
            .claim_notifications("me", retry_at - 1, 60_000, &ClaimLimits::total(10))
            .await
            .unwrap()
            .is_empty()
    );
    let again = store
        .claim_notifications("me", retry_at, 60_000, &ClaimLimits::total(10))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].notification.seq, n2.seq);
    assert_eq!(again[0].notification.attempts, 2);
    store
        .record_delivery("me", &again[0].notification, Verdict::Delivered, None, 10)
        .await
        .unwrap();
    let sub = store
        .get_subscription(&Scope::All, &sub.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.consecutive_failures, 0, "a success resets the count");
}

/// `record_deliveries` (one transaction on SQLite) gives each verdict the effect it has alone,
/// in order: a success resets the failures, the second failure pauses, a later failure of the
/// paused subscription is held, and a verdict on a lease held by another owner changes nothing.
async fn a_batch_of_verdicts_is_recorded_as_one_by_one(store: Arc<dyn Store>) {
    let a = store
        .create_client("a", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let sub = subscribe(&store, &a, 0.1, webhook()).await;
    for _ in 0..5 {
        event(&store, &a, 0.9).await;
    }
    let now = now_ms() + 1;
    let mine = store
        .claim_notifications("me", now, 60_000, &ClaimLimits::total(4))
        .await
        .unwrap();
    let theirs = store
        .claim_notifications("other", now, 60_000, &ClaimLimits::total(1))
        .await
        .unwrap();
    assert_eq!((mine.len(), theirs.len()), (4, 1));
    let v = |n: &rubra_store::Notification, verdict, error: Option<&str>| DeliveryVerdict {
        notification: n.clone(),
        verdict,
        error: error.map(str::to_owned),
    };
    let batch = [
        v(&mine[0].notification, Verdict::Delivered, None),
        v(
            &mine[1].notification,
            Verdict::RetryAt(now),
            Some("HTTP 503"),
        ),
        v(&mine[2].notification, Verdict::Failed, Some("HTTP 500")),
        v(
            &mine[3].notification,
            Verdict::RetryAt(now),
            Some("HTTP 503"),
        ),
        v(&theirs[0].notification, Verdict::Failed, Some("not mine")),
    ];
    let rec = store.record_deliveries("me", &batch, 2).await.unwrap();
    let flags: Vec<(bool, bool)> = rec.iter().map(|r| (r.applied, r.paused)).collect();
    assert_eq!(
        flags,
        [
            (true, false),
            (true, false),
            (true, true),
            (true, false),
            (false, false)
        ]
    );
    // Claims among equally due rows may come in any seq order: compare by seq.
    let state_of: std::collections::HashMap<i64, String> = store
        .notifications_after(&a, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.seq, n.state))
        .collect();
    let states: Vec<&str> = batch
        .iter()
        .map(|v| state_of[&v.notification.seq].as_str())
        .collect();
    assert_eq!(states, ["delivered", "held", "failed", "held", "pending"]);
    let sub = store
        .get_subscription(&Scope::All, &sub.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.state, SubscriptionState::Paused);
    assert_eq!(sub.consecutive_failures, 3);
    assert!(
        store
            .record_deliveries("me", &[], 2)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Fencing (issue #26): a worker whose lease ran out while its webhook call succeeded, and
/// whose notification another worker took over, records nothing — not even "delivered" — and
/// its attempt is logged `superseded`; the lease holder's verdict is the one that counts, so the
/// log shows the notification delivered exactly once.
async fn a_stale_delivered_verdict_is_not_recorded_and_its_attempt_is_logged_superseded(
    store: Arc<dyn Store>,
) {
    let a = store
        .create_client("a", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    subscribe(&store, &a, 0.1, webhook()).await;
    event(&store, &a, 0.9).await;
    let now = now_ms() + 1;
    let stale = store
        .claim_notifications("first", now, 1_000, &ClaimLimits::total(1))
        .await
        .unwrap();
    let taken = store
        .claim_notifications("second", now + 1_000, 60_000, &ClaimLimits::total(1))
        .await
        .unwrap();
    assert_eq!((stale.len(), taken.len()), (1, 1));
    let attempt = |n: &rubra_store::Notification| {
        (
            DeliveryVerdict {
                notification: n.clone(),
                verdict: Verdict::Delivered,
                error: None,
            },
            DeliveryAttempt {
                id: 0,
                notification_seq: n.seq,
                subscription_id: n.subscription_id.clone(),
                client_id: n.client_id.clone(),
                attempt: n.attempts,
                at: now_ms(),
                outcome: "delivered".into(),
                status_code: Some(200),
                latency_ms: 1,
                error: None,
            },
        )
    };
    // The first worker's call succeeded after its lease had passed to the second.
    let (v, log) = attempt(&stale[0].notification);
    let rec = store
        .record_deliveries_logged("first", &[v], &[log], 10)
        .await
        .unwrap();
    assert!(!rec[0].applied, "a stale verdict is not recorded");
    let state = store.notifications_after(&a, 0, 10).await.unwrap()[0]
        .state
        .clone();
    assert_eq!(state, "pending", "the lease holder still owns it");
    let (v, log) = attempt(&taken[0].notification);
    let rec = store
        .record_deliveries_logged("second", &[v], &[log], 10)
        .await
        .unwrap();
    assert!(rec[0].applied);
    let log = store
        .list_delivery_attempts(
            &Scope::Client(a.clone()),
            &LogPage {
                subscription: None,
                before_id: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    let mut outcomes: Vec<(i64, String)> =
        log.iter().map(|r| (r.attempt, r.outcome.clone())).collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        [(1, "superseded".to_owned()), (2, "delivered".to_owned())]
    );
}

/// A logged batch (one transaction on both backends, issue #22) with a verdict whose lease was
/// lost among the current ones: the stale one changes nothing and its attempt is logged
/// `superseded`, every other verdict and its log row are recorded.
async fn a_stale_verdict_in_a_logged_batch_is_superseded_and_the_rest_of_the_batch_recorded(
    store: Arc<dyn Store>,
) {
    let a = store
        .create_client("a", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    subscribe(&store, &a, 0.1, webhook()).await;
    for _ in 0..4 {
        event(&store, &a, 0.9).await;
    }
    let now = now_ms() + 1;
    // "first" leases all four briefly; its lease runs out and "second" takes one over. The
    // other three are still "first"'s (nobody took them), so its verdicts on them count.
    let claimed = store
        .claim_notifications("first", now, 1_000, &ClaimLimits::total(4))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 4);
    let taken = store
        .claim_notifications("second", now + 1_000, 60_000, &ClaimLimits::total(1))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    let (lapsed, mine): (Vec<_>, Vec<_>) = claimed
        .into_iter()
        .partition(|c| c.notification.seq == taken[0].notification.seq);
    assert_eq!((lapsed.len(), mine.len()), (1, 3));
    let attempt = |n: &rubra_store::Notification, verdict: Verdict| {
        (
            DeliveryVerdict {
                notification: n.clone(),
                verdict,
                error: None,
            },
            DeliveryAttempt {
                id: 0,
                notification_seq: n.seq,
                subscription_id: n.subscription_id.clone(),
                client_id: n.client_id.clone(),
                attempt: n.attempts,
                at: now_ms(),
                outcome: if verdict == Verdict::Delivered {
                    "delivered".into()
                } else {
                    "retrying".into()
                },
                status_code: Some(200),
                latency_ms: 1,
                error: None,
            },
        )
    };
    let (verdicts, log): (Vec<_>, Vec<_>) = [
        attempt(&mine[0].notification, Verdict::Delivered),
        attempt(&lapsed[0].notification, Verdict::Delivered),
        attempt(&mine[1].notification, Verdict::RetryAt(now + 60_000)),
        attempt(&mine[2].notification, Verdict::Delivered),
    ]
    .into_iter()
    .unzip();
    let rec = store
        .record_deliveries_logged("first", &verdicts, &log, 10)
        .await
        .unwrap();
    let applied: Vec<bool> = rec.iter().map(|r| r.applied).collect();
    assert_eq!(applied, [true, false, true, true]);
    let state_of: std::collections::HashMap<i64, String> = store
        .notifications_after(&a, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.seq, n.state))
        .collect();
    let states: Vec<&str> = verdicts
        .iter()
        .map(|v| state_of[&v.notification.seq].as_str())
        .collect();
    assert_eq!(states, ["delivered", "pending", "pending", "delivered"]);
    let logged = store
        .list_delivery_attempts(
            &Scope::Client(a.clone()),
            &LogPage {
                subscription: None,
                before_id: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    let mut outcomes: Vec<(i64, String)> = logged
        .iter()
        .map(|r| (r.notification_seq, r.outcome.clone()))
        .collect();
    outcomes.sort();
    let mut want = vec![
        (mine[0].notification.seq, "delivered".to_owned()),
        (lapsed[0].notification.seq, "superseded".to_owned()),
        (mine[1].notification.seq, "retrying".to_owned()),
        (mine[2].notification.seq, "delivered".to_owned()),
    ];
    want.sort();
    assert_eq!(outcomes, want);
}

async fn repeated_failures_pause_and_resume_releases_held_notifications(store: Arc<dyn Store>) {
    let a = store
        .create_client("a", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let sub = subscribe(&store, &a, 0.1, webhook()).await;
    for _ in 0..3 {
        event(&store, &a, 0.9).await;
    }
    let now = now_ms() + 1;
    let c = store
        .claim_notifications("me", now, 60_000, &ClaimLimits::total(2))
        .await
        .unwrap();
    let first = store
        .record_delivery(
            "me",
            &c[0].notification,
            Verdict::RetryAt(now),
            Some("HTTP 503"),
            2,
        )
        .await
        .unwrap();
    assert!(!first.paused);
    let second = store
        .record_delivery(
            "me",
            &c[1].notification,
            Verdict::RetryAt(now),
            Some("HTTP 503"),
            2,
        )
        .await
        .unwrap();
    assert!(second.paused);
    let scope = Scope::Client(a.clone());
    let paused = store
        .get_subscription(&scope, &sub.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(paused.state, SubscriptionState::Paused);
    let reason = paused.paused_reason.unwrap();
    assert!(
        reason.contains("2 consecutive") && reason.contains("HTTP 503"),
        "{reason}"
    );
    // Nothing of a paused subscription is claimed, and new events are held too.
    event(&store, &a, 0.9).await;
    assert!(
        store
            .claim_notifications("me", now + 120_000, 60_000, &ClaimLimits::total(10))
            .await
            .unwrap()
            .is_empty()
    );
    let states: Vec<_> = store
        .notifications_after(&a, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.state)
        .collect();
    assert_eq!(states, ["held"; 4]);
    let resumed = store
        .resume_subscription(&scope, &sub.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resumed.state, SubscriptionState::Active);
    assert_eq!(resumed.paused_reason, None);
    assert_eq!(resumed.consecutive_failures, 0);
    let back = store
        .claim_notifications("me", now_ms() + 1, 60_000, &ClaimLimits::total(10))
        .await
        .unwrap();
    assert_eq!(back.len(), 4);
    // Another client cannot resume it.
    let b = store
        .create_client("b", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    assert!(
        store
            .resume_subscription(&Scope::Client(b), &sub.id)
            .await
            .unwrap()
            .is_none()
    );
}

async fn deleting_a_subscription_cancels_its_undelivered_notifications(store: Arc<dyn Store>) {
    let a = store
        .create_client("a", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let sub = subscribe(&store, &a, 0.1, webhook()).await;
    event(&store, &a, 0.9).await;
    event(&store, &a, 0.9).await;
    let c = store
        .claim_notifications("me", now_ms() + 1, 60_000, &ClaimLimits::total(1))
        .await
        .unwrap();
    store
        .record_delivery("me", &c[0].notification, Verdict::Delivered, None, 10)
        .await
        .unwrap();
    assert!(
        store
            .delete_subscription(
                &Scope::Client(a.clone()),
                &sub.id,
                &rubra_store::Actor::system()
            )
            .await
            .unwrap()
    );
    event(&store, &a, 0.9).await;
    let states: Vec<_> = store
        .notifications_after(&a, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.state)
        .collect();
    assert_eq!(
        states,
        ["delivered", "canceled"],
        "no new notification after delete"
    );
    assert!(
        store
            .claim_notifications("me", now_ms() + 1, 60_000, &ClaimLimits::total(10))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn delivery_log_is_written_in_batches_and_read_in_pages(store: Arc<dyn Store>) {
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
    let sa = subscribe(&store, &a, 0.1, webhook()).await;
    let sb = subscribe(&store, &b, 0.1, webhook()).await;
    let row = |client: &ClientId, sub: &Subscription, i: i64| DeliveryAttempt {
        id: 0,
        notification_seq: i,
        subscription_id: sub.id.clone(),
        client_id: client.clone(),
        attempt: 1,
        at: 1_000 + i,
        outcome: if i % 2 == 0 { "delivered" } else { "retrying" }.into(),
        status_code: (i % 3 != 0).then_some(200 + i),
        latency_ms: i,
        error: (i % 2 == 1).then(|| format!("err {i}")),
    };
    let mut rows: Vec<_> = (0..1_200).map(|i| row(&a, &sa, i)).collect();
    rows.push(row(&b, &sb, 7));
    store.insert_delivery_attempts(&rows).await.unwrap();
    let scope = Scope::Client(a.clone());
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_delivery_attempts(
                &scope,
                &LogPage {
                    subscription: None,
                    before_id: before,
                    limit: 500,
                },
            )
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        seen.extend(page);
    }
    assert_eq!(seen.len(), 1_200);
    assert!(seen.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let first = seen.last().unwrap();
    assert_eq!(
        (
            first.notification_seq,
            first.status_code,
            first.error.clone()
        ),
        (0, None, None)
    );
    let five = seen.iter().find(|r| r.notification_seq == 5).unwrap();
    assert_eq!(five.status_code, Some(205));
    assert_eq!(five.error.as_deref(), Some("err 5"));
    assert_eq!(five.outcome, "retrying");
    // Scoped, and filtered by subscription.
    let page = LogPage {
        subscription: Some(sb.id.clone()),
        before_id: None,
        limit: 10,
    };
    assert!(
        store
            .list_delivery_attempts(&scope, &page)
            .await
            .unwrap()
            .is_empty()
    );
    let all = store
        .list_delivery_attempts(&Scope::All, &page)
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].client_id, b);
}

async fn replay_cursors(store: Arc<dyn Store>) {
    let a = store
        .create_client("a", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    subscribe(&store, &a, 0.1, Channel::Stream).await;
    assert_eq!(store.latest_notification_seq(&a).await.unwrap(), 0);
    for _ in 0..3 {
        event(&store, &a, 0.9).await;
    }
    let notes = store.notifications_after(&a, 0, 10).await.unwrap();
    let seqs: Vec<i64> = notes.iter().map(|n| n.seq).collect();
    assert_eq!(store.latest_notification_seq(&a).await.unwrap(), seqs[2]);
    let after_first = store.notifications_after(&a, seqs[0], 10).await.unwrap();
    assert_eq!(after_first.len(), 2);
    assert_eq!(
        store
            .notifications_after(&a, seqs[0], 1)
            .await
            .unwrap()
            .len(),
        1
    );
    // Everything is older than "the far future"; nothing is older than the first row.
    let far = now_ms() + 1_000_000;
    assert_eq!(
        store.settled_cursor(&a, seqs[1], far).await.unwrap(),
        seqs[1]
    );
    assert_eq!(
        store
            .settled_cursor(&a, seqs[2], notes[0].created_at)
            .await
            .unwrap(),
        0
    );
}

async fn a_subscription_backlog_holds_only_its_share_of_delivery_slots(store: Arc<dyn Store>) {
    let noisy = store
        .create_client("noisy", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let polite = store
        .create_client("polite", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let flood = subscribe(&store, &noisy, 0.0, webhook()).await;
    let calm = subscribe(&store, &polite, 0.0, webhook()).await;
    for _ in 0..40 {
        event(&store, &noisy, 0.9).await;
    }
    // The polite client's notification is the youngest of all, behind the whole backlog.
    event(&store, &polite, 0.9).await;
    let limits = ClaimLimits {
        total: 64,
        per_subscription: 4,
        // Webhook subscriptions: the relay's cap is not theirs (issue #22).
        per_relay_subscription: 64,
        per_client: 64,
    };
    let now = now_ms() + 1;
    let first = store
        .claim_notifications("w", now, 60_000, &limits)
        .await
        .unwrap();
    let count = |claimed: &[rubra_store::ClaimedNotification], id: &rubra_store::SubscriptionId| {
        claimed
            .iter()
            .filter(|c| &c.notification.subscription_id == id)
            .count()
    };
    assert_eq!(count(&first, &flood.id), 4, "the backlog takes its cap");
    assert_eq!(
        count(&first, &calm.id),
        1,
        "the polite row is not left behind"
    );
    // Its four are in flight: another claim (any process) takes none of the backlog.
    let second = store
        .claim_notifications("other", now, 60_000, &limits)
        .await
        .unwrap();
    assert!(second.is_empty(), "{second:?}");
    // A verdict frees one slot of the subscription, and exactly one more is taken.
    store
        .record_delivery("w", &first[0].notification, Verdict::Delivered, None, 0)
        .await
        .unwrap();
    let third = store
        .claim_notifications("w", now, 60_000, &limits)
        .await
        .unwrap();
    assert_eq!(count(&third, &flood.id), 1);
    // Once the leases run out they count no more.
    let later = store
        .claim_notifications("w", now + 60_001, 60_000, &limits)
        .await
        .unwrap();
    assert_eq!(count(&later, &flood.id), 4);
}

async fn a_client_holds_only_its_share_while_another_client_waits(store: Arc<dyn Store>) {
    let noisy = store
        .create_client("noisy", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let polite = store
        .create_client("polite", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let mut many = Vec::new();
    for _ in 0..5 {
        many.push(subscribe(&store, &noisy, 0.0, webhook()).await);
    }
    let calm = subscribe(&store, &polite, 0.0, webhook()).await;
    for _ in 0..4 {
        event(&store, &noisy, 0.9).await;
    }
    event(&store, &polite, 0.9).await;
    let limits = ClaimLimits {
        total: 64,
        per_subscription: 2,
        per_relay_subscription: 64,
        per_client: 6,
    };
    let claimed = store
        .claim_notifications("w", now_ms() + 1, 60_000, &limits)
        .await
        .unwrap();
    let of = |client: &ClientId| {
        claimed
            .iter()
            .filter(|c| &c.notification.client_id == client)
            .count()
    };
    // 20 rows of the noisy client are due over 5 subscriptions; it gets its 6, no more.
    assert_eq!(of(&noisy), 6);
    assert_eq!(of(&polite), 1);
    assert!(claimed.iter().any(|c| c.subscription.id == calm.id));
    let seqs: Vec<i64> = claimed.iter().map(|c| c.notification.seq).collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(seqs, sorted, "claimed rows come in seq order");
}

/// Issue #23: the dashboard's "pause" needs a pause the client asks for, beside the one
/// repeated failures make.
async fn a_client_pauses_its_subscription_and_its_notifications_are_held_until_resumed(
    store: Arc<dyn Store>,
) {
    let a = store
        .create_client("a", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let sub = subscribe(&store, &a, 0.1, webhook()).await;
    event(&store, &a, 0.9).await;
    let scope = Scope::Client(a.clone());
    // Another client cannot pause it.
    let b = store
        .create_client("b", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    assert!(
        store
            .pause_subscription(&Scope::Client(b), &sub.id)
            .await
            .unwrap()
            .is_none()
    );
    let paused = store
        .pause_subscription(&scope, &sub.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(paused.state, SubscriptionState::Paused);
    assert_eq!(
        paused.paused_reason.as_deref(),
        Some(rubra_store::PAUSED_BY_CLIENT)
    );
    // The waiting notification and a new one are held, not claimed.
    event(&store, &a, 0.9).await;
    let later = now_ms() + 120_000;
    assert!(
        store
            .claim_notifications("me", later, 60_000, &ClaimLimits::total(10))
            .await
            .unwrap()
            .is_empty()
    );
    let states: Vec<_> = store
        .notifications_after(&a, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.state)
        .collect();
    assert_eq!(states, ["held"; 2]);
    // Pausing again changes nothing; resuming delivers both.
    let again = store
        .pause_subscription(&scope, &sub.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.state, SubscriptionState::Paused);
    store
        .resume_subscription(&scope, &sub.id)
        .await
        .unwrap()
        .unwrap();
    let back = store
        .claim_notifications("me", now_ms() + 1, 60_000, &ClaimLimits::total(10))
        .await
        .unwrap();
    assert_eq!(back.len(), 2);
}
