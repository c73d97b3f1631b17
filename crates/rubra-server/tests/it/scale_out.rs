//! The same API flow on the scale-out setup: PostgreSQL and S3 (skipped when not configured).

use crate::helpers::spawn_app_with;
use reqwest::Method;
use serde_json::Value;

#[tokio::test]
async fn flow_on_postgres_and_s3() {
    let test = "flow_on_postgres_and_s3";
    let Some(db) = rubra_testkit::fresh_postgres(test).await else {
        return;
    };
    let Some(bucket) = rubra_testkit::fresh_bucket(test).await else {
        return;
    };
    let app = spawn_app_with(|c| {
        c.database_url = Some(db);
        c.storage = Some(bucket.storage_url("rubra"));
        c.s3_endpoint = Some(bucket.endpoint.clone());
    })
    .await;
    let ready: Value = app
        .anon(Method::GET, "/readyz")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["database"], "postgres", "{ready}");
    assert!(
        ready["storage"].as_str().unwrap().starts_with("s3://"),
        "{ready}"
    );
    let resp = app.anon(Method::GET, "/clients").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let (_, key) = app.create_client("acme").await;
    let resp = app
        .with_key(&key, Method::GET, "/clients")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
