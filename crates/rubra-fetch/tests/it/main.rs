//! Integration tests against a local HTTP server on port 0 whose content and ETag change:
//! revalidation, single-flight, allow-list refusals (also through redirects and DNS), size
//! limits, timeouts, `max-age`, stale-on-error.

// Tests fail loudly on the first unexpected error; that is what unwrap is for here.
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::extract::State;
use axum::http::header::{
    CACHE_CONTROL, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, LOCATION,
};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use rubra_fetch::{
    AllowList, CacheError, CachePolicy, FetchCache, FetchError, FetchPolicy, Fetcher, Outcome,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The remote site: one resource whose body and ETag the test changes, and counters.
#[derive(Default)]
struct Remote {
    content: Mutex<(Bytes, String)>,
    delay_ms: AtomicUsize,
    fail: AtomicBool,
    port: AtomicUsize,
    requests: AtomicUsize,
    full: AtomicUsize,
    not_modified: AtomicUsize,
    bytes_sent: AtomicUsize,
}

impl Remote {
    fn set(&self, body: &'static [u8], etag: &str) {
        *self.content.lock().unwrap() = (Bytes::from_static(body), format!("\"{etag}\""));
    }
    fn counts(&self) -> (usize, usize, usize, usize) {
        (
            self.requests.load(Ordering::SeqCst),
            self.full.load(Ordering::SeqCst),
            self.not_modified.load(Ordering::SeqCst),
            self.bytes_sent.load(Ordering::SeqCst),
        )
    }
}

async fn resource(State(r): State<Arc<Remote>>, h: HeaderMap) -> Response {
    r.requests.fetch_add(1, Ordering::SeqCst);
    let delay = r.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay as u64)).await;
    }
    if r.fail.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let (body, etag) = r.content.lock().unwrap().clone();
    if h.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        r.not_modified.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::NOT_MODIFIED, [(ETAG, etag)]).into_response();
    }
    r.full.fetch_add(1, Ordering::SeqCst);
    r.bytes_sent.fetch_add(body.len(), Ordering::SeqCst);
    ([(ETAG, etag)], body).into_response()
}

/// Validated by Last-Modified only: the "ETag" doubles as the date string.
async fn by_date(State(r): State<Arc<Remote>>, h: HeaderMap) -> Response {
    r.requests.fetch_add(1, Ordering::SeqCst);
    let (body, tag) = r.content.lock().unwrap().clone();
    let date = if tag.contains('2') {
        "Tue, 24 Nov 2026 10:00:00 GMT"
    } else {
        "Mon, 23 Nov 2026 10:00:00 GMT"
    };
    if h.get(IF_MODIFIED_SINCE).and_then(|v| v.to_str().ok()) == Some(date) {
        r.not_modified.fetch_add(1, Ordering::SeqCst);
        return StatusCode::NOT_MODIFIED.into_response();
    }
    r.full.fetch_add(1, Ordering::SeqCst);
    ([(LAST_MODIFIED, date)], body).into_response()
}

async fn max_age(State(r): State<Arc<Remote>>) -> Response {
    r.requests.fetch_add(1, Ordering::SeqCst);
    ([(CACHE_CONTROL, "max-age=60")], "fresh").into_response()
}

async fn redirect_in(State(r): State<Arc<Remote>>) -> Response {
    r.requests.fetch_add(1, Ordering::SeqCst);
    (StatusCode::FOUND, [(LOCATION, "/o")]).into_response()
}

async fn redirect_out(State(r): State<Arc<Remote>>) -> Response {
    r.requests.fetch_add(1, Ordering::SeqCst);
    let port = r.port.load(Ordering::SeqCst);
    let to = format!("http://localhost:{port}/o");
    (StatusCode::FOUND, [(LOCATION, to)]).into_response()
}

async fn big() -> Vec<u8> {
    vec![7u8; 2 * 1024 * 1024]
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(5)).await;
    "late"
}

async fn serve() -> (Arc<Remote>, u16) {
    let remote = Arc::new(Remote::default());
    remote.set(b"version one", "v1");
    let app = Router::new()
        .route("/o", get(resource))
        .route("/lm", get(by_date))
        .route("/max-age", get(max_age))
        .route("/redirect-in", get(redirect_in))
        .route("/redirect-out", get(redirect_out))
        .route("/big", get(big))
        .route("/slow", get(slow))
        .with_state(Arc::clone(&remote));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    remote.port.store(port as usize, Ordering::SeqCst);
    tokio::spawn(async move { axum::serve(listener, app).await });
    (remote, port)
}

