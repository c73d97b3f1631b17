//! Subscriptions and the notification outbox: notifications are written in the same
//! transaction as their event, and delivery workers lease them from the table.
//!
//! # How a notification moves
//!
//! The [`outbox`] writes one row per subscription an event (a watch's changes, a message)
//! reaches, inside the transaction of that event. A webhook or Viber row starts `pending` and due at once; a stream row
//! is written `stream` (nothing to send: it is read by the live stream); a row of a paused
//! subscription is written `held`.
//!
//! Workers [`claim`](NotifyStore::claim_notifications) due rows: the claim sets the lease owner
//! and moves `next_attempt_at` to the end of the lease, so "due" is the single condition
//! `state = 'pending' AND next_attempt_at <= now` (one partial index), and a row whose worker
//! died is due again when its lease ends — another process takes it over without any sweeper.
//! PostgreSQL claims with `FOR UPDATE SKIP LOCKED`; SQLite's claim is one `UPDATE … RETURNING`
//! statement, atomic under its single writer; SQLite's notify writes first wait for the
//! store's write gate, shared with the event writer, rather than in SQLite's busy handler.
//!
//! [`record_delivery`](NotifyStore::record_delivery) stores the verdict: delivered, retry at
//! T (pending again, due at T), or failed (retries ran out); `record_deliveries` stores many
//! in one SQLite transaction. Every failed attempt counts
//! towards the subscription's `consecutive_failures` (a success resets it); at the limit the
//! subscription is paused with a `paused_reason` and its pending rows are `held` until
//! [`resume_subscription`](NotifyStore::resume_subscription) makes them due again.
//!
//! # Reading for the live stream
//!
//! [`notifications_after`](NotifyStore::notifications_after) reads a client's rows by `seq`.
//! On SQLite, seqs commit in order (one writer), so "seq > cursor" misses nothing. On
//! PostgreSQL an identity value is taken before its transaction commits, so seq 9 may become
//! visible after seq 10 was read. Readers therefore treat rows younger than
//! [`replay_settle_ms`](NotifyStore::replay_settle_ms) as unsettled and re-read that window
//! (the server's stream does so without sending a row twice), and a reconnect resumes from
//! [`settled_cursor`](NotifyStore::settled_cursor), which may re-send the last few seconds —
//! at-least-once, deduplicable by id, never a loss unless a transaction stays open longer
//! than the settle time.

mod backend;
mod channel;
mod fair;
pub(crate) mod outbox;
mod postgres;
mod sqlite;

pub use channel::Channel;
pub use fair::ClaimLimits;

use crate::{ClientId, MessageContent, PgStore, Result, Scope, SqliteStore, TypePattern};
use async_trait::async_trait;
use backend::Notify;
use serde::Serialize;
use std::fmt;

/// The `paused_reason` of a subscription its client paused
/// ([`NotifyStore::pause_subscription`]).
pub const PAUSED_BY_CLIENT: &str = "paused by its client";

/// `INSERT INTO delivery_attempts` of `rows` (at most 500: 9 parameters each), for a
/// transaction of either database.
pub(crate) fn insert_log_rows<'a, DB: sqlx::Database>(
    rows: &'a [DeliveryAttempt],
) -> sqlx::QueryBuilder<DB>
where
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<&'a str>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let mut q = sqlx::QueryBuilder::<DB>::new(
        "INSERT INTO delivery_attempts (notification_seq, subscription_id, client_id, attempt, \
         at, outcome, status_code, latency_ms, error) ",
    );
    q.push_values(rows, |mut b, r| {
        b.push_bind(r.notification_seq)
            .push_bind(r.subscription_id.as_str())
            .push_bind(r.client_id.as_str())
            .push_bind(r.attempt)
            .push_bind(r.at)
            .push_bind(r.outcome.as_str())
            .push_bind(r.status_code)
            .push_bind(r.latency_ms)
            .push_bind(r.error.as_deref());
    });
    q
}

