//! Attacks on what every response and the data folder carry (headers, the admin key file), and
//! on half-done image writes: each test is named after what it stops.

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};
use image::{ImageBuffer, Rgba, RgbaImage};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use rubra_server::{Application, Settings};
use rubra_store::{BlobStore, BlobUrl, ClientId, ImageId, image_blob_key};
use serde_json::Value;

/// A small PNG, different for every `seed`.
fn png(seed: u8) -> Vec<u8> {
    let img: RgbaImage = ImageBuffer::from_fn(3, 3, |x, _| {
        if x == 0 {
            Rgba([255, 0, 0, 255])
        } else {
            Rgba([seed, 128, 128, 255])
        }
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn sha256_hex(bytes: &[u8]) -> String {
    ImageId::of(bytes).as_str().to_owned()
}

/// The local blob file of a client's image (the embedded default's storage layout).
fn local_blob(app: &TestApp, client: &str, bytes: &[u8]) -> std::path::PathBuf {
    let key = image_blob_key(&ClientId::parse(client).unwrap(), &ImageId::of(bytes));
    app.data_dir.join("blobs").join(key)
}

async fn upload(app: &TestApp, key: &str, bytes: Vec<u8>) -> reqwest::Response {
    app.with_key(key, Method::POST, "/images")
        .header("content-type", "image/png")
        .body(bytes)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    for (path, status) in [
        ("/healthz", 200),
        ("/no-such-route", 404),
        ("/clients", 401),
    ] {
        let resp = app.anon(Method::GET, path).send().await.unwrap();
        assert_eq!(resp.status(), status, "{path}");
        let h = resp.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
    }
}

#[tokio::test]
async fn a_401_says_how_to_authenticate() {
    let app = spawn_app().await;
    for req in [
        app.anon(Method::GET, "/clients"),
        app.with_key("rk_not-a-key", Method::GET, "/clients"),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        assert_error(resp, 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn the_dashboard_page_has_a_strict_content_security_policy() {
    let app = spawn_app().await;
    let resp = app.anon(Method::GET, "/").send().await.unwrap();
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    for directive in [
        "default-src 'none'",
        "script-src 'self';",
        "style-src 'self';",
        "connect-src 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
}

#[cfg(unix)]
#[tokio::test]
async fn admin_key_is_not_written_through_a_planted_symlink() {
    use std::os::unix::fs::PermissionsExt;
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, "untouched\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    let planted = victim.clone();
    let app = spawn_app_with(move |c| {
        let data = c.data_dir.clone().unwrap();
        std::fs::create_dir_all(&data).unwrap();
        std::os::unix::fs::symlink(&planted, data.join("admin.key")).unwrap();
    })
    .await;
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n");
    let path = app.data_dir.join("admin.key");
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_file(), "admin.key is a plain file now");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().trim(),
        app.admin_key
    );
}

#[cfg(unix)]
#[tokio::test]
async fn an_admin_key_file_left_readable_by_others_is_made_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app_with(|c| {
        let data = c.data_dir.clone().unwrap();
        std::fs::create_dir_all(&data).unwrap();
        let stale = data.join("admin.key");
        std::fs::write(&stale, "old\n").unwrap();
        std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
    })
    .await;
    let path = app.data_dir.join("admin.key");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().trim(),
        app.admin_key
    );
}

#[tokio::test]
async fn deleting_an_image_removes_its_record_even_when_the_bytes_cannot_be_deleted() {
    let app = spawn_app().await;
    let (client, key) = app.create_client("acme").await;
    let bytes = png(1);
    assert_eq!(upload(&app, &key, bytes.clone()).await.status(), 201);
    // Storage refuses to delete the bytes: a non-empty folder where the blob file was.
    let blob = local_blob(&app, &client, &bytes);
    std::fs::remove_file(&blob).unwrap();
    std::fs::create_dir_all(blob.join("stuck")).unwrap();
    let id = sha256_hex(&bytes);
    let resp = app
        .with_key(&key, Method::DELETE, &format!("/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    // The record went first, so the client never sees an image whose bytes are gone.
    let resp = app
        .with_key(&key, Method::GET, &format!("/images/{id}/info"))
        .send()
        .await
        .unwrap();
    assert_error(resp, 404, "not_found").await;
}

#[tokio::test]
async fn a_multipart_upload_that_fails_partway_stores_none_of_its_parts() {
    let app = spawn_app().await;
    let (client, key) = app.create_client("acme").await;
    let (first, second) = (png(2), png(3));
    // Storage fails on the second part: a non-empty folder where its blob file would go.
    std::fs::create_dir_all(local_blob(&app, &client, &second).join("stuck")).unwrap();
    let form = Form::new()
        .part("a", Part::bytes(first.clone()).file_name("a.png"))
        .part("b", Part::bytes(second).file_name("b.png"));
    let resp = app
        .with_key(&key, Method::POST, "/images")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_server_error(), "{}", resp.status());
    let list: Value = app
        .with_key(&key, Method::GET, "/images")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], serde_json::json!([]), "{list}");
    // The first part was not recorded: uploading it alone is a new image (201, one event).
    assert_eq!(upload(&app, &key, first).await.status(), 201);
}

/// The image's record exists but its bytes are gone (lost by storage): uploading it again
/// writes them again, on the embedded default and on PostgreSQL + S3.
async fn check_an_upload_restores_the_bytes_of_a_recorded_image(app: TestApp, blobs: BlobStore) {
    let (client, key) = app.create_client("acme").await;
    let bytes = png(4);
    assert_eq!(upload(&app, &key, bytes.clone()).await.status(), 201);
    let id = ImageId::of(&bytes);
    blobs
        .delete(&image_blob_key(&ClientId::parse(&client).unwrap(), &id))
        .await
        .unwrap();
    let path = format!("/images/{}", id.as_str());
    let resp = app.with_key(&key, Method::GET, &path).send().await.unwrap();
    assert_eq!(resp.status(), 404, "the bytes are gone");
    assert_eq!(upload(&app, &key, bytes.clone()).await.status(), 200);
    let resp = app.with_key(&key, Method::GET, &path).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), bytes.as_slice());
}

