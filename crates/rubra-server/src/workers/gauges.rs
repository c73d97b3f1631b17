//! Queue depths for `/metrics`, read from the store every [`EVERY`]: jobs queued and running,
//! notifications pending. They are the cluster's figures (every process reports the same
//! ones), read by one indexed count each, so an operator sees a backlog grow wherever it is.
//! Beside them, this process's own database connection pool (read without a query).

use crate::services::Services;
use rubra_store::{Scope, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the depths are read.
const EVERY: Duration = Duration::from_secs(5);

/// Starts the sampler.
pub fn spawn(services: &Services, shutdown: &CancellationToken) -> Vec<JoinHandle<()>> {
    vec![tokio::spawn(run(services.store.clone(), shutdown.clone()))]
}

async fn run(store: Arc<dyn Store>, shutdown: CancellationToken) {
    loop {
        sample(store.as_ref()).await;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// Reads the depths once and sets the gauges; a failed read leaves the last values.
/// This process's connection pool is sampled too (no query): open, idle and the most it
/// opens, so a pool that stays full shows before requests time out on it.
pub(crate) async fn sample(store: &dyn Store) {
    let pool = store.pool_usage();
    rubra_telemetry::metrics::gauge!("rubra_db_pool_connections", "state" => "open")
        .set(f64::from(pool.open));
    rubra_telemetry::metrics::gauge!("rubra_db_pool_connections", "state" => "idle")
        .set(f64::from(pool.idle));
    rubra_telemetry::metrics::gauge!("rubra_db_pool_connections", "state" => "max")
        .set(f64::from(pool.max));
    match store.active_jobs(&Scope::All).await {
        Ok(jobs) => {
            rubra_telemetry::metrics::gauge!("rubra_jobs_queued").set(jobs.queued as f64);
            rubra_telemetry::metrics::gauge!("rubra_jobs_running").set(jobs.running as f64);
        }
        Err(e) => tracing::debug!(error = %e, "reading the job queue depth failed"),
    }
    match store.pending_notifications().await {
        Ok(n) => rubra_telemetry::metrics::gauge!("rubra_notifications_pending").set(n as f64),
        Err(e) => tracing::debug!(error = %e, "reading the outbox depth failed"),
    }
}
