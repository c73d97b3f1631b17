//! What the SQL shared by both backends needs beyond sqlx's generic `Database`: code generic
//! over the database names these bounds instead of being written twice.

/// The number of rows a statement changed, which sqlx only offers per database.
pub(crate) trait RowsAffected {
    /// Rows inserted, updated or deleted.
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::sqlite::SqliteQueryResult::rows_affected(self)
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::postgres::PgQueryResult::rows_affected(self)
    }
}

/// A store backend as the query code shared by both databases sees it: its database and pool,
/// its write gate, the key that seals its secrets and its doorbells. Shared queries are
/// methods of small structs generic over this (`Watches<S>`), written once.
pub(crate) trait Backend: Send + Sync {
    /// The sqlx database.
    type Db: sqlx::Database;

    /// The connection pool.
    fn pool(&self) -> &sqlx::Pool<Self::Db>;

    /// Waits for the store's write gate where the database needs one (SQLite: one writer at
    /// a time, taken in order instead of in SQLite's busy handler); `None` on PostgreSQL.
    fn write_gate(
        &self,
    ) -> impl std::future::Future<Output = Option<tokio::sync::OwnedMutexGuard<()>>> + Send;

    /// The key that seals stored secrets.
    fn secrets(&self) -> &crate::secrets::SecretSlot;

    /// The doorbells rung after writes.
    fn bells(&self) -> &crate::Bells;

    /// The batching event writer.
    fn writer(&self) -> &crate::stats::Writer;
}

impl Backend for crate::SqliteStore {
    type Db = sqlx::Sqlite;

    fn pool(&self) -> &sqlx::Pool<sqlx::Sqlite> {
        crate::SqliteStore::pool(self)
    }

    fn write_gate(
        &self,
    ) -> impl std::future::Future<Output = Option<tokio::sync::OwnedMutexGuard<()>>> + Send {
        crate::SqliteStore::write_gate(self)
    }

    fn secrets(&self) -> &crate::secrets::SecretSlot {
        crate::SqliteStore::secrets(self)
    }

    fn bells(&self) -> &crate::Bells {
        <Self as crate::Store>::bells(self)
    }

    fn writer(&self) -> &crate::stats::Writer {
        crate::SqliteStore::writer(self)
    }
}

impl Backend for crate::PgStore {
    type Db = sqlx::Postgres;

    fn pool(&self) -> &sqlx::Pool<sqlx::Postgres> {
        crate::PgStore::pool(self)
    }

    fn write_gate(
        &self,
    ) -> impl std::future::Future<Output = Option<tokio::sync::OwnedMutexGuard<()>>> + Send {
        crate::PgStore::write_gate(self)
    }

    fn secrets(&self) -> &crate::secrets::SecretSlot {
        crate::PgStore::secrets(self)
    }

    fn bells(&self) -> &crate::Bells {
        <Self as crate::Store>::bells(self)
    }

    fn writer(&self) -> &crate::stats::Writer {
        crate::PgStore::writer(self)
    }
}
