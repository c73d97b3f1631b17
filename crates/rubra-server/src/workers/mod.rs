//! Background work that every `rubra serve` and `rubra worker` process runs: each kind of
//! worker leases its work from the store, so any number of processes share it and a dead
//! process's work moves on when its lease expires.

pub(crate) mod amqp;
pub(crate) mod gauges;
pub(crate) mod jobs;
pub(crate) mod notify;
pub(crate) mod retention;
pub(crate) mod watches;

use crate::services::Services;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The running workers of one process.
pub struct Workers {
    handles: Vec<JoinHandle<()>>,
}

/// Starts every worker this process runs; they stop when `shutdown` is cancelled.
pub fn spawn(services: &Services, shutdown: &CancellationToken) -> Workers {
    let mut handles = Vec::new();
    handles.extend(jobs::spawn(services, shutdown));
    handles.extend(notify::spawn(services, shutdown));
    handles.extend(amqp::spawn(services, shutdown));
    handles.extend(watches::spawn(services, shutdown));
    handles.extend(retention::spawn(services, shutdown));
    handles.extend(gauges::spawn(services, shutdown));
    Workers { handles }
}

impl Workers {
    /// Waits until every worker has stopped (after the shutdown token was cancelled).
    pub async fn join(self) {
        for handle in self.handles {
            match handle.await {
                Ok(()) => {}
                // The runtime is going away under us (a test or an example ending without
                // waiting for the shutdown): nothing failed.
                Err(e) if e.is_cancelled() => {
                    tracing::debug!(error = %e, "a worker task was cancelled");
                }
                Err(e) => tracing::error!(error = %e, "a worker task failed"),
            }
        }
    }
}
