//! Retention: a sweep deletes only rows older than their cutoff and in a final state, in
//! batches; the sweeper's lease is held by one owner until it expires or is released.

use rubra_store::{
    Baseline, ChangeOp, Channel, ClaimRequest, ClientId, DeliveryAttempt, JobSpec, LogPage,
    NewChange, NewEvent, NewJob, NewSubscription, NewWatch, PollOutcome, Retained, Scope, Store,
    SweepPlan, WatchSpec, now_ms, sweep,
};
use std::sync::Arc;
use std::time::Duration;

crate::both_backends!(
    the_sweeper_deletes_only_what_is_old,
    the_sweep_lease_is_held_by_one_owner_until_it_expires,
);

fn attempt(client: &ClientId, sub: &rubra_store::Subscription, at: i64) -> DeliveryAttempt {
    DeliveryAttempt {
        id: 0,
        notification_seq: 1,
        subscription_id: sub.id.clone(),
        client_id: client.clone(),
        attempt: 1,
        at,
        outcome: "delivered".into(),
        status_code: Some(200),
        latency_ms: 1,
        error: None,
    }
}

async fn submit(store: &Arc<dyn Store>, client: &ClientId) -> rubra_store::JobId {
    store
        .submit_job(&NewJob {
            client_id: client.clone(),
            spec: JobSpec {
                source: "in.csv".into(),
                step: 1,
                delimiter: b',',
                header: false,
                skip_invalid: false,
            },
            max_attempts: 3,
            limit: 1000,
        })
        .await
        .unwrap()
        .id
}

async fn event(store: &Arc<dyn Store>, client: &ClientId) {
    store
        .insert_event(&NewEvent {
            client_id: client.clone(),
            image_id: None,
            red: 0.9,
            ts: now_ms(),
        })
        .await
        .unwrap();
}

