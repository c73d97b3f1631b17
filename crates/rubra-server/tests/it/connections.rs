//! Clients without a key cannot hold the server's connections or flood its key lookups: an
//! HTTP/2 connection with no request open is closed after the header timeout whatever it
//! sends, one address has at most `max-connections-per-ip` connections, and requests without
//! a valid key are rate-limited per address before the database is asked about their key.

use crate::helpers::{assert_error, spawn_app_with};
use reqwest::Method;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The HTTP/2 preface followed by an empty SETTINGS frame.
const H2_OPENING: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

/// A PING frame (8 bytes of payload, stream 0).
const H2_PING: &[u8] = b"\0\0\x08\x06\0\0\0\0\0rubra-pg";

/// Another loopback address than the server's clients usually come from.
const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Connects to `addr` from `from`.
async fn connect_from(from: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Sends `GET /healthz` on `s` and reads the status line; `None` when the server closed the
/// connection instead of answering.
async fn healthz_on(s: &mut TcpStream) -> Option<String> {
    // The server may have closed it already: a failed write is a closed connection.
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .ok()?;
    let mut buf = [0u8; 12];
    match tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf)).await {
        Ok(Ok(_)) => Some(String::from_utf8_lossy(&buf).into_owned()),
        Ok(Err(_)) => None,
        Err(_) => panic!("neither answered nor closed"),
    }
}

#[tokio::test]
async fn http2_connections_that_only_ping_are_closed() {
    // The idle timeout stays at its default (60 s): PINGs must not keep the connection open
    // past the header timeout when it has no request open.
    let app = spawn_app_with(|c| c.header_timeout_ms = Some(1000)).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let stream = TcpStream::connect(&addr).await.unwrap();
    let (mut rx, mut tx) = stream.into_split();
    tx.write_all(H2_OPENING).await.unwrap();
    let started = Instant::now();
    let pinger = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if tx.write_all(H2_PING).await.is_err() {
                return;
            }
        }
    });
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), rx.read_to_end(&mut sink)).await;
    pinger.abort();
    assert!(
        closed.is_ok(),
        "an HTTP/2 connection sending only PINGs was still open after 5 s"
    );
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let app = spawn_app_with(|c| {
        c.max_connections = Some(5);
        c.max_connections_per_ip = Some(3);
    })
    .await;
    let addr: SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert_eq!(healthz_on(&mut s).await.as_deref(), Some("HTTP/1.1 200"));
        held.push(s);
    }
    // A fourth connection from the same address is closed at once, not served.
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert_eq!(
            healthz_on(&mut s).await,
            None,
            "a connection beyond the per-address cap was served"
        );
    }
    // Another address still gets in, at once.
    let http = reqwest::Client::builder()
        .local_address(OTHER)
        .build()
        .unwrap();
    let resp = tokio::time::timeout(
        Duration::from_secs(3),
        http.get(format!("{}/healthz", app.base)).send(),
    )
    .await
    .expect("another address waited behind the first one's connections")
    .unwrap();
    assert_eq!(resp.status(), 200);
    let mut other = connect_from(OTHER, addr).await;
    assert_eq!(
        healthz_on(&mut other).await.as_deref(),
        Some("HTTP/1.1 200")
    );

    // A closed connection gives its address's place back.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = TcpStream::connect(addr).await.unwrap();
        if healthz_on(&mut s).await.as_deref() == Some("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed place was never given back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("rubra_rejected_requests_total")
                && l.contains("reason=\"connections_per_ip\"")),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_flood_of_random_keys_is_limited_per_address_before_the_database() {
    let app = spawn_app_with(|c| {
        c.rate_limit_anonymous_rps = Some(1);
        c.rate_limit_anonymous_burst = Some(5);
    })
    .await;
    // A valid key is not charged to its address's anonymous bucket.
    for _ in 0..10 {
        let resp = app.admin(Method::GET, "/clients").send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    let random_key = || rubra_store::ApiKey::generate().reveal().to_owned();
    for _ in 0..5 {
        let resp = app
            .with_key(&random_key(), Method::GET, "/clients")
            .send()
            .await
            .unwrap();
        assert_error(resp, 401, "unauthorized").await;
    }
    // The bucket is empty: new random keys are refused without being looked up.
    for _ in 0..20 {
        let resp = app
            .with_key(&random_key(), Method::GET, "/clients")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 429);
        let retry: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&retry), "Retry-After: {retry}");
        assert_error(resp, 429, "rate_limited").await;
    }
    // So is a request with no key at all.
    let resp = app.anon(Method::GET, "/clients").send().await.unwrap();
    assert_error(resp, 429, "rate_limited").await;
    // The probes and metrics stay open, and a known key still works from that address.
    for path in ["/healthz", "/readyz", "/metrics", "/"] {
        let resp = app.anon(Method::GET, path).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let resp = app.admin(Method::GET, "/clients").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // Another address has its own bucket.
    let other = reqwest::Client::builder()
        .local_address(OTHER)
        .build()
        .unwrap();
    let resp = other
        .get(format!("{}/clients", app.base))
        .bearer_auth(random_key())
        .send()
        .await
        .unwrap();
    assert_error(resp, 401, "unauthorized").await;
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("rubra_rejected_requests_total")
                && l.contains("reason=\"rate_limited\"")),
        "{metrics}"
    );
}
