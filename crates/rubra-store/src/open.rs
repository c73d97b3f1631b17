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
    /// Parses a URL given on the command line or in the config.
    pub fn parse(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(DatabaseUrl::Sqlite(url.to_owned()))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
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

/// Connects to the database and applies pending migrations.
pub async fn open(url: &DatabaseUrl) -> Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match url {
        DatabaseUrl::Sqlite(u) => Arc::new(SqliteStore::connect(u).await?),
        DatabaseUrl::Postgres(u) => Arc::new(PgStore::connect(u).await?),
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
    fn redacts_the_password() {
        let u = DatabaseUrl::parse("postgres://u:secret@h:5432/db").unwrap();
        assert!(!u.redacted().contains("secret"));
    }
}
