//! Clients, keys, the first admin key, and scope isolation.

use rubra_store::{
    ApiKey, ClientId, NewKey, Principal, QuotaOverrides, QuotaPatch, RateLimitOverride,
    RateLimitPatch, Scope, Store, StoreError,
};
use std::num::NonZeroU32;
use std::sync::Arc;

crate::both_backends!(
    create_and_list_clients,
    duplicate_client_name_is_a_conflict,
    keys_resolve_to_their_principal,
    admin_key_is_bootstrapped_exactly_once,
    a_client_scope_sees_only_itself,
    migrations_are_idempotent,
    pool_usage_counts_open_and_idle_connections,
    a_client_rate_limit_is_stored_and_read_with_its_key,
    quota_overrides_merge_and_concurrent_changes_all_win,
);

async fn create_and_list_clients(store: Arc<dyn Store>) {
    let a = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap();
    let b = store
        .create_client("globex", &rubra_store::Actor::system())
        .await
        .unwrap();
    assert!(a.id.as_str().starts_with("cl_"));
    let all = store.list_clients(&Scope::All).await.unwrap();
    // Oldest first; clients created in the same millisecond are ordered by id.
    let mut expected = [a.clone(), b.clone()];
    expected.sort_by(|x, y| (x.created_at, x.id.as_str()).cmp(&(y.created_at, y.id.as_str())));
    assert_eq!(all, expected);
    assert_eq!(store.get_client(&Scope::All, &b.id).await.unwrap(), Some(b));
}

