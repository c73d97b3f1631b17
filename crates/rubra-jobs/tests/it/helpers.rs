//! Shared test plumbing: the S3 endpoint (or a skip), buckets, CSV fixtures,
//! and a fault-injecting TCP proxy.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use rubra_jobs::{LocalRoot, RetryPolicy, RunEnv, S3Allow, S3Config, SumOptions, Summary};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The S3 endpoint to test against, or `None` after printing why the test
/// is skipped (a panic when `RUBRA_TEST_REQUIRE_SERVICES=1`).
pub fn s3_endpoint(test: &str) -> Option<String> {
    match std::env::var("RUBRA_TEST_S3_ENDPOINT") {
        Ok(e) if !e.is_empty() => Some(e.trim_end_matches('/').to_owned()),
        _ => {
            let msg = format!(
                "SKIPPED {test}: needs an S3 server; set RUBRA_TEST_S3_ENDPOINT or run scripts/test.sh"
            );
            if std::env::var("RUBRA_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!("{msg}");
            }
            println!("{msg}");
            None
        }
    }
}

/// An environment pointed at `endpoint`, with quick retries for tests.
pub fn env_for(endpoint: &str) -> RunEnv {
    let mut env = RunEnv::new(S3Config {
        endpoint: Some(endpoint.to_owned()),
        allow_http: true,
        region: Some("us-east-1".into()),
    });
    env.retry = RetryPolicy {
        max_attempts: 8,
        backoff_base: Duration::from_millis(10),
        backoff_cap: Duration::from_millis(100),
    };
    env.request_timeout = Duration::from_secs(5);
    env.stall_timeout = Duration::from_millis(500);
    env
}

/// [`env_for`] with the whole of `bucket` allowed.
pub fn env_allowing(endpoint: &str, bucket: &str) -> RunEnv {
    let mut env = env_for(endpoint);
    env.sources.s3_allow = S3Allow::parse(&[bucket]).expect("allow-list");
    env
}

/// An environment whose local root is `root` (no S3 source allowed).
pub fn env_in(root: &std::path::Path) -> RunEnv {
    let mut env = env_for("http://127.0.0.1:1");
    env.sources.local_root = Some(LocalRoot::open(root).expect("local root"));
    env
}

