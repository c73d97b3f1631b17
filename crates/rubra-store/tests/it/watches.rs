//! Watches: scoping and the per-client limit, leases (claim, renew, expiry, release), the
//! fence on recorded polls, per-watch change numbering, and claims racing each other.

use rubra_store::{
    Baseline, ChangeOp, ClientId, NewChange, NewWatch, PollOutcome, Scope, Store, StoreError,
    WatchSpec, now_ms,
};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

crate::both_backends!(
    create_get_list_delete_and_scope,
    per_client_limit_is_enforced,
    claimed_watches_are_held_until_their_lease_expires,
    record_poll_numbers_changes_and_is_fenced_by_the_lease,
    failures_are_counted_and_cleared_by_a_success,
    released_watches_are_claimable_at_once,
    no_watch_is_claimed_twice_under_concurrency,
    deleting_a_watch_while_it_is_polled_never_fails,
);

fn spec(url: &str) -> WatchSpec {
    WatchSpec {
        url: url.to_owned(),
        interval_ms: 1000,
        pointer: Some("/games".into()),
        key: None,
        headers: vec![("x-token".into(), "s3cret".into())],
        subscription: None,
    }
}

async fn client(store: &Arc<dyn Store>, name: &str) -> ClientId {
    store
        .create_client(name, &rubra_store::Actor::system())
        .await
        .unwrap()
        .id
}

async fn create(store: &Arc<dyn Store>, client: &ClientId, url: &str) -> rubra_store::Watch {
    store
        .create_watch(
            &NewWatch {
                client_id: client.clone(),
                spec: spec(url),
                limit: 100,
            },
            &rubra_store::Actor::system(),
        )
        .await
        .unwrap()
}

fn change(path: &str, old: &str, new: &str) -> NewChange {
    NewChange {
        path: path.to_owned(),
        op: ChangeOp::Replace,
        old: Some(old.to_owned()),
        new: Some(new.to_owned()),
    }
}

fn document(doc: &str, changes: Vec<NewChange>) -> PollOutcome {
    PollOutcome::Document {
        at: now_ms(),
        baseline: Baseline {
            doc: Some(doc.to_owned()),
            etag: Some(format!("\"{}\"", doc.len())),
            last_modified: None,
        },
        changes,
    }
}

async fn create_get_list_delete_and_scope(store: Arc<dyn Store>) {
    let (a, b) = (client(&store, "a").await, client(&store, "b").await);
    let w = create(&store, &a, "http://src.test/1").await;
    assert!(w.id.as_str().starts_with("wat_"));
    assert_eq!(w.spec, spec("http://src.test/1"));
    assert_eq!((w.last_seq, w.failures, w.baseline_at), (0, 0, None));
    let other = create(&store, &b, "http://src.test/2").await;

    let mine = Scope::Client(a.clone());
    assert_eq!(
        store.get_watch(&mine, &w.id).await.unwrap(),
        Some(w.clone())
    );
    assert_eq!(store.get_watch(&mine, &other.id).await.unwrap(), None);
    let listed: Vec<_> = store.list_watches(&mine).await.unwrap();
    assert_eq!(listed, vec![w.clone()]);
    assert_eq!(store.list_watches(&Scope::All).await.unwrap().len(), 2);

    assert!(
        !store
            .delete_watch(&mine, &other.id, &rubra_store::Actor::system())
            .await
            .unwrap()
    );
    assert!(
        store
            .delete_watch(&mine, &w.id, &rubra_store::Actor::system())
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_watch(&mine, &w.id, &rubra_store::Actor::system())
            .await
            .unwrap()
    );
    assert_eq!(store.get_watch(&Scope::All, &w.id).await.unwrap(), None);
    assert!(store.watch_changes(&w.id, 0, 10).await.unwrap().is_empty());
}

async fn per_client_limit_is_enforced(store: Arc<dyn Store>) {
    let (a, b) = (client(&store, "a").await, client(&store, "b").await);
    let new = |c: &ClientId| NewWatch {
        client_id: c.clone(),
        spec: spec("http://src.test/x"),
        limit: 2,
    };
    store
        .create_watch(&new(&a), &rubra_store::Actor::system())
        .await
        .unwrap();
    store
        .create_watch(&new(&a), &rubra_store::Actor::system())
        .await
        .unwrap();
    let err = store
        .create_watch(&new(&a), &rubra_store::Actor::system())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::QuotaExceeded(_)), "{err}");
    // Another client's count is its own.
    store
        .create_watch(&new(&b), &rubra_store::Actor::system())
        .await
        .unwrap();
}

