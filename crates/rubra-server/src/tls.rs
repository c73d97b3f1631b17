//! HTTPS for the API: the certificate chain and key of `--tls-cert` / `--tls-key`, offered
//! with HTTP/2 and HTTP/1.1 by ALPN, and re-read on demand (SIGHUP) without touching the
//! connections already open: each new handshake asks the resolver for the pair in force.

use crate::services::StartError;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use tokio_rustls::TlsAcceptor;

/// The files HTTPS is served with: both named, or neither (plain HTTP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The certificate in force, replaced whole by [`Certificates::reload`].
#[derive(Debug)]
pub struct Certificates {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificates {
    /// Reads and checks the files: each must be readable PEM, and the key must be the
    /// certificate's.
    pub fn load(files: TlsFiles) -> Result<Arc<Certificates>, StartError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let current = read_pair(&files, &provider)?;
        Ok(Arc::new(Certificates {
            files,
            provider,
            current: RwLock::new(current),
        }))
    }

    /// Reads the files again and serves the new pair to every new connection. On failure the
    /// pair in force stays, and the error says why.
    pub fn reload(&self) -> Result<(), StartError> {
        let fresh = read_pair(&self.files, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// The acceptor of the server's connections: TLS 1.2 and 1.3, no client certificates,
    /// HTTP/2 preferred over HTTP/1.1 by ALPN.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, StartError> {
        let resolver: Arc<dyn ResolvesServerCert> = Arc::clone(self) as _;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| StartError::Tls(format!("TLS configuration: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Re-reads the files on every SIGHUP until `stop` is cancelled, logging the outcome; a
    /// failed reload keeps the certificate in force. The signal is hooked before this returns,
    /// so a SIGHUP sent afterwards is never the default (fatal) one.
    pub fn reload_on_sighup(
        self: &Arc<Self>,
        stop: tokio_util::sync::CancellationToken,
    ) -> Result<(), StartError> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup())
            .map_err(|e| StartError::Tls(format!("cannot listen for SIGHUP: {e}")))?;
        let this = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    got = hangups.recv() => if got.is_none() { return },
                }
                match this.reload() {
                    Ok(()) => tracing::info!(
                        cert = %this.files.cert.display(),
                        "SIGHUP: TLS certificate reloaded; new connections use it"
                    ),
                    Err(e) => tracing::error!(
                        error = %e,
                        "SIGHUP: TLS certificate not reloaded; the previous one stays in use"
                    ),
                }
            }
        });
        Ok(())
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}

/// Reads the certificate chain and key named by `files` and checks that they belong together.
fn read_pair(files: &TlsFiles, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, StartError> {
    let cert_name = files.cert.display();
    let key_name = files.key.display();
    let cert_pem = std::fs::read(&files.cert)
        .map_err(|e| StartError::Tls(format!("cannot read --tls-cert {cert_name}: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StartError::Tls(format!("--tls-cert {cert_name}: bad PEM: {e}")))?;
    if chain.is_empty() {
        return Err(StartError::Tls(format!(
            "--tls-cert {cert_name} holds no PEM certificate"
        )));
    }
    let key_pem = std::fs::read(&files.key)
        .map_err(|e| StartError::Tls(format!("cannot read --tls-key {key_name}: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        StartError::Tls(format!(
            "--tls-key {key_name} holds no PEM private key: {e}"
        ))
    })?;
    let pair = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => StartError::Tls(format!(
            "--tls-key {key_name} is not the private key of the certificate in --tls-cert \
             {cert_name}"
        )),
        e => StartError::Tls(format!(
            "--tls-cert {cert_name} / --tls-key {key_name}: {e}"
        )),
    })?;
    Ok(Arc::new(pair))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rubra_testkit::tls::TestCa;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn loads_a_matching_pair_and_refuses_a_mismatched_or_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("unit CA");
        let a = ca.issue(&["localhost"]);
        let b = ca.issue(&["localhost"]);
        let files = TlsFiles {
            cert: write(&dir, "a.crt", &a.cert_pem),
            key: write(&dir, "a.key", &a.key_pem),
        };
        Certificates::load(files.clone()).expect("a matching pair loads");

        let mismatched = TlsFiles {
            key: write(&dir, "b.key", &b.key_pem),
            ..files.clone()
        };
        let err = Certificates::load(mismatched).unwrap_err().to_string();
        assert!(
            err.contains("is not the private key of the certificate"),
            "{err}"
        );

        let missing = TlsFiles {
            cert: dir.path().join("nope.crt"),
            ..files.clone()
        };
        let err = Certificates::load(missing).unwrap_err().to_string();
        assert!(err.contains("cannot read --tls-cert"), "{err}");

        let not_pem = TlsFiles {
            key: write(&dir, "empty.key", "nothing here\n"),
            ..files
        };
        let err = Certificates::load(not_pem).unwrap_err().to_string();
        assert!(err.contains("holds no PEM private key"), "{err}");
    }

    #[test]
    fn a_failed_reload_keeps_the_certificate_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("unit CA");
        let a = ca.issue(&["localhost"]);
        let files = TlsFiles {
            cert: write(&dir, "tls.crt", &a.cert_pem),
            key: write(&dir, "tls.key", &a.key_pem),
        };
        let certs = Certificates::load(files.clone()).unwrap();
        let before = certs.current.read().unwrap().cert.clone();
        // A new certificate whose key has not been written yet: a half-done renewal.
        let b = ca.issue(&["localhost"]);
        std::fs::write(&files.cert, &b.cert_pem).unwrap();
        assert!(certs.reload().is_err());
        assert_eq!(certs.current.read().unwrap().cert, before);
        std::fs::write(&files.key, &b.key_pem).unwrap();
        certs.reload().unwrap();
        assert_ne!(certs.current.read().unwrap().cert, before);
    }
}