fn fetcher(allow: &[&str]) -> Fetcher {
    let mut p = FetchPolicy::new(AllowList::new(allow));
    p.max_bytes = 1024 * 1024;
    p.timeout = Duration::from_millis(700);
    Fetcher::new(p).unwrap()
}

fn cache(allow: &[&str]) -> FetchCache<String> {
    FetchCache::new(fetcher(allow), CachePolicy::default())
}

fn text(b: Bytes) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|e| e.to_string())
}

#[tokio::test]
async fn changed_remote_is_used_by_the_next_request_and_304_downloads_nothing() {
    let (remote, port) = serve().await;
    let c = cache(&["127.0.0.1"]);
    let url = format!("http://127.0.0.1:{port}/o");

    let a = c.get(&url, text).await.unwrap();
    assert_eq!(
        (a.value.as_str(), a.outcome),
        ("version one", Outcome::Fetched)
    );
    assert_eq!(remote.counts(), (1, 1, 0, 11));

    for _ in 0..3 {
        let b = c.get(&url, text).await.unwrap();
        assert_eq!(
            (b.value.as_str(), b.outcome),
            ("version one", Outcome::Revalidated)
        );
    }
    // Three conditional requests, all 304, no byte of body sent again.
    assert_eq!(remote.counts(), (4, 1, 3, 11));

    remote.set(b"version two!", "v2");
    let d = c.get(&url, text).await.unwrap();
    assert_eq!(
        (d.value.as_str(), d.outcome),
        ("version two!", Outcome::Fetched)
    );
    assert_eq!(remote.counts(), (5, 2, 3, 23));
}

#[tokio::test]
async fn last_modified_alone_revalidates() {
    let (remote, port) = serve().await;
    let c = cache(&["127.0.0.1"]);
    let url = format!("http://127.0.0.1:{port}/lm");
    assert_eq!(c.get(&url, text).await.unwrap().outcome, Outcome::Fetched);
    assert_eq!(
        c.get(&url, text).await.unwrap().outcome,
        Outcome::Revalidated
    );
    remote.set(b"version two", "v2");
    let got = c.get(&url, text).await.unwrap();
    assert_eq!(
        (got.value.as_str(), got.outcome),
        ("version two", Outcome::Fetched)
    );
    assert_eq!(remote.counts().0, 3);
}

#[tokio::test]
async fn concurrent_requests_share_one_fetch() {
    let (remote, port) = serve().await;
    remote.delay_ms.store(300, Ordering::SeqCst);
    let c = Arc::new(cache(&["127.0.0.1"]));
    let url = format!("http://127.0.0.1:{port}/o");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (c, url) = (Arc::clone(&c), url.clone());
            tokio::spawn(async move { c.get(&url, text).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        let got = t.await.unwrap();
        assert_eq!(got.value.as_str(), "version one");
        outcomes.push(got.outcome);
    }
    assert_eq!(remote.counts(), (1, 1, 0, 11), "one fetch for 20 requests");
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Fetched).count(),
        1
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Shared).count(),
        19
    );
}

#[tokio::test]
async fn hosts_off_the_list_are_refused_before_any_request() {
    let (remote, port) = serve().await;
    let f = fetcher(&["127.0.0.1"]);
    for url in [
        format!("http://localhost:{port}/o"),
        format!("http://127.0.0.2:{port}/o"),
        format!("http://[::1]:{port}/o"),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "https://example.com/x.png".to_owned(),
    ] {
        let err = f.get(&url).await.unwrap_err();
        assert!(matches!(err, FetchError::Forbidden(_)), "{url}: {err}");
        assert_eq!(err.http_status(), 403);
    }
    for url in [
        "ftp://127.0.0.1/x",
        "not a url",
        "http://user:pw@127.0.0.1/o",
    ] {
        let err = f.get(url).await.unwrap_err();
        assert!(matches!(err, FetchError::InvalidUrl(_)), "{url}: {err}");
    }
    assert_eq!(remote.counts().0, 0);
    // A cache refuses the same way and keeps nothing.
    let c = cache(&["127.0.0.1"]);
    let err = c
        .get(&format!("http://localhost:{port}/o"), text)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CacheError::Fetch(FetchError::Forbidden(_))),
        "{err}"
    );
    assert!(c.is_empty());
}

#[tokio::test]
async fn redirects_are_checked_hop_by_hop() {
    let (remote, port) = serve().await;
    let f = fetcher(&["127.0.0.1"]);
    let ok = f
        .get(&format!("http://127.0.0.1:{port}/redirect-in"))
        .await
        .unwrap();
    assert_eq!(&ok.body[..], b"version one");
    assert_eq!(ok.url.path(), "/o");
    let err = f
        .get(&format!("http://127.0.0.1:{port}/redirect-out"))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Forbidden(_)), "{err}");
    // /redirect-in, /o, /redirect-out — and never the off-list hop.
    assert_eq!(remote.counts().0, 3);
}

