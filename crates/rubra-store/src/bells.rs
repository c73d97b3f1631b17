//! In-process doorbells, owned by the store that rings them.
//!
//! A store rings a bell after it committed something a waiter in the same process may want at
//! once: new notifications (the delivery workers and the notification streams listen to
//! [`Bells::outbox`]), new watch changes (the watch streams listen to
//! [`Bells::watch_changes`]). A ring is only a hint to look now: every waiter also polls, so a
//! missed ring delays, never loses; writes of other processes ring nothing here (on
//! PostgreSQL the delivery workers' `LISTEN` rings the outbox bell for them).

use std::sync::Arc;
use tokio::sync::watch;

/// One doorbell: any number of listeners, woken by every ring (rings while nobody listens
/// are not kept beyond the last one).
#[derive(Clone, Debug)]
pub struct Doorbell(Arc<watch::Sender<u64>>);

impl Default for Doorbell {
    fn default() -> Self {
        Doorbell(Arc::new(watch::channel(0).0))
    }
}

impl Doorbell {
    /// Rings: every listener's `changed()` returns.
    pub fn ring(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A listener that wakes at the next ring (`changed().await`).
    pub fn listen(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// The doorbells of one store.
#[derive(Clone, Debug, Default)]
pub struct Bells {
    /// Rung after notifications were written (events, messages, watch changes, resumed
    /// subscriptions) and by the PostgreSQL listener for other processes' writes.
    pub outbox: Doorbell,
    /// Rung after a poll recorded watch changes.
    pub watch_changes: Doorbell,
}