/// A fresh bucket with a unique name, created with an unsigned PUT.
pub async fn bucket(endpoint: &str, prefix: &str) -> String {
    let name = format!("{prefix}-{:08x}", fastrand::u32(..));
    let hostport = endpoint.trim_start_matches("http://");
    let mut s = TcpStream::connect(hostport).await.expect("connect to S3");
    let req = format!(
        "PUT /{name} HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("send");
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.expect("read");
    let head = String::from_utf8_lossy(&resp);
    assert!(head.starts_with("HTTP/1.1 200"), "create bucket: {head}");
    name
}

/// Uploads `data` to `bucket/key` directly (not through a proxy).
pub async fn upload(endpoint: &str, bucket: &str, key: &str, data: Vec<u8>) {
    let env = env_for(endpoint);
    let store = env.s3_store(bucket).expect("store");
    store
        .put(&ObjectPath::from(key), data.into())
        .await
        .expect("upload");
}

/// A CSV of `rows` rows × 20 columns with integers, decimals, quotes, empty
/// cells and CRLF line ends; `seed` varies the values.
pub fn csv(rows: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = Vec::with_capacity(rows * 120);
    let header: Vec<String> = (1..=20).map(|c| format!("col{c}")).collect();
    out.extend_from_slice(header.join(",").as_bytes());
    out.extend_from_slice(b"\r\n");
    for _ in 0..rows {
        for c in 0..20 {
            if c > 0 {
                out.push(b',');
            }
            let cell = match rng.u8(..10) {
                0 => String::new(),
                1 => format!("\"{}.{:02}\"", rng.i32(-9999..9999), rng.u8(..100)),
                2 => "\"a, \"\"quoted\"\"\nline\"".to_owned(),
                3..=5 => format!("{}", rng.i64(-1_000_000..1_000_000)),
                _ => format!("{}.{:02}", rng.u32(..100_000), rng.u8(..100)),
            };
            let cell = if c % 10 == 9 && cell.contains('a') {
                "7".to_owned()
            } else {
                cell
            };
            out.extend_from_slice(cell.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The reference sums of `data` with the default options.
pub fn expected(data: &[u8]) -> Summary {
    rubra_csvsum::sum_bytes(
        data,
        &SumOptions::default(),
        &rubra_csvsum::Control::default(),
    )
    .expect("reference sum")
}

/// A future run by the proxy before it drops a connection.
pub type Hook = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// The fault for connections past the end of the script.
type DefaultFault = Arc<Mutex<Option<fn() -> Fault>>>;

/// What the proxy does to the first response of one connection.
pub enum Fault {
    /// Forward everything.
    Pass,
    /// Close the connection after this many response-body bytes.
    DropAfter(usize),
    /// Answer `503 SlowDown` with an S3 XML error, without asking the server.
    SlowDown,
    /// After this many body bytes, send nothing for a while, then go on.
    StallAfter(usize, Duration),
    /// Like `DropAfter`, but run the hook (e.g. replace the object) first.
    DropAfterThen(usize, Hook),
}

/// A TCP proxy in front of the S3 server that applies one scripted fault per
/// new connection (then `default` once the script is used up).
pub struct Proxy {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    script: Arc<Mutex<VecDeque<Fault>>>,
    default: DefaultFault,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
}

impl Proxy {
    /// Starts a proxy to `upstream` (`http://host:port`) with a script of faults.
    pub async fn start(upstream: &str, script: Vec<Fault>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let default: DefaultFault = Arc::new(Mutex::new(None));
        let connections = Arc::new(AtomicUsize::new(0));
        let (s, d, n) = (script.clone(), default.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                n.fetch_add(1, Ordering::SeqCst);
                let fault = s
                    .lock()
                    .expect("script")
                    .pop_front()
                    .or_else(|| d.lock().expect("default").map(|f| f()))
                    .unwrap_or(Fault::Pass);
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let _ = serve(client, &upstream, fault).await;
                });
            }
        });
        Self {
            endpoint,
            script,
            default,
            connections,
        }
    }

    /// The fault for every connection once the script is used up.
    pub fn set_default(&self, fault: fn() -> Fault) {
        *self.default.lock().expect("default") = Some(fault);
    }

    /// Scripted faults not yet used.
    pub fn remaining(&self) -> usize {
        self.script.lock().expect("script").len()
    }
}

async fn serve(mut client: TcpStream, upstream: &str, fault: Fault) -> std::io::Result<()> {
    if let Fault::SlowDown = fault {
        // Read the request head, answer 503 and close.
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = client.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            head.extend_from_slice(&buf[..n]);
        }
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
            <Message>Please reduce your request rate.</Message><RequestId>fault</RequestId></Error>";
        let resp = format!(
            "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        client.write_all(resp.as_bytes()).await?;
        client.shutdown().await?;
        return Ok(());
    }
    let server = TcpStream::connect(upstream).await?;
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
        let _ = sw.shutdown().await;
    });
    let (limit, stall) = match &fault {
        Fault::DropAfter(n) | Fault::DropAfterThen(n, _) => (Some(*n), None),
        Fault::StallAfter(n, d) => (Some(*n), Some(*d)),
        Fault::Pass | Fault::SlowDown => (None, None),
    };
    let mut hook = match fault {
        Fault::DropAfterThen(_, h) => Some(h),
        _ => None,
    };
    let mut head_seen = Vec::new();
    let mut in_body = false;
    let mut body_sent = 0usize;
    let mut faulted = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = sr.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let mut data = &buf[..n];
        if !in_body {
            // Forward the head untouched; count body bytes after it.
            let old = head_seen.len();
            head_seen.extend_from_slice(data);
            if let Some(p) = head_seen.windows(4).position(|w| w == b"\r\n\r\n") {
                let head_len = p + 4 - old;
                cw.write_all(&data[..head_len]).await?;
                data = &data[head_len..];
                in_body = true;
            } else {
                cw.write_all(data).await?;
                continue;
            }
        }
        match limit {
            Some(limit) if !faulted && body_sent + data.len() >= limit => {
                let first = limit - body_sent;
                cw.write_all(&data[..first]).await?;
                cw.flush().await?;
                faulted = true;
                if let Some(d) = stall {
                    tokio::time::sleep(d).await;
                    cw.write_all(&data[first..]).await?;
                    body_sent += data.len();
                } else {
                    if let Some(h) = hook.take() {
                        h().await;
                    }
                    up.abort();
                    return Ok(());
                }
            }
            _ => {
                cw.write_all(data).await?;
                body_sent += data.len();
            }
        }
    }
    let _ = cw.shutdown().await;
    Ok(())
}
