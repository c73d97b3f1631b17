//! TLS test support: a certificate authority made on the spot, server certificates it signs,
//! and a throwaway PostgreSQL cluster that speaks TLS with one of them.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A certificate authority that exists only for one test.
pub struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A server certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct ServerCert {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

impl TestCa {
    /// A new CA named `name`, with a fresh key.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA's certificate (what a client is told to trust), PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A server certificate for `names` (host names or IP addresses) signed by this CA.
    pub fn issue(&self, names: &[&str]) -> ServerCert {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("valid names");
        if let Some(first) = names.first() {
            params
                .distinguished_name
                .push(DnType::CommonName, first.as_str());
        }
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// The folder of PostgreSQL's `initdb` and `pg_ctl`, if it is installed.
fn pg_bindir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// Runs a PostgreSQL program; as root, as the `postgres` user (initdb and postgres refuse to
/// run as root), like `as_postgres` in scripts/test-services.sh.
fn as_postgres(program: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A PostgreSQL cluster of its own with `ssl = on`, stopped and deleted when dropped. Every
/// user is trusted without a password; only the transport is under test.
pub struct TlsPostgres {
    /// The port it listens on, at 127.0.0.1.
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    dir: tempfile::TempDir,
}

impl TlsPostgres {
    /// Starts a cluster serving `cert`; `None` (after printing that `test` is skipped) when
    /// PostgreSQL is not installed and `RUBRA_TEST_REQUIRE_SERVICES` is not `1`.
    pub fn start(test: &str, cert: &ServerCert) -> Option<TlsPostgres> {
        let Some(bin) = pg_bindir() else {
            assert!(
                !crate::required(),
                "{test}: PostgreSQL (initdb) required but not installed under /usr/lib/postgresql"
            );
            eprintln!(
                "SKIPPED {test}: needs PostgreSQL's initdb (/usr/lib/postgresql/*/bin); \
                 install PostgreSQL or run scripts/test.sh"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("pg");
        std::fs::create_dir(&data).expect("data folder");
        let cert_file = dir.path().join("server.crt");
        let key_file = dir.path().join("server.key");
        std::fs::write(&cert_file, &cert.cert_pem).expect("write cert");
        std::fs::write(&key_file, &cert.key_pem).expect("write key");
        set_mode(dir.path(), 0o755);
        // PostgreSQL refuses a key that others can read.
        set_mode(&key_file, 0o600);
        if is_root() {
            let paths = [dir.path(), &data, &cert_file, &key_file];
            let status = Command::new("chown")
                .arg("postgres:")
                .args(paths)
                .status()
                .expect("chown");
            assert!(status.success(), "chown to postgres failed");
        }
        let out = as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                path_str(&data),
                "-U",
                "rubra",
                "-A",
                "trust",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let options = format!(
            "-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on \
             -c ssl_cert_file={cert} -c ssl_key_file={key}",
            data = path_str(&data),
            cert = path_str(&cert_file),
            key = path_str(&key_file),
        );
        let log = dir.path().join("pg.log");
        let out = as_postgres(
            &bin.join("pg_ctl"),
            &[
                "-D",
                path_str(&data),
                "-l",
                path_str(&log),
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Some(TlsPostgres {
            port,
            bin,
            data,
            dir,
        })
    }

    /// A URL of the `postgres` database on `host` (`127.0.0.1` or `localhost`) with `query`
    /// (`sslmode=…&sslrootcert=…`) appended.
    pub fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://rubra@{host}:{}/postgres?{query}", self.port)
    }

    /// A folder that lives as long as the cluster, for the test's own files (CA files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", path_str(&self.data), "-m", "immediate", "stop"],
        );
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// A port free at the time of asking.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}
