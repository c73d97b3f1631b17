//! Clients, keys, the first admin key, and scope isolation.

use rubra_store::{ApiKey, NewKey, Principal, Scope, Store, StoreError};
use std::sync::Arc;

crate::both_backends!(
    create_and_list_clients,
    duplicate_client_name_is_a_conflict,
    keys_resolve_to_their_principal,
    admin_key_is_bootstrapped_exactly_once,
    a_client_scope_sees_only_itself,
    migrations_are_idempotent,
);

async fn create_and_list_clients(store: Arc<dyn Store>) {
    let a = store.create_client("acme").await.unwrap();
    let b = store.create_client("globex").await.unwrap();
    assert!(a.id.as_str().starts_with("cl_"));
    let all = store.list_clients(&Scope::All).await.unwrap();
    // Oldest first; clients created in the same millisecond are ordered by id.
    let mut expected = [a.clone(), b.clone()];
    expected.sort_by(|x, y| (x.created_at, x.id.as_str()).cmp(&(y.created_at, y.id.as_str())));
    assert_eq!(all, expected);
    assert_eq!(store.get_client(&Scope::All, &b.id).await.unwrap(), Some(b));
}

async fn duplicate_client_name_is_a_conflict(store: Arc<dyn Store>) {
    store.create_client("acme").await.unwrap();
    let err = store.create_client("acme").await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

async fn keys_resolve_to_their_principal(store: Arc<dyn Store>) {
    let c = store.create_client("acme").await.unwrap();
    let client_key = ApiKey::generate();
    let admin_key = ApiKey::generate();
    for (key, principal) in [
        (&client_key, Principal::Client(c.id.clone())),
        (&admin_key, Principal::Admin),
    ] {
        let new = NewKey {
            hash: key.hash(),
            principal,
            label: "t".into(),
        };
        store.insert_key(&new).await.unwrap();
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
    let a = store.create_client("acme").await.unwrap();
    let b = store.create_client("globex").await.unwrap();
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