/// The logged outcome of an attempt whose verdict was not recorded: the worker's lease had
/// run out and another worker had taken the notification over (or it was settled, e.g. its
/// subscription deleted) before the verdict reached the database. The call did happen (its
/// status code is kept), but only the lease holder's verdict counts, so a notification is
/// logged `delivered` at most once (issue #26: fencing).
pub const SUPERSEDED: &str = "superseded";

/// `row` as logged when its verdict was not recorded: the outcome [`SUPERSEDED`].
pub(crate) fn superseded(row: &DeliveryAttempt) -> DeliveryAttempt {
    DeliveryAttempt {
        outcome: SUPERSEDED.to_owned(),
        ..row.clone()
    }
}

/// One step of recording a batch of verdicts, from [`verdict_steps`].
pub(crate) enum VerdictStep<'a> {
    /// A run of successful deliveries, recorded together.
    Delivered(&'a [DeliveryVerdict]),
    /// Any other verdict, recorded alone.
    One(&'a DeliveryVerdict),
}

/// The batch in order, but each run of successes as one step: their effects do not depend on
/// their order among themselves (each resets its subscription's failure count), only on their
/// order relative to failures, which is kept. Both backends record verdicts this way.
pub(crate) fn verdict_steps(verdicts: &[DeliveryVerdict]) -> Vec<VerdictStep<'_>> {
    let mut steps = Vec::new();
    let mut rest = verdicts;
    while let Some(first) = rest.first() {
        let run = rest
            .iter()
            .take_while(|v| v.verdict == Verdict::Delivered)
            .count();
        if run > 0 {
            steps.push(VerdictStep::Delivered(&rest[..run]));
            rest = &rest[run..];
        } else {
            steps.push(VerdictStep::One(first));
            rest = &rest[1..];
        }
    }
    steps
}

/// `log` as written for verdicts of which `recorded` says which were applied: the attempt of
/// a verdict that was not gets the outcome [`SUPERSEDED`]. Rows are matched to verdicts by
/// notification and attempt. When every verdict applied (the usual case) `log` is used as it
/// is, without a copy.
pub(crate) fn log_as_recorded<'a>(
    verdicts: &[DeliveryVerdict],
    recorded: &[Recorded],
    log: &'a [DeliveryAttempt],
) -> std::borrow::Cow<'a, [DeliveryAttempt]> {
    let stale: std::collections::HashSet<(i64, i64)> = verdicts
        .iter()
        .zip(recorded)
        .filter(|(_, r)| !r.applied)
        .map(|(v, _)| (v.notification.seq, v.notification.attempts))
        .collect();
    if stale.is_empty() {
        return std::borrow::Cow::Borrowed(log);
    }
    log.iter()
        .map(|row| {
            if stale.contains(&(row.notification_seq, row.attempt)) {
                superseded(row)
            } else {
                row.clone()
            }
        })
        .collect()
}

/// The id of a subscription: `sub_` followed by 16 random hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct SubscriptionId(String);

impl SubscriptionId {
    /// A fresh random id.
    pub fn generate() -> Self {
        SubscriptionId(format!("sub_{}", crate::random_id(8)))
    }

