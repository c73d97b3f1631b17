//! What the cluster tests share: starting a cluster, polling, reading rows.

use rubra_testkit::cluster::Cluster;
use serde_json::Value;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A cluster for `test` with the `rubra` binary of this build.
pub async fn cluster(test: &str, amqp: bool) -> Option<Cluster> {
    Cluster::start(test, Path::new(env!("CARGO_BIN_EXE_rubra")), amqp).await
}

/// Strings for `Cluster::spawn`.
pub fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

/// Polls `f` every 100 ms until it answers `Some`, for at most `within`.
pub async fn until<T, F, Fut>(what: &str, within: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(what, within, f, || {}).await
}

/// As [`until`], but on timeout first prints the last warnings and errors of every
/// node's log, so that a failure in CI says what the processes were doing.
pub async fn until_or_logs<T, F, Fut>(c: &Cluster, what: &str, within: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(what, within, f, || print_warnings(c)).await
}

/// The loop of [`until`]: `on_timeout` runs before the panic.
async fn poll<T, F, Fut>(what: &str, within: Duration, mut f: F, on_timeout: impl FnOnce()) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() >= end {
            on_timeout();
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The last 20 warnings and errors of each node's log, on stderr.
fn print_warnings(c: &Cluster) {
    for i in 0..c.len() {
        let logs = node_logs(c, i);
        let worth: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("\"WARN\"") || l.contains("\"ERROR\""))
            .collect();
        eprintln!(
            "== node {i} ({:?}): {} log lines, the last warnings and errors:",
            c.node(i).role(),
            logs.lines().count()
        );
        for l in &worth[worth.len().saturating_sub(20)..] {
            eprintln!("{l}");
        }
    }
}

/// A connection to the cluster's database.
pub async fn db(c: &Cluster) -> sqlx::PgConnection {
    use sqlx::Connection as _;
    sqlx::PgConnection::connect(&c.database_url())
        .await
        .unwrap()
}

/// `GET` as JSON with `key`; `None` on any failure.
pub async fn get_json(http: &reqwest::Client, url: &str, key: &str) -> Option<Value> {
    let r = http.get(url).bearer_auth(key).send().await.ok()?;
    r.json().await.ok()
}

/// The id of the client `key` belongs to (its `GET /clients` lists only itself), asked of
/// `base` until it answers, for up to 60 s.
pub async fn own_client_id(http: &reqwest::Client, base: &str, key: &str) -> String {
    until("the client's id", Duration::from_secs(60), || async {
        let v = get_json(http, &format!("{base}/clients"), key).await?;
        let list = v
            .as_array()
            .cloned()
            .or_else(|| v["items"].as_array().cloned())?;
        list.first()?["id"].as_str().map(str::to_owned)
    })
    .await
}

/// The text of every log file of node `i` so far.
pub fn node_logs(c: &Cluster, i: usize) -> String {
    let mut out = String::new();
    if let Ok(rd) = std::fs::read_dir(c.dir().join("logs")) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let role_i = name.split('-').next().unwrap_or("");
            if role_i.trim_start_matches(|ch: char| ch.is_ascii_alphabetic()) == i.to_string() {
                out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
    }
    out
}

/// An HTTP server on the cluster's host address that every process reaches: answers `POST`
/// and `GET` on any path through `handler`, and remembers which node (by source address, the
/// last octet minus 10) made each request. Answers its `host:port` and that record.
pub async fn host_server<H, Fut>(c: &Cluster, handler: H) -> (String, Arc<Mutex<Vec<usize>>>)
where
    H: Fn(usize, axum::body::Bytes) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = axum::response::Response> + Send + 'static,
{
    use axum::extract::ConnectInfo;
    use std::net::SocketAddr;
    let seen: Arc<Mutex<Vec<usize>>> = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().fallback(
        move |ConnectInfo(peer): ConnectInfo<SocketAddr>, body: axum::body::Bytes| {
            let node = match peer.ip() {
                std::net::IpAddr::V4(v4) => usize::from(v4.octets()[3]).saturating_sub(10),
                std::net::IpAddr::V6(_) => usize::MAX,
            };
            s.lock().unwrap().push(node);
            handler(node, body)
        },
    );
    let listener = tokio::net::TcpListener::bind((c.host_ip(), 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    (addr, seen)
}

/// Creates client `name` with the admin key, asking again while the answer is not 201 (a
/// loaded machine sheds with 503); answers its API key.
pub async fn make_client(http: &reqwest::Client, base: &str, admin: &str, name: &str) -> String {
    until(
        "the client to be created",
        Duration::from_secs(60),
        || async {
            let r = http
                .post(format!("{base}/clients"))
                .bearer_auth(admin)
                .json(&serde_json::json!({ "name": name }))
                .send()
                .await
                .ok()?;
            if r.status() != 201 && r.status() != 200 {
                eprintln!("POST /clients answered {}", r.status());
                return None;
            }
            let v: Value = r.json().await.ok()?;
            v["api_key"].as_str().map(str::to_owned)
        },
    )
    .await
}

/// `POST url` of `body` with `key`, asking again while the answer is a 503 or an error, under
/// one `Idempotency-Key` so that a retried creation is made once; answers the status and the
/// JSON body of the first other answer. A serve just started on a loaded box can answer 503
/// while its database pool warms up; a client is expected to retry.
pub async fn post_settled(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    body: &Value,
) -> (u16, Value) {
    let idempotency_key = format!("settled-{:016x}", fastrand::u64(..));
    until("a POST to be answered", Duration::from_secs(60), || async {
        let r = http
            .post(url)
            .bearer_auth(key)
            .header("Idempotency-Key", &idempotency_key)
            .json(body)
            .send()
            .await
            .ok()?;
        let status = r.status().as_u16();
        if status == 503 {
            eprintln!(
                "POST {url} answered 503: {}",
                r.text().await.unwrap_or_default()
            );
            return None;
        }
        Some((status, r.json().await.unwrap_or(Value::Null)))
    })
    .await
}