#[tokio::test]
async fn sqlite_an_upload_restores_the_bytes_of_a_recorded_image() {
    let app = spawn_app().await;
    let blobs = BlobStore::open(&BlobUrl::Local(app.data_dir.join("blobs")), None).unwrap();
    check_an_upload_restores_the_bytes_of_a_recorded_image(app, blobs).await;
}

#[tokio::test]
async fn postgres_an_upload_restores_the_bytes_of_a_recorded_image() {
    let test = "postgres_an_upload_restores_the_bytes_of_a_recorded_image";
    let Some(db) = rubra_testkit::fresh_postgres(test).await else {
        return;
    };
    let Some(bucket) = rubra_testkit::fresh_bucket(test).await else {
        return;
    };
    let storage = bucket.storage_url("rubra");
    let endpoint = bucket.endpoint.clone();
    let app = spawn_app_with(|c| {
        c.database_url = Some(db);
        c.storage = Some(storage.clone());
        c.s3_endpoint = Some(endpoint.clone());
    })
    .await;
    let blobs = BlobStore::open(&BlobUrl::parse(&storage).unwrap(), Some(&endpoint)).unwrap();
    check_an_upload_restores_the_bytes_of_a_recorded_image(app, blobs).await;
}

#[tokio::test]
async fn a_failed_admin_key_write_leaves_the_bootstrap_to_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let args = crate::helpers::test_config(&dir);
    let data = args.data_dir.clone().unwrap();
    // Something the key cannot be written over: a folder where admin.key goes.
    std::fs::create_dir_all(data.join("admin.key").join("x")).unwrap();
    let telemetry = || {
        rubra_telemetry::init(&rubra_telemetry::TelemetryConfig {
            format: rubra_telemetry::LogFormat::Json,
            slow_ms: None,
            filter: "warn".into(),
        })
        .unwrap()
    };
    let first = Application::build(Settings::validate(args.clone()).unwrap(), telemetry()).await;
    let err = first.err().expect("the first start fails").to_string();
    assert!(err.contains("admin.key"), "{err}");
    // The operator moves the folder away: the next start makes the admin key after all.
    std::fs::remove_dir_all(data.join("admin.key")).unwrap();
    let second = Application::build(Settings::validate(args).unwrap(), telemetry())
        .await
        .unwrap();
    let key = second.admin_key().expect("the bootstrap was not used up");
    assert_eq!(
        std::fs::read_to_string(data.join("admin.key"))
            .unwrap()
            .trim(),
        key.reveal()
    );
}
