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

#[tokio::test]
async fn every_list_is_items_and_next_cursor_with_limit_and_cursor() {
    let doc: Value = serde_json::from_str(rubra_server::openapi_json()).unwrap();
    let resolve = |schema: &Value| -> Value {
        match schema["$ref"].as_str() {
            Some(r) => doc["components"]["schemas"][r.rsplit('/').next().unwrap()].clone(),
            None => schema.clone(),
        }
    };
    let mut lists = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(op) = item.get("get") else { continue };
        let schema = &op["responses"]["200"]["content"]["application/json"]["schema"];
        let body = resolve(schema);
        let props = &body["properties"];
        if body["type"] == "array" || props.get("items").is_some() {
            lists += 1;
            assert!(
                props.get("items").is_some() && props.get("next_cursor").is_some(),
                "GET {path} answers {body}"
            );
            let params: Vec<&str> = op["parameters"]
                .as_array()
                .map(|ps| ps.iter().filter_map(|p| p["name"].as_str()).collect())
                .unwrap_or_default();
            for p in ["limit", "cursor"] {
                assert!(params.contains(&p), "GET {path} lacks {p}: {params:?}");
            }
        }
    }
    assert!(lists >= 10, "{lists} lists");
}

#[tokio::test]
async fn clients_page_by_limit_and_cursor_with_rfc3339_ms_times() {
    let app = spawn_app().await;
    for name in ["a", "b", "c"] {
        app.create_client(name).await;
        // Clients made in the same millisecond are ordered by their random ids (seen in a CI
        // rehearsal: a, c, b); a few milliseconds apart, "oldest first" is the names' order.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let get = |q: String| {
        let app = &app;
        async move {
            let resp = app
                .admin(Method::GET, &format!("/clients{q}"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.unwrap()
        }
    };
    let p1 = get("?limit=2".into()).await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    let cursor = p1["next_cursor"]
        .as_str()
        .expect("a full page has a next_cursor");
    let p2 = get(format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(p2["items"].as_array().unwrap().len(), 1);
    assert!(p2["next_cursor"].is_null());
    let names: Vec<&str> = p1["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2["items"].as_array().unwrap())
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c"], "oldest first, each once");
    // RFC 3339, UTC, milliseconds: `2026-12-06T17:20:59.742Z`.
    let created = p2["items"][0]["created_at"].as_str().unwrap();
    assert_eq!(created.len(), 24, "{created}");
    assert!(
        created.ends_with('Z') && created.as_bytes()[19] == b'.',
        "{created}"
    );
    let resp = app
        .admin(Method::GET, "/clients?limit=0")
        .send()
        .await
        .unwrap();
    crate::helpers::assert_error(resp, 400, "invalid_query").await;
}

/// The parameter `name` of `GET path` in the document.
fn get_param(doc: &Value, path: &str, name: &str) -> Value {
    doc["paths"][path]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("GET {path} has no {name}"))
        .clone()
}

// Schemathesis, first run: `GET /jobs?state=<any string>` was a schema-valid request the
// server refused (400 invalid_query); the document now names the states it takes.
#[tokio::test]
async fn jobs_state_filter_takes_every_state_the_document_names_and_no_other() {
    let app = spawn_app().await;
    let (_, key) = app.create_client("acme").await;
    let doc: Value = serde_json::from_str(rubra_server::openapi_json()).unwrap();
    let pattern = get_param(&doc, "/jobs", "state")["schema"]["pattern"]
        .as_str()
        .unwrap()
        .to_owned();
    let states = pattern
        .strip_prefix("^(")
        .and_then(|p| p.strip_suffix(")?$"))
        .expect("an alternation of states");
    let states: Vec<&str> = states.split('|').collect();
    assert_eq!(states.len(), 5, "{pattern}");
    for s in states.iter().chain([&""]) {
        let resp = app
            .with_key(&key, Method::GET, &format!("/jobs?state={s}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "state={s}");
    }
    let resp = app
        .with_key(&key, Method::GET, "/jobs?state=done")
        .send()
        .await
        .unwrap();
    crate::helpers::assert_error(resp, 400, "invalid_query").await;
}

// Schemathesis: `GET /audit?limit=2147483648` and `GET /notifications?limit=…` above the
// documented maximum were answered 200 (clamped to 1000) where every other list refuses them.
#[tokio::test]
async fn audit_and_notifications_refuse_a_limit_outside_1_to_1000_like_every_list() {
    let app = spawn_app().await;
    let (_, key) = app.create_client("acme").await;
    let doc: Value = serde_json::from_str(rubra_server::openapi_json()).unwrap();
    for path in ["/audit", "/notifications"] {
        let schema = &get_param(&doc, path, "limit")["schema"];
        assert_eq!(schema["minimum"], 1, "{path}: {schema}");
        assert_eq!(schema["maximum"], 1000, "{path}: {schema}");
        for limit in ["1", "1000"] {
            let resp = app
                .with_key(&key, Method::GET, &format!("{path}?limit={limit}"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{path}?limit={limit}");
        }
        for limit in ["0", "1001", "2147483648"] {
            let resp = app
                .with_key(&key, Method::GET, &format!("{path}?limit={limit}"))
                .send()
                .await
                .unwrap();
            crate::helpers::assert_error(resp, 400, "invalid_query").await;
        }
    }
}

// Schemathesis: `GET /notifications/stream?last_event_id=<not a seq>` was 200 when a
// `Last-Event-ID` header came too (the query was never read), 400 without one.
#[tokio::test]
async fn a_bad_last_event_id_query_is_refused_even_beside_a_last_event_id_header() {
    let app = spawn_app().await;
    let (_, key) = app.create_client("acme").await;
    let resp = app
        .with_key(&key, Method::GET, "/notifications/stream?last_event_id=x")
        .header("last-event-id", "0")
        .send()
        .await
        .unwrap();
    crate::helpers::assert_error(resp, 400, "invalid_last_event_id").await;
}

/// Issue #21: Schemathesis's stateful phase followed 4 of 45 inferred links and none from the
/// creating POSTs; each now links its 201 to the GET and DELETE of the item it made.
#[tokio::test]
async fn each_creating_post_links_its_answer_to_the_get_and_delete_of_the_item() {
    let app = spawn_app().await;
    let doc: Value = serde_json::from_str(rubra_server::openapi_json()).unwrap();
    for (collection, status, methods) in [
        ("/clients", "201", &["get"][..]),
        ("/jobs", "202", &["get", "delete"][..]),
        ("/subscriptions", "201", &["get", "delete"][..]),
        ("/watches", "201", &["get", "delete"][..]),
    ] {
        let links = &doc["paths"][collection]["post"]["responses"][status]["links"];
        let item = &doc["paths"][format!("{collection}/{{id}}")];
        for &method in methods {
            let link = method;
            assert_eq!(
                links[link]["operationId"], item[method]["operationId"],
                "{collection}: {links}"
            );
            assert_eq!(links[link]["parameters"]["id"], "$response.body#/id");
        }
    }
    // Followed as a client would: the id from the 201's body gets and deletes the item.
    let (_, key) = app.create_client("acme").await;
    let resp = app
        .with_key(&key, Method::POST, "/subscriptions")
        .json(&serde_json::json!({"threshold": 0.5, "channel": {"type": "stream"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let made: Value = resp.json().await.unwrap();
    let id = made["id"].as_str().unwrap();
    let path = format!("/subscriptions/{id}");
    let got = app.with_key(&key, Method::GET, &path).send().await.unwrap();
    assert_eq!(got.status(), 200);
    let gone = app
        .with_key(&key, Method::DELETE, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204);
}
