//! The audit log: every audited change leaves one row naming its actor, a refused change none,
//! a change whose row cannot be written is not made at all (one transaction), and the log
//! reads newest first, per client, in pages.

use rubra_store::{
    Action, Actor, ActorKind, ApiKey, AuditPage, AuditRecord, Change, Channel, ClientId,
    DatabaseUrl, KeyId, NewKey, NewSubscription, NewWatch, Principal, QuotaPatch, RateLimitPatch,
    Revoked, Scope, Store, WatchSpec,
};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

crate::both_backends!(
    every_audited_change_is_recorded_with_its_actor,
    a_refused_change_writes_no_audit_row,
    the_log_reads_newest_first_per_client_in_pages,
);

fn admin_at(peer: &str) -> Actor {
    Actor::key(
        &Principal::Admin,
        KeyId::parse("key_00000000000000aa").unwrap(),
        Some(peer.parse::<IpAddr>().unwrap()),
    )
}

fn subscription(client: &ClientId, limit: u32) -> NewSubscription {
    NewSubscription {
        client_id: client.clone(),
        threshold: Some(0.5),
        types: Vec::new(),
        channel: Channel::Webhook {
            url: "https://hooks.test/x".into(),
        },
        secret: Some("whsec_audit".into()),
        limit,
    }
}

fn watch(client: &ClientId, limit: u32) -> NewWatch {
    NewWatch {
        client_id: client.clone(),
        spec: WatchSpec {
            url: "https://src.test/doc?token=SECRET".into(),
            interval_ms: 60_000,
            pointer: None,
            key: None,
            headers: vec![("Authorization".into(), "Bearer SECRET".into())],
            subscription: None,
        },
        limit,
    }
}

async fn all_rows(store: &Arc<dyn Store>) -> Vec<AuditRecord> {
    store
        .list_audit(&AuditPage {
            client: None,
            before: None,
            limit: 1000,
        })
        .await
        .unwrap()
}

fn actions(rows: &[AuditRecord]) -> Vec<&str> {
    rows.iter().rev().map(|r| r.action.as_str()).collect()
}

