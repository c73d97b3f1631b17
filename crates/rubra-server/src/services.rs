//! The opened dependencies every process kind needs — the store, the blobs, the settings and
//! the wake-ups shared by the API and the workers — and the errors of opening them.

use crate::settings::Settings;
use crate::wake::Wakeups;
use rubra_store::{BlobStore, Store};
use std::net::SocketAddr;
use std::sync::Arc;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data folder could not be created or written.
    #[error("data folder {path}: {source}")]
    DataDir {
        /// The folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The database or the blob storage could not be opened.
    #[error(transparent)]
    Store(#[from] rubra_store::StoreError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP client for overlay URLs could not be built.
    #[error("cannot build the fetch client: {0}")]
    Fetch(#[from] rubra_fetch::FetchError),
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(std::io::Error),
    /// The HTTPS certificate or key could not be used; the message names the file.
    #[error("{0}")]
    Tls(String),
    /// The secret key file could not be made or read, or it lacks a key that stored secrets
    /// are sealed under; the message names the file.
    #[error("{0}")]
    SecretKey(String),
}

/// The opened dependencies every process kind needs (the API server and the workers).
#[derive(Clone)]
pub struct Services {
    /// The database.
    pub store: Arc<dyn Store>,
    /// Blob storage.
    pub blobs: BlobStore,
    /// The settings they were opened with.
    pub settings: Arc<Settings>,
    /// This process's name in leases (`host-pid-random`), unique among live processes.
    pub instance_id: Arc<str>,
    /// The wake-ups the API gives this process's workers.
    pub wakeups: Wakeups,
}

impl Services {
    /// Creates the data folder, opens (and migrates) the database and opens the blob storage.
    ///
    /// Loads the secret key file into the store first (see [`Services::open_without_secret_key`]).
    pub async fn open(settings: Settings) -> Result<Services, StartError> {
        Self::open_with(settings, true).await
    }

    /// [`Services::open`] without the secret key file, for admin commands that touch no
    /// secret (`migrate`, clients and keys): they need not run where the key file is. Such a
    /// store refuses to write a secret, and a sealed one does not open in it.
    pub async fn open_without_secret_key(settings: Settings) -> Result<Services, StartError> {
        Self::open_with(settings, false).await
    }

    async fn open_with(settings: Settings, secret_key: bool) -> Result<Services, StartError> {
        std::fs::create_dir_all(&settings.data_dir).map_err(|source| StartError::DataDir {
            path: settings.data_dir.display().to_string(),
            source,
        })?;
        let store = rubra_store::open(&settings.database).await?;
        if secret_key {
            load_secret_key(store.as_ref(), &settings).await?;
        }
        let blobs = BlobStore::open(&settings.storage, settings.s3_endpoint.as_deref())?;
        tracing::info!(
            database = %settings.database.redacted(),
            storage = blobs.describe(),
            "store opened"
        );
        Ok(Services {
            store,
            blobs,
            settings: Arc::new(settings),
            instance_id: instance_id().into(),
            wakeups: Wakeups::default(),
        })
    }
}

/// Reads the secret key file (making it on the default path) and hands it to the store, which
/// refuses it when stored secrets are sealed under a key it lacks and seals the plaintext ones.
async fn load_secret_key(store: &dyn Store, settings: &Settings) -> Result<(), StartError> {
    let (keys, created) = settings.secret_key.load().map_err(StartError::SecretKey)?;
    if created && matches!(settings.database, rubra_store::DatabaseUrl::Postgres(_)) {
        // Another process that made its own key could not read what this one seals.
        tracing::warn!(
            file = %settings.secret_key.path.display(),
            "a new secret key file was made for a PostgreSQL database: give every process \
             sharing it this same file with --secret-key-file"
        );
    }
    let key_file = settings.secret_key.path.display();
    let sealed = store.use_secret_keys(keys).await.map_err(|e| match e {
        rubra_store::StoreError::SecretKey(m) => StartError::SecretKey(format!("{key_file}: {m}")),
        other => StartError::Store(other),
    })?;
    if sealed.sealed > 0 {
        tracing::info!(
            sealed = sealed.sealed,
            "secrets stored in plaintext were sealed"
        );
    }
    Ok(())
}

/// A name for this process that no other live process has: host, pid and a random part.
fn instance_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let host = if host.is_empty() {
        "host".to_owned()
    } else {
        host
    };
    format!(
        "{host}-{}-{}",
        std::process::id(),
        rubra_store::random_id(4)
    )
}
