//! The embedded default: SQLite in WAL mode in the data folder.

use crate::Result;
use crate::bells::Bells;
use crate::secrets::SecretSlot;
use crate::shared::{Shared, impl_store};
use crate::stats::{SqliteWrites, Writer};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// A [`Store`] on a SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The one event writer: SQLite has one writer at a time, so event writes are batched
    /// into group commits instead of queueing on the database lock (see `stats`).
    writer: Writer,
    /// The background checkpointer; stops when the last clone of the store is dropped.
    _checkpointer: Arc<Checkpointer>,
    /// The key that seals stored secrets (see `secrets`).
    secrets: SecretSlot,
    /// The doorbells this store rings after its writes (see `bells`).
    bells: Bells,
    /// Message writes waiting for the next group transaction (see `messages::write`).
    messages: Arc<crate::messages::write::MessageQueue>,
}

/// Page cache of each pooled connection (KiB; SQLite's default is 2 MiB), filled only as pages
/// are read. A statistics query with a threshold of more than four decimals walks its coarse
/// bin of the raw index (~2 MiB of pages for a month at 10⁸ events); with the default cache
/// those were read back through the OS (one `pread` per page) on every query, with this a
/// warm connection serves the recently used bins from memory.
const READER_CACHE_KIB: u32 = 32 * 1024;

/// How often the background task copies the WAL back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// WAL pages after which a committing connection checkpoints by itself (SQLite's default is
/// 1 000). Only a safety valve: the background checkpointer normally keeps the WAL far
/// shorter, so no commit — and no caller waiting on one, or on the write gate behind it —
/// pays for copying pages back and the `fsync` that follows.
const WAL_AUTOCHECKPOINT: u32 = 16_384;

/// Runs `PRAGMA wal_checkpoint(PASSIVE)` every [`CHECKPOINT_EVERY`] on a pool connection, off
/// every writer's path: a passive checkpoint neither waits for nor blocks readers and writers,
/// and once it has copied the whole WAL the next write starts the WAL over.
#[derive(Debug)]
struct Checkpointer(tokio::task::JoinHandle<()>);

impl Checkpointer {
    fn spawn(pool: SqlitePool) -> Self {
        Checkpointer(tokio::spawn(async move {
            loop {
                tokio::time::sleep(CHECKPOINT_EVERY).await;
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&pool)
                    .await
                {
                    tracing::debug!(error = %e, "background checkpoint failed; retrying");
                }
            }
        }))
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
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
            .foreign_keys(true)
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT.to_string())
            .pragma("cache_size", format!("-{READER_CACHE_KIB}"))
            // Freed space in a page being written anyway is zeroed: a secret sealed in place
            // does not leave its plaintext beside it (no extra I/O, unlike `ON`).
            .pragma("secure_delete", "FAST");
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        let bells = Bells::default();
        let writer = Writer::spawn(SqliteWrites::new(pool.clone()), bells.outbox.clone());
        let checkpointer = Arc::new(Checkpointer::spawn(pool.clone()));
        Ok(SqliteStore {
            pool,
            writer,
            _checkpointer: checkpointer,
            secrets: SecretSlot::default(),
            bells,
            messages: Arc::default(),
        })
    }

    /// The underlying pool, for tests and maintenance.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The batching event writer.
    pub(crate) fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Message writes waiting for the next group transaction.
    pub(crate) fn message_queue(&self) -> &crate::messages::write::MessageQueue {
        &self.messages
    }

    /// The key that seals stored secrets.
    pub(crate) fn secrets(&self) -> &SecretSlot {
        &self.secrets
    }

    /// After a sealing pass: copies the WAL into the database and truncates it, so its old
    /// frames (pages as they were before the pass) are gone from the disk.
    pub(crate) async fn scrub_replaced_secrets(&self) -> Result<()> {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl SqliteStore {
    /// The backend's name in logs and `/readyz`.
    const NAME: &'static str = "sqlite";

    /// Applies the pending migrations, then the statistics backfill they may call for.
    async fn run_migrations(&self) -> Result<()> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.pool)
            .await?;
        crate::stats::sqlite_backfill(&self.pool).await
    }
}

impl_store!(SqliteStore);
