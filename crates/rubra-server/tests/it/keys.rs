//! The API key lifecycle over HTTP: many keys per client, shown once, listed without the key,
//! revoked (not the client's own last one), expiring; disabled clients; and a revocation or a
//! disabling seen by another process on the same PostgreSQL within 2 s.

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with, test_config};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn new_key(app: &TestApp, key: &str, client: &str, body: Value) -> Value {
    let resp = app
        .with_key(key, Method::POST, &format!("/clients/{client}/keys"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

async fn list(app: &TestApp, key: &str, client: &str) -> Vec<Value> {
    let resp = app
        .with_key(key, Method::GET, &format!("/clients/{client}/keys"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let page: Value = resp.json().await.unwrap();
    assert!(page["next_cursor"].is_null(), "{page}");
    page["items"].as_array().unwrap().clone()
}

async fn status(app: &TestApp, key: &str, path: &str) -> u16 {
    app.with_key(key, Method::GET, path)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_client_makes_lists_and_revokes_its_own_keys() {
    let app = spawn_app().await;
    let (id, first) = app.create_client("acme").await;
    let me = format!("/clients/{id}");
    let made = new_key(&app, &first, &id, json!({"name": "laptop"})).await;
    let second = made["api_key"].as_str().unwrap().to_owned();
    assert!(second.starts_with(made["prefix"].as_str().unwrap()));
    assert_eq!(made["name"], "laptop");
    assert_eq!(made["expires_at"], Value::Null);
    assert_eq!(status(&app, &second, &me).await, 200, "the new key works");
    // No body at all makes a key too.
    let resp = app
        .with_key(&second, Method::POST, &format!("{me}/keys"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let third: Value = resp.json().await.unwrap();

    let keys = list(&app, &second, &id).await;
    assert_eq!(keys.len(), 3);
    let shown = serde_json::to_string(&keys).unwrap();
    assert!(
        !shown.contains(&first) && !shown.contains(&second),
        "keys never listed"
    );
    assert!(keys.iter().all(|k| k.get("api_key").is_none()));
    let first_id = keys[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(keys[0]["name"], "first key");
    assert!(first.starts_with(keys[0]["prefix"].as_str().unwrap()));

    // Rotation: the old key is revoked with the new one and refused at once.
    let resp = app
        .with_key(&second, Method::DELETE, &format!("{me}/keys/{first_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_error(
        app.with_key(&first, Method::GET, &me).send().await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    let resp = app
        .with_key(&second, Method::DELETE, &format!("{me}/keys/{first_id}"))
        .send()
        .await
        .unwrap();
    assert_error(resp, 404, "not_found").await;

    // A client may revoke the key it is using, but not its last one.
    let third_id = third["id"].as_str().unwrap();
    let resp = app
        .with_key(&second, Method::DELETE, &format!("{me}/keys/{third_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let second_id = made["id"].as_str().unwrap();
    let resp = app
        .with_key(&second, Method::DELETE, &format!("{me}/keys/{second_id}"))
        .send()
        .await
        .unwrap();
    assert_error(resp, 409, "last_key").await;
    assert_eq!(status(&app, &second, &me).await, 200);
    // An admin may: a leaked last key can be stopped.
    let resp = app
        .admin(Method::DELETE, &format!("{me}/keys/{second_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(status(&app, &second, &me).await, 401);
    assert!(list(&app, &app.admin_key, &id).await.is_empty());
}

#[tokio::test]
async fn a_client_cannot_see_or_manage_another_clients_keys() {
    let app = spawn_app().await;
    let (a, a_key) = app.create_client("a").await;
    let (b, b_key) = app.create_client("b").await;
    let b_key_id = list(&app, &b_key, &b).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (method, path) in [
        (Method::GET, format!("/clients/{b}/keys")),
        (Method::POST, format!("/clients/{b}/keys")),
        (Method::DELETE, format!("/clients/{b}/keys/{b_key_id}")),
        // Another client's key through one's own path is no key of one's own.
        (Method::DELETE, format!("/clients/{a}/keys/{b_key_id}")),
    ] {
        let resp = app.with_key(&a_key, method, &path).send().await.unwrap();
        assert_error(resp, 404, "not_found").await;
    }
    assert_eq!(list(&app, &b_key, &b).await.len(), 1);
    assert_eq!(status(&app, &b_key, &format!("/clients/{b}")).await, 200);
    // An admin manages any client's keys.
    let made = new_key(&app, &app.admin_key, &b, json!({"name": "ops"})).await;
    assert_eq!(
        status(
            &app,
            made["api_key"].as_str().unwrap(),
            &format!("/clients/{b}")
        )
        .await,
        200
    );
    let resp = app
        .admin(Method::GET, "/clients/cl_0000000000000000/keys")
        .send()
        .await
        .unwrap();
    assert_error(resp, 404, "not_found").await;
}

#[tokio::test]
async fn an_expired_key_is_refused_with_key_expired() {
    let app = spawn_app().await;
    let (id, key) = app.create_client("acme").await;
    let me = format!("/clients/{id}");
    let soon = rubra_store::now_ms() + 1_500;
    let made = new_key(
        &app,
        &key,
        &id,
        json!({"name": "short", "expires_at": soon}),
    )
    .await;
    let short = made["api_key"].as_str().unwrap();
    assert!(made["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(status(&app, short, &me).await, 200);
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let msg = assert_error(
        app.with_key(short, Method::GET, &me).send().await.unwrap(),
        401,
        "key_expired",
    )
    .await;
    assert!(msg.contains(made["id"].as_str().unwrap()), "{msg}");
    // RFC 3339 is taken too; the past and garbage are not.
    new_key(
        &app,
        &key,
        &id,
        json!({"expires_at": "2999-01-01T00:00:00Z"}),
    )
    .await;
    for bad in [json!("2001-01-01T00:00:00Z"), json!("soon"), json!(true)] {
        let resp = app
            .with_key(&key, Method::POST, &format!("{me}/keys"))
            .json(&json!({ "expires_at": bad }))
            .send()
            .await
            .unwrap();
        assert_error(resp, 422, "invalid_expires_at").await;
    }
}

#[tokio::test]
async fn a_disabled_clients_keys_get_client_disabled_until_enabled() {
    let app = spawn_app().await;
    let (id, key) = app.create_client("acme").await;
    let (_, other) = app.create_client("other").await;
    let me = format!("/clients/{id}");
    let resp = app
        .with_key(&key, Method::PATCH, &me)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 403, "forbidden").await;

    let resp = app
        .admin(Method::PATCH, &me)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["disabled"], true);
    assert!(body["disabled_at"].as_str().unwrap().ends_with('Z'));
    for path in [me.as_str(), "/images", "/jobs"] {
        let resp = app.with_key(&key, Method::GET, path).send().await.unwrap();
        assert_error(resp, 401, "client_disabled").await;
    }
    assert_eq!(status(&app, &other, "/clients").await, 200, "others go on");
    // An admin still sees it.
    let got: Value = app
        .admin(Method::GET, &me)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["disabled"], true);

    let resp = app
        .admin(Method::PATCH, &me)
        .json(&json!({"disabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(status(&app, &key, &me).await, 200);
}

#[tokio::test]
async fn last_used_is_shown_once_a_key_is_used() {
    let app = spawn_app().await;
    let (id, key) = app.create_client("acme").await;
    let keys = list(&app, &app.admin_key, &id).await;
    assert_eq!(keys[0]["last_used_at"], Value::Null);
    assert_eq!(status(&app, &key, "/clients").await, 200);
    // Written in the background: it shows up shortly.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let keys = list(&app, &app.admin_key, &id).await;
        if keys[0]["last_used_at"].is_string() {
            break;
        }
        assert!(Instant::now() < deadline, "last_used_at never written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What keeps a second process running: its data folder and its stop signal.
type Running = (tempfile::TempDir, tokio::sync::oneshot::Sender<()>);

/// A second `rubra serve` on the database `db` (which the first already bootstrapped); its
/// base URL and what keeps it running.
pub(crate) async fn second_process(db: &str) -> (String, Running) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_config(&dir);
    args.database_url = Some(db.to_owned());
    let settings = rubra_server::Settings::validate(args).unwrap();
    let telemetry = rubra_telemetry::init(&rubra_telemetry::TelemetryConfig {
        format: rubra_telemetry::LogFormat::Json,
        slow_ms: None,
        filter: "warn".into(),
    })
    .unwrap();
    let app = rubra_server::Application::build(settings, telemetry)
        .await
        .unwrap();
    let base = format!("http://{}", app.local_addr());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        app.run_until(async move {
            let _ = rx.await;
        })
        .await
        .unwrap()
    });
    (base, (dir, stop))
}

/// How long after `change` (which returns once committed) a request with `key` to `path` on
/// `base` is first answered 401, having been answered 200 (and cached) just before.
async fn refused_after(
    base: &str,
    key: &str,
    path: &str,
    change: impl std::future::Future<Output = ()>,
) -> (Duration, Value) {
    let http = reqwest::Client::new();
    let get = || http.get(format!("{base}{path}")).bearer_auth(key).send();
    assert_eq!(get().await.unwrap().status(), 200, "accepted before");
    change.await;
    let changed = Instant::now();
    loop {
        let resp = get().await.unwrap();
        if resp.status() == 401 {
            return (changed.elapsed(), resp.json().await.unwrap());
        }
        assert_eq!(resp.status(), 200);
        assert!(
            changed.elapsed() < Duration::from_secs(10),
            "still accepted 10 s after the change"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_revoked_key_is_refused_by_another_process_within_two_seconds() {
    let Some(db) = rubra_testkit::fresh_postgres("revoked_key_other_process").await else {
        return;
    };
    let one = spawn_app_with(|c| c.database_url = Some(db.clone())).await;
    let (two, _running) = second_process(&db).await;
    let (id, key) = one.create_client("acme").await;
    let key_id = list(&one, &key, &id).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A second key, so that the client may revoke its first one itself.
    new_key(&one, &key, &id, json!({})).await;
    let me = format!("/clients/{id}");
    let (took, body) = refused_after(&two, &key, &me, async {
        let resp = one
            .with_key(&key, Method::DELETE, &format!("{me}/keys/{key_id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    })
    .await;
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    assert!(took < Duration::from_secs(2), "refused after {took:?}");
}

#[tokio::test]
async fn a_disabled_client_is_refused_by_another_process_within_two_seconds() {
    let Some(db) = rubra_testkit::fresh_postgres("disabled_client_other_process").await else {
        return;
    };
    let one = spawn_app_with(|c| c.database_url = Some(db.clone())).await;
    let (two, _running) = second_process(&db).await;
    let (id, key) = one.create_client("acme").await;
    let me = format!("/clients/{id}");
    let (took, body) = refused_after(&two, &key, &me, async {
        let resp = one
            .admin(Method::PATCH, &me)
            .json(&json!({"disabled": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    })
    .await;
    assert_eq!(body["error"]["code"], "client_disabled", "{body}");
    assert!(took < Duration::from_secs(2), "refused after {took:?}");
}

/// How long after `since` the open stream `resp` ends (its body is read to the end).
async fn ended_after(mut resp: reqwest::Response, since: Instant) -> Duration {
    let read = async {
        while resp.chunk().await.ok().flatten().is_some() {}
        since.elapsed()
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the stream still open 10 s after its key was taken back")
}

#[tokio::test]
async fn an_open_stream_ends_when_its_key_is_revoked_or_its_client_disabled() {
    let app = spawn_app_with(|c| c.fetch_allow = Some(vec!["127.0.0.1".into()])).await;
    let (id, key) = app.create_client("acme").await;
    let me = format!("/clients/{id}");
    let made = new_key(&app, &key, &id, json!({"name": "second"})).await;
    let second = made["api_key"].as_str().unwrap().to_owned();
    let watch: Value = app
        .with_key(&key, Method::POST, "/watches")
        .json(&json!({"url": "http://127.0.0.1:9/doc.json", "interval_ms": 60000}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let watch_stream = format!("/watches/{}/stream", watch["id"].as_str().unwrap());
    let open = |k: &str, path: &str| app.with_key(k, Method::GET, path).send();

    // Revoked: both kinds of stream opened with the key end.
    let notes = open(&key, "/notifications/stream").await.unwrap();
    let changes = open(&key, &watch_stream).await.unwrap();
    assert_eq!(
        (notes.status().as_u16(), changes.status().as_u16()),
        (200, 200)
    );
    let first_id = list(&app, &second, &id).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = app
        .with_key(&second, Method::DELETE, &format!("{me}/keys/{first_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let revoked = Instant::now();
    let (a, b) = tokio::join!(ended_after(notes, revoked), ended_after(changes, revoked));
    assert!(
        a.max(b) < Duration::from_secs(2),
        "ended after {a:?} and {b:?}"
    );

    // Disabled: a stream of the client's other key ends too.
    let notes = open(&second, "/notifications/stream").await.unwrap();
    assert_eq!(notes.status(), 200);
    let resp = app
        .admin(Method::PATCH, &me)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let took = ended_after(notes, Instant::now()).await;
    assert!(took < Duration::from_secs(2), "ended after {took:?}");
}

#[tokio::test]
async fn a_client_holds_at_most_max_keys_per_client_keys() {
    let app = spawn_app_with(|c| c.max_keys_per_client = Some(10)).await;
    let (id, key) = app.create_client("acme").await;
    // The first key is one of the ten.
    for _ in 1..10 {
        new_key(&app, &key, &id, json!({})).await;
    }
    let resp = app
        .with_key(&key, Method::POST, &format!("/clients/{id}/keys"))
        .send()
        .await
        .unwrap();
    let msg = assert_error(resp, 409, "quota_exceeded").await;
    assert!(msg.contains("10 keys"), "{msg}");
    // Revoking one makes room.
    let keys = list(&app, &key, &id).await;
    assert_eq!(keys.len(), 10);
    let last = keys[9]["id"].as_str().unwrap();
    let resp = app
        .with_key(&key, Method::DELETE, &format!("/clients/{id}/keys/{last}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    new_key(&app, &key, &id, json!({})).await;
}

#[tokio::test]
async fn a_leaked_admin_key_can_be_revoked() {
    let app = spawn_app().await;
    let (_, client_key) = app.create_client("acme").await;
    // A second admin key, made with the first.
    let resp = app
        .admin(Method::POST, "/admin/keys")
        .json(&json!({ "name": "ops laptop" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let second: Value = resp.json().await.unwrap();
    let second_key = second["api_key"].as_str().unwrap().to_owned();
    assert_eq!(status(&app, &second_key, "/clients").await, 200);
    let listed: Value = app
        .with_key(&second_key, Method::GET, "/admin/keys")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = listed["items"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        !serde_json::to_string(listed)
            .unwrap()
            .contains(&app.admin_key)
    );
    let first_id = listed.iter().find(|k| k["id"] != second["id"]).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Clients have no business here.
    assert_eq!(status(&app, &client_key, "/admin/keys").await, 403);
    // The first key (say it leaked) is revoked with the second, and refused at once.
    let resp = app
        .with_key(
            &second_key,
            Method::DELETE,
            &format!("/admin/keys/{first_id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(status(&app, &app.admin_key, "/clients").await, 401);
    // The last admin key stays.
    let second_id = second["id"].as_str().unwrap();
    let resp = app
        .with_key(
            &second_key,
            Method::DELETE,
            &format!("/admin/keys/{second_id}"),
        )
        .send()
        .await
        .unwrap();
    assert_error(resp, 409, "last_key").await;
    assert_eq!(status(&app, &second_key, "/clients").await, 200);
}

// Schemathesis: the document lets a key creation's body be JSON `null` (the body is optional),
// but `POST /clients/{id}/keys` with the body `null` was 422 invalid_fields.
#[tokio::test]
async fn a_key_creation_body_of_json_null_is_the_empty_body() {
    let app = spawn_app().await;
    let (client, key) = app.create_client("acme").await;
    let made = app
        .with_key(&key, Method::POST, &format!("/clients/{client}/keys"))
        .header("content-type", "application/json")
        .body("null")
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.unwrap();
    assert_eq!(made["name"], "key", "{made}");
    assert!(made["expires_at"].is_null(), "{made}");
    let admin = app
        .admin(Method::POST, "/admin/keys")
        .header("content-type", "application/json")
        .body(" null ")
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 201);
    let admin: Value = admin.json().await.unwrap();
    assert_eq!(admin["name"], "admin key", "{admin}");
}
