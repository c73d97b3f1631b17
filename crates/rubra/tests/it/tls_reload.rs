//! The `rubra serve` binary with `--tls-cert` / `--tls-key`: it prints an https:// address,
//! re-reads its certificate when sent SIGHUP while an open connection goes on, and refuses to
//! start with one file alone.

use rubra_testkit::tls::{ServerCert, TestCa};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to `addr` from a client that trusts `ca` only.
fn connect(addr: &str, ca: &TestCa) -> Tls {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls
}

/// The certificate the server presented on `tls`.
fn presented(tls: &Tls) -> CertificateDer<'static> {
    tls.conn.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

fn der(cert: &ServerCert) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap()
}

/// `GET /healthz` on the (kept-alive) connection: the status line.
fn healthz(tls: &mut Tls) -> String {
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .expect("a content-length");
    let mut body = vec![0u8; length];
    tls.read_exact(&mut body).unwrap();
    head.lines().next().unwrap().to_owned()
}

#[test]
fn rubra_serve_reloads_its_certificate_on_sighup() {
    let ca = TestCa::new("binary test CA");
    let first = ca.issue(&["localhost"]);
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("api.crt"), dir.path().join("api.key"));
    std::fs::write(&cert_file, &first.cert_pem).unwrap();
    std::fs::write(&key_file, &first.key_pem).unwrap();
    let common = [
        "--data-dir".to_owned(),
        dir.path().join("data").display().to_string(),
    ];
    let (server, base, _admin) = crate::helpers::start_api(
        &[
            "--tls-cert",
            cert_file.to_str().unwrap(),
            "--tls-key",
            key_file.to_str().unwrap(),
        ],
        &common,
    );
    let addr = base
        .strip_prefix("https://")
        .unwrap_or_else(|| panic!("an https:// address, got {base}"));

    let mut old = connect(addr, &ca);
    assert_eq!(presented(&old), der(&first));
    assert_eq!(healthz(&mut old), "HTTP/1.1 200 OK");

    let second = ca.issue(&["localhost"]);
    std::fs::write(&cert_file, &second.cert_pem).unwrap();
    std::fs::write(&key_file, &second.key_pem).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    let mut fresh = rubra_testkit::eventually_blocking(Duration::from_secs(10), || {
        let fresh = connect(addr, &ca);
        if presented(&fresh) == der(&second) {
            Ok(fresh)
        } else {
            Err("new connections still get the old certificate 10 s after SIGHUP")
        }
    });
    assert_eq!(healthz(&mut fresh), "HTTP/1.1 200 OK");
    // The server lived through the signal, and the connection from before goes on.
    assert_eq!(healthz(&mut old), "HTTP/1.1 200 OK");
}

#[test]
fn rubra_serve_refuses_a_certificate_without_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::helpers::rubra_with(
        &["serve", "--listen", "127.0.0.1:0", "--tls-cert", "api.crt"],
        &["--data-dir".to_owned(), dir.path().display().to_string()],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--tls-cert needs --tls-key"), "{stderr}");
}
