//! `poll` against a real local HTTP source: conditional requests, identical bytes, changes,
//! failures that keep the baseline, request headers and the size limit.

// Tests fail loudly on the first unexpected error; that is what unwrap is for here.
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rubra_fetch::{AllowList, FetchError, FetchPolicy, Fetcher, Validators};
use rubra_watch::{Op, Polled, Source, WatchError, poll};
use std::sync::{Arc, Mutex};

/// What the source serves: (status, body, etag).
type Served = Arc<Mutex<(u16, String, Option<String>, Option<String>)>>;

async fn serve(State(s): State<Served>, headers: HeaderMap) -> Response {
    let (status, body, etag, _) = s.lock().unwrap().clone();
    s.lock().unwrap().3 = headers
        .get("x-api-key")
        .map(|v| v.to_str().unwrap().to_owned());
    if status != 200 {
        return StatusCode::from_u16(status).unwrap().into_response();
    }
    if let Some(tag) = &etag
        && headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == tag.as_bytes())
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut resp = body.into_response();
    if let Some(tag) = etag {
        resp.headers_mut()
            .insert(header::ETAG, tag.parse().unwrap());
    }
    resp
}

async fn source() -> (Served, String) {
    let served: Served = Arc::new(Mutex::new((200, String::new(), None, None)));
    let app = Router::new()
        .route("/odds", get(serve))
        .with_state(served.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/odds", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (served, url)
}

fn fetcher(max_bytes: usize) -> Fetcher {
    let mut policy = FetchPolicy::new(AllowList::new(["127.0.0.1"]));
    policy.max_bytes = max_bytes;
    Fetcher::new(policy).unwrap()
}

fn set(s: &Served, status: u16, body: &str, etag: Option<&str>) {
    let mut g = s.lock().unwrap();
    g.0 = status;
    g.1 = body.to_owned();
    g.2 = etag.map(str::to_owned);
}

#[tokio::test]
async fn first_poll_is_the_baseline_then_304_then_changes() {
    let (s, url) = source().await;
    let f = fetcher(1 << 20);
    let src = Source {
        url,
        headers: vec![("x-api-key".into(), "k1".into())],
        ..Source::default()
    };
    set(&s, 200, r#"{"odds":{"home":1.85}}"#, Some("\"v1\""));
    let Polled::New {
        doc,
        validators,
        changes,
    } = poll(&f, &src, None, &Validators::default()).await.unwrap()
    else {
        panic!("the first poll gives the document")
    };
    assert!(changes.is_empty());
    assert_eq!(validators.etag.as_deref(), Some("\"v1\""));
    assert_eq!(s.lock().unwrap().3.as_deref(), Some("k1"), "header sent");

    let again = poll(&f, &src, Some(&doc), &validators).await.unwrap();
    assert_eq!(again, Polled::Unchanged);

    set(&s, 200, r#"{"odds":{"home":1.90}}"#, Some("\"v2\""));
    let Polled::New { changes, .. } = poll(&f, &src, Some(&doc), &validators).await.unwrap() else {
        panic!("a new version")
    };
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].path, "/odds/home");
    assert_eq!(changes[0].op, Op::Replace);
    assert_eq!(
        (changes[0].old.as_deref(), changes[0].new.as_deref()),
        (Some("1.85"), Some("1.90"))
    );
}

#[tokio::test]
async fn identical_bytes_without_validators_are_unchanged() {
    let (s, url) = source().await;
    let f = fetcher(1 << 20);
    let src = Source {
        url,
        ..Source::default()
    };
    set(&s, 200, "[1,2,3]", None);
    let got = poll(&f, &src, Some("[1,2,3]"), &Validators::default())
        .await
        .unwrap();
    assert_eq!(got, Polled::Unchanged);
    // Same value, other formatting: a new baseline, no changes.
    set(&s, 200, "[1, 2, 3]", None);
    let Polled::New { changes, .. } = poll(&f, &src, Some("[1,2,3]"), &Validators::default())
        .await
        .unwrap()
    else {
        panic!("new bytes")
    };
    assert!(changes.is_empty());
}

#[tokio::test]
async fn failures_name_the_cause() {
    let (s, url) = source().await;
    let src = Source {
        url,
        ..Source::default()
    };
    set(&s, 503, "", None);
    let err = poll(&fetcher(1 << 20), &src, Some("{}"), &Validators::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, WatchError::Fetch(FetchError::Status(503))),
        "{err}"
    );
    set(&s, 200, r#"{"a": [1, }"#, None);
    let err = poll(&fetcher(1 << 20), &src, Some("{}"), &Validators::default())
        .await
        .unwrap_err();
    assert!(matches!(err, WatchError::Json(_)), "{err}");
    assert!(err.to_string().contains("line 1"), "{err}");
    set(&s, 200, &"1".repeat(100), None);
    let err = poll(&fetcher(64), &src, None, &Validators::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, WatchError::Fetch(FetchError::TooLarge { .. })),
        "{err}"
    );
}
