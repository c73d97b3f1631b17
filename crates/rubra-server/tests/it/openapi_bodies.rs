//! The creating bodies' rules in `/openapi.json` agree with what the server takes: a value the
//! document allows is accepted, one it refuses is refused. Issue #21: Schemathesis's stateful
//! phase never got past the POST of jobs, subscriptions and watches because the document
//! allowed bodies the server refused (types of any text, Viber fields of any length, header
//! maps of any size, a subscription with neither threshold nor types).

use crate::helpers::{TestApp, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};

fn doc() -> Value {
    serde_json::from_str(rubra_server::openapi_json()).unwrap()
}

/// The component schema `name`; an `allOf` is given as its first (the fields') part.
fn fields(doc: &Value, name: &str) -> Value {
    let schema = &doc["components"]["schemas"][name];
    match schema.get("allOf") {
        Some(parts) => parts[0].clone(),
        None => schema.clone(),
    }
}

/// The document's `pattern`, anchored as JSON Schema means it only when it says so.
fn pattern(schema: &Value) -> regex_lite::Regex {
    let p = schema["pattern"]
        .as_str()
        .unwrap_or_else(|| panic!("no pattern in {schema}"));
    regex_lite::Regex::new(p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn max(schema: &Value, key: &str) -> usize {
    schema[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {schema}")) as usize
}

/// Whether `POST path` with `body` succeeds (any 2xx) or is refused (a 4xx); anything else
/// fails the test.
async fn accepted(app: &TestApp, key: &str, path: &str, body: &Value) -> bool {
    let resp = app
        .with_key(key, Method::POST, path)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    assert!(
        status.is_success() || status.is_client_error(),
        "POST {path} {body}: {status} {}",
        resp.text().await.unwrap_or_default()
    );
    status.is_success()
}

fn stream(types: Value) -> Value {
    json!({"types": types, "channel": {"type": "stream"}})
}

#[tokio::test]
async fn subscription_types_viber_fields_and_threshold_or_types_are_documented_as_enforced() {
    let app = spawn_app_with(|c| c.max_subscriptions_per_client = Some(10_000)).await;
    let (_, key) = app.create_client("acme").await;
    let doc = doc();
    let body = fields(&doc, "CreateSubscription");
    let types = &body["properties"]["types"];
    let (most, longest) = (max(types, "maxItems"), max(&types["items"], "maxLength"));
    assert_eq!(types["minItems"], 1, "{types}");
    let post = |b: Value| {
        let (app, key) = (&app, &key);
        async move { accepted(app, key, "/subscriptions", &b).await }
    };
    assert!(post(stream(json!(vec!["a"; most]))).await);
    assert!(!post(stream(json!(vec!["a"; most + 1]))).await);
    assert!(!post(stream(json!([]))).await);
    assert!(post(stream(json!(["a".repeat(longest)]))).await);
    assert!(!post(stream(json!(["a".repeat(longest + 1)]))).await);
    let type_pattern = pattern(&types["items"]);
    for t in [
        "a", "a.b", "a-b_c.D9", "a.*", "a.b.*", "*", "a*", ".a", "a.", "a..b", "*.a", "a.*.b", "é",
        "a b", "",
    ] {
        assert_eq!(
            post(stream(json!([t]))).await,
            type_pattern.is_match(t),
            "type pattern {t:?}: the document's {type_pattern}"
        );
    }

    // Neither a threshold nor types: refused, and the document requires one of them.
    assert!(!post(json!({"channel": {"type": "stream"}})).await);
    assert!(!post(json!({"threshold": null, "types": null, "channel": {"type": "stream"}})).await);
    let either = &doc["components"]["schemas"]["CreateSubscription"]["allOf"][1]["anyOf"];
    let required: Vec<&str> = either
        .as_array()
        .unwrap_or_else(|| panic!("no anyOf: {either}"))
        .iter()
        .map(|b| b["required"][0].as_str().unwrap())
        .collect();
    assert_eq!(required, ["threshold", "types"]);
    assert!(post(json!({"threshold": 0.5, "channel": {"type": "stream"}})).await);

    // Viber: 1 to 256 bytes, not only white space.
    let viber = doc["components"]["schemas"]["ChannelIn"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["properties"]["type"]["enum"][0] == "viber")
        .expect("a viber channel")
        .clone();
    let receiver = &viber["properties"]["receiver"];
    let longest = max(receiver, "maxLength");
    let channel = |receiver: String| json!({"threshold": 0.5, "channel": {"type": "viber", "receiver": receiver, "auth_token": "t"}});
    assert!(post(channel("r".repeat(longest))).await);
    assert!(!post(channel("r".repeat(longest + 1))).await);
    let not_blank = pattern(receiver);
    for r in [" ", "\t", " x "] {
        assert_eq!(
            post(channel(r.into())).await,
            not_blank.is_match(r),
            "{r:?}"
        );
    }
}

#[tokio::test]
async fn watch_headers_and_subscription_ids_are_documented_as_enforced() {
    let app = spawn_app_with(|c| c.fetch_allow = Some(vec!["127.0.0.1".into()])).await;
    let (_, key) = app.create_client("acme").await;
    let doc = doc();
    let body = fields(&doc, "CreateWatch");
    let headers = &body["properties"]["headers"];
    let most = max(headers, "maxProperties");
    let url = format!("{}/healthz", app.base);
    let watch = |headers: Value| json!({"url": url, "interval_ms": 86_400_000, "headers": headers});
    let many = |n: usize| -> Value {
        (0..n)
            .map(|i| (format!("x-h{i}"), json!("v")))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    assert!(accepted(&app, &key, "/watches", &watch(many(most))).await);
    assert!(!accepted(&app, &key, "/watches", &watch(many(most + 1))).await);
    // Names: tokens, not the poller's own (any case); regex-lite has no look-ahead, so the
    // reserved names are read from the pattern's `(?!…)` part.
    let names = headers["propertyNames"]["pattern"].as_str().unwrap();
    for reserved in ["Host", "CONTENT-LENGTH", "if-none-match"] {
        let any_case: String = reserved
            .chars()
            .map(|c| {
                if c.is_ascii_alphabetic() {
                    format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
                } else {
                    c.to_string()
                }
            })
            .collect();
        assert!(names.contains(&any_case), "{reserved} in {names}");
        let h = json!({ reserved: "x" });
        assert!(
            !accepted(&app, &key, "/watches", &watch(h)).await,
            "{reserved}"
        );
    }
    let token = regex_lite::Regex::new(&format!(
        "^{}$",
        names.rsplit_once(")$)").unwrap().1.trim_end_matches('$')
    ))
    .unwrap();
    let value = pattern(&headers["additionalProperties"]);
    for (name, v) in [
        ("x-a", "b"),
        ("x a", "b"),
        ("x-a", "tab\tok"),
        ("x-a", "line\nend"),
        ("x-a", "é"),
        ("x:a", "b"),
    ] {
        let documented = token.is_match(name) && value.is_match(v);
        let h = json!({ name: v });
        assert_eq!(
            accepted(&app, &key, "/watches", &watch(h)).await,
            documented,
            "{name:?}: {v:?}"
        );
    }
    let sub = pattern(&body["properties"]["subscription_id"]);
    assert!(sub.is_match("sub_0123456789abcdef") && !sub.is_match("sub_x"));
}

#[tokio::test]
async fn job_delimiters_and_message_fields_are_documented_as_enforced() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("x.csv"), b"a\n1\n").unwrap();
    let path = root.path().to_owned();
    let app = spawn_app_with(move |c| {
        c.jobs_local_root = Some(path);
        c.job_workers = Some(0);
    })
    .await;
    let (_, key) = app.create_client("acme").await;
    let doc = doc();
    let delimiter = pattern(&fields(&doc, "SubmitBody")["properties"]["delimiter"]);
    let mut delimiters: Vec<String> = [0u8, 9, 10, 13, 34, 44, 59, 127]
        .iter()
        .map(|b| char::from(*b).to_string())
        .collect();
    delimiters.extend(["é", "ab", ""].map(String::from));
    for d in delimiters {
        let body = json!({"source": "x.csv", "delimiter": d});
        assert_eq!(
            accepted(&app, &key, "/jobs", &body).await,
            delimiter.is_match(&d),
            "delimiter {d:?}: the document's {delimiter}"
        );
    }

    let message = fields(&doc, "Message");
    let kind = pattern(&message["properties"]["type"]);
    let id = pattern(&message["properties"]["id"]);
    for (t, i) in [
        ("a.b", "tx-1"),
        ("a..b", "tx-1"),
        ("a.*", "tx-1"),
        ("a", "tx\u{7}"),
        ("a", "tx\u{85}"),
        ("a", "tx é"),
    ] {
        let body = json!({"type": t, "id": i});
        assert_eq!(
            accepted(&app, &key, "/messages", &body).await,
            kind.is_match(t) && id.is_match(i),
            "{body}"
        );
    }
}

// JSON Schema 2020-12 counts a number with a zero fraction (`1000.0`) as an integer, so the
// document's `"type": "integer"` allowed `{"interval_ms": 1000.0}`; the server refused it.
#[tokio::test]
async fn integral_floats_are_taken_where_the_document_says_integer() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("x.csv"), b"a\n1\n").unwrap();
    let path = root.path().to_owned();
    let app = spawn_app_with(move |c| {
        c.jobs_local_root = Some(path);
        c.job_workers = Some(0);
        c.fetch_allow = Some(vec!["127.0.0.1".into()]);
    })
    .await;
    let (_, key) = app.create_client("acme").await;
    let doc = doc();
    assert_eq!(
        fields(&doc, "CreateWatch")["properties"]["interval_ms"]["type"][0],
        "integer"
    );
    let url = format!("{}/healthz", app.base);
    for (path, whole, half) in [
        (
            "/watches",
            json!({"url": url, "interval_ms": 1000.0}),
            json!({"url": url, "interval_ms": 1000.5}),
        ),
        (
            "/jobs",
            json!({"source": "x.csv", "step": 2.0}),
            json!({"source": "x.csv", "step": 2.5}),
        ),
        (
            "/events",
            json!([{"red": 0.5, "ts": 1_700_000_000_000.0}]),
            json!([{"red": 0.5, "ts": 1_700_000_000_000.5}]),
        ),
    ] {
        assert!(accepted(&app, &key, path, &whole).await, "{path} {whole}");
        assert!(!accepted(&app, &key, path, &half).await, "{path} {half}");
    }
}

