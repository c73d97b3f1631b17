//! Rate limits per client (429 `rate_limited` with `Retry-After`), an admin's per-client
//! overrides (`PATCH /clients/{id}`, stored in the database), and unknown keys remembered
//! briefly.

use crate::helpers::{TestApp, assert_error, spawn_app_with, test_config};
use reqwest::Method;
use rubra_server::{Application, ConfigArgs, Settings};
use rubra_store::{ApiKey, ClientId, NewKey, Principal};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Sends `GET /images` with `key` until the answer is not 200; returns how many were 200
/// and the refusal (panics after `max`).
async fn until_refused(app: &TestApp, key: &str, max: usize) -> (usize, reqwest::Response) {
    for ok in 0..=max {
        let resp = app
            .with_key(key, Method::GET, "/images")
            .send()
            .await
            .unwrap();
        if resp.status() != 200 {
            return (ok, resp);
        }
    }
    panic!("{max} requests in a row were let through");
}

/// The `Retry-After` of a 429 `rate_limited`, in seconds.
async fn rate_limited(resp: reqwest::Response) -> u64 {
    let retry = resp
        .headers()
        .get("retry-after")
        .expect("a 429 carries Retry-After")
        .to_str()
        .unwrap()
        .parse::<u64>()
        .expect("Retry-After is whole seconds");
    let message = assert_error(resp, 429, "rate_limited").await;
    assert!(message.contains("per second"), "{message}");
    retry
}

#[tokio::test]
async fn a_client_flooding_past_its_rate_gets_429_and_others_are_served() {
    let app = spawn_app_with(|c| {
        c.rate_limit_rps = Some(1);
        c.rate_limit_burst = Some(10);
    })
    .await;
    let (_, flood) = app.create_client("flood").await;
    let (_, polite) = app.create_client("polite").await;

    let (ok, refused) = until_refused(&app, &flood, 50).await;
    assert_eq!(ok, 10, "the burst, then refusals");
    let retry = rate_limited(refused).await;
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    // Refused before the body is read: a malformed body is not even looked at.
    let resp = app
        .with_key(&flood, Method::POST, "/events")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    rate_limited(resp).await;

    // Another client has its own bucket.
    let resp = app
        .with_key(&polite, Method::GET, "/images")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The operational endpoints are never limited, and unknown keys are not charged to anyone.
    for _ in 0..30 {
        for path in ["/healthz", "/readyz", "/metrics"] {
            let resp = app.anon(Method::GET, path).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
        }
        let resp = app
            .with_key("rbk_nobody", Method::GET, "/images")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
    }
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("rubra_rejected_requests_total{reason=\"rate_limited\"}")),
        "{metrics}"
    );

    // After Retry-After, the client is served again.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let resp = app
        .with_key(&flood, Method::GET, "/images")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn an_admin_key_flooding_is_limited_by_its_own_bucket() {
    let app = spawn_app_with(|c| {
        c.rate_limit_rps = Some(1);
        c.rate_limit_burst = Some(5);
    })
    .await;
    let (ok, refused) = until_refused(&app, &app.admin_key, 50).await;
    assert_eq!(ok, 5);
    rate_limited(refused).await;
}

