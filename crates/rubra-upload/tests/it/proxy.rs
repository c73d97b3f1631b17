//! A fault-injecting HTTP/1.1 proxy: it reads each request, then answers 503
//! itself, drops the connection mid-request, drops it after the server has
//! handled the request (the client never sees the answer), or forwards it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Fault probabilities, in percent per request.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Answer `503` with a JSON error without asking the server.
    pub unavailable: u64,
    /// Answer `429` with `Retry-After: 1`.
    pub rate_limited: u64,
    /// Close the connection after reading half the request.
    pub drop_mid_request: u64,
    /// Forward the request, then close without answering.
    pub drop_after_forward: u64,
}

/// What the proxy did, for the test's assertions.
#[derive(Debug, Default)]
pub struct Counts {
    /// Requests seen.
    pub requests: AtomicU64,
    /// Faults injected.
    pub faults: AtomicU64,
    /// 429s sent.
    pub rate_limited: AtomicU64,
}

/// Starts the proxy in front of `upstream` (`host:port`); returns its base URL.
pub async fn start(upstream: String, faults: Faults, seed: u64) -> (String, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let counts = Arc::new(Counts::default());
    let c = Arc::clone(&counts);
    let rng = Arc::new(AtomicU64::new(seed | 1));
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let (up, c, rng) = (upstream.clone(), Arc::clone(&c), Arc::clone(&rng));
            tokio::spawn(async move {
                let _ = serve(conn, &up, faults, &c, &rng).await;
            });
        }
    });
    (base, counts)
}

fn roll(rng: &AtomicU64) -> u64 {
    let mut z = rng.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % 100
}

/// One client connection: requests one after another (keep-alive).
async fn serve(
    mut conn: TcpStream,
    upstream: &str,
    f: Faults,
    counts: &Counts,
    rng: &AtomicU64,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let Some(head_end) = read_head(&mut conn, &mut buf).await? else {
            return Ok(());
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let len = content_length(&head);
        counts.requests.fetch_add(1, Ordering::Relaxed);
        let r = roll(rng);
        if r < f.drop_mid_request {
            counts.faults.fetch_add(1, Ordering::Relaxed);
            // Read about half of what is left, then hang up.
            let want = head_end + len / 2;
            while buf.len() < want {
                let mut chunk = [0u8; 8192];
                let n = conn.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(());
        }
        while buf.len() < head_end + len {
            let mut chunk = vec![0u8; 64 * 1024];
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let request: Vec<u8> = buf.drain(..head_end + len).collect();
        let r = r - f.drop_mid_request;
        if r < f.unavailable {
            counts.faults.fetch_add(1, Ordering::Relaxed);
            let body = r#"{"error":{"code":"unavailable","message":"injected by the test proxy"}}"#;
            let resp = format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(resp.as_bytes()).await?;
            continue;
        }
        let r = r - f.unavailable;
        if r < f.rate_limited {
            counts.faults.fetch_add(1, Ordering::Relaxed);
            counts.rate_limited.fetch_add(1, Ordering::Relaxed);
            let body =
                r#"{"error":{"code":"rate_limited","message":"injected by the test proxy"}}"#;
            let resp = format!(
                "HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(resp.as_bytes()).await?;
            continue;
        }
        let r = r - f.rate_limited;
        let answer = forward(upstream, &request).await?;
        if r < f.drop_after_forward {
            counts.faults.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        conn.write_all(&answer).await?;
    }
}

/// Reads until the end of a request head; `None` on a clean close.
async fn read_head(conn: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(p + 4));
        }
        let mut chunk = [0u8; 8192];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Sends one request on a fresh connection marked `Connection: close` and
/// returns the whole answer (read to the end).
async fn forward(upstream: &str, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let head_end = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |p| p + 2);
    let mut up = TcpStream::connect(upstream).await?;
    let head = String::from_utf8_lossy(&request[..head_end]);
    let kept: Vec<&str> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .filter(|l| !l.is_empty())
        .collect();
    let mut out = kept.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\nconnection: close\r\n");
    out.extend_from_slice(&request[head_end..]);
    up.write_all(&out).await?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer).await?;
    // The client keeps its connection to the proxy; the server's
    // `connection: close` is for the proxy's upstream side only.
    let text_end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |p| p + 2);
    let head = String::from_utf8_lossy(&answer[..text_end]).into_owned();
    let kept: Vec<&str> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .filter(|l| !l.is_empty())
        .collect();
    let mut fixed = kept.join("\r\n").into_bytes();
    fixed.extend_from_slice(b"\r\n");
    fixed.extend_from_slice(&answer[text_end..]);
    Ok(fixed)
}