async fn claimed_watches_are_held_until_their_lease_expires(store: Arc<dyn Store>) {
    let a = client(&store, "a").await;
    let w1 = create(&store, &a, "http://src.test/1").await;
    let w2 = create(&store, &a, "http://src.test/2").await;
    // Long enough that a loaded CI box gets through each step within it (at 400 ms, one did
    // not: `polled_by` had already lapsed when read back).
    let lease = Duration::from_secs(3);

    let got = store.claim_watches("p1", lease, 1).await.unwrap();
    assert_eq!(got.len(), 1, "max is respected");
    let rest = store.claim_watches("p1", lease, 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    let ids: HashSet<_> = [&got[0], &rest[0]]
        .iter()
        .map(|c| c.watch.id.clone())
        .collect();
    assert_eq!(ids, HashSet::from([w1.id.clone(), w2.id.clone()]));
    assert_eq!(got[0].baseline, Baseline::default());
    let held = store.get_watch(&Scope::All, &w1.id).await.unwrap().unwrap();
    assert_eq!(held.polled_by.as_deref(), Some("p1"));

    // Held: nobody else gets them, and renewing keeps them.
    assert!(
        store
            .claim_watches("p2", lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(store.renew_watches("p1", lease).await.unwrap().len(), 2);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        store
            .claim_watches("p2", lease, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // p1 stops renewing: after the lease, p2 takes both over with a new generation.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let taken = store.claim_watches("p2", lease, 10).await.unwrap();
    assert_eq!(taken.len(), 2);
    assert!(taken.iter().all(|c| c.lease.generation == 2), "{taken:?}");
    assert!(store.renew_watches("p1", lease).await.unwrap().is_empty());
}

async fn record_poll_numbers_changes_and_is_fenced_by_the_lease(store: Arc<dyn Store>) {
    let a = client(&store, "a").await;
    let w = create(&store, &a, "http://src.test/1").await;
    // Long enough that a loaded CI box records the polls below within it.
    let lease = Duration::from_secs(2);
    let first = store
        .claim_watches("p1", lease, 10)
        .await
        .unwrap()
        .remove(0);

    // The first document is the baseline.
    let seq = store
        .record_poll(&first.lease, &document(r#"{"v":1}"#, vec![]))
        .await
        .unwrap();
    assert_eq!(seq, Some(0));
    let got = store.get_watch(&Scope::All, &w.id).await.unwrap().unwrap();
    assert!(got.baseline_at.is_some() && got.last_ok_at.is_some());

    let two = vec![change("/v", "1", "2"), change("/w", "\"a\"", "\"b\"")];
    let seq = store
        .record_poll(&first.lease, &document(r#"{"v":2,"w":"b"}"#, two))
        .await
        .unwrap();
    assert_eq!(seq, Some(2));
    let seq = store
        .record_poll(&first.lease, &PollOutcome::Unchanged { at: now_ms() })
        .await
        .unwrap();
    assert_eq!(seq, Some(2));

    // p1's lease runs out; p2 takes over with p1's baseline and numbering.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let second = store
        .claim_watches("p2", lease, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(second.baseline.doc.as_deref(), Some(r#"{"v":2,"w":"b"}"#));
    assert_eq!(second.baseline.etag.as_deref(), Some("\"15\""));
    // The old holder is fenced off: nothing it records lands.
    let late = store
        .record_poll(
            &first.lease,
            &document(r#"{"v":3}"#, vec![change("/v", "2", "3")]),
        )
        .await
        .unwrap();
    assert_eq!(late, None);
    let seq = store
        .record_poll(
            &second.lease,
            &document(r#"{"v":4}"#, vec![change("/v", "2", "4")]),
        )
        .await
        .unwrap();
    assert_eq!(seq, Some(3));

    let all = store.watch_changes(&w.id, 0, 100).await.unwrap();
    let seen: Vec<_> = all
        .iter()
        .map(|c| (c.seq, c.path.as_str(), c.new.as_deref()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, "/v", Some("2")),
            (2, "/w", Some("\"b\"")),
            (3, "/v", Some("4"))
        ]
    );
    assert_eq!(all[0].op, ChangeOp::Replace);
    assert_eq!(all[1].old.as_deref(), Some("\"a\""));
    let after = store.watch_changes(&w.id, 1, 1).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].seq, 2);
    let got = store.get_watch(&Scope::All, &w.id).await.unwrap().unwrap();
    assert_eq!(got.last_seq, 3);
}

async fn failures_are_counted_and_cleared_by_a_success(store: Arc<dyn Store>) {
    let a = client(&store, "a").await;
    let w = create(&store, &a, "http://src.test/1").await;
    let c = store
        .claim_watches("p1", Duration::from_secs(10), 10)
        .await
        .unwrap()
        .remove(0);
    for _ in 0..3 {
        let failed = PollOutcome::Failed {
            at: now_ms(),
            error: "the remote answered HTTP 503".into(),
        };
        store.record_poll(&c.lease, &failed).await.unwrap().unwrap();
    }
    let got = store.get_watch(&Scope::All, &w.id).await.unwrap().unwrap();
    assert_eq!(got.failures, 3);
    assert_eq!(
        got.last_error.as_deref(),
        Some("the remote answered HTTP 503")
    );
    assert!(got.last_error_at.is_some() && got.last_ok_at.is_none());
    store
        .record_poll(&c.lease, &document("[]", vec![]))
        .await
        .unwrap()
        .unwrap();
    let got = store.get_watch(&Scope::All, &w.id).await.unwrap().unwrap();
    assert_eq!((got.failures, got.last_error), (0, None));
    assert!(
        got.last_error_at.is_some(),
        "the last failure's time stays visible"
    );
}

async fn released_watches_are_claimable_at_once(store: Arc<dyn Store>) {
    let a = client(&store, "a").await;
    create(&store, &a, "http://src.test/1").await;
    let lease = Duration::from_secs(30);
    assert_eq!(store.claim_watches("p1", lease, 10).await.unwrap().len(), 1);
    assert!(
        store
            .claim_watches("p2", lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store.release_watches("p1").await.unwrap();
    assert_eq!(store.claim_watches("p2", lease, 10).await.unwrap().len(), 1);
}

async fn no_watch_is_claimed_twice_under_concurrency(store: Arc<dyn Store>) {
    let a = client(&store, "a").await;
    let mut all = HashSet::new();
    for i in 0..40 {
        all.insert(create(&store, &a, &format!("http://src.test/{i}")).await.id);
    }
    let mut tasks = Vec::new();
    for p in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..10 {
                let claimed = store
                    .claim_watches(&format!("p{p}"), Duration::from_secs(30), 3)
                    .await
                    .unwrap();
                got.extend(claimed.into_iter().map(|c| c.watch.id));
            }
            got
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a watch was claimed twice");
    assert_eq!(unique, all);
}

/// A watch deleted while its poller records polls: the delete used to read, then write, in
/// one transaction, and SQLite refused the write ("database is locked") when the poller had
/// written in between.
async fn deleting_a_watch_while_it_is_polled_never_fails(store: Arc<dyn Store>) {
    let a = client(&store, "a").await;
    for round in 0..10 {
        let w = create(&store, &a, &format!("http://src.test/{round}")).await;
        let claimed = store
            .claim_watches("p1", Duration::from_secs(30), 10)
            .await
            .unwrap()
            .remove(0);
        let poller = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut n = 0;
                while store
                    .record_poll(
                        &claimed.lease,
                        &document(&format!("[{n}]"), vec![change("/0", "0", "1")]),
                    )
                    .await
                    .unwrap()
                    .is_some()
                {
                    n += 1;
                }
                n
            })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(
            store
                .delete_watch(
                    &Scope::Client(a.clone()),
                    &w.id,
                    &rubra_store::Actor::system()
                )
                .await
                .unwrap()
        );
        poller.await.unwrap();
        assert!(store.watch_changes(&w.id, 0, 10).await.unwrap().is_empty());
    }
}