async fn every_audited_change_is_recorded_with_its_actor(store: Arc<dyn Store>) {
    let admin = admin_at("192.0.2.7");
    let c = store.create_client("acme", &admin).await.unwrap().id;
    let key = ApiKey::generate();
    let mut new = NewKey::new(&key, Principal::Client(c.clone()), "ci");
    new.expires_at = Some(rubra_store::now_ms() + 60_000);
    let info = store.insert_key(&new, &admin).await.unwrap();
    let client_actor = Actor::key(
        &Principal::Client(c.clone()),
        info.id.clone(),
        Some("2001:db8::5".parse().unwrap()),
    );
    let rps = NonZeroU32::new(7);
    store
        .set_client_rate_limit(
            &c,
            &RateLimitPatch {
                rps: Some(rps),
                burst: None,
            },
            &admin,
        )
        .await
        .unwrap()
        .unwrap();
    let quotas = QuotaPatch {
        watches: Some(Some(3)),
        ..QuotaPatch::default()
    };
    store
        .set_client_quotas(&c, &quotas, &admin)
        .await
        .unwrap()
        .unwrap();
    let sub = store
        .create_subscription(&subscription(&c, 10), &client_actor)
        .await
        .unwrap();
    store
        .rotate_webhook_secret(
            &Scope::Client(c.clone()),
            &sub.id,
            "whsec_next",
            rubra_store::now_ms() + 1_000,
            &client_actor,
        )
        .await
        .unwrap()
        .unwrap();
    let w = store
        .create_watch(&watch(&c, 10), &client_actor)
        .await
        .unwrap();
    assert!(
        store
            .delete_watch(&Scope::All, &w.id, &admin)
            .await
            .unwrap()
    );
    assert!(
        store
            .delete_subscription(&Scope::Client(c.clone()), &sub.id, &client_actor)
            .await
            .unwrap()
    );
    store
        .record_audit(
            &client_actor,
            &Change::new(Some(&c), Action::OverlayPut, "logo"),
        )
        .await
        .unwrap();
    store
        .set_client_disabled(&c, true, &Actor::cli())
        .await
        .unwrap()
        .unwrap();
    store
        .set_client_disabled(&c, false, &Actor::cli())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.revoke_key(&c, &info.id, false, &admin).await.unwrap(),
        Revoked::Revoked
    );
    store.rotate_secret_keys(&Actor::cli()).await.unwrap();

    let rows = all_rows(&store).await;
    assert_eq!(
        actions(&rows),
        [
            "client.create",
            "key.create",
            "client.rate_limit",
            "client.quotas",
            "subscription.create",
            "subscription.rotate_secret",
            "watch.create",
            "watch.delete",
            "subscription.delete",
            "overlay.put",
            "client.disable",
            "client.enable",
            "key.revoke",
            "secrets.rotate",
        ]
    );
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );
    let find = |action: &str| rows.iter().find(|r| r.action == action).unwrap();

    let created = find("client.create");
    assert_eq!(created.client_id.as_ref(), Some(&c));
    assert_eq!(created.target, c.as_str());
    assert_eq!(created.actor, admin, "who and from where");
    assert_eq!(created.detail.as_ref().unwrap()["name"], "acme");

    let key_made = find("key.create");
    assert_eq!(key_made.target, info.id.as_str());
    assert_eq!(key_made.detail.as_ref().unwrap()["name"], "ci");
    assert_eq!(find("client.rate_limit").detail.as_ref().unwrap()["rps"], 7);
    assert_eq!(
        find("client.quotas").detail.as_ref().unwrap()["quotas"]["watches"],
        3
    );

    let sub_made = find("subscription.create");
    assert_eq!(sub_made.actor, client_actor);
    assert_eq!(sub_made.actor.kind, ActorKind::Client);
    assert_eq!(sub_made.target, sub.id.as_str());
    assert_eq!(sub_made.detail.as_ref().unwrap()["channel"], "webhook");
    // An admin deleting a client's watch: the row is the client's, the actor the admin.
    let watch_gone = find("watch.delete");
    assert_eq!(watch_gone.client_id.as_ref(), Some(&c));
    assert_eq!(watch_gone.actor, admin);
    assert_eq!(find("client.disable").actor, Actor::cli());
    assert_eq!(find("key.revoke").target, info.id.as_str());
    let rotated = find("secrets.rotate");
    assert_eq!(rotated.client_id, None, "installation-wide");

    // No secret reaches the log: not the webhook secrets, not the watch's URL or headers.
    let text = format!("{rows:?}");
    for secret in ["whsec_audit", "whsec_next", "SECRET", key.reveal()] {
        assert!(!text.contains(secret), "{secret} is in the audit log");
    }
}

async fn a_refused_change_writes_no_audit_row(store: Arc<dyn Store>) {
    let admin = admin_at("198.51.100.1");
    let c = store.create_client("acme", &admin).await.unwrap().id;
    let other = store.create_client("other", &admin).await.unwrap().id;
    let before = all_rows(&store).await.len();

    // Over a quota, a taken name, another client's object, an unknown client or key.
    store
        .create_subscription(&subscription(&c, 0), &admin)
        .await
        .unwrap_err();
    store.create_watch(&watch(&c, 0), &admin).await.unwrap_err();
    store.create_client("acme", &admin).await.unwrap_err();
    let theirs = store
        .create_subscription(&subscription(&other, 10), &admin)
        .await
        .unwrap();
    let before_mine = all_rows(&store).await.len();
    assert_eq!(before_mine, before + 1);
    assert!(
        !store
            .delete_subscription(&Scope::Client(c.clone()), &theirs.id, &admin)
            .await
            .unwrap()
    );
    let nobody = ClientId::parse("cl_0000000000000000").unwrap();
    assert!(
        store
            .set_client_disabled(&nobody, true, &admin)
            .await
            .unwrap()
            .is_none()
    );
    let no_key = KeyId::parse("key_00000000000000ff").unwrap();
    assert_eq!(
        store.revoke_key(&c, &no_key, false, &admin).await.unwrap(),
        Revoked::NotFound
    );
    assert_eq!(all_rows(&store).await.len(), before_mine);
}

