//! Notification delivery: one dispatcher per process claims due notifications from the outbox
//! (leases, so any number of processes share them), delivers each through `rubra-notify`,
//! records the verdict, and logs every attempt.
//!
//! Verdicts and their log rows go to one recorder task that stores everything waiting in one
//! call ([`record_deliveries_logged`](rubra_store::NotifyStore::record_deliveries_logged): one
//! transaction on SQLite), so a burst of deliveries costs one commit, not one each, and the
//! delivery log is written off the delivery's path. A verdict and its log row commit together:
//! a process killed with `kill -9` leaves no delivered notification without its log row.
//!
//! Waking up: the dispatcher looks at the outbox when the store's outbox doorbell rings
//! ([`rubra_store::Bells::outbox`]: rung by the store after writing notifications, by a
//! PostgreSQL `LISTEN` for other processes' writes, and after a verdict set a retry), when the earliest retry falls due, and otherwise every
//! [`POLL`] — the table is the truth, the bell only a hint. A retry carries the same
//! `webhook-id` (`ntf_{seq}`) as the first attempt, with a fresh timestamp and signature.
//!
//! Fairness: every claim takes, per subscription and per client, only as many notifications as
//! their caps leave ([`ClaimLimits`]: `--notify-max-in-flight-per-subscription`,
//! `--notify-max-in-flight-per-relay-subscription` for a subscription carrying messages to Viber,
//! and `--notify-client-share` of the [`CONCURRENCY`] slots), counting the ones in flight in
//! every process, so a slow endpoint slows only its own subscription. A recorded verdict frees a
//! subscription's place, so the recorder wakes the dispatcher after each batch.
//!
//! Webhooks go through the egress guard of [`webhook_guard`] (the one `POST /subscriptions`
//! checks URLs with): a refused address is a failed attempt like any other.

use crate::services::Services;
use crate::settings::Settings;
use crate::timefmt::format_ms;
use rubra_fetch::{AllowList, Guard, Reach};
use rubra_notify::{Outcome, RetrySchedule, Sender, ViberMessage, WebhookRequest, WebhookSecret};
use rubra_store::{
    Channel, ClaimLimits, ClaimedNotification, ClientId, DeliveryAttempt, DeliveryVerdict,
    MessageContent, Notification, Store, SubscriptionId, Verdict, now_ms,
};
use serde::Serialize;
use serde_json::json;
use serde_json::value::RawValue;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The longest the dispatcher sleeps without looking at the outbox. The look is one indexed
/// `MIN()` read, so polling this often costs little and bounds the delivery latency even where
/// no doorbell rings.
pub const POLL: Duration = Duration::from_millis(20);
/// Deliveries one process runs at once.
pub const CONCURRENCY: usize = 128;
/// Most notifications claimed in one statement.
const CLAIM_BATCH: u32 = 64;
/// Most verdicts recorded in one call (all that are waiting, up to this).
const VERDICT_BATCH: usize = 512;

/// The guard webhook URLs pass, at `POST /subscriptions` and at every attempt: any host at a
/// public address; internal addresses (loopback, private, link-local, metadata…) only for hosts
/// listed exactly in `--fetch-allow`; https only under `--webhook-https-only`, except for those
/// hosts.
pub fn webhook_guard(settings: &Settings) -> Guard {
    Guard::new(AllowList::new(&settings.fetch_allow), Reach::Public)
        .https_only(settings.webhook_https_only)
}

/// The `webhook-id` of a notification, the same on every attempt.
pub fn webhook_id(seq: i64) -> String {
    format!("ntf_{seq}")
}

/// The JSON of a notification, as POSTed to webhooks and sent on the live stream.
pub fn notification_body(n: &Notification) -> String {
    if let Some(watch) = &n.watch_id {
        return watch_body(n, watch);
    }
    if let Some(message) = &n.message {
        return message_body(n, message);
    }
    json!({
        "type": "red.threshold_exceeded",
        "timestamp": format_ms(n.created_at),
        "data": {
            "id": webhook_id(n.seq),
            "seq": n.seq,
            "subscription_id": n.subscription_id,
            "client_id": n.client_id,
            "image_id": n.image_id,
            "red": n.red,
            "threshold": n.threshold,
            "event_ts": format_ms(n.event_ts),
        }
    })
    .to_string()
}

