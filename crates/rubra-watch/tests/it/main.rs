//! `poll` against a real local HTTP source: conditional requests, identical bytes, changes,
//! failures that keep the baseline, request headers and the size limit.

// Tests fail loudly on the first unexpected error; that is what unwrap is for here.
#![allow(clippy::unwrap_used)]

mod prop_pointer;

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

/// Attack: a source serving a 100 000-deep document (`[[[[…]]]]` or `{"a":{"a":…}}`) fails
/// the poll with a clear depth error, first version or not; nothing overflows a stack.
#[tokio::test]
async fn deep_json_attack_fails_the_poll_with_a_depth_error() {
    let (s, url) = source().await;
    let f = fetcher(1 << 20);
    let n = 100_000;
    let mut src = Source {
        url,
        ..Source::default()
    };
    let arrays = "[".repeat(n) + &"]".repeat(n);
    let objects = r#"{"a":"#.repeat(n) + "1" + &"}".repeat(n);
    // 200 levels: past serde_json's recursion limit (128), within the comparer's (512).
    let two_hundred = r#"{"a":"#.repeat(200) + "1" + &"}".repeat(200);
    for (body, baseline, pointer) in [
        (&arrays, None, None),
        (&arrays, Some("[]"), None),
        (&objects, Some(r#"{"a":1}"#), Some("/a")),
        (&two_hundred, None, Some("/a/a")),
        (&two_hundred, Some(r#"{"a":{"a":2}}"#), Some("/a/a")),
    ] {
        set(&s, 200, body, None);
        src.compare.pointer = pointer.map(str::to_owned);
        let err = poll(&f, &src, baseline, &Validators::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), "json_too_deep", "{err}");
        assert!(
            err.to_string().contains("depth limit of 100 levels"),
            "{err}"
        );
    }
}

/// The deepest document a watch accepts is compared with a pointer, and every change,
/// in the list form notifications carry, reads back with serde_json (limit 128 levels).
#[tokio::test]
async fn the_deepest_watched_document_is_compared_and_its_changes_read_back() {
    let (s, url) = source().await;
    let f = fetcher(1 << 20);
    // With a one-level leaf, `n` levels in all.
    let n = rubra_watch::MAX_DEPTH - 1;
    let doc = |leaf: &str| r#"{"a":"#.repeat(n) + leaf + &"}".repeat(n);
    let src = Source {
        url,
        compare: rubra_watch::Compare {
            pointer: Some("/a".into()),
            key: None,
        },
        ..Source::default()
    };
    set(&s, 200, &doc("[1]"), None);
    assert!(matches!(
        poll(&f, &src, None, &Validators::default()).await.unwrap(),
        Polled::New { .. }
    ));
    let old = doc("1");
    let Polled::New { changes, .. } = poll(&f, &src, Some(&old), &Validators::default())
        .await
        .unwrap()
    else {
        panic!("a new version")
    };
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].path, "/a".repeat(n));
    // A change at the root holds the whole document: the deepest value there is.
    let whole = rubra_watch::changes("1", &doc("[1]"), &rubra_watch::Compare::default()).unwrap();
    for c in changes.iter().chain(&whole) {
        let list = format!(
            r#"[{{"seq":1,"path":"","op":"replace","old":{},"new":{}}}]"#,
            c.old.as_deref().unwrap_or("null"),
            c.new.as_deref().unwrap_or("null")
        );
        serde_json::from_str::<serde_json::Value>(&list).expect("reads back");
    }
}
