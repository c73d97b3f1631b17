//! Secrets at rest: webhook secrets, Viber tokens and watch headers are stored sealed, bound to
//! their row, under the keys of the key file; webhook secret rotation. Each test reads the
//! database itself (not through the store) to see what a stolen copy would hold.

use rubra_store::{
    Channel, ClientId, DatabaseUrl, NewSubscription, NewWatch, Scope, SecretBox, Store, StoreError,
    Subscription, WatchSpec, now_ms,
};
use std::sync::Arc;

/// Generates a SQLite and a PostgreSQL test of each `async fn name(Db)`.
macro_rules! with_raw_access {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Db::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::Db::postgres(stringify!($name)).await else { return };
                    super::$name(db).await;
                }
            )*
        }
    };
}

with_raw_access!(
    secrets_are_stored_sealed_and_open_back,
    a_sealed_secret_copied_into_another_subscription_does_not_open,
    plaintext_rows_from_before_are_sealed_at_start_and_only_once,
    a_start_with_a_key_file_lacking_a_stored_key_is_refused,
    rotation_reseals_everything_under_the_first_key,
    a_rotated_webhook_secret_signs_beside_the_old_one_until_the_overlap_ends,
);

/// A database, reachable both through the store and directly.
pub struct Db {
    url: DatabaseUrl,
    raw: Raw,
    _dir: Option<tempfile::TempDir>,
}

enum Raw {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

const TOKEN: &str = "viber-token-0123456789abcdef";
const HEADER: &str = "Bearer source-token-fedcba9876543210";

impl Db {
    async fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::default_in(dir.path());
        rubra_store::open(&url).await.unwrap();
        let DatabaseUrl::Sqlite(u) = &url else {
            unreachable!()
        };
        let raw = Raw::Sqlite(sqlx::SqlitePool::connect(u).await.unwrap());
        Db {
            url,
            raw,
            _dir: Some(dir),
        }
    }

    async fn postgres(test: &str) -> Option<Db> {
        let u = rubra_testkit::fresh_postgres(test).await?;
        let url = DatabaseUrl::parse(&u).unwrap();
        rubra_store::open(&url).await.unwrap();
        let raw = Raw::Pg(sqlx::PgPool::connect(&u).await.unwrap());
        Some(Db {
            url,
            raw,
            _dir: None,
        })
    }

    /// A store on this database with the key file `keys` loaded.
    async fn store(&self, keys: &str) -> Result<Arc<dyn Store>, StoreError> {
        let store = rubra_store::open(&self.url).await?;
        store.use_secret_keys(SecretBox::parse(keys)?).await?;
        Ok(store)
    }

