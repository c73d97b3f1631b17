//! Bad input always gets a clear JSON error, never a panic or a plain-text body.

use crate::helpers::{assert_error, spawn_app, spawn_app_with};
use reqwest::Method;

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    let resp = app
        .admin(Method::POST, "/clients")
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_error(resp, 400, "malformed_json").await;
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = spawn_app().await;
    let resp = app
        .admin(Method::POST, "/clients")
        .header("content-type", "text/plain")
        .body("{\"name\": \"acme\"}")
        .send()
        .await
        .unwrap();
    assert_error(resp, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn valid_json_with_invalid_values_is_422() {
    let app = spawn_app().await;
    for body in [
        r#"{"name": 5}"#,
        r#"{"nom": "x"}"#,
        r#"{"name": "has spaces"}"#,
        r#"{"name": ""}"#,
    ] {
        let resp = app
            .admin(Method::POST, "/clients")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 422, "{body}");
    }
}

#[tokio::test]
async fn oversized_body_is_413() {
    let app = spawn_app_with(|c| c.max_body_bytes = Some(1024)).await;
    let big = format!("{{\"name\": \"{}\"}}", "a".repeat(4096));
    let resp = app
        .admin(Method::POST, "/clients")
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_error(resp, 413, "body_too_large").await;
}

#[tokio::test]
async fn unknown_route_and_wrong_method_are_json() {
    let app = spawn_app().await;
    let resp = app
        .admin(Method::GET, "/no/such/route")
        .send()
        .await
        .unwrap();
    assert_error(resp, 404, "not_found").await;
    let resp = app.admin(Method::DELETE, "/healthz").send().await.unwrap();
    assert_error(resp, 405, "method_not_allowed").await;
}
