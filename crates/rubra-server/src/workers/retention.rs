//! The retention sweeper: deletes old delivery log rows, finished notifications, watch changes
//! and finished jobs (see `rubra_store::Retained`), as the `retain-*-days` settings say.
//!
//! Every process runs one, but only the holder of the store's sweep lease sweeps: a sweep
//! takes the lease for a whole period, so the other processes skip theirs, and a dead holder's
//! lease expires within a period. Rows go in batches of [`BATCH`] with a pause between them, so
//! other writers (on SQLite, queued at the same write gate) keep getting the database.

use crate::services::Services;
use rubra_store::{Retained, Store, SweepPlan, now_ms, sweep};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Time from start to the first sweep.
const FIRST_SWEEP_AFTER: Duration = Duration::from_secs(2);

/// Time between sweeps; also the lease a sweep takes, so one process sweeps per period.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// How often a long sweep extends its lease.
const RENEW_EVERY: Duration = Duration::from_secs(60);

/// Rows per delete statement.
const BATCH: u32 = 1000;

/// Pause between two batches.
const PAUSE: Duration = Duration::from_millis(50);

/// Starts the sweeper, unless every retention keeps forever.
pub(crate) fn spawn(services: &Services, shutdown: &CancellationToken) -> Option<JoinHandle<()>> {
    let s = &services.settings;
    let retain: Vec<(Retained, Duration)> = [
        (Retained::DeliveryAttempts, s.retain_deliveries),
        (Retained::Notifications, s.retain_deliveries),
        (Retained::WatchChanges, s.retain_watch_changes),
        (Retained::Jobs, s.retain_jobs),
        (Retained::Messages, s.retain_messages),
        (Retained::AuditLog, s.retain_audit),
        (Retained::IdempotencyKeys, Some(crate::idempotency::TTL)),
    ]
    .into_iter()
    .filter_map(|(what, keep)| keep.map(|k| (what, k)))
    .collect();
    if retain.is_empty() {
        return None;
    }
    let sweeper = Sweeper {
        store: services.store.clone(),
        owner: services.instance_id.to_string(),
        retain,
    };
    Some(tokio::spawn(sweeper.run(shutdown.clone())))
}

struct Sweeper {
    store: Arc<dyn Store>,
    owner: String,
    /// How long each kind is kept.
    retain: Vec<(Retained, Duration)>,
}

impl Sweeper {
    async fn run(self, shutdown: CancellationToken) {
        let mut wait = FIRST_SWEEP_AFTER;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
            wait = SWEEP_EVERY;
            match self
                .store
                .take_sweep_lease(&self.owner, now_ms(), SWEEP_EVERY)
                .await
            {
                Ok(true) => self.sweep(&shutdown).await,
                Ok(false) => tracing::debug!("another process holds the sweep lease"),
                Err(e) => tracing::warn!(error = %e, "taking the sweep lease failed"),
            }
        }
        if let Err(e) = self.store.release_sweep_lease(&self.owner).await {
            tracing::warn!(error = %e, "releasing the sweep lease on shutdown failed");
        }
    }

    /// One sweep under the lease, which a side task extends while it runs; the sweep stops
    /// between batches when the lease is lost or the process is stopping.
    async fn sweep(&self, shutdown: &CancellationToken) {
        let now = now_ms();
        let plan = SweepPlan {
            cutoffs: self
                .retain
                .iter()
                .map(|&(what, keep)| {
                    let keep = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
                    (what, now.saturating_sub(keep))
                })
                .collect(),
            batch: BATCH,
            pause: PAUSE,
        };
        let held = Arc::new(AtomicBool::new(true));
        let renewer = tokio::spawn(renew(self.store.clone(), self.owner.clone(), held.clone()));
        let started = std::time::Instant::now();
        let result = sweep(self.store.as_ref(), &plan, || {
            held.load(Ordering::Relaxed) && !shutdown.is_cancelled()
        })
        .await;
        renewer.abort();
        match result {
            Ok(counts) => {
                for &(what, n) in &counts {
                    rubra_telemetry::metrics::counter!(
                        "rubra_retention_deleted_total",
                        "table" => what.table()
                    )
                    .increment(n);
                }
                let count = |what| counts.iter().find(|&&(w, _)| w == what).map(|&(_, n)| n);
                tracing::info!(
                    delivery_attempts = count(Retained::DeliveryAttempts),
                    notifications = count(Retained::Notifications),
                    watch_changes = count(Retained::WatchChanges),
                    jobs = count(Retained::Jobs),
                    messages = count(Retained::Messages),
                    audit_log = count(Retained::AuditLog),
                    idempotency_keys = count(Retained::IdempotencyKeys),
                    elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "retention sweep done"
                );
            }
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; retrying next period"),
        }
    }
}

/// Extends the sweep lease every [`RENEW_EVERY`]; clears `held` when it is lost.
async fn renew(store: Arc<dyn Store>, owner: String, held: Arc<AtomicBool>) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        match store.take_sweep_lease(&owner, now_ms(), SWEEP_EVERY).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("the sweep lease was taken over; this sweep stops");
                held.store(false, Ordering::Relaxed);
                return;
            }
            // A failed renewal leaves the lease as it was (minutes to run): try again.
            Err(e) => tracing::warn!(error = %e, "renewing the sweep lease failed"),
        }
    }
}
