//! The watch poller: leases watches from the store, polls each on its interval, and records
//! what changed.
//!
//! One manager task per process claims free watches (up to `watch-capacity`), renews its
//! leases every third of the lease time and stops the poll task of every watch it no longer
//! holds (deleted, or taken over after this process stalled). Each held watch has its own
//! task: poll, record under the lease, sleep until the next tick of its interval (backing off
//! while the source fails). A poll's outcome is written with the lease as a fence, so a task
//! that lost its lease writes nothing, and whoever holds the watch next diffs against the
//! stored baseline: nothing is recorded twice or lost in a takeover. On shutdown the leases are
//! released so that another process takes the watches over at once.

use crate::services::Services;
use crate::wake::WatchClaims;
use rubra_fetch::{AllowList, FetchPolicy, Fetcher, Validators};
use rubra_store::{
    Baseline, ChangeOp, ClaimedWatch, NewChange, PollOutcome, Store, WatchId, WatchLease, now_ms,
};
use rubra_watch::{Compare, Op, Polled, Source, next_delay, poll};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the manager looks for watches to claim.
const CLAIM_EVERY: Duration = Duration::from_millis(500);

/// Starts the poller, unless this process polls no watches (`watch-capacity` 0).
pub(crate) fn spawn(services: &Services, shutdown: &CancellationToken) -> Option<JoinHandle<()>> {
    let settings = &services.settings;
    if settings.watch_capacity == 0 {
        return None;
    }
    let mut policy = FetchPolicy::new(AllowList::new(&settings.fetch_allow));
    policy.max_bytes = settings.watch_max_bytes;
    policy.timeout = settings.watch_timeout;
    policy.connect_timeout = settings.watch_timeout.min(Duration::from_secs(3));
    let fetcher = match Fetcher::new(policy) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the watch fetcher; watches are not polled");
            return None;
        }
    };
    let manager = Manager {
        store: services.store.clone(),
        owner: services.instance_id.to_string(),
        fetcher,
        lease: settings.watch_lease,
        capacity: settings.watch_capacity,
        held: HashMap::new(),
        claims: services.wakeups.watches.clone(),
    };
    Some(tokio::spawn(manager.run(shutdown.clone())))
}

struct Manager {
    store: Arc<dyn Store>,
    owner: String,
    fetcher: Fetcher,
    lease: Duration,
    capacity: u32,
    held: HashMap<WatchId, Held>,
    /// Rung when a watch was created here: look for it now.
    claims: WatchClaims,
}

struct Held {
    generation: i64,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Manager {
    async fn run(mut self, shutdown: CancellationToken) {
        let renew_every = self.lease / 3;
        let mut last_renew = Instant::now();
        loop {
            if last_renew.elapsed() >= renew_every {
                self.renew().await;
                last_renew = Instant::now();
            }
            self.held.retain(|_, h| !h.task.is_finished());
            self.claim().await;
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.claims.rung() => {}
                () = tokio::time::sleep(CLAIM_EVERY) => {}
            }
        }
        for (_, h) in self.held.drain() {
            h.stop.cancel();
            let _ = h.task.await;
        }
        if let Err(e) = self.store.release_watches(&self.owner).await {
            tracing::warn!(error = %e, "releasing the watches on shutdown failed");
        }
    }

    /// Extends every lease; stops the tasks of watches no longer held.
    async fn renew(&mut self) {
        match self.store.renew_watches(&self.owner, self.lease).await {
            Ok(leases) => {
                let still: HashMap<WatchId, i64> = leases
                    .into_iter()
                    .map(|l| (l.watch_id, l.generation))
                    .collect();
                self.held.retain(|id, h| {
                    let keep = still.get(id) == Some(&h.generation);
                    if !keep {
                        tracing::info!(watch = %id, "watch no longer held here; polling stops");
                        h.stop.cancel();
                    }
                    keep
                });
            }
            Err(e) => tracing::warn!(error = %e, "renewing watch leases failed"),
        }
    }

    async fn claim(&mut self) {
        let room = self
            .capacity
            .saturating_sub(u32::try_from(self.held.len()).unwrap_or(u32::MAX));
        let claimed = match self
            .store
            .claim_watches(&self.owner, self.lease, room.min(500))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "claiming watches failed");
                return;
            }
        };
        for c in claimed {
            tracing::info!(watch = %c.watch.id, generation = c.lease.generation, "watch claimed");
            let stop = CancellationToken::new();
            let id = c.watch.id.clone();
            let generation = c.lease.generation;
            let poller = WatchPoller::new(self.store.clone(), self.fetcher.clone(), c);
            let task = tokio::spawn(poller.run(stop.clone()));
            if let Some(old) = self.held.insert(
                id,
                Held {
                    generation,
                    stop,
                    task,
                },
            ) {
                old.stop.cancel();
            }
        }
    }
}