    /// One text column of every row `sql` returns.
    async fn texts(&self, sql: &'static str) -> Vec<String> {
        match &self.raw {
            Raw::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
            Raw::Pg(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
        }
    }

    /// Runs `sql` with `$1`, `$2` bound to the texts given.
    async fn exec(&self, sql: &'static str, a: &str, b: &str) {
        match &self.raw {
            Raw::Sqlite(p) => {
                sqlx::query(sql).bind(a).bind(b).execute(p).await.unwrap();
            }
            Raw::Pg(p) => {
                sqlx::query(sql).bind(a).bind(b).execute(p).await.unwrap();
            }
        }
    }

    /// The bytes of the SQLite database's files (the database, its WAL and shared memory).
    fn sqlite_files(&self) -> Vec<u8> {
        let dir = self._dir.as_ref().expect("a SQLite database").path();
        let mut all = Vec::new();
        for name in ["rubra.db", "rubra.db-wal", "rubra.db-shm"] {
            if let Ok(bytes) = std::fs::read(dir.join(name)) {
                all.extend(bytes);
            }
        }
        all
    }

    /// Every stored secret value: webhook secrets (current and previous), channels, headers.
    async fn stored(&self) -> Vec<String> {
        let mut all = self
            .texts("SELECT secret FROM subscriptions WHERE secret IS NOT NULL")
            .await;
        all.extend(
            self.texts(
                "SELECT previous_secret FROM subscriptions WHERE previous_secret IS NOT NULL",
            )
            .await,
        );
        all.extend(self.texts("SELECT channel FROM subscriptions").await);
        all.extend(self.texts("SELECT headers FROM watches").await);
        all
    }
}

fn key() -> String {
    SecretBox::generate_line()
}

fn key_id(line: &str) -> &str {
    line.split_once(':').unwrap().0
}

async fn subscribe(store: &Arc<dyn Store>, client: &ClientId, channel: Channel) -> Subscription {
    let secret = matches!(channel, Channel::Webhook { .. })
        .then(|| format!("whsec_{}", rubra_store::random_id(24)));
    store
        .create_subscription(
            &NewSubscription {
                client_id: client.clone(),
                threshold: Some(0.5),
                types: Vec::new(),
                channel,
                secret,
                limit: 100,
            },
            &rubra_store::Actor::system(),
        )
        .await
        .unwrap()
}

fn viber() -> Channel {
    Channel::Viber {
        receiver: "receiver-1".into(),
        auth_token: TOKEN.into(),
    }
}

fn webhook() -> Channel {
    Channel::Webhook {
        url: "https://hooks.test/x".into(),
    }
}

/// A webhook and a Viber subscription and a watch with a header, for `client`.
async fn fill(store: &Arc<dyn Store>, client: &ClientId) -> (Subscription, Subscription) {
    let hook = subscribe(store, client, webhook()).await;
    let vib = subscribe(store, client, viber()).await;
    store
        .create_watch(
            &NewWatch {
                client_id: client.clone(),
                spec: WatchSpec {
                    url: "https://source.test/doc.json".into(),
                    interval_ms: 60_000,
                    pointer: None,
                    key: None,
                    headers: vec![("authorization".into(), HEADER.into())],
                    subscription: None,
                },
                limit: 100,
            },
            &rubra_store::Actor::system(),
        )
        .await
        .unwrap();
    (hook, vib)
}

/// No stored value holds any of `plain`, and each secret value is sealed.
fn assert_nothing_in_plaintext(stored: &[String], plain: &[&str]) {
    for value in stored {
        for p in plain {
            assert!(!value.contains(p), "{p:?} stored in plaintext: {value}");
        }
    }
}

async fn secrets_are_stored_sealed_and_open_back(db: Db) {
    let k = key();
    let store = db.store(&k).await.unwrap();
    let c = store
        .create_client("c", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let (hook, vib) = fill(&store, &c).await;
    let secret = hook.secret.clone().unwrap();
    assert_nothing_in_plaintext(
        &db.stored().await,
        &[&secret, TOKEN, HEADER, "source-token"],
    );
    let sealed = db
        .texts("SELECT secret FROM subscriptions WHERE secret IS NOT NULL")
        .await;
    assert!(
        sealed[0].starts_with(&format!("enc:v1:{}:", key_id(&k))),
        "{sealed:?}"
    );
    // Through the store they open: the worker signs and sends with the real values.
    let scope = Scope::Client(c.clone());
    let got = store.get_subscription(&scope, &hook.id).await.unwrap();
    assert_eq!(got.unwrap().secret.as_deref(), Some(secret.as_str()));
    let got = store.get_subscription(&scope, &vib.id).await.unwrap();
    assert_eq!(got.unwrap().channel, viber());
    let watches = store.list_watches(&scope).await.unwrap();
    assert_eq!(watches[0].spec.headers[0].1, HEADER);
    // Debug output (logs, panics) does not show the secret.
    let shown = format!("{:?}", store.list_subscriptions(&scope).await.unwrap());
    assert!(
        !shown.contains(&secret) && !shown.contains(TOKEN),
        "{shown}"
    );
}

async fn a_sealed_secret_copied_into_another_subscription_does_not_open(db: Db) {
    let store = db.store(&key()).await.unwrap();
    let victim = store
        .create_client("victim", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let attacker = store
        .create_client("attacker", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let (v_hook, v_viber) = fill(&store, &victim).await;
    let a_hook = subscribe(&store, &attacker, webhook()).await;
    let a_viber = subscribe(&store, &attacker, viber()).await;
    // Whoever can write the database (but has no key) copies the victim's sealed values into
    // the attacker's own subscriptions, hoping to read them back through the API.
    db.exec(
        "UPDATE subscriptions SET secret = (SELECT secret FROM subscriptions WHERE id = $1) \
         WHERE id = $2",
        v_hook.id.as_str(),
        a_hook.id.as_str(),
    )
    .await;
    db.exec(
        "UPDATE subscriptions SET channel = (SELECT channel FROM subscriptions WHERE id = $1) \
         WHERE id = $2",
        v_viber.id.as_str(),
        a_viber.id.as_str(),
    )
    .await;
    let scope = Scope::Client(attacker);
    for id in [&a_hook.id, &a_viber.id] {
        let err = store.get_subscription(&scope, id).await.unwrap_err();
        assert!(matches!(err, StoreError::SecretKey(_)), "{err}");
    }
    // The victim's own still open.
    let got = store
        .get_subscription(&Scope::Client(victim), &v_hook.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.secret, v_hook.secret);
}

async fn plaintext_rows_from_before_are_sealed_at_start_and_only_once(db: Db) {
    let k = key();
    let store = db.store(&k).await.unwrap();
    let c = store
        .create_client("c", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let (hook, vib) = fill(&store, &c).await;
    // Rows as a version before sealing wrote them.
    let plain_channel = serde_json::to_string(&viber()).unwrap();
    db.exec(
        "UPDATE subscriptions SET secret = $1 WHERE id = $2",
        "whsec_plaintext_from_before",
        hook.id.as_str(),
    )
    .await;
    db.exec(
        "UPDATE subscriptions SET channel = $1 WHERE id = $2",
        &plain_channel,
        vib.id.as_str(),
    )
    .await;
    let headers = serde_json::to_string(&[("authorization", HEADER)]).unwrap();
    db.exec(
        "UPDATE watches SET headers = $1 WHERE client_id = $2",
        &headers,
        c.as_str(),
    )
    .await;
    assert!(db.stored().await.iter().any(|v| v.contains(TOKEN)));

    let again = db.store(&k).await.unwrap();
    assert_nothing_in_plaintext(
        &db.stored().await,
        &["whsec_plaintext_from_before", TOKEN, HEADER],
    );
    let scope = Scope::Client(c.clone());
    let got = again
        .get_subscription(&scope, &hook.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.secret.as_deref(), Some("whsec_plaintext_from_before"));
    let got = again
        .get_subscription(&scope, &vib.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.channel, viber());
    // Already sealed: a second start changes nothing.
    let before = db.stored().await;
    let counts = again
        .use_secret_keys(SecretBox::parse(&k).unwrap())
        .await
        .unwrap();
    assert_eq!((counts.sealed, counts.resealed), (0, 0));
    assert_eq!(db.stored().await, before);
}

async fn a_start_with_a_key_file_lacking_a_stored_key_is_refused(db: Db) {
    let k1 = key();
    let store = db.store(&k1).await.unwrap();
    let c = store
        .create_client("c", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    fill(&store, &c).await;
    let before = db.stored().await;
    // Another process with its own, different key file: it would write secrets that the
    // first cannot read, and cannot read the first's.
    let err = db.store(&key()).await.unwrap_err();
    let StoreError::SecretKey(msg) = &err else {
        panic!("{err}")
    };
    assert!(msg.contains(key_id(&k1)), "{msg}");
    assert!(msg.contains("same key file"), "{msg}");
    assert_eq!(db.stored().await, before, "a refused start changes nothing");
    // With the old key listed second, it starts.
    db.store(&format!("{}\n{k1}", key())).await.unwrap();
}

async fn rotation_reseals_everything_under_the_first_key(db: Db) {
    let (old, new) = (key(), key());
    let store = db.store(&old).await.unwrap();
    let c = store
        .create_client("c", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let (hook, vib) = fill(&store, &c).await;
    store
        .rotate_webhook_secret(
            &Scope::Client(c.clone()),
            &hook.id,
            "whsec_second",
            now_ms() + 60_000,
            &rubra_store::Actor::system(),
        )
        .await
        .unwrap()
        .unwrap();
    let rotated = db.store(&format!("{new}\n{old}")).await.unwrap();
    let counts = rotated
        .rotate_secret_keys(&rubra_store::Actor::system())
        .await
        .unwrap();
    // Secret, previous secret, Viber token, watch headers.
    assert_eq!((counts.sealed, counts.resealed), (0, 4));
    for v in db.stored().await {
        assert!(!v.contains(&format!("enc:v1:{}:", key_id(&old))), "{v}");
    }
    // The old key can now be dropped from the file.
    let only_new = db.store(&new).await.unwrap();
    let scope = Scope::Client(c);
    let got = only_new
        .get_subscription(&scope, &hook.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.secret.as_deref(), Some("whsec_second"));
    assert_eq!(got.previous_secret, hook.secret);
    let got = only_new
        .get_subscription(&scope, &vib.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.channel, viber());
    assert_eq!(
        only_new.list_watches(&scope).await.unwrap()[0].spec.headers[0].1,
        HEADER
    );
    assert_eq!(
        only_new
            .rotate_secret_keys(&rubra_store::Actor::system())
            .await
            .unwrap()
            .resealed,
        0
    );
}

async fn a_rotated_webhook_secret_signs_beside_the_old_one_until_the_overlap_ends(db: Db) {
    let store = db.store(&key()).await.unwrap();
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
    let (hook, vib) = fill(&store, &a).await;
    let old = hook.secret.clone().unwrap();
    let until = now_ms() + 60_000;
    let scope = Scope::Client(a.clone());
    // Another client's subscription, and a channel without a secret, are not rotated.
    assert!(
        store
            .rotate_webhook_secret(
                &Scope::Client(b),
                &hook.id,
                "whsec_new",
                until,
                &rubra_store::Actor::system()
            )
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .rotate_webhook_secret(
                &scope,
                &vib.id,
                "whsec_new",
                until,
                &rubra_store::Actor::system()
            )
            .await
            .unwrap()
            .is_none()
    );
    let got = store
        .rotate_webhook_secret(
            &scope,
            &hook.id,
            "whsec_new",
            until,
            &rubra_store::Actor::system(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.secret.as_deref(), Some("whsec_new"));
    assert_eq!(
        got.signing_secrets(until - 1),
        vec!["whsec_new", old.as_str()]
    );
    assert_eq!(got.signing_secrets(until), vec!["whsec_new"]);
    assert_nothing_in_plaintext(&db.stored().await, &["whsec_new", &old]);
    // The claim path reads the same.
    let listed = store.list_subscriptions(&scope).await.unwrap();
    let listed = listed.iter().find(|s| s.id == hook.id).unwrap();
    assert_eq!(listed.previous_secret.as_deref(), Some(old.as_str()));
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_sqlite_file_keeps_no_trace_of_the_plaintext_it_sealed() {
    const OLD_SECRET: &str = "whsec_written_in_plaintext_by_an_older_version";
    const OLD_TOKEN: &str = "viber-token-written-in-plaintext-0042";
    const OLD_HEADER: &str = "header-written-in-plaintext-0042";
    let db = Db::sqlite().await;
    let k = key();
    let store = db.store(&k).await.unwrap();
    let c = store
        .create_client("c", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let (hook, vib) = fill(&store, &c).await;
    // The rows as a version before sealing wrote them, with the pages that held them.
    db.exec(
        "UPDATE subscriptions SET secret = $1 WHERE id = $2",
        OLD_SECRET,
        hook.id.as_str(),
    )
    .await;
    let channel = serde_json::json!({"type": "viber", "receiver": "r", "auth_token": OLD_TOKEN});
    db.exec(
        "UPDATE subscriptions SET channel = $1 WHERE id = $2",
        &channel.to_string(),
        vib.id.as_str(),
    )
    .await;
    let headers = serde_json::to_string(&[("authorization", OLD_HEADER)]).unwrap();
    db.exec(
        "UPDATE watches SET headers = $1 WHERE client_id = $2",
        &headers,
        c.as_str(),
    )
    .await;
    assert!(
        holds(&db.sqlite_files(), OLD_TOKEN),
        "the test wrote no plaintext"
    );

    // The first start of the version that seals.
    db.store(&k).await.unwrap();
    let files = db.sqlite_files();
    for plain in [OLD_SECRET, OLD_TOKEN, OLD_HEADER] {
        assert!(
            !holds(&files, plain),
            "{plain:?} is still in the database's files"
        );
    }
}