#[tokio::test]
async fn wildcard_hosts_never_reach_internal_addresses() {
    let (remote, port) = serve().await;
    let f = fetcher(&["*"]);
    // An IP literal is checked before connecting; a name is checked by the resolver.
    for url in [
        format!("http://127.0.0.1:{port}/o"),
        format!("http://localhost:{port}/o"),
    ] {
        let err = f.get(&url).await.unwrap_err();
        assert!(matches!(err, FetchError::Forbidden(_)), "{url}: {err}");
    }
    assert_eq!(remote.counts().0, 0);
    // Listed exactly, the same name may.
    let f = fetcher(&["localhost"]);
    let ok = f.get(&format!("http://localhost:{port}/o")).await.unwrap();
    assert_eq!(&ok.body[..], b"version one");
}

#[tokio::test]
async fn size_limit_and_timeout() {
    let (_remote, port) = serve().await;
    let f = fetcher(&["127.0.0.1"]);
    let err = f
        .get(&format!("http://127.0.0.1:{port}/big"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge { limit: 1048576 }),
        "{err}"
    );
    let started = std::time::Instant::now();
    let err = f
        .get(&format!("http://127.0.0.1:{port}/slow"))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Timeout), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn max_age_skips_revalidation_while_fresh() {
    let (remote, port) = serve().await;
    let c = cache(&["127.0.0.1"]);
    let url = format!("http://127.0.0.1:{port}/max-age");
    assert_eq!(c.get(&url, text).await.unwrap().outcome, Outcome::Fetched);
    assert_eq!(c.get(&url, text).await.unwrap().outcome, Outcome::Shared);
    assert_eq!(remote.counts().0, 1);
}

#[tokio::test]
async fn stale_copy_is_served_while_the_remote_is_down() {
    let (remote, port) = serve().await;
    let c = cache(&["127.0.0.1"]);
    let url = format!("http://127.0.0.1:{port}/o");
    c.get(&url, text).await.unwrap();
    remote.fail.store(true, Ordering::SeqCst);
    let got = c.get(&url, text).await.unwrap();
    assert_eq!(
        (got.value.as_str(), got.outcome),
        ("version one", Outcome::Stale)
    );
    // Without a copy, the failure is reported.
    let fresh = cache(&["127.0.0.1"]);
    let err = fresh.get(&url, text).await.unwrap_err();
    assert!(
        matches!(err, CacheError::Fetch(FetchError::Status(503))),
        "{err}"
    );
}

#[tokio::test]
async fn unparsable_content_is_not_cached() {
    let (remote, port) = serve().await;
    let c: FetchCache<String> = cache(&["127.0.0.1"]);
    let url = format!("http://127.0.0.1:{port}/o");
    let err = c
        .get(&url, |_| Err::<String, _>("not an image".to_owned()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CacheError::Parse(ref m) if m == "not an image"),
        "{err}"
    );
    // The next request downloads again (no validators were kept) and parses.
    let ok = c.get(&url, text).await.unwrap();
    assert_eq!(ok.outcome, Outcome::Fetched);
    assert_eq!(remote.counts().1, 2);
}

#[tokio::test]
async fn new_bytes_pass_the_admit_hook_before_parsing_and_a_refusal_keeps_nothing() {
    let (remote, port) = serve().await;
    let c: FetchCache<String> = cache(&["127.0.0.1"]);
    let url = format!("http://127.0.0.1:{port}/o");
    let parsed = Arc::new(AtomicUsize::new(0));
    let counting = |parsed: &Arc<AtomicUsize>| {
        let parsed = Arc::clone(parsed);
        move |b: Bytes| {
            parsed.fetch_add(1, Ordering::SeqCst);
            text(b)
        }
    };
    // Refused by what the hook sees of the body: not parsed, not kept.
    let err = c
        .get_admitted(
            &url,
            |b: &Bytes| {
                let seen = b.clone();
                async move { Err::<(), _>(format!("no room for {} bytes", seen.len())) }
            },
            counting(&parsed),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, CacheError::Refused(ref m) if m == "no room for 11 bytes"),
        "{err}"
    );
    assert_eq!(parsed.load(Ordering::SeqCst), 0);
    // Admitted: the permit is held while parsing and let go afterwards.
    let permit = Arc::new(());
    let held = Arc::clone(&permit);
    let got = c
        .get_admitted(
            &url,
            move |_: &Bytes| async move { Ok::<_, String>(held) },
            counting(&parsed),
        )
        .await
        .unwrap();
    assert_eq!(
        (got.value.as_str(), got.outcome),
        ("version one", Outcome::Fetched)
    );
    assert_eq!(parsed.load(Ordering::SeqCst), 1);
    assert_eq!(Arc::strong_count(&permit), 1, "the permit was let go");
    // Revalidated (304): the hook is not asked again.
    let got = c
        .get_admitted(
            &url,
            |_: &Bytes| async { Err::<(), _>("asked".to_owned()) },
            counting(&parsed),
        )
        .await
        .unwrap();
    assert_eq!(got.outcome, Outcome::Revalidated);
    assert_eq!(
        remote.counts().1,
        2,
        "the refused body was downloaded, not kept"
    );
}