async fn duplicate_client_name_is_a_conflict(store: Arc<dyn Store>) {
    store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap();
    let err = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

async fn keys_resolve_to_their_principal(store: Arc<dyn Store>) {
    let c = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap();
    let client_key = ApiKey::generate();
    let admin_key = ApiKey::generate();
    for (key, principal) in [
        (&client_key, Principal::Client(c.id.clone())),
        (&admin_key, Principal::Admin),
    ] {
        let new = NewKey::new(key, principal, "t");
        store
            .insert_key(&new, &rubra_store::Actor::system())
            .await
            .unwrap();
    }
    assert_eq!(
        store.principal_for_key(&client_key.hash()).await.unwrap(),
        Some(Principal::Client(c.id))
    );
    assert_eq!(
        store.principal_for_key(&admin_key.hash()).await.unwrap(),
        Some(Principal::Admin)
    );
    let unknown = ApiKey::generate();
    assert_eq!(
        store.principal_for_key(&unknown.hash()).await.unwrap(),
        None
    );
}

async fn admin_key_is_bootstrapped_exactly_once(store: Arc<dyn Store>) {
    // Several processes starting at once race for the bootstrap: exactly one wins.
    let keys: Vec<ApiKey> = (0..8).map(|_| ApiKey::generate()).collect();
    let mut tasks = Vec::new();
    for key in &keys {
        let store = Arc::clone(&store);
        let hash = key.hash();
        tasks.push(tokio::spawn(async move {
            store.bootstrap_admin_key(&hash).await
        }));
    }
    let mut winners = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        if t.await.unwrap().unwrap() {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    for (i, key) in keys.iter().enumerate() {
        let p = store.principal_for_key(&key.hash()).await.unwrap();
        assert_eq!(p.is_some(), i == winners[0]);
    }
}

async fn a_client_scope_sees_only_itself(store: Arc<dyn Store>) {
    let a = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap();
    let b = store
        .create_client("globex", &rubra_store::Actor::system())
        .await
        .unwrap();
    let scope_a = Scope::Client(a.id.clone());
    assert_eq!(store.get_client(&scope_a, &b.id).await.unwrap(), None);
    assert_eq!(
        store.get_client(&scope_a, &a.id).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(store.list_clients(&scope_a).await.unwrap(), vec![a]);
}

async fn migrations_are_idempotent(store: Arc<dyn Store>) {
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

async fn pool_usage_counts_open_and_idle_connections(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
    let usage = store.pool_usage();
    // SQLite's pool opens at most 8 connections, PostgreSQL's 16 (see `open`).
    let max = if store.backend() == "sqlite" { 8 } else { 16 };
    assert_eq!(usage.max, max, "{usage:?}");
    assert!(
        usage.open >= 1,
        "the ping's connection stays open: {usage:?}"
    );
    assert!(
        usage.idle <= usage.open && usage.open <= usage.max,
        "{usage:?}"
    );
    // Once the ping's connection is back in the pool, nothing holds one.
    for _ in 0..50 {
        let now = store.pool_usage();
        if now.idle == now.open {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("a connection stays in use: {:?}", store.pool_usage());
}

fn n(v: u32) -> Option<NonZeroU32> {
    NonZeroU32::new(v)
}

async fn a_client_rate_limit_is_stored_and_read_with_its_key(store: Arc<dyn Store>) {
    let c = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap();
    let other = store
        .create_client("globex", &rubra_store::Actor::system())
        .await
        .unwrap();
    assert_eq!(c.rate_limit, RateLimitOverride::default());
    let key = ApiKey::generate();
    store
        .insert_key(
            &NewKey::new(&key, Principal::Client(c.id.clone()), "t"),
            &rubra_store::Actor::system(),
        )
        .await
        .unwrap();

    let set = |rps, burst| RateLimitPatch { rps, burst };
    let changed = store
        .set_client_rate_limit(&c.id, &set(Some(n(5)), None), &rubra_store::Actor::system())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (changed.rate_limit.rps, changed.rate_limit.burst),
        (n(5), None)
    );
    // A part left out stays as it is.
    let changed = store
        .set_client_rate_limit(&c.id, &set(None, Some(n(9))), &rubra_store::Actor::system())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (changed.rate_limit.rps, changed.rate_limit.burst),
        (n(5), n(9))
    );
    let holder = store.key_holder(&key.hash()).await.unwrap().unwrap();
    assert_eq!(holder.principal, Principal::Client(c.id.clone()));
    assert_eq!(holder.rate_limit, changed.rate_limit);
    assert_eq!(
        store.get_client(&Scope::All, &c.id).await.unwrap(),
        Some(changed.clone())
    );
    let listed = store.list_clients(&Scope::All).await.unwrap();
    assert!(listed.contains(&changed), "{listed:?}");
    // The other client keeps the default.
    assert_eq!(
        store
            .get_client(&Scope::All, &other.id)
            .await
            .unwrap()
            .unwrap()
            .rate_limit,
        RateLimitOverride::default()
    );

    // Null returns a part to the default; the largest value round-trips.
    let changed = store
        .set_client_rate_limit(
            &c.id,
            &set(Some(None), Some(n(u32::MAX))),
            &rubra_store::Actor::system(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (changed.rate_limit.rps, changed.rate_limit.burst),
        (None, n(u32::MAX))
    );
    let holder = store.key_holder(&key.hash()).await.unwrap().unwrap();
    assert_eq!(holder.rate_limit, changed.rate_limit);

    let nobody = ClientId::generate();
    assert_eq!(
        store
            .set_client_rate_limit(
                &nobody,
                &set(Some(n(1)), None),
                &rubra_store::Actor::system()
            )
            .await
            .unwrap(),
        None
    );
    let admin = ApiKey::generate();
    store
        .insert_key(
            &NewKey::new(&admin, Principal::Admin, "t"),
            &rubra_store::Actor::system(),
        )
        .await
        .unwrap();
    let holder = store.key_holder(&admin.hash()).await.unwrap().unwrap();
    assert_eq!(
        (holder.principal, holder.rate_limit),
        (Principal::Admin, RateLimitOverride::default())
    );
    assert_eq!(
        store.key_holder(&ApiKey::generate().hash()).await.unwrap(),
        None
    );
}

async fn quota_overrides_merge_and_concurrent_changes_all_win(store: Arc<dyn Store>) {
    let c = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap();
    assert_eq!(c.quotas, QuotaOverrides::default());
    let got = store
        .set_client_quotas(
            &c.id,
            &QuotaPatch {
                subscriptions: Some(Some(5)),
                overlay_bytes: Some(Some(1 << 40)),
                ..QuotaPatch::default()
            },
            &rubra_store::Actor::system(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.quotas.subscriptions, Some(5));
    assert_eq!(got.quotas.overlay_bytes, Some(1 << 40));
    // Eight admins change eight different things at once: none is lost.
    let mut tasks = Vec::new();
    for i in 0..8u64 {
        let store = store.clone();
        let id = c.id.clone();
        tasks.push(tokio::spawn(async move {
            let patch = match i % 4 {
                0 => QuotaPatch {
                    jobs: Some(Some(i)),
                    ..QuotaPatch::default()
                },
                1 => QuotaPatch {
                    watches: Some(Some(i)),
                    ..QuotaPatch::default()
                },
                2 => QuotaPatch {
                    overlays: Some(Some(i)),
                    ..QuotaPatch::default()
                },
                _ => QuotaPatch {
                    subscriptions: Some(None),
                    ..QuotaPatch::default()
                },
            };
            store
                .set_client_quotas(&id, &patch, &rubra_store::Actor::system())
                .await
                .unwrap()
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let read = store.get_client(&Scope::All, &c.id).await.unwrap().unwrap();
    assert!(read.quotas.jobs.is_some() && read.quotas.watches.is_some());
    assert!(read.quotas.overlays.is_some());
    assert_eq!(read.quotas.subscriptions, None);
    assert_eq!(read.quotas.overlay_bytes, Some(1 << 40));
    assert!(
        store
            .set_client_quotas(
                &ClientId::parse("cl_0000000000000000").unwrap(),
                &QuotaPatch::default(),
                &rubra_store::Actor::system(),
            )
            .await
            .unwrap()
            .is_none()
    );
}
