//! Wake-ups and run state shared by the API and this process's workers, as handles owned by
//! [`Services`](crate::services::Services) and passed to both sides (never statics). Each is
//! only a hint to look now: the workers also poll, so a lost wake-up delays, never loses.

use rubra_jobs::RunControl;
use rubra_store::JobId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio::sync::futures::Notified;

/// Every wake-up of one process.
#[derive(Clone, Debug, Default)]
pub struct Wakeups {
    /// The job workers' doorbell and the runs in progress here.
    pub jobs: JobRuns,
    /// The watch poller's doorbell.
    pub watches: WatchClaims,
}

/// The job workers of this process: rung when a job was queued here or a slot freed, and the
/// jobs running here, to stop one at once when it is canceled here.
#[derive(Clone, Debug, Default)]
pub struct JobRuns {
    bell: Arc<Notify>,
    running: Arc<Mutex<HashMap<JobId, RunControl>>>,
}

impl JobRuns {
    /// Wakes this process's idle job workers (a job was just queued, or a slot freed).
    pub fn wake(&self) {
        self.bell.notify_waiters();
    }

    /// The next [`wake`](Self::wake), for a worker about to look for work.
    pub(crate) fn notified(&self) -> Notified<'_> {
        self.bell.notified()
    }

    /// Stops the run of `id` if this process is running it.
    pub fn cancel_local(&self, id: &JobId) {
        if let Some(c) = self.lock().get(id) {
            c.cancel();
        }
    }

    /// Records that this process runs `id`, stopped through `control`.
    pub(crate) fn started(&self, id: &JobId, control: RunControl) {
        self.lock().insert(id.clone(), control);
    }

    /// Records that the run of `id` ended.
    pub(crate) fn finished(&self, id: &JobId) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, RunControl>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The watch poller's doorbell: rung when a watch was created here, so it is claimed now
/// rather than at the next poll.
#[derive(Clone, Debug, Default)]
pub struct WatchClaims(Arc<Notify>);

impl WatchClaims {
    /// Asks this process's poller to look for new watches now.
    pub fn ring(&self) {
        self.0.notify_one();
    }

    /// Waits for the next [`ring`](Self::ring).
    pub(crate) async fn rung(&self) {
        self.0.notified().await;
    }
}