/// A `watch.changed` notification. The changes were stored as JSON by the watch poller and
/// are spliced in as they were written: read into a `serde_json::Value` they would lose the
/// digits of numbers that an `f64` cannot hold, and their nesting would meet serde_json's
/// recursion limit. A damaged row shows as null rather than stopping delivery.
fn watch_body(n: &Notification, watch: &str) -> String {
    #[derive(Serialize)]
    struct Body<'a> {
        r#type: &'static str,
        timestamp: String,
        data: Data<'a>,
    }
    #[derive(Serialize)]
    struct Data<'a> {
        id: String,
        seq: i64,
        subscription_id: &'a SubscriptionId,
        client_id: &'a ClientId,
        watch_id: &'a str,
        polled_at: String,
        changes: Option<&'a RawValue>,
    }
    let changes = n
        .changes
        .as_deref()
        .and_then(|c| serde_json::from_str::<&RawValue>(c).ok());
    let body = Body {
        r#type: "watch.changed",
        timestamp: format_ms(n.created_at),
        data: Data {
            id: webhook_id(n.seq),
            seq: n.seq,
            subscription_id: &n.subscription_id,
            client_id: &n.client_id,
            watch_id: watch,
            polled_at: format_ms(n.event_ts),
            changes,
        },
    };
    // Serializing strings, integers and raw JSON cannot fail.
    serde_json::to_string(&body).unwrap_or_else(|_| "null".to_owned())
}

/// A message's notification (DESIGN §12): `{"id","type","ts","payload","text"}`, the payload
/// spliced in as the producer wrote it (compacted), so no digit of a number is lost.
fn message_body(n: &Notification, m: &MessageContent) -> String {
    #[derive(Serialize)]
    struct Body<'a> {
        id: &'a str,
        r#type: &'a str,
        ts: String,
        payload: Option<&'a RawValue>,
        text: Option<&'a str>,
    }
    let body = Body {
        id: &m.id,
        r#type: &m.kind,
        ts: format_ms(n.event_ts),
        payload: m
            .payload
            .as_deref()
            .and_then(|p| serde_json::from_str::<&RawValue>(p).ok()),
        text: m.text.as_deref(),
    };
    // Serializing strings and raw JSON cannot fail.
    serde_json::to_string(&body).unwrap_or_else(|_| "null".to_owned())
}

/// Starts the dispatcher, the delivery-log writer and (on PostgreSQL) the doorbell listener.
pub fn spawn(services: &Services, shutdown: &CancellationToken) -> Vec<JoinHandle<()>> {
    let (verdict_tx, verdict_rx) = mpsc::unbounded_channel();
    let settings = &services.settings;
    let recorded = Arc::new(Notify::new());
    let client_slots = (CONCURRENCY * usize::from(settings.notify_client_share)).div_ceil(100);
    let dispatcher = Dispatcher {
        store: services.store.clone(),
        owner: services.instance_id.clone(),
        sender: Sender::new(settings.notify_timeout, webhook_guard(settings)),
        schedule: Arc::new(settings.notify_retry.clone()),
        viber_base_url: settings.viber_base_url.clone().into(),
        // Long enough for the slowest attempt, so a live worker never loses its lease.
        lease_ms: i64::try_from(settings.notify_timeout.as_millis()).unwrap_or(i64::MAX / 2)
            + 30_000,
        verdicts: verdict_tx,
        fairness: Fairness {
            per_subscription: settings.notify_max_in_flight_per_subscription,
            per_relay_subscription: settings.notify_max_in_flight_per_relay_subscription,
            per_client: u32::try_from(client_slots).unwrap_or(u32::MAX).max(1),
        },
        recorded: recorded.clone(),
    };
    vec![
        tokio::spawn(record_verdicts(
            services.store.clone(),
            services.instance_id.clone(),
            settings.notify_pause_after,
            verdict_rx,
            recorded,
        )),
        tokio::spawn(dispatcher.run(shutdown.clone())),
        tokio::spawn(listen_doorbell(services.store.clone(), shutdown.clone())),
    ]
}

