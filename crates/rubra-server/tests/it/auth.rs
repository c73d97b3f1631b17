//! Keys, clients and isolation.

use crate::helpers::{assert_error, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn a_request_without_a_key_gets_401_json() {
    let app = spawn_app().await;
    let resp = app.anon(Method::GET, "/clients").send().await.unwrap();
    assert_error(resp, 401, "unauthorized").await;
}

#[tokio::test]
async fn an_unknown_or_malformed_key_gets_401() {
    let app = spawn_app().await;
    let resp = app
        .with_key("rbk_nope", Method::GET, "/clients")
        .send()
        .await
        .unwrap();
    assert_error(resp, 401, "unauthorized").await;
    let resp = app
        .anon(Method::GET, "/clients")
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_error(resp, 401, "unauthorized").await;
}

#[tokio::test]
async fn admin_creates_a_client_whose_key_works() {
    let app = spawn_app().await;
    let resp = app
        .admin(Method::POST, "/clients")
        .json(&json!({"name": "acme"}))
        .send()
        .await;
    let resp = resp.unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["name"], "acme");
    let key = body["api_key"].as_str().unwrap();
    assert!(key.starts_with("rbk_"));
    let resp = app
        .with_key(key, Method::GET, "/clients")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let list: Value = resp.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["id"], body["id"]);
}

#[tokio::test]
async fn a_client_key_cannot_create_clients() {
    let app = spawn_app().await;
    let (_, key) = app.create_client("acme").await;
    let resp = app
        .with_key(&key, Method::POST, "/clients")
        .json(&json!({"name": "evil"}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 403, "forbidden").await;
}

#[tokio::test]
async fn another_clients_id_is_404_not_its_data() {
    let app = spawn_app().await;
    let (_, key_a) = app.create_client("acme").await;
    let (id_b, _) = app.create_client("globex").await;
    let resp = app
        .with_key(&key_a, Method::GET, &format!("/clients/{id_b}"))
        .send()
        .await;
    assert_error(resp.unwrap(), 404, "not_found").await;
    // Admins see it.
    let resp = app
        .admin(Method::GET, &format!("/clients/{id_b}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn duplicate_client_name_is_409() {
    let app = spawn_app().await;
    app.create_client("acme").await;
    let resp = app
        .admin(Method::POST, "/clients")
        .json(&json!({"name": "acme"}))
        .send()
        .await;
    assert_error(resp.unwrap(), 409, "conflict").await;
}