/// Polls one held watch until it is stopped or its lease is lost.
struct WatchPoller {
    store: Arc<dyn Store>,
    fetcher: Fetcher,
    lease: WatchLease,
    source: Source,
    interval: Duration,
    baseline: Baseline,
    failures: u32,
}

impl WatchPoller {
    fn new(store: Arc<dyn Store>, fetcher: Fetcher, c: ClaimedWatch) -> Self {
        let spec = c.watch.spec;
        WatchPoller {
            store,
            fetcher,
            lease: c.lease,
            source: Source {
                url: spec.url,
                headers: spec.headers,
                compare: Compare {
                    pointer: spec.pointer,
                    key: spec.key,
                },
            },
            interval: Duration::from_millis(u64::from(spec.interval_ms.max(1))),
            baseline: c.baseline,
            failures: c.watch.failures,
        }
    }

    async fn run(mut self, stop: CancellationToken) {
        // A newly held watch is polled at once: its last poll may be an interval old.
        let mut next = Instant::now();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep_until(next) => {}
            }
            let scheduled = next;
            if !self.poll_once().await {
                return;
            }
            let wait = if self.failures == 0 {
                self.interval
            } else {
                next_delay(self.interval, self.failures)
            };
            // Keep to the interval's grid; after a stall, start again from now (no burst).
            next = (scheduled + wait).max(Instant::now());
        }
    }

    /// One poll and its record. False when the lease is gone.
    #[tracing::instrument(name = "watch.poll", skip_all, fields(watch = %self.lease.watch_id))]
    async fn poll_once(&mut self) -> bool {
        let at = now_ms();
        let validators = Validators {
            etag: self.baseline.etag.clone(),
            last_modified: self.baseline.last_modified.clone(),
        };
        let outcome = match poll(
            &self.fetcher,
            &self.source,
            self.baseline.doc.as_deref(),
            &validators,
        )
        .await
        {
            Ok(Polled::Unchanged) => PollOutcome::Unchanged { at },
            Ok(Polled::New {
                doc,
                validators,
                changes,
            }) => PollOutcome::Document {
                at,
                baseline: Baseline {
                    doc: Some(doc),
                    etag: validators.etag,
                    last_modified: validators.last_modified,
                },
                changes: changes
                    .into_iter()
                    .map(|c| NewChange {
                        path: c.path,
                        op: match c.op {
                            Op::Add => ChangeOp::Add,
                            Op::Remove => ChangeOp::Remove,
                            Op::Replace => ChangeOp::Replace,
                        },
                        old: c.old,
                        new: c.new,
                    })
                    .collect(),
            },
            Err(e) => PollOutcome::Failed {
                at,
                error: format!("{} ({})", e, e.code()),
            },
        };
        let counter = match &outcome {
            PollOutcome::Unchanged { .. } => "unchanged",
            PollOutcome::Document { .. } => "document",
            PollOutcome::Failed { .. } => "failed",
        };
        rubra_telemetry::metrics::counter!("rubra_watch_polls_total", "outcome" => counter)
            .increment(1);
        match self.store.record_poll(&self.lease, &outcome).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::info!(watch = %self.lease.watch_id, "watch lease lost; polling stops");
                return false;
            }
            Err(e) => {
                // Not recorded: the baseline stays, so the next poll finds the same changes.
                tracing::warn!(watch = %self.lease.watch_id, error = %e, "recording a poll failed");
                self.failures = self.failures.saturating_add(1);
                return true;
            }
        }
        match outcome {
            PollOutcome::Unchanged { .. } => self.failures = 0,
            PollOutcome::Document {
                baseline, changes, ..
            } => {
                if !changes.is_empty() {
                    rubra_telemetry::metrics::counter!("rubra_watch_changes_total")
                        .increment(changes.len() as u64);
                }
                self.baseline = baseline;
                self.failures = 0;
            }
            PollOutcome::Failed { error, .. } => {
                self.failures = self.failures.saturating_add(1);
                tracing::warn!(watch = %self.lease.watch_id, failures = self.failures, %error, "watch poll failed");
            }
        }
        true
    }
}
