//! The one error type of the store crate.

/// What can go wrong in the store or the blob store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique value (a client name, an id) already exists.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The client already has as many of something as it may have; the message names the
    /// quota and its limit.
    #[error("{0}")]
    QuotaExceeded(String),
    /// One write would make more notifications than one transaction may (see
    /// `MAX_NOTIFICATIONS_PER_WRITE`); nothing was written.
    #[error("{0}")]
    TooManyNotifications(String),
    /// The database URL or storage URL is not usable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The TLS connection to PostgreSQL could not be made: the server's certificate was not
    /// trusted, or the server does not speak TLS where `sslmode` requires it.
    #[error("database TLS: {0}")]
    DatabaseTls(String),
    /// The secret key file is unusable, a stored secret does not open, or a stored secret is
    /// sealed under a key that the key file does not hold.
    #[error("secret key: {0}")]
    SecretKey(String),
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A schema migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The blob store failed or is unreachable.
    #[error("blob storage error: {0}")]
    Blob(#[from] object_store::Error),
    /// A local file operation failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A write's commit failed and the database could not say whether it had been written
    /// (it stayed unreachable); a retry may write it twice unless it is idempotent.
    #[error("outcome unknown: {0}")]
    CommitUnknown(String),
}

impl StoreError {
    /// True when the failure is the dependency being down or overloaded (maps to 503),
    /// rather than a bug or bad input.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed
            ) | StoreError::Blob(_)
                | StoreError::Io(_)
                | StoreError::CommitUnknown(_)
        )
    }

    /// True when a write named a row that does not exist (a foreign key violation: a
    /// message for a client that is not there): retrying it cannot succeed.
    pub fn is_missing_reference(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(db))
                 if db.is_foreign_key_violation())
    }

    /// Maps a unique-constraint violation to [`StoreError::Conflict`], other errors unchanged.
    pub(crate) fn from_insert(err: sqlx::Error, what: &str) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(format!("{what} already exists"))
            }
            _ => StoreError::Database(err),
        }
    }
}
