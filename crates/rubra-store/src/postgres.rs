//! The scale-out store: PostgreSQL shared by any number of `rubra` processes.

use crate::Result;
use crate::bells::Bells;
use crate::secrets::SecretSlot;
use crate::shared::{Shared, impl_store};
use crate::stats::{PgWrites, Writer};
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::time::Duration;

/// A [`Store`] on a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// This process's event writer: concurrent requests share one transaction (see `stats`).
    writer: Writer,
    /// The key that seals stored secrets (see `secrets`).
    secrets: SecretSlot,
    /// The doorbells this store rings after its writes (see `bells`).
    bells: Bells,
}

impl PgStore {
    /// Connects to `url` (`postgres://user:pass@host:port/db`).
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| crate::open::connect_error(url, e))?;
        let bells = Bells::default();
        let writer = Writer::spawn(PgWrites::new(pool.clone()), bells.outbox.clone());
        Ok(PgStore {
            pool,
            writer,
            secrets: SecretSlot::default(),
            bells,
        })
    }

    /// The underlying pool, for tests and maintenance.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The batching event writer.
    pub(crate) fn writer(&self) -> &Writer {
        &self.writer
    }

    /// The key that seals stored secrets.
    pub(crate) fn secrets(&self) -> &SecretSlot {
        &self.secrets
    }

    /// After a sealing pass: rewrites the two tables so the dead row versions holding the
    /// replaced values leave the data files (the tables are small: one row per subscription
    /// or watch; the lock is held for that long, once per pass that changed anything).
    pub(crate) async fn scrub_replaced_secrets(&self) -> Result<()> {
        sqlx::query("VACUUM FULL subscriptions, watches")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl PgStore {
    /// The backend's name in logs and `/readyz`.
    const NAME: &'static str = "postgres";

    /// Applies the pending migrations, then the statistics backfill they may call for.
    /// sqlx takes an advisory lock around migrations, so processes starting together are safe.
    async fn run_migrations(&self) -> Result<()> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await?;
        crate::stats::pg_backfill(&self.pool).await
    }
}

impl_store!(PgStore);
