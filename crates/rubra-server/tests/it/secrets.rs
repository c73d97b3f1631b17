//! Secrets at rest and webhook secret rotation, through the API: a copy of the database file
//! holds no webhook secret, Viber token or watch header; the key file is made owner-only beside
//! `admin.key`; a start with a key file lacking a stored key is refused; a rotated secret
//! signs beside the old one so a receiver that checks either accepts.

use crate::helpers::{assert_error, spawn_app_with, test_config};
use crate::notify::{Receiver, red_event};
use reqwest::Method;
use serde_json::{Value, json};

const TOKEN: &str = "viber-bot-token-5be1c0ffee";
const HEADER: &str = "source-api-token-9f8e7d6c5b";

async fn post_json(app: &crate::helpers::TestApp, key: &str, path: &str, body: Value) -> Value {
    let resp = app
        .with_key(key, Method::POST, path)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap()
}

/// Every byte SQLite holds for the database: the file, its WAL and shared memory.
fn database_bytes(data_dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["rubra.db", "rubra.db-wal", "rubra.db-shm"] {
        if let Ok(bytes) = std::fs::read(data_dir.join(name)) {
            all.extend(bytes);
        }
    }
    assert!(
        !all.is_empty(),
        "no database file in {}",
        data_dir.display()
    );
    all
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn a_copy_of_the_database_file_holds_no_webhook_secret_viber_token_or_watch_header() {
    let app = spawn_app_with(|c| c.fetch_allow = Some(vec!["127.0.0.1".into()])).await;
    let (_, key) = app.create_client("acme").await;
    let hook = post_json(
        &app,
        &key,
        "/subscriptions",
        json!({"threshold": 0.5, "channel": {"type": "webhook", "url": "http://127.0.0.1:9/h"}}),
    )
    .await;
    let secret = hook["secret"].as_str().unwrap().to_owned();
    post_json(
        &app,
        &key,
        "/subscriptions",
        json!({"threshold": 0.5,
               "channel": {"type": "viber", "receiver": "u1", "auth_token": TOKEN}}),
    )
    .await;
    post_json(
        &app,
        &key,
        "/watches",
        json!({"url": "http://127.0.0.1:9/doc.json", "headers": {"x-token": HEADER}}),
    )
    .await;
    let rotated = post_json(
        &app,
        &key,
        &format!(
            "/subscriptions/{}/rotate-secret",
            hook["id"].as_str().unwrap()
        ),
        json!({}),
    )
    .await;
    let second = rotated["secret"].as_str().unwrap().to_owned();

    let bytes = database_bytes(&app.data_dir);
    for (what, plain) in [
        ("webhook secret", secret.as_str()),
        ("webhook secret's key", &secret["whsec_".len()..]),
        ("rotated webhook secret", second.as_str()),
        ("Viber token", TOKEN),
        ("watch header", HEADER),
    ] {
        assert!(!holds(&bytes, plain), "the database file holds the {what}");
    }
    // The test would pass on an empty file: the rows are there, sealed.
    assert!(holds(&bytes, "enc:v1:"), "no sealed value in the file");

    // The key lives beside admin.key, readable by its owner only.
    let key_file = app.data_dir.join("secret.key");
    assert!(app.data_dir.join("admin.key").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
}

#[tokio::test]
async fn a_start_with_a_key_file_lacking_the_stored_key_is_refused_naming_the_file() {
    let app = spawn_app_with(|_| {}).await;
    let (_, key) = app.create_client("acme").await;
    post_json(
        &app,
        &key,
        "/subscriptions",
        json!({"threshold": 0.5, "channel": {"type": "viber", "receiver": "u", "auth_token": TOKEN}}),
    )
    .await;
    // A second process on the same database with a key file of its own.
    let dir = tempfile::tempdir().unwrap();
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, rubra_store::SecretBox::generate_line()).unwrap();
    let mut args = test_config(&dir);
    args.database_url = Some(format!(
        "sqlite://{}",
        app.data_dir.join("rubra.db").display()
    ));
    args.secret_key_file = Some(other_key.clone());
    let settings = rubra_server::Settings::validate(args).unwrap();
    let telemetry = rubra_telemetry::init(&rubra_telemetry::TelemetryConfig {
        format: rubra_telemetry::LogFormat::Json,
        slow_ms: None,
        filter: "warn".into(),
    })
    .unwrap();
    let Err(err) = rubra_server::Application::build(settings, telemetry).await else {
        panic!("a process with another key started")
    };
    let msg = err.to_string();
    assert!(
        matches!(err, rubra_server::StartError::SecretKey(_)),
        "{msg}"
    );
    assert!(
        msg.contains("other.key") && msg.contains("same key file"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_rotated_webhook_secret_signs_beside_the_old_one_so_the_receiver_misses_nothing() {
    let app = spawn_app_with(|c| {
        c.fetch_allow = Some(vec!["127.0.0.1".into()]);
        c.notify_retry_ms = Some("50,50,50".into());
    })
    .await;
    let (_, key) = app.create_client("acme").await;
    let (_, other) = app.create_client("other").await;
    let rx = Receiver::start(|_, _| (204, String::new())).await;
    let sub = post_json(
        &app,
        &key,
        "/subscriptions",
        json!({"threshold": 0.5, "channel": {"type": "webhook", "url": format!("{}/h", rx.base)}}),
    )
    .await;
    let id = sub["id"].as_str().unwrap();
    let old = sub["secret"].as_str().unwrap().to_owned();
    let path = format!("/subscriptions/{id}/rotate-secret");

    // Only the owner rotates, only a webhook has a secret.
    let resp = app
        .with_key(&other, Method::POST, &path)
        .send()
        .await
        .unwrap();
    assert_error(resp, 404, "not_found").await;
    let viber = post_json(
        &app,
        &key,
        "/subscriptions",
        json!({"threshold": 0.5, "channel": {"type": "viber", "receiver": "u", "auth_token": TOKEN}}),
    )
    .await;
    let resp = app
        .with_key(
            &key,
            Method::POST,
            &format!(
                "/subscriptions/{}/rotate-secret",
                viber["id"].as_str().unwrap()
            ),
        )
        .send()
        .await
        .unwrap();
    assert_error(resp, 422, "not_a_webhook").await;

    let rotated = post_json(&app, &key, &path, json!({})).await;
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_") && new != old, "{rotated}");
    assert!(rotated["previous_secret_until"].is_string(), "{rotated}");
    // Shown once: not on a read.
    let resp = app
        .with_key(&key, Method::GET, &format!("/subscriptions/{id}"))
        .send()
        .await
        .unwrap();
    let read: Value = resp.json().await.unwrap();
    assert!(read.get("secret").is_none(), "{read}");

    red_event(&app, &key, 80).await;
    let got = rx.wait_for(1).await;
    let signatures = got[0].signature().unwrap().to_owned();
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
    // A receiver still on the old secret accepts it, and so does one already on the new.
    got[0].verify(&old).unwrap();
    got[0].verify(&new).unwrap();
}