    /// Accepts an id from a URL or a query; `None` if it cannot be a subscription id.
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s.strip_prefix("sub_")?;
        (hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| SubscriptionId(s.to_owned()))
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a subscription is being delivered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionState {
    /// Delivered to.
    Active,
    /// Stopped after repeated failures; its notifications are held until it is resumed.
    Paused,
}

impl SubscriptionState {
    fn from_db(s: &str) -> Self {
        if s == "paused" {
            SubscriptionState::Paused
        } else {
            SubscriptionState::Active
        }
    }
}

/// A subscription as stored (its secrets opened: they are sealed in the database).
#[derive(Clone, PartialEq)]
pub struct Subscription {
    /// Its id.
    pub id: SubscriptionId,
    /// The owner.
    pub client_id: ClientId,
    /// Notify when an event's red is strictly greater than this; `None`: red events never
    /// notify (a subscription to message types only).
    pub threshold: Option<f64>,
    /// The message types it matches (empty: none).
    pub types: Vec<TypePattern>,
    /// Where to.
    pub channel: Channel,
    /// The webhook signing secret (`whsec_…`), for webhook channels.
    pub secret: Option<String>,
    /// The secret before the last rotation, still signing until `previous_secret_until`.
    pub previous_secret: Option<String>,
    /// Until when (epoch ms) deliveries are signed with `previous_secret` as well.
    pub previous_secret_until: Option<i64>,
    /// Active or paused.
    pub state: SubscriptionState,
    /// Why it was paused.
    pub paused_reason: Option<String>,
    /// Failed attempts since the last success.
    pub consecutive_failures: i64,
    /// Creation time, epoch ms.
    pub created_at: i64,
}

impl Subscription {
    /// The webhook secrets that sign a delivery at `now` (epoch ms): the current one, and the
    /// previous one while its overlap lasts.
    pub fn signing_secrets(&self, now: i64) -> Vec<&str> {
        let previous = match (&self.previous_secret, self.previous_secret_until) {
            (Some(p), Some(until)) if now < until => Some(p.as_str()),
            _ => None,
        };
        self.secret.as_deref().into_iter().chain(previous).collect()
    }
}

/// Secrets stay out of logs and panics.
impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("threshold", &self.threshold)
            .field("types", &self.types)
            .field("channel", &self.channel)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("previous_secret_until", &self.previous_secret_until)
            .field("state", &self.state)
            .field("paused_reason", &self.paused_reason)
            .field("consecutive_failures", &self.consecutive_failures)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A subscription to create.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    /// The owner.
    pub client_id: ClientId,
    /// The threshold, in [0, 1]; `None` for a subscription to message types only.
    pub threshold: Option<f64>,
    /// The message types it matches (empty: none); a subscription has a threshold, types, or
    /// both.
    pub types: Vec<TypePattern>,
    /// Where to (validated by the caller with [`Channel::validate`]).
    pub channel: Channel,
    /// The webhook secret text, for webhook channels.
    pub secret: Option<String>,
    /// The most live subscriptions the client may have, this one included.
    pub limit: u32,
}

/// One notification: an event that exceeded one subscription's threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Its identity: the SSE event id, and the webhook id as `ntf_{seq}`.
    pub seq: i64,
    /// The owner.
    pub client_id: ClientId,
    /// The subscription it was made for.
    pub subscription_id: SubscriptionId,
    /// The channel type at the time.
    pub channel_type: String,
    /// The image measured, if stored.
    pub image_id: Option<String>,
    /// The event's red level.
    pub red: f64,
    /// The subscription's threshold at the time.
    pub threshold: f64,
    /// The event time, epoch ms.
    pub event_ts: i64,
    /// When the notification was written, epoch ms.
    pub created_at: i64,
    /// pending, delivered, failed, held, canceled or stream.
    pub state: String,
    /// Attempts made (counting the one a claim starts).
    pub attempts: i64,
    /// For a notification made by a watch (not by a red event): the watch.
    pub watch_id: Option<String>,
    /// For a notification made by a watch: its changes, a JSON array of
    /// `{seq, path, op, old, new}`.
    pub changes: Option<String>,
    /// For a notification made by a message: what it carries (`event_ts` is when the message
    /// was received).
    pub message: Option<MessageContent>,
}

/// A notification leased to a worker, with its subscription.
#[derive(Debug, Clone)]
pub struct ClaimedNotification {
    /// The notification; `attempts` counts the attempt this claim is for.
    pub notification: Notification,
    /// Its subscription.
    pub subscription: Subscription,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The receiver accepted it.
    Delivered,
    /// Failed; try again at this time (epoch ms).
    RetryAt(i64),
    /// Failed, and retries ran out.
    Failed,
}

/// The effect of [`NotifyStore::record_delivery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recorded {
    /// False when this worker no longer held the lease (another took the row over), so
    /// nothing was changed.
    pub applied: bool,
    /// True when this failure paused the subscription.
    pub paused: bool,
}

