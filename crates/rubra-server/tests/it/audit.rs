//! `GET /audit` over HTTP: admin actions, keys, client disabling and the create/delete of
//! subscriptions, watches and overlays, each with the key that did it and the address it came
//! from; a client reads only its own rows, without admins' keys and addresses; pages follow
//! `next_cursor`. On SQLite and on PostgreSQL.

use crate::helpers::{TestApp, assert_error, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};

async fn send(app: &TestApp, key: &str, method: Method, path: &str, body: Option<Value>) -> Value {
    let mut req = app.with_key(key, method.clone(), path);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    assert!((200..300).contains(&status), "{method} {path}: {status}");
    resp.json().await.unwrap_or(Value::Null)
}

async fn audit(app: &TestApp, key: &str, query: &str) -> Vec<Value> {
    let body = send(app, key, Method::GET, &format!("/audit?{query}"), None).await;
    body["items"].as_array().unwrap().clone()
}

fn tiny_png() -> Vec<u8> {
    let img = image::RgbaImage::from_pixel(4, 4, image::Rgba([200, 10, 10, 128]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Makes every kind of audited change, then reads the log as the admin and as the client.
async fn the_audit_log_names_who_did_what_from_where(app: TestApp) {
    let (a, a_key) = app.create_client("acme").await;
    let (b, _) = app.create_client("other").await;
    let keys = send(
        &app,
        &a_key,
        Method::GET,
        &format!("/clients/{a}/keys"),
        None,
    )
    .await;
    let a_key_id = keys["items"][0]["id"].as_str().unwrap().to_owned();
    let second = send(
        &app,
        &a_key,
        Method::POST,
        &format!("/clients/{a}/keys"),
        Some(json!({ "name": "laptop" })),
    )
    .await;
    let second_id = second["id"].as_str().unwrap().to_owned();

    let sub = send(
        &app,
        &a_key,
        Method::POST,
        "/subscriptions",
        Some(json!({ "threshold": 0.5,
                     "channel": { "type": "webhook", "url": "http://127.0.0.1:9/hook" } })),
    )
    .await;
    let sub_id = sub["id"].as_str().unwrap();
    let secret = sub["secret"].as_str().unwrap().to_owned();
    send(
        &app,
        &a_key,
        Method::DELETE,
        &format!("/subscriptions/{sub_id}"),
        None,
    )
    .await;
    let watch = send(
        &app,
        &a_key,
        Method::POST,
        "/watches",
        Some(
            json!({ "url": "http://127.0.0.1:9/doc.json", "interval_ms": 60_000,
                     "headers": { "x-token": "w4tch-s3cret" } }),
        ),
    )
    .await;
    let watch_id = watch["id"].as_str().unwrap();
    send(
        &app,
        &a_key,
        Method::DELETE,
        &format!("/watches/{watch_id}"),
        None,
    )
    .await;
    let resp = app
        .with_key(&a_key, Method::PUT, "/overlays/logo")
        .header("content-type", "image/png")
        .body(tiny_png())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    send(&app, &a_key, Method::DELETE, "/overlays/logo", None).await;
    send(
        &app,
        &a_key,
        Method::DELETE,
        &format!("/clients/{a}/keys/{second_id}"),
        None,
    )
    .await;
    for disabled in [true, false] {
        send(
            &app,
            &app.admin_key,
            Method::PATCH,
            &format!("/clients/{a}"),
            Some(json!({ "disabled": disabled })),
        )
        .await;
    }

    // The admin sees everything, oldest last.
    let rows = audit(&app, &app.admin_key, "limit=1000").await;
    let actions: Vec<&str> = rows
        .iter()
        .rev()
        .filter(|r| r["client_id"] != Value::Null)
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "client.create",
            "key.create",
            "client.create",
            "key.create",
            "key.create",
            "subscription.create",
            "subscription.delete",
            "watch.create",
            "watch.delete",
            "overlay.put",
            "overlay.delete",
            "key.revoke",
            "client.disable",
            "client.enable",
        ]
    );
    let row = |action: &str| {
        rows.iter()
            .find(|r| r["action"] == action && r["client_id"] == a.as_str())
            .unwrap_or_else(|| panic!("no {action} row"))
            .clone()
    };
    let made = row("subscription.create");
    assert_eq!(made["target"], sub_id);
    assert_eq!(
        made["actor"],
        json!({ "kind": "client", "key_id": a_key_id })
    );
    assert_eq!(made["peer"], "127.0.0.1", "from where");
    assert!(made["at"].as_str().unwrap().ends_with('Z'), "{made}");
    let created = row("client.create");
    assert_eq!(created["actor"]["kind"], "admin");
    assert!(
        created["actor"]["key_id"]
            .as_str()
            .unwrap()
            .starts_with("key_")
    );
    assert_eq!(created["peer"], "127.0.0.1");
    assert_eq!(row("key.revoke")["target"], second_id.as_str());
    assert_eq!(row("overlay.put")["target"], "logo");
    assert_eq!(row("watch.delete")["target"], watch_id);
    let text = serde_json::to_string(&rows).unwrap();
    assert!(!text.contains(&secret), "a webhook secret in the log");
    assert!(!text.contains("w4tch-s3cret"), "a watch header in the log");
    assert!(!text.contains(&a_key), "an API key in the log");

    // The client sees its own rows only, and not which admin key acted or from where.
    let own = audit(&app, &a_key, "").await;
    assert_eq!(own.len(), 12, "{own:?}");
    assert!(own.iter().all(|r| r["client_id"] == a.as_str()));
    let disabled = own
        .iter()
        .find(|r| r["action"] == "client.disable")
        .unwrap();
    assert_eq!(
        disabled["actor"],
        json!({ "kind": "admin", "key_id": null })
    );
    assert_eq!(disabled["peer"], Value::Null);
    let own_sub = own.iter().find(|r| r["action"] == "subscription.create");
    assert_eq!(own_sub.unwrap()["actor"]["key_id"], a_key_id.as_str());
    assert_eq!(audit(&app, &a_key, &format!("client={a}")).await, own);
    let resp = app
        .with_key(&a_key, Method::GET, &format!("/audit?client={b}"))
        .send()
        .await
        .unwrap();
    assert_error(resp, 404, "not_found").await;
    let by_admin = audit(&app, &app.admin_key, &format!("client={b}")).await;
    assert_eq!(by_admin.len(), 2, "B's creation and first key");

    // Pages of 4 follow next_cursor to the end, each row once.
    let mut seen = Vec::new();
    let mut query = "limit=4".to_owned();
    loop {
        let page = send(
            &app,
            &app.admin_key,
            Method::GET,
            &format!("/audit?{query}"),
            None,
        )
        .await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["seq"].clone()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => query = format!("limit=4&cursor={next}"),
            None => break,
        }
    }
    let all: Vec<Value> = rows.iter().map(|r| r["seq"].clone()).collect();
    assert_eq!(seen, all);

    let resp = app
        .admin(Method::GET, "/audit?cursor=yesterday")
        .send()
        .await
        .unwrap();
    assert_error(resp, 400, "invalid_cursor").await;
    let resp = app.anon(Method::GET, "/audit").send().await.unwrap();
    assert_eq!(resp.status(), 401);
}

async fn app_on(database_url: Option<String>) -> TestApp {
    spawn_app_with(|c| {
        c.fetch_allow = Some(vec!["127.0.0.1".into()]);
        c.database_url = database_url;
    })
    .await
}

#[tokio::test]
async fn the_audit_log_names_who_did_what_from_where_on_sqlite() {
    the_audit_log_names_who_did_what_from_where(app_on(None).await).await;
}

#[tokio::test]
async fn the_audit_log_names_who_did_what_from_where_on_postgres() {
    let Some(db) = rubra_testkit::fresh_postgres("audit_log_over_http").await else {
        return;
    };
    the_audit_log_names_who_did_what_from_where(app_on(Some(db)).await).await;
}
