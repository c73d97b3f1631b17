//! `GET /debug/profile`: a flamegraph SVG for admins, refused for everyone else.

use crate::helpers::{assert_error, spawn_app};
use reqwest::Method;

#[tokio::test]
async fn profile_returns_an_svg_to_admins_only() {
    let app = spawn_app().await;
    let (_, client_key) = app.create_client("acme").await;

    let resp = app
        .anon(Method::GET, "/debug/profile?seconds=1")
        .send()
        .await
        .unwrap();
    assert_error(resp, 401, "unauthorized").await;
    let resp = app
        .with_key(&client_key, Method::GET, "/debug/profile?seconds=1")
        .send()
        .await
        .unwrap();
    assert_error(resp, 403, "forbidden").await;
    let resp = app
        .admin(Method::GET, "/debug/profile?seconds=0")
        .send()
        .await
        .unwrap();
    assert_error(resp, 422, "invalid_seconds").await;
    let resp = app
        .admin(Method::GET, "/debug/profile?seconds=3600")
        .send()
        .await
        .unwrap();
    assert_error(resp, 422, "invalid_seconds").await;

    let resp = app
        .admin(Method::GET, "/debug/profile?seconds=1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/svg+xml");
    let body = resp.text().await.unwrap();
    assert!(body.contains("<svg"), "{}", &body[..body.len().min(300)]);
}
