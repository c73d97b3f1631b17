//! The embedded default: SQLite in WAL mode in the data folder.

use crate::Result;
use crate::shared::{impl_store, shared_row_decoders};
use crate::stats::{SqliteWrites, Writer};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use std::str::FromStr;
use std::time::Duration;

/// A [`Store`] on a SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The one event writer: SQLite has one writer at a time, so event writes are batched
    /// into group commits instead of queueing on the database lock (see `stats`).
    writer: Writer,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path` or `sqlite::memory:`).
    ///
    /// WAL lets readers proceed while one writer commits; `synchronous=NORMAL` is durable
    /// across process crashes in WAL mode (only an OS crash can lose the last commits);
    /// the busy timeout makes concurrent writers wait instead of failing.
    pub async fn connect(url: &str) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        let writer = Writer::spawn(SqliteWrites::new(pool.clone()));
        Ok(SqliteStore { pool, writer })
    }

    /// The underlying pool, for tests and maintenance.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The batching event writer.
    pub(crate) fn writer(&self) -> &Writer {
        &self.writer
    }
}

shared_row_decoders!(SqliteRow, sqlx::Sqlite);

impl_store!(SqliteStore, sqlx::Sqlite, {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.pool)
            .await?;
        crate::stats::sqlite_backfill(&self.pool).await
    }
});