/// Counts of (delivery log, notifications, watch changes, jobs) of `client`.
async fn counts(
    store: &Arc<dyn Store>,
    client: &ClientId,
    watch: &rubra_store::WatchId,
) -> (usize, usize, usize, usize) {
    let scope = Scope::Client(client.clone());
    let log = store
        .list_delivery_attempts(
            &scope,
            &LogPage {
                subscription: None,
                before_id: None,
                limit: 1000,
            },
        )
        .await
        .unwrap()
        .len();
    let notifications = store
        .notifications_after(client, 0, 1000)
        .await
        .unwrap()
        .len();
    let changes = store.watch_changes(watch, 0, 1000).await.unwrap().len();
    let jobs = store
        .list_jobs(
            &scope,
            &rubra_store::JobPage {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .len();
    (log, notifications, changes, jobs)
}

async fn the_sweeper_deletes_only_what_is_old(store: Arc<dyn Store>) {
    let a = store
        .create_client("a", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let webhook = store
        .create_subscription(
            &NewSubscription {
                client_id: a.clone(),
                threshold: Some(0.5),
                types: Vec::new(),
                channel: Channel::Webhook {
                    url: "http://127.0.0.1:9/hook".into(),
                },
                secret: Some("whsec_x".into()),
                limit: 1000,
            },
            &rubra_store::Actor::system(),
        )
        .await
        .unwrap();
    let stream = store
        .create_subscription(
            &NewSubscription {
                client_id: a.clone(),
                threshold: Some(0.5),
                types: Vec::new(),
                channel: Channel::Stream,
                secret: None,
                limit: 1000,
            },
            &rubra_store::Actor::system(),
        )
        .await
        .unwrap();
    let watch = store
        .create_watch(
            &NewWatch {
                client_id: a.clone(),
                spec: WatchSpec {
                    url: "http://src.test/1".into(),
                    interval_ms: 1000,
                    pointer: None,
                    key: None,
                    headers: Vec::new(),
                    subscription: None,
                },
                limit: 100,
            },
            &rubra_store::Actor::system(),
        )
        .await
        .unwrap();
    let claimed = store
        .claim_watches("p1", Duration::from_secs(60), 10)
        .await
        .unwrap();
    let lease = claimed[0].lease.clone();
    let poll = |at: i64, n: usize| PollOutcome::Document {
        at,
        baseline: Baseline {
            doc: Some(format!("{{\"n\":{n}}}")),
            etag: None,
            last_modified: None,
        },
        changes: (0..n)
            .map(|i| NewChange {
                path: format!("/x{i}"),
                op: ChangeOp::Add,
                old: None,
                new: Some("1".into()),
            })
            .collect(),
    };

    // Old: an event makes one webhook notification (pending, stays) and one stream one
    // (final); a queued job is canceled (final), another is claimed (running, stays), a
    // third stays queued; 3 old watch changes and 5 old delivery log rows.
    event(&store, &a).await;
    let canceled = submit(&store, &a).await;
    store
        .cancel_job(&Scope::All, &canceled)
        .await
        .unwrap()
        .unwrap();
    submit(&store, &a).await;
    let running = store
        .claim_job(&ClaimRequest {
            owner: "w".into(),
            lease: Duration::from_secs(60),
            per_client_limit: 10,
        })
        .await
        .unwrap()
        .unwrap();
    submit(&store, &a).await;
    let old = now_ms() - 5_000;
    store.record_poll(&lease, &poll(old, 3)).await.unwrap();
    let rows: Vec<_> = (0..5).map(|i| attempt(&a, &webhook, old + i)).collect();
    store.insert_delivery_attempts(&rows).await.unwrap();
    message(&store, &a, "old").await;

    tokio::time::sleep(Duration::from_millis(20)).await;
    // An idempotency key claimed (and answered) before the cutoff, one after.
    let day = 86_400_000;
    let old_key = store
        .claim_idempotency_key(a.as_str(), "old", "h", now_ms() - 5_000, day, day)
        .await
        .unwrap();
    assert_eq!(old_key, rubra_store::Claim::New);
    let cutoff = now_ms();
    tokio::time::sleep(Duration::from_millis(20)).await;
    message(&store, &a, "recent").await;

    // Recent: of each kind one more, on the other side of the cutoff.
    event(&store, &a).await;
    let recent = submit(&store, &a).await;
    store
        .cancel_job(&Scope::All, &recent)
        .await
        .unwrap()
        .unwrap();
    store.record_poll(&lease, &poll(now_ms(), 2)).await.unwrap();
    store
        .insert_delivery_attempts(&[attempt(&a, &webhook, now_ms())])
        .await
        .unwrap();

    assert_eq!(counts(&store, &a, &watch.id).await, (6, 4, 5, 4));
    let plan = SweepPlan {
        cutoffs: Retained::ALL.iter().map(|&r| (r, cutoff)).collect(),
        batch: 2,
        pause: Duration::from_millis(1),
    };
    // Every audited change of this test (the client, subscriptions, the watch) was made
    // before the cutoff.
    let all_audit = rubra_store::AuditPage {
        client: None,
        before: None,
        limit: 1000,
    };
    let audit_rows = store.list_audit(&all_audit).await.unwrap().len() as u64;
    assert!(audit_rows >= 3, "{audit_rows}");
    store
        .claim_idempotency_key(a.as_str(), "new", "h", now_ms(), day, day)
        .await
        .unwrap();
    let deleted = sweep(store.as_ref(), &plan, || true).await.unwrap();
    assert_eq!(
        deleted,
        vec![
            (Retained::DeliveryAttempts, 5),
            (Retained::Notifications, 1),
            (Retained::WatchChanges, 3),
            (Retained::Jobs, 1),
            (Retained::Messages, 1),
            (Retained::AuditLog, audit_rows),
            (Retained::IdempotencyKeys, 1),
        ]
    );
    assert!(store.list_audit(&all_audit).await.unwrap().is_empty());
    // The recent key is still claimed: the same request with it is in progress.
    assert_eq!(
        store
            .claim_idempotency_key(a.as_str(), "new", "h", now_ms(), day, day)
            .await
            .unwrap(),
        rubra_store::Claim::InProgress
    );
    // Kept: 1 recent log row; the old pending webhook notification and both recent ones;
    // the 2 recent changes; the running job, the queued one and the recent canceled one.
    assert_eq!(counts(&store, &a, &watch.id).await, (1, 3, 2, 3));
    let old_stream = store
        .notifications_after(&a, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.subscription_id == stream.id)
        .count();
    assert_eq!(old_stream, 1, "only the recent stream notification stays");
    assert!(
        store
            .get_job(&Scope::All, &running.lease.job_id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get_job(&Scope::All, &canceled)
            .await
            .unwrap()
            .is_none()
    );
    // Nothing is left to delete; a kind without a cutoff is kept.
    let again = sweep(store.as_ref(), &plan, || true).await.unwrap();
    assert!(again.iter().all(|&(_, n)| n == 0), "{again:?}");
    let none = SweepPlan {
        cutoffs: Vec::new(),
        ..plan
    };
    assert!(
        sweep(store.as_ref(), &none, || true)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn the_sweep_lease_is_held_by_one_owner_until_it_expires(store: Arc<dyn Store>) {
    let ttl = Duration::from_secs(60);
    let now = now_ms();
    assert!(store.take_sweep_lease("p1", now, ttl).await.unwrap());
    assert!(!store.take_sweep_lease("p2", now + 1, ttl).await.unwrap());
    // The holder renews it.
    assert!(store.take_sweep_lease("p1", now + 2, ttl).await.unwrap());
    // An expired lease goes to whoever asks.
    assert!(
        store
            .take_sweep_lease("p2", now + 120_000, ttl)
            .await
            .unwrap()
    );
    assert!(
        !store
            .take_sweep_lease("p1", now + 120_001, ttl)
            .await
            .unwrap()
    );
    // Only the holder releases it; then it is free at once.
    store.release_sweep_lease("p1").await.unwrap();
    assert!(
        !store
            .take_sweep_lease("p1", now + 120_002, ttl)
            .await
            .unwrap()
    );
    store.release_sweep_lease("p2").await.unwrap();
    assert!(
        store
            .take_sweep_lease("p1", now + 120_003, ttl)
            .await
            .unwrap()
    );
}

/// Records a message of `client` with `id`, received now.
async fn message(store: &Arc<dyn Store>, client: &ClientId, id: &str) {
    let fresh = store
        .insert_messages(&[rubra_store::NewMessage {
            client_id: client.clone(),
            id: rubra_store::MessageId::parse(id).unwrap(),
            kind: rubra_store::MessageType::parse("t").unwrap(),
            text: None,
            payload: None,
            receiver: None,
            received_at: now_ms(),
        }])
        .await
        .unwrap();
    assert_eq!(fresh, [true]);
}