/// The verdict on one attempt, for [`NotifyStore::record_deliveries`].
#[derive(Debug, Clone)]
pub struct DeliveryVerdict {
    /// The notification as claimed (its `attempts` counting this attempt).
    pub notification: Notification,
    /// What became of the attempt.
    pub verdict: Verdict,
    /// Why it failed.
    pub error: Option<String>,
}

/// One row of the delivery log.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    /// The log row's id (assigned on insert; ignored when writing).
    pub id: i64,
    /// The notification.
    pub notification_seq: i64,
    /// Its subscription.
    pub subscription_id: SubscriptionId,
    /// The owner.
    pub client_id: ClientId,
    /// 1 for the first attempt.
    pub attempt: i64,
    /// When the attempt ended, epoch ms.
    pub at: i64,
    /// `delivered`, `retrying` or `failed`; [`SUPERSEDED`] when the attempt's verdict was
    /// not recorded because its lease had run out (see there).
    pub outcome: String,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<i64>,
    /// How long the attempt took.
    pub latency_ms: i64,
    /// Why it failed.
    pub error: Option<String>,
}

/// A page request over the delivery log, newest first.
#[derive(Debug, Clone, Default)]
pub struct LogPage {
    /// Only this subscription's attempts.
    pub subscription: Option<SubscriptionId>,
    /// Only attempts older than this log id (the previous page's last).
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// A PostgreSQL `LISTEN` on the outbox doorbell.
pub struct OutboxListener(sqlx::postgres::PgListener);

impl OutboxListener {
    /// Waits for the next ring; returns the client id that some process wrote notifications
    /// for. Reconnects by itself; messages sent while reconnecting are lost (poll as well).
    pub async fn recv(&mut self) -> Result<String> {
        Ok(self.0.recv().await?.payload().to_owned())
    }
}

impl fmt::Debug for OutboxListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OutboxListener")
    }
}

/// Subscriptions, notifications and the delivery log (DESIGN §5).
#[async_trait]
pub trait NotifyStore: Send + Sync {
    /// Stores a new subscription, recorded in the audit log as made by `actor`.
    async fn create_subscription(
        &self,
        new: &NewSubscription,
        actor: &crate::Actor,
    ) -> Result<Subscription>;

