//! The operational endpoints.

use crate::helpers::spawn_app;
use reqwest::Method;
use serde_json::Value;

#[tokio::test]
async fn healthz_answers_without_a_key() {
    let app = spawn_app().await;
    let resp = app.anon(Method::GET, "/healthz").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_checks_database_and_storage() {
    let app = spawn_app().await;
    let resp = app.anon(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["database"], "sqlite");
}

#[tokio::test]
async fn metrics_count_requests_per_route_template() {
    let app = spawn_app().await;
    let (id, key) = app.create_client("acme").await;
    let resp = app
        .with_key(&key, Method::GET, &format!("/clients/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = app.metrics().await;
    assert!(text.contains("rubra_http_requests_total"), "{text}");
    assert!(
        text.contains("route=\"/clients/{id}\""),
        "route template, not the concrete path"
    );
    assert!(
        text.contains("rubra_http_request_duration_seconds"),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_show_the_database_pool() {
    let app = spawn_app().await;
    let text = app.metrics().await;
    // Sampled as the server starts, then every 5 s: open, idle and the most it opens.
    for state in ["open", "idle", "max"] {
        assert!(
            text.contains(&format!("rubra_db_pool_connections{{state=\"{state}\"}}")),
            "{state}: {text}"
        );
    }
}

#[tokio::test]
async fn admin_key_file_is_private_and_made_once() {
    let app = spawn_app().await;
    let path = app.data_dir.join("admin.key");
    let stored = std::fs::read_to_string(&path).unwrap();
    assert_eq!(stored.trim(), app.admin_key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[tokio::test]
async fn the_dashboard_page_is_served_at_the_root() {
    let app = spawn_app().await;
    let resp = app.anon(Method::GET, "/").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let body = resp.text().await.unwrap();
    assert!(body.contains("<title>Rubra</title>") && body.contains("/assets/app."));
}
