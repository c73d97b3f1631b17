//! What the queue worker holds while a job runs: the cancel flag and live progress.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rubra_csvsum::Progress;

/// The handles a queue worker keeps for one running job. Cheap to clone;
/// clones share the same flag and counters.
#[derive(Clone, Debug, Default)]
pub struct RunControl {
    /// Set to `true` (from any thread) to stop the job; [`run`](crate::run)
    /// then returns [`JobError::Canceled`](crate::JobError::Canceled) within
    /// a second.
    pub cancel: Arc<AtomicBool>,
    /// Live progress, for `GET /jobs/{id}` and heartbeats.
    pub progress: Arc<JobProgress>,
}

impl RunControl {
    /// A fresh control: not canceled, progress at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the job to stop.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_canceled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// Live counters of one job.
///
/// A download that has to start over (the object changed) starts a fresh
/// set of counters, so `bytes_done` and `rows` never count anything twice.
#[derive(Debug, Default)]
pub struct JobProgress {
    current: Mutex<Arc<Progress>>,
    /// Size of the input in bytes; `u64::MAX` while unknown.
    total: AtomicU64Total,
}

#[derive(Debug)]
struct AtomicU64Total(AtomicU64);

impl Default for AtomicU64Total {
    fn default() -> Self {
        Self(AtomicU64::new(u64::MAX))
    }
}

/// A consistent-enough reading of [`JobProgress`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgressSnapshot {
    /// Input bytes parsed so far.
    pub bytes_done: u64,
    /// Size of the input, once known (after the first response or `stat`).
    pub bytes_total: Option<u64>,
    /// Data rows counted so far (may run slightly ahead of the final count
    /// during a parallel run; the final count is in the summary).
    pub rows: u64,
}

impl JobProgress {
    /// Reads the counters.
    pub fn snapshot(&self) -> ProgressSnapshot {
        let p = self.counters();
        let total = self.total.0.load(Ordering::Relaxed);
        ProgressSnapshot {
            bytes_done: p.bytes(),
            bytes_total: (total != u64::MAX).then_some(total),
            rows: p.rows(),
        }
    }

    /// The counters the summing engine is updating now.
    pub(crate) fn counters(&self) -> Arc<Progress> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Starts over at zero (the input is read again from the beginning) and
    /// returns the new counters to hand to the engine.
    pub(crate) fn restart(&self) -> Arc<Progress> {
        let fresh = Arc::new(Progress::new());
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = fresh.clone();
        fresh
    }

    pub(crate) fn set_total(&self, total: u64) {
        self.total.0.store(total, Ordering::Relaxed);
    }
}