async fn patch(app: &TestApp, key: &str, id: &str, body: Value) -> reqwest::Response {
    app.with_key(key, Method::PATCH, &format!("/clients/{id}"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_admin_override_raises_and_lowers_one_clients_limit() {
    // The admin's own bucket (these defaults) holds the ~15 admin calls below.
    let app = spawn_app_with(|c| {
        c.rate_limit_rps = Some(1);
        c.rate_limit_burst = Some(20);
    })
    .await;
    let admin = app.admin_key.clone();
    let (low_id, low) = app.create_client("low").await;
    let (high_id, high) = app.create_client("high").await;
    let (_, other) = app.create_client("other").await;

    // Lowered: 3 at once, not the default 20.
    let resp = patch(
        &app,
        &admin,
        &low_id,
        json!({"rate_limit_rps": 1, "rate_limit_burst": 3}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (
            body["id"].as_str(),
            &body["rate_limit_rps"],
            &body["rate_limit_burst"]
        ),
        (Some(low_id.as_str()), &json!(1), &json!(3))
    );
    let (ok, refused) = until_refused(&app, &low, 50).await;
    assert_eq!(ok, 3);
    rate_limited(refused).await;

    // Raised: 40 at once, past the default 20. Applied by this process at once.
    let resp = patch(
        &app,
        &admin,
        &high_id,
        json!({"rate_limit_rps": 1000, "rate_limit_burst": 1000}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    for _ in 0..40 {
        let resp = app
            .with_key(&high, Method::GET, "/images")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let got: Value = app
        .admin(Method::GET, &format!("/clients/{high_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&got["rate_limit_rps"], &got["rate_limit_burst"]),
        (&json!(1000), &json!(1000))
    );

    // Null: back to the default (1/s, 20), and a field left out stays as it is.
    let body: Value = patch(&app, &admin, &high_id, json!({"rate_limit_burst": null}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&body["rate_limit_rps"], &body["rate_limit_burst"]),
        (&json!(1000), &Value::Null)
    );
    let body: Value = patch(&app, &admin, &high_id, json!({"rate_limit_rps": null}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&body["rate_limit_rps"], &body["rate_limit_burst"]),
        (&Value::Null, &Value::Null)
    );
    let (ok, refused) = until_refused(&app, &high, 50).await;
    assert!(ok <= 20, "{ok} let through after the reset to the default");
    rate_limited(refused).await;

    // Values that are not whole numbers from 1 up, and unknown fields: 422.
    for bad in [
        json!({"rate_limit_rps": 0}),
        json!({"rate_limit_rps": -5}),
        json!({"rate_limit_burst": 1.5}),
        json!({"rate_limit_burst": "10"}),
        json!({"rate_limit_rps": 5_000_000_000u64}),
        json!({"rate_limit": 10}),
    ] {
        let resp = patch(&app, &admin, &low_id, bad.clone()).await;
        assert_error(resp, 422, "invalid_fields").await;
    }
    // Unknown clients: 404; a client key may not set limits, not even its own: 403.
    let resp = patch(&app, &admin, "cl_0000000000000000", json!({})).await;
    assert_error(resp, 404, "not_found").await;
    let resp = patch(&app, &admin, "nonsense", json!({})).await;
    assert_error(resp, 404, "not_found").await;
    let other_id = ClientId::generate();
    for id in [low_id.as_str(), other_id.as_str()] {
        let resp = patch(&app, &other, id, json!({"rate_limit_rps": 100000})).await;
        assert_error(resp, 403, "forbidden").await;
    }
}

/// A server on `args` (an existing data folder or database): its base URL, its admin key if
/// this start created one, and the guard that stops it.
async fn start(args: ConfigArgs) -> (String, Option<String>, tokio::sync::oneshot::Sender<()>) {
    let settings = Settings::validate(args).unwrap();
    let telemetry = rubra_telemetry::init(&rubra_telemetry::TelemetryConfig {
        format: rubra_telemetry::LogFormat::Json,
        slow_ms: None,
        filter: "warn".into(),
    })
    .unwrap();
    let app = Application::build(settings, telemetry).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let admin = app.admin_key().map(|k| k.reveal().to_owned());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        app.run_until(async move {
            let _ = stopped.await;
        })
        .await
        .unwrap()
    });
    (base, admin, stop)
}

async fn get(http: &reqwest::Client, base: &str, key: &str, path: &str) -> reqwest::Response {
    http.get(format!("{base}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

/// Requests `GET /images` until refused; how many were let through.
async fn served_before_429(http: &reqwest::Client, base: &str, key: &str) -> usize {
    for ok in 0..100 {
        let resp = get(http, base, key, "/images").await;
        if resp.status() == 429 {
            return ok;
        }
        assert_eq!(resp.status(), 200);
    }
    panic!("never refused");
}

/// Two processes on one database: an override made through one reaches the other within the
/// key cache's lifetime, and a restarted process reads it from the database.
async fn overrides_live_in_the_database(args: ConfigArgs) {
    let http = reqwest::Client::new();
    let (a, admin, stop_a) = start(args.clone()).await;
    let admin = admin.expect("the first start makes the admin key");
    let (b, second_admin, stop_b) = start(args.clone()).await;
    assert_eq!(second_admin, None);
    let created: Value = http
        .post(format!("{a}/clients"))
        .bearer_auth(&admin)
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let key = created["api_key"].as_str().unwrap();
    // B knows the key now, with the default limit.
    for _ in 0..5 {
        assert_eq!(get(&http, &b, key, "/images").await.status(), 200);
    }

    let resp = http
        .patch(format!("{a}/clients/{id}"))
        .bearer_auth(&admin)
        .json(&json!({"rate_limit_rps": 1, "rate_limit_burst": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let changed = Instant::now();
    // A applies it at once.
    assert_eq!(served_before_429(&http, &a, key).await, 2);
    // B within its key cache's lifetime (5 s), polled at 4/s: above the new 1/s.
    loop {
        let status = get(&http, &b, key, "/images").await.status();
        if status == 429 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            changed.elapsed() < Duration::from_secs(7),
            "the other process still lets the client through the old limit"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // A restarted process reads the override from the database.
    drop((stop_a, stop_b));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (c, _, _stop_c) = start(args).await;
    assert_eq!(served_before_429(&http, &c, key).await, 2);
    let got: Value = get(&http, &c, &admin, &format!("/clients/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&got["rate_limit_rps"], &got["rate_limit_burst"]),
        (&json!(1), &json!(2))
    );
}

#[tokio::test]
async fn a_rate_limit_override_reaches_other_processes_and_survives_a_restart_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    overrides_live_in_the_database(test_config(&dir)).await;
}

#[tokio::test]
async fn a_rate_limit_override_reaches_other_processes_and_survives_a_restart_on_postgres() {
    let test = "a_rate_limit_override_reaches_other_processes_and_survives_a_restart_on_postgres";
    let Some(db) = rubra_testkit::fresh_postgres(test).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_config(&dir);
    args.database_url = Some(db);
    overrides_live_in_the_database(args).await;
}

#[tokio::test]
async fn a_key_flood_of_one_unknown_key_is_answered_from_memory_until_it_exists() {
    let dir = tempfile::tempdir().unwrap();
    let args = test_config(&dir);
    let (base, admin, _stop) = start(args.clone()).await;
    let admin = admin.unwrap();
    let http = reqwest::Client::new();
    let clients: Value = get(&http, &base, &admin, "/clients")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(clients, json!({"items": [], "next_cursor": null}));

    let key = ApiKey::generate();
    for _ in 0..20 {
        assert_eq!(
            get(&http, &base, key.reveal(), "/images").await.status(),
            401
        );
    }
    // The key is stored behind the server's back (as another process would).
    let store = rubra_store::open(&Settings::validate(args).unwrap().database)
        .await
        .unwrap();
    let client = store
        .create_client("late", &rubra_store::Actor::system())
        .await
        .unwrap();
    store
        .insert_key(
            &NewKey::new(&key, Principal::Client(client.id), "late"),
            &rubra_store::Actor::system(),
        )
        .await
        .unwrap();
    let stored = Instant::now();
    // Still unknown from memory: the flood above did not ask the database each time...
    assert_eq!(
        get(&http, &base, key.reveal(), "/images").await.status(),
        401
    );
    // ...and the key works once the memory of it lapses (5 s).
    loop {
        let status = get(&http, &base, key.reveal(), "/images").await.status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 401);
        assert!(
            stored.elapsed() < Duration::from_secs(7),
            "a stored key is still refused"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Issue #18, the noisy-neighbour benchmark: a client posting 5 000-event batches as fast as
/// they were answered was never refused (its requests stayed far under the request rate), and
/// everyone's writes waited behind its batches in the single event writer.
#[tokio::test]
async fn a_flood_of_event_batches_is_refused_with_429_by_its_event_rate_and_others_are_not() {
    let app = spawn_app_with(|c| {
        // One event a second: the bucket holds its 10 000 for the whole test.
        c.rate_limit_events_per_sec = Some(1);
        c.rate_limit_events_burst = Some(10_000);
    })
    .await;
    let (_, flood) = app.create_client("flood").await;
    let (_, polite) = app.create_client("polite").await;
    let batch: Vec<Value> = (0..6_000).map(|_| json!({"red": 0.5})).collect();
    let post = |key: String, body: Vec<Value>| {
        let req = app.with_key(&key, Method::POST, "/events").json(&body);
        async move { req.send().await.unwrap() }
    };
    assert_eq!(post(flood.clone(), batch.clone()).await.status(), 201);
    // 4 000 events are left in the bucket: the next 6 000 are refused whole, to be retried
    // when the missing 2 000 have come back at one a second.
    let refused = post(flood.clone(), batch.clone()).await;
    let retry = rate_limited(refused).await;
    assert!((1_990..=2_000).contains(&retry), "Retry-After {retry}");
    // Take what is left; then a batch is refused before it is even parsed (a malformed one
    // too), so a flood's refused batches cost no parsing.
    let rest: Vec<Value> = (0..4_000).map(|_| json!({"red": 0.5})).collect();
    assert_eq!(post(flood.clone(), rest).await.status(), 201);
    let garbage = app
        .with_key(&flood, Method::POST, "/events")
        .header("content-type", "application/json")
        .body("[{\"red\": 0.5}, {")
        .send()
        .await
        .unwrap();
    rate_limited(garbage).await;
    // Nothing of the refused batches was recorded.
    let stats: Value = app
        .with_key(&flood, Method::GET, "/stats")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["total"], 10_000, "{stats}");
    // Another client has its own bucket.
    assert_eq!(post(polite, batch).await.status(), 201);
    // A burst below the largest batch is refused at start.
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_config(&dir);
    args.rate_limit_events_burst = Some(9_999);
    let err = Settings::validate(args).unwrap_err().to_string();
    assert!(err.contains("rate-limit-events-burst"), "{err}");
}