#[derive(Clone)]
struct Dispatcher {
    store: Arc<dyn Store>,
    owner: Arc<str>,
    sender: Sender,
    schedule: Arc<RetrySchedule>,
    viber_base_url: Arc<str>,
    lease_ms: i64,
    verdicts: mpsc::UnboundedSender<(DeliveryVerdict, DeliveryAttempt)>,
    fairness: Fairness,
    /// Notified by the recorder after each batch of verdicts: places were freed.
    recorded: Arc<Notify>,
}

/// The per-subscription and per-client caps of every claim.
#[derive(Clone, Copy)]
struct Fairness {
    per_subscription: u32,
    per_relay_subscription: u32,
    per_client: u32,
}

impl Dispatcher {
    async fn run(self, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        let mut bell = self.store.bells().outbox.listen();
        while !shutdown.is_cancelled() {
            let wait = match self.dispatch_due(&slots).await {
                Ok(None) => continue,
                Ok(Some(wait)) => wait,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming notifications failed; retrying");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = bell.changed() => {}
                () = self.recorded.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        // Let in-flight deliveries record their verdicts before the process goes.
        let _ = slots.acquire_many(CONCURRENCY as u32).await;
    }

    /// Claims what is due (as far as free slots allow) and starts delivering it. Returns how
    /// long to sleep before looking again: `None` when more may be due right now, else until
    /// the earliest pending notification is due, at most [`POLL`].
    async fn dispatch_due(&self, slots: &Arc<Semaphore>) -> rubra_store::Result<Option<Duration>> {
        let now = now_ms();
        match self.store.next_due_notification().await? {
            Some(due) if due <= now => {}
            Some(due) => {
                let ms = u64::try_from(due - now).unwrap_or(0);
                return Ok(Some(Duration::from_millis(ms).min(POLL)));
            }
            None => return Ok(Some(POLL)),
        }
        // Wait for at least one free slot rather than claiming what cannot start yet.
        let first = slots.clone().acquire_owned().await;
        let Ok(first) = first else {
            return Ok(Some(POLL));
        };
        let free = u32::try_from(slots.available_permits() + 1).unwrap_or(CLAIM_BATCH);
        let limit = free.min(CLAIM_BATCH);
        let limits = ClaimLimits {
            total: limit,
            per_subscription: self.fairness.per_subscription,
            per_relay_subscription: self.fairness.per_relay_subscription,
            per_client: self.fairness.per_client,
        };
        let claimed = self
            .store
            .claim_notifications(&self.owner, now, self.lease_ms, &limits)
            .await?;
        let count = claimed.len();
        let full = count == limit as usize;
        let mut first = Some(first);
        for c in claimed {
            let permit = match first.take() {
                Some(p) => p,
                None => match slots.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let me = self.clone();
            tokio::spawn(async move {
                let in_flight = rubra_telemetry::metrics::gauge!("rubra_notify_in_flight");
                in_flight.increment(1.0);
                me.deliver(c).await;
                in_flight.decrement(1.0);
                drop(permit);
            });
        }
        tracing::debug!(claimed = count, "notifications claimed");
        Ok(if full { None } else { Some(POLL) })
    }

    /// One attempt: send, record the verdict, log it.
    #[tracing::instrument(name = "notify.deliver", skip_all,
                          fields(seq = c.notification.seq, attempt = c.notification.attempts,
                                 channel = c.subscription.channel.kind()))]
    async fn deliver(&self, c: ClaimedNotification) {
        let n = &c.notification;
        let outcome = self.send(&c).await;
        let now = now_ms();
        let attempts = u32::try_from(n.attempts).unwrap_or(u32::MAX);
        let verdict = if outcome.is_success() {
            Verdict::Delivered
        } else {
            match self.schedule.delay_after(attempts) {
                Some(d) => Verdict::RetryAt(
                    now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)),
                ),
                None => Verdict::Failed,
            }
        };
        let label = match verdict {
            Verdict::Delivered => "delivered",
            Verdict::RetryAt(_) => "retrying",
            Verdict::Failed => "failed",
        };
        let latency_ms = i64::try_from(outcome.latency.as_millis()).unwrap_or(i64::MAX);
        rubra_telemetry::metrics::counter!(
            "rubra_notify_deliveries_total",
            "channel" => c.subscription.channel.kind(), "outcome" => label
        )
        .increment(1);
        rubra_telemetry::metrics::histogram!(
            "rubra_notify_delivery_duration_seconds",
            "channel" => c.subscription.channel.kind()
        )
        .record(outcome.latency.as_secs_f64());
        if n.message.is_some() && n.attempts == 1 {
            // From the message's arrival (off the queue or POST /messages) to the end of its
            // first send: what the relay adds to a message's trip.
            let ms = u64::try_from(now.saturating_sub(n.event_ts)).unwrap_or(0);
            rubra_telemetry::metrics::histogram!(
                "rubra_message_queue_to_send_seconds",
                "channel" => c.subscription.channel.kind()
            )
            .record(Duration::from_millis(ms).as_secs_f64());
        }
        let log = DeliveryAttempt {
            id: 0,
            notification_seq: n.seq,
            subscription_id: n.subscription_id.clone(),
            client_id: n.client_id.clone(),
            attempt: n.attempts,
            at: now,
            outcome: label.to_owned(),
            status_code: outcome.status.map(i64::from),
            latency_ms,
            error: outcome.error.clone(),
        };
        // Recorded by the recorder task with its log row, batched with other deliveries'. If
        // the process dies first, the lease runs out and the notification is tried again.
        let _ = self.verdicts.send((
            DeliveryVerdict {
                notification: n.clone(),
                verdict,
                error: outcome.error,
            },
            log,
        ));
    }

    async fn send(&self, c: &ClaimedNotification) -> Outcome {
        let n = &c.notification;
        match &c.subscription.channel {
            Channel::Webhook { url } => {
                let secret = c
                    .subscription
                    .secret
                    .as_deref()
                    .map(WebhookSecret::parse)
                    .transpose();
                let Ok(Some(secret)) = secret else {
                    return failed_outright("the subscription has no usable signing secret");
                };
                // The previous secret signs too while its overlap lasts (a rotation).
                let previous = c
                    .subscription
                    .signing_secrets(now_ms())
                    .get(1)
                    .and_then(|p| WebhookSecret::parse(p).ok());
                let body = notification_body(n);
                self.sender
                    .webhook(&WebhookRequest {
                        url,
                        id: &webhook_id(n.seq),
                        timestamp: now_ms() / 1000,
                        body: body.as_bytes(),
                        secret: &secret,
                        previous_secret: previous.as_ref(),
                    })
                    .await
            }
            Channel::Viber {
                receiver,
                auth_token,
            } => {
                let text = viber_text(n);
                let message = n.message.as_ref();
                // One bot subscription serves every end user: the message names the receiver.
                let receiver = message
                    .and_then(|m| m.receiver.as_deref())
                    .unwrap_or(receiver);
                self.sender
                    .viber(
                        &self.viber_base_url,
                        &ViberMessage {
                            auth_token,
                            receiver,
                            sender_name: "Rubra",
                            text: &text,
                            tracking_data: message.map(|m| m.id.as_str()),
                        },
                    )
                    .await
            }
            // Stream rows are never pending; nothing to send if one is claimed anyway.
            Channel::Stream => Outcome {
                status: None,
                latency: Duration::ZERO,
                error: None,
            },
        }
    }
}

