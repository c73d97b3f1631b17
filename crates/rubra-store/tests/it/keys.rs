//! The API key lifecycle: many named keys per client, listing without the secret, revoking,
//! the last key kept on request, `last_used_at` written at most once a minute, and disabled
//! clients (seen with their keys, and left out of job, watch and delivery claims).

use rubra_store::{
    ApiKey, Channel, ClaimLimits, ClaimRequest, ClientId, JobSpec, KeyId, LAST_USED_EVERY_MS,
    NewEvent, NewJob, NewKey, NewSubscription, NewWatch, Principal, Revoked, Scope, Store,
    WatchSpec, now_ms,
};
use std::sync::Arc;
use std::time::Duration;

crate::both_backends!(
    keys_are_listed_without_their_secret_and_a_revoked_key_stops_resolving,
    a_client_cannot_revoke_another_clients_key,
    the_last_key_is_kept_when_asked_even_when_two_revocations_race,
    last_used_is_written_at_most_once_a_minute,
    a_disabled_client_is_seen_with_its_keys_until_enabled,
    a_disabled_clients_jobs_watches_and_deliveries_are_not_claimed_until_enabled,
    admin_keys_are_listed_and_revoked_but_never_the_last,
);

async fn admin_keys_are_listed_and_revoked_but_never_the_last(store: Arc<dyn Store>) {
    let actor = rubra_store::Actor::system();
    let first = ApiKey::generate();
    let second = ApiKey::generate();
    let c = store.create_client("acme", &actor).await.unwrap().id;
    let (client_key, client_key_id) = key_for(&store, &c, "ci").await;
    // Keys made in the same millisecond list in id order, which is random: the test goes by
    // the ids insert_key answered, not by list position.
    let mut ids = Vec::new();
    for key in [&first, &second] {
        let info = store
            .insert_key(&NewKey::new(key, Principal::Admin, "ops"), &actor)
            .await
            .unwrap();
        ids.push(info.id);
    }
    let admins = store.list_admin_keys().await.unwrap();
    assert_eq!(admins.len(), 2, "{admins:?}");
    assert!(!format!("{admins:?}").contains(first.reveal()));
    // A client's key is not an admin key.
    assert_eq!(
        store
            .revoke_admin_key(&client_key_id, &actor)
            .await
            .unwrap(),
        Revoked::NotFound
    );
    assert!(
        store
            .key_holder(&client_key.hash())
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.revoke_admin_key(&ids[0], &actor).await.unwrap(),
        Revoked::Revoked
    );
    assert!(store.key_holder(&first.hash()).await.unwrap().is_none());
    assert_eq!(
        store.revoke_admin_key(&ids[1], &actor).await.unwrap(),
        Revoked::LastKey,
        "an installation keeps one admin key"
    );
    assert!(store.key_holder(&second.hash()).await.unwrap().is_some());
    let log = store
        .list_audit(&rubra_store::AuditPage {
            client: None,
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(log[0].action, "key.revoke");
    assert_eq!(log[0].target, ids[0].as_str());
    assert_eq!(log[0].client_id, None);
}

async fn key_for(store: &Arc<dyn Store>, client: &ClientId, name: &str) -> (ApiKey, KeyId) {
    let key = ApiKey::generate();
    let info = store
        .insert_key(
            &NewKey::new(&key, Principal::Client(client.clone()), name),
            &rubra_store::Actor::system(),
        )
        .await
        .unwrap();
    (key, info.id)
}

async fn keys_are_listed_without_their_secret_and_a_revoked_key_stops_resolving(
    store: Arc<dyn Store>,
) {
    let c = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let (first, first_id) = key_for(&store, &c, "ci").await;
    let second = ApiKey::generate();
    let expires = now_ms() + 3_600_000;
    let mut new = NewKey::new(&second, Principal::Client(c.clone()), "laptop");
    new.expires_at = Some(expires);
    let second_info = store
        .insert_key(&new, &rubra_store::Actor::system())
        .await
        .unwrap();
    assert!(second_info.id.as_str().starts_with("key_"));

    let list = store.list_keys(&c).await.unwrap();
    assert_eq!(list.len(), 2);
    let shown = serde_json::to_string(&list).unwrap();
    for key in [&first, &second] {
        assert!(!shown.contains(key.reveal()), "the token is never listed");
        assert!(!shown.contains(key.hash().as_str()), "nor its hash");
        assert!(shown.contains(key.prefix()), "its prefix is");
    }
    let laptop = list.iter().find(|k| k.name == "laptop").unwrap();
    assert_eq!(laptop, &second_info);
    assert_eq!(laptop.expires_at, Some(expires));
    assert_eq!(laptop.last_used_at, None);

    let holder = store.key_holder(&second.hash()).await.unwrap().unwrap();
    assert_eq!(holder.key_id, second_info.id);
    assert_eq!(holder.expires_at, Some(expires));
    assert!(!holder.expired(now_ms()));
    assert!(holder.expired(expires));

    assert_eq!(
        store
            .revoke_key(&c, &first_id, true, &rubra_store::Actor::system())
            .await
            .unwrap(),
        Revoked::Revoked
    );
    assert_eq!(store.key_holder(&first.hash()).await.unwrap(), None);
    assert!(store.key_holder(&second.hash()).await.unwrap().is_some());
    assert_eq!(
        store
            .revoke_key(&c, &first_id, false, &rubra_store::Actor::system())
            .await
            .unwrap(),
        Revoked::NotFound,
        "a key is revoked once"
    );
    let ids: Vec<KeyId> = store
        .list_keys(&c)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, [second_info.id]);
}

async fn a_client_cannot_revoke_another_clients_key(store: Arc<dyn Store>) {
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
    let (a_key, a_id) = key_for(&store, &a, "a1").await;
    key_for(&store, &a, "a2").await;
    key_for(&store, &b, "b1").await;
    assert_eq!(
        store
            .revoke_key(&b, &a_id, false, &rubra_store::Actor::system())
            .await
            .unwrap(),
        Revoked::NotFound
    );
    assert!(store.key_holder(&a_key.hash()).await.unwrap().is_some());
    assert_eq!(store.list_keys(&b).await.unwrap().len(), 1);
    assert_eq!(
        store
            .revoke_key(
                &ClientId::generate(),
                &a_id,
                false,
                &rubra_store::Actor::system()
            )
            .await
            .unwrap(),
        Revoked::NotFound
    );
}

async fn the_last_key_is_kept_when_asked_even_when_two_revocations_race(store: Arc<dyn Store>) {
    for round in 0..10 {
        let c = store
            .create_client(&format!("race{round}"), &rubra_store::Actor::system())
            .await
            .unwrap()
            .id;
        let (_, one) = key_for(&store, &c, "one").await;
        let (_, two) = key_for(&store, &c, "two").await;
        let (s1, s2) = (store.clone(), store.clone());
        let (c1, c2) = (c.clone(), c.clone());
        let (r1, r2) = tokio::join!(
            tokio::spawn(async move {
                s1.revoke_key(&c1, &one, true, &rubra_store::Actor::system())
                    .await
                    .unwrap()
            }),
            tokio::spawn(async move {
                s2.revoke_key(&c2, &two, true, &rubra_store::Actor::system())
                    .await
                    .unwrap()
            }),
        );
        let mut got = [r1.unwrap(), r2.unwrap()];
        got.sort_by_key(|r| format!("{r:?}"));
        assert_eq!(got, [Revoked::LastKey, Revoked::Revoked], "round {round}");
        let left = store.list_keys(&c).await.unwrap();
        assert_eq!(left.len(), 1, "round {round}");
        // Without the guard (an admin), the last key goes too.
        assert_eq!(
            store
                .revoke_key(&c, &left[0].id, false, &rubra_store::Actor::system())
                .await
                .unwrap(),
            Revoked::Revoked
        );
        assert!(store.list_keys(&c).await.unwrap().is_empty());
    }
}

async fn last_used_is_written_at_most_once_a_minute(store: Arc<dyn Store>) {
    let c = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let (key, _) = key_for(&store, &c, "k").await;
    let t = now_ms();
    assert!(store.touch_key(&key.hash(), t).await.unwrap());
    assert!(!store.touch_key(&key.hash(), t + 1_000).await.unwrap());
    assert!(
        !store
            .touch_key(&key.hash(), t + LAST_USED_EVERY_MS - 1)
            .await
            .unwrap()
    );
    let holder = store.key_holder(&key.hash()).await.unwrap().unwrap();
    assert_eq!(holder.last_used_at, Some(t));
    assert!(
        store
            .touch_key(&key.hash(), t + LAST_USED_EVERY_MS)
            .await
            .unwrap()
    );
    let listed = store.list_keys(&c).await.unwrap();
    assert_eq!(listed[0].last_used_at, Some(t + LAST_USED_EVERY_MS));
}

async fn a_disabled_client_is_seen_with_its_keys_until_enabled(store: Arc<dyn Store>) {
    let c = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let other = store
        .create_client("other", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let (key, _) = key_for(&store, &c, "k").await;
    let (other_key, _) = key_for(&store, &other, "k").await;
    assert!(
        !store
            .key_holder(&key.hash())
            .await
            .unwrap()
            .unwrap()
            .client_disabled
    );

    let off = store
        .set_client_disabled(&c, true, &rubra_store::Actor::system())
        .await
        .unwrap()
        .unwrap();
    assert!(off.disabled);
    let since = off.disabled_at.unwrap();
    let holder = store.key_holder(&key.hash()).await.unwrap().unwrap();
    assert!(holder.client_disabled);
    assert!(
        !store
            .key_holder(&other_key.hash())
            .await
            .unwrap()
            .unwrap()
            .client_disabled
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = store
        .set_client_disabled(&c, true, &rubra_store::Actor::system())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.disabled_at,
        Some(since),
        "disabled since the first time"
    );
    let read = store.get_client(&Scope::All, &c).await.unwrap().unwrap();
    assert_eq!(read, again);

    let on = store
        .set_client_disabled(&c, false, &rubra_store::Actor::system())
        .await
        .unwrap()
        .unwrap();
    assert!(!on.disabled);
    assert_eq!(on.disabled_at, None);
    assert!(
        !store
            .key_holder(&key.hash())
            .await
            .unwrap()
            .unwrap()
            .client_disabled
    );
    assert_eq!(
        store
            .set_client_disabled(&ClientId::generate(), true, &rubra_store::Actor::system())
            .await
            .unwrap(),
        None
    );
}

async fn a_disabled_clients_jobs_watches_and_deliveries_are_not_claimed_until_enabled(
    store: Arc<dyn Store>,
) {
    let off = store
        .create_client("off", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let on = store
        .create_client("on", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    for c in [&off, &on] {
        store
            .submit_job(&NewJob {
                client_id: c.clone(),
                spec: JobSpec {
                    source: "a.csv".into(),
                    step: 10,
                    delimiter: b',',
                    header: true,
                    skip_invalid: false,
                },
                max_attempts: 3,
                limit: 100,
            })
            .await
            .unwrap();
        store
            .create_watch(
                &NewWatch {
                    client_id: c.clone(),
                    spec: WatchSpec {
                        url: "http://src.test/x".into(),
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
        store
            .create_subscription(
                &NewSubscription {
                    client_id: c.clone(),
                    threshold: Some(0.1),
                    types: Vec::new(),
                    channel: Channel::Webhook {
                        url: "http://127.0.0.1:9/hook".into(),
                    },
                    secret: Some("whsec_x".into()),
                    limit: 100,
                },
                &rubra_store::Actor::system(),
            )
            .await
            .unwrap();
        store
            .insert_event(&NewEvent {
                client_id: c.clone(),
                image_id: None,
                red: 0.9,
                ts: now_ms(),
            })
            .await
            .unwrap();
    }
    // One watch of the client to be disabled is already held: its renewal must drop it.
    let held = store
        .claim_watches("early", Duration::from_secs(30), 1)
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    let held_client = held[0].watch.client_id.clone();
    let (off, on) = if held_client == off {
        (off, on)
    } else {
        (on, off)
    };
    store
        .set_client_disabled(&off, true, &rubra_store::Actor::system())
        .await
        .unwrap();

    let lease = Duration::from_secs(30);
    let req = |owner: &str| ClaimRequest {
        owner: owner.to_owned(),
        lease,
        per_client_limit: 10,
    };
    let job = store.claim_job(&req("w")).await.unwrap().unwrap();
    assert_eq!(job.client_id, on, "only the enabled client's job");
    assert!(store.claim_job(&req("w")).await.unwrap().is_none());

    let watches = store.claim_watches("w", lease, 10).await.unwrap();
    assert_eq!(watches.len(), 1);
    assert_eq!(watches[0].watch.client_id, on);
    let renewed = store.renew_watches("early", lease).await.unwrap();
    assert!(renewed.is_empty(), "the disabled client's watch is let go");

    let now = now_ms() + 1;
    let notes = store
        .claim_notifications("w", now, 30_000, &ClaimLimits::total(10))
        .await
        .unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].subscription.client_id, on);

    // Enabled again: everything that waited is claimed.
    store
        .set_client_disabled(&off, false, &rubra_store::Actor::system())
        .await
        .unwrap();
    let job = store.claim_job(&req("w")).await.unwrap().unwrap();
    assert_eq!(job.client_id, off);
    let notes = store
        .claim_notifications("w", now, 30_000, &ClaimLimits::total(10))
        .await
        .unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].subscription.client_id, off);
    // The watch that was let go is claimed afresh, by any process.
    assert!(
        store
            .renew_watches("early", lease)
            .await
            .unwrap()
            .is_empty()
    );
    let watches = store.claim_watches("later", lease, 10).await.unwrap();
    assert_eq!(watches.len(), 1);
    assert_eq!(watches[0].watch.client_id, off);
}