    /// A live (not deleted) subscription within `scope`.
    async fn get_subscription(
        &self,
        scope: &Scope,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>>;

    /// The live subscriptions within `scope`, oldest first.
    async fn list_subscriptions(&self, scope: &Scope) -> Result<Vec<Subscription>>;

    /// Deletes a subscription (softly: its delivery log stays readable) and cancels its
    /// undelivered notifications, audited as done by `actor`; `false` when there was none.
    async fn delete_subscription(
        &self,
        scope: &Scope,
        id: &SubscriptionId,
        actor: &crate::Actor,
    ) -> Result<bool>;

    /// Replaces a webhook subscription's signing secret with `new_secret`; the old one keeps
    /// signing (beside the new) until `overlap_until` (epoch ms). A rotation during an overlap
    /// ends the older secret's. Audited as done by `actor`. `None` when there is no such
    /// webhook subscription in `scope`.
    async fn rotate_webhook_secret(
        &self,
        scope: &Scope,
        id: &SubscriptionId,
        new_secret: &str,
        overlap_until: i64,
        actor: &crate::Actor,
    ) -> Result<Option<Subscription>>;

    /// Pauses an active subscription at its client's request ([`PAUSED_BY_CLIENT`] is its
    /// `paused_reason`): its waiting notifications are held until it is resumed, and so are
    /// new ones; one being delivered right now finishes its attempt. Pausing a paused one
    /// changes nothing. `None` when there is no such subscription.
    async fn pause_subscription(
        &self,
        scope: &Scope,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>>;

    /// Resumes a paused subscription: failures reset, held notifications due at once.
    /// Resuming an active one changes nothing. `None` when there is no such subscription.
    async fn resume_subscription(
        &self,
        scope: &Scope,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>>;

    /// When the earliest pending notification is due (epoch ms), if any: lets a worker sleep
    /// exactly as long as there is nothing to do.
    async fn next_due_notification(&self) -> Result<Option<i64>>;

    /// Leases due notifications to `owner` until `now + lease_ms`: at most `limits.total`,
    /// taken fairly over subscriptions and clients within their caps (see [`ClaimLimits`]),
    /// in seq order.
    async fn claim_notifications(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limits: &ClaimLimits,
    ) -> Result<Vec<ClaimedNotification>>;

    /// Records the verdict on an attempt that `owner` made under its lease, and pauses the
    /// subscription when this failure makes `pause_after` consecutive ones.
    async fn record_delivery(
        &self,
        owner: &str,
        claimed: &Notification,
        verdict: Verdict,
        error: Option<&str>,
        pause_after: u32,
    ) -> Result<Recorded>;

    /// [`record_delivery`](NotifyStore::record_delivery) for many attempts at once (one
    /// result each, in order): one transaction on SQLite, whose single writer would otherwise
    /// commit once per delivery. All or nothing there: on an error nothing is recorded, the
    /// leases run out and the notifications are tried again (at least once).
    async fn record_deliveries(
        &self,
        owner: &str,
        verdicts: &[DeliveryVerdict],
        pause_after: u32,
    ) -> Result<Vec<Recorded>>;

    /// [`record_deliveries`](NotifyStore::record_deliveries) with the delivery log: `log[i]`
    /// is the log row of `verdicts[i]`'s attempt (equal lengths), written in the transaction
    /// that records the verdict, so a process killed at any moment leaves no delivered
    /// notification without its log row and no log row without its verdict.
    async fn record_deliveries_logged(
        &self,
        owner: &str,
        verdicts: &[DeliveryVerdict],
        log: &[DeliveryAttempt],
        pause_after: u32,
    ) -> Result<Vec<Recorded>>;

    /// A client's notifications with `seq > after`, in seq order, at most `limit`.
    async fn notifications_after(
        &self,
        client: &ClientId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Notification>>;

    /// The highest seq of a client's notifications at or below `at_most` created before
    /// `created_before` (0 if none): where a replay may safely resume from.
    async fn settled_cursor(
        &self,
        client: &ClientId,
        at_most: i64,
        created_before: i64,
    ) -> Result<i64>;

    /// The highest seq of a client's notifications (0 if none).
    async fn latest_notification_seq(&self, client: &ClientId) -> Result<i64>;

    /// How long after its `created_at` a notification row may still become visible with a
    /// seq below ones already read (0 on SQLite, whose writes commit in seq order).
    fn replay_settle_ms(&self) -> i64;

    /// Notifications waiting for delivery or being delivered, over every process (a count
    /// over the pending index, for the `rubra_notifications_pending` gauge).
    async fn pending_notifications(&self) -> Result<u64>;

    /// Appends rows to the delivery log in one transaction.
    async fn insert_delivery_attempts(&self, rows: &[DeliveryAttempt]) -> Result<()>;

    /// A page of the delivery log within `scope`, newest first.
    async fn list_delivery_attempts(
        &self,
        scope: &Scope,
        page: &LogPage,
    ) -> Result<Vec<DeliveryAttempt>>;

    /// Listens for notifications written by any process (PostgreSQL); `None` on SQLite,
    /// where every writer is in this process.
    async fn listen_outbox(&self) -> Result<Option<OutboxListener>>;
}

/// Implements [`NotifyStore`] for a backend: every method a one-line call of [`Notify`] —
/// the shared queries in `notify/backend.rs`, the backend's own in `notify/sqlite.rs` or
/// `notify/postgres.rs`.
macro_rules! impl_notify_store {
    ($store:ty) => {
        #[async_trait]
        impl NotifyStore for $store {
            async fn create_subscription(
                &self,
                new: &NewSubscription,
                actor: &crate::Actor,
            ) -> Result<Subscription> {
                Notify(self).create_subscription(new, actor).await
            }
            async fn get_subscription(
                &self,
                scope: &Scope,
                id: &SubscriptionId,
            ) -> Result<Option<Subscription>> {
                Notify(self).get_subscription(scope, id).await
            }
            async fn list_subscriptions(&self, scope: &Scope) -> Result<Vec<Subscription>> {
                Notify(self).list_subscriptions(scope).await
            }
            async fn delete_subscription(
                &self,
                scope: &Scope,
                id: &SubscriptionId,
                actor: &crate::Actor,
            ) -> Result<bool> {
                Notify(self).delete_subscription(scope, id, actor).await
            }
            async fn rotate_webhook_secret(
                &self,
                scope: &Scope,
                id: &SubscriptionId,
                new_secret: &str,
                overlap_until: i64,
                actor: &crate::Actor,
            ) -> Result<Option<Subscription>> {
                Notify(self)
                    .rotate_webhook_secret(scope, id, new_secret, overlap_until, actor)
                    .await
            }
            async fn pause_subscription(
                &self,
                scope: &Scope,
                id: &SubscriptionId,
            ) -> Result<Option<Subscription>> {
                Notify(self).pause_subscription(scope, id).await
            }
            async fn resume_subscription(
                &self,
                scope: &Scope,
                id: &SubscriptionId,
            ) -> Result<Option<Subscription>> {
                Notify(self).resume_subscription(scope, id).await
            }
            async fn next_due_notification(&self) -> Result<Option<i64>> {
                Notify(self).next_due_notification().await
            }
            async fn claim_notifications(
                &self,
                owner: &str,
                now: i64,
                lease_ms: i64,
                limits: &ClaimLimits,
            ) -> Result<Vec<ClaimedNotification>> {
                Notify(self)
                    .claim_notifications(owner, now, lease_ms, limits)
                    .await
            }
            async fn record_delivery(
                &self,
                owner: &str,
                claimed: &Notification,
                verdict: Verdict,
                error: Option<&str>,
                pause_after: u32,
            ) -> Result<Recorded> {
                Notify(self)
                    .record_delivery(owner, claimed, verdict, error, pause_after)
                    .await
            }
            async fn record_deliveries(
                &self,
                owner: &str,
                verdicts: &[DeliveryVerdict],
                pause_after: u32,
            ) -> Result<Vec<Recorded>> {
                Notify(self)
                    .record_deliveries(owner, verdicts, pause_after)
                    .await
            }
            async fn record_deliveries_logged(
                &self,
                owner: &str,
                verdicts: &[DeliveryVerdict],
                log: &[DeliveryAttempt],
                pause_after: u32,
            ) -> Result<Vec<Recorded>> {
                Notify(self)
                    .record_deliveries_logged(owner, verdicts, log, pause_after)
                    .await
            }
            async fn notifications_after(
                &self,
                client: &ClientId,
                after: i64,
                limit: u32,
            ) -> Result<Vec<Notification>> {
                Notify(self).notifications_after(client, after, limit).await
            }
            async fn settled_cursor(
                &self,
                client: &ClientId,
                at_most: i64,
                created_before: i64,
            ) -> Result<i64> {
                Notify(self)
                    .settled_cursor(client, at_most, created_before)
                    .await
            }
            async fn latest_notification_seq(&self, client: &ClientId) -> Result<i64> {
                Notify(self).latest_notification_seq(client).await
            }
            fn replay_settle_ms(&self) -> i64 {
                Notify(self).replay_settle_ms()
            }
            async fn pending_notifications(&self) -> Result<u64> {
                Notify(self).pending_notifications().await
            }
            async fn insert_delivery_attempts(&self, rows: &[DeliveryAttempt]) -> Result<()> {
                Notify(self).insert_delivery_attempts(rows).await
            }
            async fn list_delivery_attempts(
                &self,
                scope: &Scope,
                page: &LogPage,
            ) -> Result<Vec<DeliveryAttempt>> {
                Notify(self).list_delivery_attempts(scope, page).await
            }
            async fn listen_outbox(&self) -> Result<Option<OutboxListener>> {
                Notify(self).listen_outbox().await
            }
        }
    };
}

impl_notify_store!(SqliteStore);
impl_notify_store!(PgStore);
