//! HTTPS for the API (`--tls-cert`, `--tls-key`): HTTP/1.1 and HTTP/2 by ALPN, the header
//! timeout covering the TLS handshake, and the certificate re-read on SIGHUP while the open
//! connections go on.
//!
//! A test binary of its own because it sends SIGHUP to its own process: every server here
//! hooks the signal before it is sent, and no other test shares the process.
#![allow(clippy::unwrap_used)]

use axum::body::Body;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rubra_server::{Application, ConfigArgs, Settings};
use rubra_telemetry::{LogFormat, TelemetryConfig};
use rubra_testkit::tls::{ServerCert, TestCa};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A running HTTPS server; dropping it stops the server.
struct TlsApp {
    addr: SocketAddr,
    cert_file: PathBuf,
    key_file: PathBuf,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

fn args(dir: &tempfile::TempDir) -> ConfigArgs {
    ConfigArgs {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        log_format: Some("json".into()),
        log_filter: Some("warn".into()),
        tls_cert: Some(dir.path().join("tls.crt")),
        tls_key: Some(dir.path().join("tls.key")),
        ..ConfigArgs::default()
    }
}

fn telemetry() -> rubra_telemetry::Telemetry {
    rubra_telemetry::init(&TelemetryConfig {
        format: LogFormat::Json,
        slow_ms: None,
        filter: "warn".into(),
    })
    .expect("telemetry")
}

/// Starts a server serving `cert`, with `tweak` applied to its settings.
async fn spawn_tls(cert: &ServerCert, tweak: impl FnOnce(&mut ConfigArgs)) -> TlsApp {
    let dir = tempfile::tempdir().unwrap();
    let mut args = args(&dir);
    tweak(&mut args);
    let cert_file = dir.path().join("tls.crt");
    let key_file = dir.path().join("tls.key");
    std::fs::write(&cert_file, &cert.cert_pem).unwrap();
    std::fs::write(&key_file, &cert.key_pem).unwrap();
    let settings = Settings::validate(args).expect("valid settings");
    let app = Application::build(settings, telemetry())
        .await
        .expect("app builds");
    assert_eq!(app.scheme(), "https");
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        app.run_until(async {
            let _ = stopped.await;
        })
        .await
        .expect("server runs");
    });
    TlsApp {
        addr,
        cert_file,
        key_file,
        _stop: stop,
        _dir: dir,
    }
}

/// A TLS client that trusts `ca` only and offers `alpn`.
fn client(ca: &TestCa, alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

async fn connect(addr: SocketAddr, tls: &TlsConnector) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tls.connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// The certificate the server presented on `stream`.
fn presented(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("a certificate")[0]
        .clone()
        .into_owned()
}

fn der(cert: &ServerCert) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap()
}

fn healthz() -> Request<Body> {
    Request::get("https://localhost/healthz")
        .header("host", "localhost")
        .body(Body::empty())
        .unwrap()
}