async fn the_log_reads_newest_first_per_client_in_pages(store: Arc<dyn Store>) {
    let admin = admin_at("192.0.2.1");
    let a = store.create_client("a", &admin).await.unwrap().id;
    let b = store.create_client("b", &admin).await.unwrap().id;
    for _ in 0..5 {
        store
            .create_subscription(&subscription(&a, 100), &admin)
            .await
            .unwrap();
        store
            .create_subscription(&subscription(&b, 100), &admin)
            .await
            .unwrap();
    }
    let page = |before, limit| AuditPage {
        client: Some(a.clone()),
        before,
        limit,
    };
    let first = store.list_audit(&page(None, 4)).await.unwrap();
    assert_eq!(first.len(), 4);
    let second = store
        .list_audit(&page(Some(first[3].seq), 4))
        .await
        .unwrap();
    assert_eq!(second.len(), 2, "5 subscriptions and the client's creation");
    let all: Vec<&AuditRecord> = first.iter().chain(&second).collect();
    assert!(all.iter().all(|r| r.client_id.as_ref() == Some(&a)));
    assert!(all.windows(2).all(|w| w[0].seq > w[1].seq));
    assert_eq!(all.last().unwrap().action, "client.create");
    assert_eq!(all_rows(&store).await.len(), 12);
}

/// The store methods and the raw database of one backend, for the transaction test.
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Raw {
    async fn execute(&self, sql: &'static str) {
        match self {
            Raw::Sqlite(p) => sqlx::raw_sql(sql).execute(p).await.map(drop),
            Raw::Postgres(p) => sqlx::raw_sql(sql).execute(p).await.map(drop),
        }
        .unwrap();
    }
}

/// With the audit table gone, every audited change fails and none of them is made: the row
/// and the change are one transaction.
async fn a_change_whose_audit_row_fails_is_not_made(store: Arc<dyn Store>, raw: Raw) {
    let admin = admin_at("192.0.2.9");
    let c = store.create_client("acme", &admin).await.unwrap().id;
    let key = ApiKey::generate();
    let info = store
        .insert_key(
            &NewKey::new(&key, Principal::Client(c.clone()), "k"),
            &admin,
        )
        .await
        .unwrap();
    let sub = store
        .create_subscription(&subscription(&c, 10), &admin)
        .await
        .unwrap();
    let w = store.create_watch(&watch(&c, 10), &admin).await.unwrap();

    raw.execute("ALTER TABLE audit_log RENAME TO audit_log_away")
        .await;

    store.create_client("new", &admin).await.unwrap_err();
    let key2 = ApiKey::generate();
    store
        .insert_key(
            &NewKey::new(&key2, Principal::Client(c.clone()), "k2"),
            &admin,
        )
        .await
        .unwrap_err();
    store
        .create_subscription(&subscription(&c, 10), &admin)
        .await
        .unwrap_err();
    store
        .create_watch(&watch(&c, 10), &admin)
        .await
        .unwrap_err();
    store
        .delete_subscription(&Scope::All, &sub.id, &admin)
        .await
        .unwrap_err();
    store
        .delete_watch(&Scope::All, &w.id, &admin)
        .await
        .unwrap_err();
    store
        .revoke_key(&c, &info.id, false, &admin)
        .await
        .unwrap_err();
    store
        .set_client_disabled(&c, true, &admin)
        .await
        .unwrap_err();

    let clients = store.list_clients(&Scope::All).await.unwrap();
    assert_eq!(clients.len(), 1, "no client was made");
    assert!(!clients[0].disabled, "the client was not disabled");
    assert!(store.key_holder(&key2.hash()).await.unwrap().is_none());
    assert!(
        store.key_holder(&key.hash()).await.unwrap().is_some(),
        "the key was not revoked"
    );
    let subs = store.list_subscriptions(&Scope::All).await.unwrap();
    assert_eq!(subs.len(), 1, "none made, none deleted");
    assert_eq!(subs[0].id, sub.id);
    let watches = store.list_watches(&Scope::All).await.unwrap();
    assert_eq!(watches.len(), 1, "none made, none deleted");
    assert_eq!(watches[0].id, w.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_change_whose_audit_row_fails_is_not_made() {
    let (store, dir) = crate::sqlite().await;
    let dir = dir.unwrap();
    let DatabaseUrl::Sqlite(url) = DatabaseUrl::default_in(dir.path()) else {
        unreachable!("the default is SQLite")
    };
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    a_change_whose_audit_row_fails_is_not_made(store, Raw::Sqlite(raw)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_change_whose_audit_row_fails_is_not_made() {
    let Some(url) = rubra_testkit::fresh_postgres("audit_row_fails").await else {
        return;
    };
    let store = crate::open_with_key(&DatabaseUrl::parse(&url).unwrap()).await;
    let raw = sqlx::PgPool::connect(&url).await.unwrap();
    a_change_whose_audit_row_fails_is_not_made(store, Raw::Postgres(raw)).await;
}
