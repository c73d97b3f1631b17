//! Choosing and opening the store from a database URL.

use crate::{PgStore, Result, SqliteStore, Store, StoreError};
use std::path::Path;
use std::sync::Arc;

/// A validated database URL: which backend, and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://path/to/file.db` (or `sqlite::memory:`).
    Sqlite(String),
    /// `postgres://…` or `postgresql://…`.
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses a URL given on the command line or in the config. A PostgreSQL URL's `sslmode`
    /// must be one of [`SSL_MODES`].
    pub fn parse(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(DatabaseUrl::Sqlite(url.to_owned()))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            check_ssl_mode(url)?;
            Ok(DatabaseUrl::Postgres(url.to_owned()))
        } else {
            Err(StoreError::Config(format!(
                "unsupported database URL {url:?}: expected sqlite://PATH or postgres://…"
            )))
        }
    }

    /// The default: a SQLite file inside the data folder.
    pub fn default_in(data_dir: &Path) -> Self {
        DatabaseUrl::Sqlite(format!("sqlite://{}", data_dir.join("rubra.db").display()))
    }

    /// The URL without any password, safe to log.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(u) => u.clone(),
            DatabaseUrl::Postgres(u) => match url::Url::parse(u) {
                Ok(mut parsed) if parsed.password().is_some() => {
                    let _ = parsed.set_password(Some("***"));
                    parsed.to_string()
                }
                _ => u.clone(),
            },
        }
    }
}

/// The `sslmode` values of a PostgreSQL URL, as libpq names them: `disable` never uses TLS,
/// `allow` and `prefer` use it when the server offers it, `require` always uses it without
/// checking the certificate, `verify-ca` checks that a CA in `sslrootcert` (or a public one)
/// signed it, and `verify-full` also checks that it names the host.
pub const SSL_MODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// The `sslmode` of a PostgreSQL URL, if it names one.
fn ssl_mode(url: &str) -> Option<String> {
    // sqlx reports a malformed URL itself, with its own words.
    let parsed = url::Url::parse(url).ok()?;
    parsed
        .query_pairs()
        .find(|(key, _)| matches!(key.as_ref(), "sslmode" | "ssl-mode"))
        .map(|(_, value)| value.into_owned())
}

/// Refuses an `sslmode` that is not one of [`SSL_MODES`] (a typo must not turn TLS off).
fn check_ssl_mode(url: &str) -> Result<()> {
    match ssl_mode(url) {
        Some(mode) if !SSL_MODES.contains(&mode.as_str()) => Err(StoreError::Config(format!(
            "unknown sslmode {mode:?} in the database URL: expected one of {}",
            SSL_MODES.join(", ")
        ))),
        _ => Ok(()),
    }
}

/// Says what went wrong when a PostgreSQL connection could not be made over TLS (the
/// certificate was not trusted, or the server has no TLS); other errors stay as they are.
pub(crate) fn connect_error(url: &str, err: sqlx::Error) -> StoreError {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_owned();
            Some(match u.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        })
        .unwrap_or_else(|| "the database".to_owned());
    let tls = match &err {
        sqlx::Error::Io(io) => io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()),
        sqlx::Error::Tls(e) => e.downcast_ref::<rustls::Error>(),
        _ => None,
    };
    match (tls, &err) {
        (Some(rustls::Error::InvalidCertificate(cert)), _) => {
            StoreError::DatabaseTls(untrusted_certificate(&host, cert))
        }
        (Some(other), _) => StoreError::DatabaseTls(format!(
            "TLS handshake with PostgreSQL at {host} failed: {other}"
        )),
        (None, sqlx::Error::Tls(e)) => {
            StoreError::DatabaseTls(format!("no TLS connection to PostgreSQL at {host}: {e}"))
        }
        (None, _) => err.into(),
    }
}

/// The message for a PostgreSQL server certificate that did not pass `verify-ca` or
/// `verify-full`.
fn untrusted_certificate(host: &str, cert: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    let why = match cert {
        E::UnknownIssuer => {
            "it is not signed by a certificate authority in sslrootcert (nor a public one)"
                .to_owned()
        }
        E::NotValidForName | E::NotValidForNameContext { .. } => format!(
            "it is not issued for the host name {host} (sslmode=verify-full checks the name; \
             connect by a name the certificate lists)"
        ),
        other => format!("{other:?}"),
    };
    format!("the certificate of PostgreSQL at {host} was not trusted: {why}")
}

/// Connects to the database and applies pending migrations.
pub async fn open(url: &DatabaseUrl) -> Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match url {
        DatabaseUrl::Sqlite(u) => Arc::new(SqliteStore::connect(u).await?),
        DatabaseUrl::Postgres(u) => {
            if ssl_mode(u).as_deref() == Some("verify-ca") {
                // sqlx trusts Mozilla's roots besides sslrootcert (libpq trusts sslrootcert
                // alone), and verify-ca does not check the name: any publicly trusted
                // certificate, for any host, passes.
                tracing::warn!(
                    "sslmode=verify-ca also accepts a certificate that a public CA issued for any \
                     host name; use sslmode=verify-full"
                );
            }
            Arc::new(PgStore::connect(u).await?)
        }
    };
    store.migrate().await?;
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_backends_and_rejects_others() {
        assert!(matches!(
            DatabaseUrl::parse("sqlite://x.db"),
            Ok(DatabaseUrl::Sqlite(_))
        ));
        assert!(matches!(
            DatabaseUrl::parse("postgres://u@h/db"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert!(DatabaseUrl::parse("mysql://h/db").is_err());
    }

    #[test]
    fn accepts_every_libpq_ssl_mode_and_refuses_a_typo() {
        for mode in SSL_MODES {
            assert!(
                DatabaseUrl::parse(&format!("postgres://u@h/db?sslmode={mode}")).is_ok(),
                "{mode}"
            );
        }
        let err = DatabaseUrl::parse("postgres://u@h/db?sslmode=verify_full").unwrap_err();
        assert!(err.to_string().contains("unknown sslmode"), "{err}");
    }

    #[test]
    fn redacts_the_password() {
        let u = DatabaseUrl::parse("postgres://u:secret@h:5432/db").unwrap();
        assert!(!u.redacted().contains("secret"));
    }
}