/// An HTTP/1.1 connection over `stream`; requests go through the returned sender.
async fn http1(stream: TlsStream<TcpStream>) -> hyper::client::conn::http1::SendRequest<Body> {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

#[tokio::test]
async fn https_serves_http1_and_http2_chosen_by_alpn() {
    let ca = TestCa::new("test CA");
    let app = spawn_tls(&ca.issue(&["localhost"]), |_| {}).await;

    let stream = connect(app.addr, &client(&ca, &[b"http/1.1"]))
        .await
        .expect("handshake with a client that trusts the CA");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut h1 = http1(stream).await;
    let res = h1.send_request(healthz()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), hyper::Version::HTTP_11);

    let stream = connect(app.addr, &client(&ca, &[b"h2", b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let res = h2.send_request(healthz()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), hyper::Version::HTTP_2);

    // A client that trusts another CA refuses the server.
    let err = connect(app.addr, &client(&TestCa::new("other CA"), &[b"http/1.1"]))
        .await
        .expect_err("another CA");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    // Plain HTTP to the HTTPS port gets no answer in plain text.
    let mut plain = TcpStream::connect(app.addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut buf))
        .await
        .expect("closed");
    assert!(
        !buf.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
}

/// How long until the server closes `stream`, which sends nothing more (at most 10 s).
async fn closed_after(mut stream: TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            // An alert, then the close.
            Ok(Ok(_)) => {}
            Err(_) => panic!("the server still holds the connection after 10 s"),
        }
    }
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_cut_at_the_header_timeout() {
    let ca = TestCa::new("test CA");
    let app = spawn_tls(&ca.issue(&["localhost"]), |a| {
        a.header_timeout_ms = Some(1000);
    })
    .await;

    // Connects and says nothing.
    let silent = TcpStream::connect(app.addr).await.unwrap();
    // Starts a ClientHello record (type 22, TLS 1.0, 512 bytes long) and never finishes it.
    let mut partial = TcpStream::connect(app.addr).await.unwrap();
    partial.write_all(&[22, 3, 1, 2, 0, 1]).await.unwrap();

    let (silent, partial) = tokio::join!(closed_after(silent), closed_after(partial));
    for (what, took) in [("silent", silent), ("half a ClientHello", partial)] {
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(3),
            "{what}: closed after {took:?}, expected about the 1 s header timeout"
        );
    }
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_keeps_open_connections() {
    let ca = TestCa::new("test CA");
    let first = ca.issue(&["localhost"]);
    let app = spawn_tls(&first, |_| {}).await;
    let tls = client(&ca, &[b"http/1.1"]);

    let old = connect(app.addr, &tls).await.unwrap();
    assert_eq!(presented(&old), der(&first));
    let mut old = http1(old).await;
    assert_eq!(old.send_request(healthz()).await.unwrap().status(), 200);

    let second = ca.issue(&["localhost"]);
    std::fs::write(&app.cert_file, &second.cert_pem).unwrap();
    std::fs::write(&app.key_file, &second.key_pem).unwrap();
    let me = rustix::process::getpid();
    rustix::process::kill_process(me, rustix::process::Signal::HUP).unwrap();

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let fresh = connect(app.addr, &tls).await.unwrap();
        if presented(&fresh) == der(&second) {
            let mut fresh = http1(fresh).await;
            assert_eq!(fresh.send_request(healthz()).await.unwrap().status(), 200);
            break;
        }
        assert_eq!(presented(&fresh), der(&first));
        assert!(
            Instant::now() < deadline,
            "new connections still get the old certificate 5 s after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The connection opened before the reload goes on.
    old.ready().await.expect("the old connection is still open");
    assert_eq!(old.send_request(healthz()).await.unwrap().status(), 200);

    // A reload that fails (a key that is not the certificate's) keeps the certificate in force.
    std::fs::write(&app.key_file, ca.issue(&["localhost"]).key_pem).unwrap();
    rustix::process::kill_process(me, rustix::process::Signal::HUP).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = connect(app.addr, &tls).await.expect("still serving");
    assert_eq!(presented(&after), der(&second));
    assert_eq!(old.send_request(healthz()).await.unwrap().status(), 200);
}

#[tokio::test]
async fn start_refuses_a_lone_unreadable_or_mismatched_certificate() {
    let ca = TestCa::new("test CA");
    let dir = tempfile::tempdir().unwrap();

    let mut lone = args(&dir);
    lone.tls_key = None;
    let err = Settings::validate(lone).unwrap_err().to_string();
    assert!(err.contains("--tls-cert needs --tls-key"), "{err}");
    let mut lone = args(&dir);
    lone.tls_cert = None;
    let err = Settings::validate(lone).unwrap_err().to_string();
    assert!(err.contains("--tls-key needs --tls-cert"), "{err}");

    // Neither file exists yet.
    let settings = Settings::validate(args(&dir)).unwrap();
    let err = Application::build(settings, telemetry())
        .await
        .err()
        .expect("no certificate file")
        .to_string();
    assert!(err.contains("cannot read --tls-cert"), "{err}");

    let (a, b) = (ca.issue(&["localhost"]), ca.issue(&["localhost"]));
    std::fs::write(dir.path().join("tls.crt"), &a.cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &b.key_pem).unwrap();
    let settings = Settings::validate(args(&dir)).unwrap();
    let err = Application::build(settings, telemetry())
        .await
        .err()
        .expect("a key that is not the certificate's")
        .to_string();
    assert!(
        err.contains("is not the private key of the certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn without_tls_flags_the_api_stays_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let mut plain = args(&dir);
    plain.tls_cert = None;
    plain.tls_key = None;
    let app = Application::build(Settings::validate(plain).unwrap(), telemetry())
        .await
        .unwrap();
    assert_eq!(app.scheme(), "http");
    let addr = app.local_addr();
    let (_stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
}