// Schemathesis, admin pass: `PATCH /clients/{id}` with `[null, null]` was 200 — serde takes
// a struct's fields from a JSON array in order — where the document asks for an object.
#[tokio::test]
async fn a_json_array_is_not_taken_for_an_object_body() {
    let app = spawn_app_with(|_| {}).await;
    let (id, key) = app.create_client("acme").await;
    let resp = app
        .admin(Method::PATCH, &format!("/clients/{id}"))
        .json(&json!([null, null]))
        .send()
        .await
        .unwrap();
    crate::helpers::assert_error(resp, 422, "invalid_fields").await;
    // Nested too: `{"quotas": [null, null]}` was 200.
    let resp = app
        .admin(Method::PATCH, &format!("/clients/{id}"))
        .json(&json!({"quotas": [null, null]}))
        .send()
        .await
        .unwrap();
    crate::helpers::assert_error(resp, 422, "invalid_fields").await;
    let body = json!([0.5, null, {"type": "stream"}]);
    assert!(!accepted(&app, &key, "/subscriptions", &body).await);
    // The same for the optional body of a key (`POST /admin/keys` with `[null, null]` was 201).
    let resp = app
        .admin(Method::POST, "/admin/keys")
        .json(&json!([null, null]))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
}

// Schemathesis, admin pass: `PATCH /clients/{id}` with `"quotas": {"overlays": 668265.0}` was
// refused, an integer to JSON Schema.
#[tokio::test]
async fn integral_floats_are_taken_in_a_client_patch() {
    let app = spawn_app_with(|_| {}).await;
    let (id, _) = app.create_client("acme").await;
    let patch = |body: Value| {
        let app = &app;
        let path = format!("/clients/{id}");
        async move {
            app.admin(Method::PATCH, &path)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let whole = json!({"rate_limit_rps": 10.0, "quotas": {"overlays": 5.0, "watches": 3}});
    assert_eq!(patch(whole).await, 200);
    assert_eq!(patch(json!({"quotas": {"overlays": 5.5}})).await, 422);
    assert_eq!(patch(json!({"rate_limit_rps": 0.0})).await, 422);
    // Admin pass: a quota past the document's int64 (9223372036854775808) was 200.
    assert_eq!(
        patch(json!({"quotas": {"watches": 9_223_372_036_854_775_808_u64}})).await,
        422
    );
    assert_eq!(patch(json!({"quotas": {"watches": i64::MAX}})).await, 200);
    assert_eq!(
        patch(json!({"rate_limit_rps": null, "quotas": {"overlays": null}})).await,
        200
    );
}