fn failed_outright(why: &str) -> Outcome {
    Outcome {
        status: None,
        latency: Duration::ZERO,
        error: Some(why.to_owned()),
    }
}

/// The Viber message text of a notification.
pub fn viber_text(n: &Notification) -> String {
    if let Some(message) = &n.message {
        return message.viber_text().to_owned();
    }
    if let Some(watch) = &n.watch_id {
        let count = n
            .changes
            .as_deref()
            .and_then(|c| serde_json::from_str::<Vec<&RawValue>>(c).ok())
            .map_or(0, |v| v.len());
        return format!(
            "Watch {watch} changed ({count} change{}) at {}.",
            if count == 1 { "" } else { "s" },
            format_ms(n.event_ts)
        );
    }
    let image = n
        .image_id
        .as_deref()
        .map(|id| format!(" (image {})", &id[..id.len().min(12)]))
        .unwrap_or_default();
    format!(
        "Red level {:.4} is above your threshold {:.4}{image} at {}.",
        n.red,
        n.threshold,
        format_ms(n.event_ts)
    )
}

/// Records verdicts: everything waiting, in one call. Runs until every dispatcher handle (and
/// so every delivery in flight) is gone, so verdicts of a shutdown's last deliveries are kept.
async fn record_verdicts(
    store: Arc<dyn Store>,
    owner: Arc<str>,
    pause_after: u32,
    mut rx: mpsc::UnboundedReceiver<(DeliveryVerdict, DeliveryAttempt)>,
    recorded: Arc<Notify>,
) {
    let mut got = Vec::with_capacity(VERDICT_BATCH);
    while rx.recv_many(&mut got, VERDICT_BATCH).await > 0 {
        let (buf, log): (Vec<DeliveryVerdict>, Vec<DeliveryAttempt>) = got.drain(..).unzip();
        match store
            .record_deliveries_logged(&owner, &buf, &log, pause_after)
            .await
        {
            Ok(recorded) => {
                for (v, r) in buf.iter().zip(recorded) {
                    if r.paused {
                        tracing::warn!(
                            subscription = %v.notification.subscription_id,
                            error = v.error.as_deref().unwrap_or(""),
                            "subscription paused after repeated failures"
                        );
                    }
                }
            }
            // The leases run out and the notifications are tried again: at least once.
            Err(e) => {
                tracing::warn!(error = %e, verdicts = buf.len(), "recording deliveries failed")
            }
        }
        // Each verdict ended a lease: its subscription and client may take another place.
        recorded.notify_one();
        if buf.iter().any(|v| matches!(v.verdict, Verdict::RetryAt(_))) {
            // Wake the dispatcher so it sleeps until exactly this retry, not a whole poll.
            store.bells().outbox.ring();
        }
    }
}