/// A server on `ip` that records the `authorization` header of every request (None when
/// absent) and answers `/to?url=…` with a 302 to that URL, anything else with "here".
async fn header_recorder(ip: &str) -> (Arc<Mutex<Vec<Option<String>>>>, String) {
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let s = Arc::clone(&seen);
    let app = Router::new().fallback(move |uri: axum::http::Uri, h: HeaderMap| {
        let s = Arc::clone(&s);
        async move {
            let auth = h
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            s.lock().unwrap().push(auth);
            match uri.query().and_then(|q| q.strip_prefix("url=")) {
                Some(to) => (StatusCode::FOUND, [(LOCATION, to.to_owned())]).into_response(),
                None => "here".into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (seen, base)
}

#[tokio::test]
async fn watch_headers_are_not_forwarded_across_a_redirect_to_another_host() {
    let (first, a) = header_recorder("127.0.0.1").await;
    let (second, b) = header_recorder("127.0.0.2").await;
    let f = fetcher(&["127.0.0.1", "127.0.0.2"]);
    let token = vec![("authorization".to_owned(), "Bearer s3cret".to_owned())];
    let got = f
        .fetch_with(&format!("{a}/start?url={b}/doc"), None, &token)
        .await
        .unwrap();
    assert!(matches!(got, rubra_fetch::Fetched::Modified(_)));
    assert_eq!(*first.lock().unwrap(), [Some("Bearer s3cret".to_owned())]);
    assert_eq!(*second.lock().unwrap(), [None], "the token left its host");
    // Another port of the same host is another origin too, and once off the origin the
    // headers stay off, even when a later hop comes back.
    let (third, c) = header_recorder("127.0.0.1").await;
    first.lock().unwrap().clear();
    f.fetch_with(&format!("{a}/start?url={c}/to?url={a}/doc"), None, &token)
        .await
        .unwrap();
    assert_eq!(*third.lock().unwrap(), [None]);
    assert_eq!(
        *first.lock().unwrap(),
        [Some("Bearer s3cret".to_owned()), None]
    );
    // A redirect within the origin keeps them.
    first.lock().unwrap().clear();
    f.fetch_with(&format!("{a}/start?url=/doc"), None, &token)
        .await
        .unwrap();
    assert_eq!(
        *first.lock().unwrap(),
        [
            Some("Bearer s3cret".to_owned()),
            Some("Bearer s3cret".to_owned())
        ]
    );
}

#[tokio::test]
async fn a_host_port_allow_entry_allows_that_port_only() {
    let (remote, port) = serve().await;
    let (_, other) = header_recorder("127.0.0.1").await;
    let f = fetcher(&[&format!("127.0.0.1:{port}")]);
    let ok = f.get(&format!("http://127.0.0.1:{port}/o")).await.unwrap();
    assert_eq!(&ok.body[..], b"version one");
    let err = f.get(&format!("{other}/o")).await.unwrap_err();
    assert!(matches!(err, FetchError::Forbidden(_)), "{err}");
    // A redirect to another port of the listed host is refused too.
    let err = f
        .get(&format!("http://127.0.0.1:{port}/redirect-out"))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Forbidden(_)), "{err}");
    // A name with a port: listed exactly on that port, so it may resolve to loopback.
    let f = fetcher(&[&format!("localhost:{port}")]);
    let ok = f.get(&format!("http://localhost:{port}/o")).await.unwrap();
    assert_eq!(&ok.body[..], b"version one");
    let other_port = other.rsplit(':').next().unwrap();
    let err = f
        .get(&format!("http://localhost:{other_port}/o"))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Forbidden(_)), "{err}");
    // /o, /redirect-out, /o by name: never the refused hops.
    assert_eq!(remote.counts().0, 3);
}
