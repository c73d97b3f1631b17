//! `GET /openapi.json`: served without a key, the same document `rubra openapi` prints, and
//! in step with the router — every operation it names is routed, and no other method is.

use crate::helpers::spawn_app;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The methods an operation of the document may have (HEAD is answered by every GET too).
const METHODS: [&str; 6] = ["get", "put", "post", "delete", "patch", "head"];

/// `path` with every `{param}` filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| if seg.starts_with('{') { "x1" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

/// True when the router has no handler for `method` on `path`: the fallback's 404 `route
/// not found`, or 405.
async fn unrouted(resp: reqwest::Response, method: &Method) -> bool {
    match resp.status() {
        StatusCode::METHOD_NOT_ALLOWED => true,
        StatusCode::NOT_FOUND if method == Method::HEAD => true,
        StatusCode::NOT_FOUND => {
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            body["error"]["message"] == "route not found"
        }
        _ => false,
    }
}

#[tokio::test]
async fn openapi_json_is_served_without_a_key_as_the_generated_document() {
    let app = spawn_app().await;
    let resp = app.anon(Method::GET, "/openapi.json").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let served: Value = resp.json().await.unwrap();
    let generated: Value = serde_json::from_str(rubra_server::openapi_json()).unwrap();
    assert_eq!(served, generated);
    assert_eq!(served["openapi"], "3.1.0");
    assert_eq!(
        served["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_no_undocumented_method_is() {
    let app = spawn_app().await;
    let doc: Value = serde_json::from_str(rubra_server::openapi_json()).unwrap();
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() > 30, "{} paths", paths.len());
    let mut missing = Vec::new();
    let mut extra = Vec::new();
    for (path, item) in paths {
        let url = concrete(path);
        let documented: Vec<&str> = METHODS
            .into_iter()
            .filter(|m| item.get(*m).is_some())
            .collect();
        for m in METHODS {
            // Every GET also answers HEAD; the document lists HEAD only where it has a handler
            // of its own.
            if m == "head" && !documented.contains(&"head") {
                continue;
            }
            let method = Method::from_bytes(m.to_ascii_uppercase().as_bytes()).unwrap();
            // No key: a routed handler refuses it (401) before doing anything, except the
            // public ones, which answer cheaply.
            let resp = app.anon(method.clone(), &url).send().await.unwrap();
            let status = resp.status();
            let unrouted = unrouted(resp, &method).await;
            if documented.contains(&m) && unrouted {
                missing.push(format!("{m} {path} ({status})"));
            }
            if !documented.contains(&m) && !unrouted {
                extra.push(format!("{m} {path} ({status})"));
            }
        }
    }
    assert!(missing.is_empty(), "documented but not routed: {missing:?}");
    assert!(extra.is_empty(), "routed but not documented: {extra:?}");
}

#[tokio::test]
async fn a_path_the_document_lacks_is_not_routed() {
    let app = spawn_app().await;
    let doc: Value = serde_json::from_str(rubra_server::openapi_json()).unwrap();
    assert!(doc["paths"].get("/nowhere").is_none());
    let resp = app.anon(Method::GET, "/nowhere").send().await.unwrap();
    assert!(unrouted(resp, &Method::GET).await);
}

#[tokio::test]
async fn openapi_document_validates_as_openapi_3_1() {
    // `openapi-spec-validator` (PyPI); scripts/test.sh installs it under target/py.
    let Ok(validator) = std::env::var("RUBRA_TEST_OPENAPI_VALIDATOR") else {
        assert!(
            std::env::var("RUBRA_TEST_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "openapi-spec-validator required but RUBRA_TEST_OPENAPI_VALIDATOR is not set"
        );
        eprintln!(
            "SKIPPED openapi_document_validates_as_openapi_3_1: needs openapi-spec-validator; \
             set RUBRA_TEST_OPENAPI_VALIDATOR or run scripts/test.sh"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, rubra_server::openapi_json()).unwrap();
    let out = std::process::Command::new(&validator)
        .arg(&file)
        .output()
        .expect("openapi-spec-validator runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