/// On PostgreSQL, turns other processes' `NOTIFY`s into in-process doorbell rings.
async fn listen_doorbell(store: Arc<dyn Store>, shutdown: CancellationToken) {
    loop {
        let mut listener = match store.listen_outbox().await {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for notifications; polling only");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(5)) => continue,
                }
            }
        };
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                got = listener.recv() => match got {
                    Ok(_) => store.bells().outbox.ring(),
                    Err(e) => {
                        tracing::warn!(error = %e, "notification listener failed; reconnecting");
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn watch_notification(changes: &str) -> Notification {
        Notification {
            seq: 7,
            client_id: ClientId::parse("cl_0123456789abcdef").expect("client id"),
            subscription_id: SubscriptionId::generate(),
            channel_type: "webhook".into(),
            image_id: None,
            red: 0.0,
            threshold: 0.0,
            event_ts: 0,
            created_at: 0,
            state: "pending".into(),
            attempts: 0,
            watch_id: Some("wch_1".into()),
            changes: Some(changes.into()),
            message: None,
        }
    }

    #[test]
    fn watch_changes_reach_the_receiver_with_every_digit_the_source_wrote() {
        let changes = r#"[{"seq":1,"path":"/odds","op":"replace","old":1.850000000000000000001,"new":12345678901234567890123}]"#;
        let body = notification_body(&watch_notification(changes));
        assert!(body.contains(changes), "{body}");
        let parsed: Value = serde_json::from_str(&body).expect("valid JSON");
        assert_eq!(parsed["type"], "watch.changed");
        assert_eq!(parsed["data"]["id"], "ntf_7");
        assert_eq!(parsed["data"]["watch_id"], "wch_1");
        let text = viber_text(&watch_notification(changes));
        assert!(text.contains("(1 change)"), "{text}");
    }

    #[test]
    fn a_damaged_changes_row_is_sent_as_null() {
        let body = notification_body(&watch_notification("[{"));
        let parsed: Value = serde_json::from_str(&body).expect("valid JSON");
        assert_eq!(parsed["data"]["changes"], Value::Null);
    }
}
