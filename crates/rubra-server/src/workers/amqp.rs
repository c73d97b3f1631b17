//! The RabbitMQ source of messages (DESIGN §12): every `serve` and `worker` process with
//! `--amqp-url` and `--amqp-queue` consumes the queue as one of its competing consumers.
//!
//! Deliveries are taken in groups: the first one waited for, then every one already received
//! (at most `--amqp-prefetch`, the channel's QoS), recorded with their notifications in one
//! store transaction, and only then acknowledged (one `basic.ack` with `multiple` for the
//! group). A process killed before the ack loses nothing: RabbitMQ redelivers to another
//! consumer and the message id makes the second recording a duplicate. A body without an
//! `id` gets the AMQP `message-id` property, else a hash of the body, so a redelivery is a
//! duplicate too.
//!
//! A body that is not a valid message, or names no existing client, is rejected without
//! requeue (dead-lettered where the queue has a dead-letter exchange), logged and counted in
//! `rubra_messages_rejected_total`. Any other store failure (the database down) acknowledges
//! nothing: the group is retried with backoff until it is recorded. A lost connection (the
//! broker restarted) is reopened with backoff; what was not acknowledged is redelivered.

use crate::relay::MessageIn;
use crate::services::Services;
use crate::settings::{AmqpSource, redact_password};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, message::Delivery};
use rubra_store::{ClientId, MessageId, NewMessage, Store, StoreError, now_ms};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

/// The first wait after a failure; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two attempts to connect or to record a group.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long connecting and starting to consume may take before the attempt counts as
/// failed (a broker, proxy or firewall that accepts the connection and never answers).
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the consumer when a queue is configured.
pub(crate) fn spawn(services: &Services, shutdown: &CancellationToken) -> Option<JoinHandle<()>> {
    let source = services.settings.amqp.clone()?;
    let consumer = Consumer {
        store: services.store.clone(),
        tag: format!("rubra-{}", services.instance_id),
        source,
        consumed: AtomicU64::new(0),
    };
    Some(tokio::spawn(consumer.run(shutdown.clone())))
}

struct Consumer {
    store: Arc<dyn Store>,
    tag: String,
    source: AmqpSource,
    /// Messages this process recorded (duplicates included), logged when it stops: the share
    /// of the queue it took among the competing consumers.
    consumed: AtomicU64,
}

/// Why a session with the broker ended.
#[derive(Debug, thiserror::Error)]
enum SessionEnd {
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("the broker canceled the consumer")]
    Canceled,
    #[error("connecting and starting to consume took longer than {SETUP_TIMEOUT:?}")]
    SetupTimedOut,
}

/// A doubling wait between attempts.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(FIRST_BACKOFF)
    }

    /// The wait before the next attempt (and doubles the one after).
    fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(MAX_BACKOFF);
        // Spread the processes of a cluster apart: ±25 %.
        wait.mul_f64(0.75 + fastrand::f64() / 2.0)
    }
}

/// Sleeps for `wait`; false when the shutdown came first.
async fn pause(wait: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = tokio::time::sleep(wait) => true,
    }
}

impl Consumer {
    async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new();
        let url = redact_password(&self.source.url);
        loop {
            match self.session(&shutdown, &mut backoff).await {
                Ok(()) => break,
                Err(e) => {
                    rubra_telemetry::metrics::gauge!("rubra_amqp_connected").set(0.0);
                    tracing::warn!(error = %e, url, queue = %self.source.queue,
                                   "amqp consumer stopped; reconnecting");
                }
            }
            if !pause(backoff.next(), &shutdown).await {
                break;
            }
        }
        tracing::info!(queue = %self.source.queue, consumed = self.consumed.load(Ordering::Relaxed),
                       "amqp consumer stopped");
    }

    /// One connection: consume until the shutdown (Ok) or a failure (Err). Setting it up
    /// gives way to the shutdown and fails after [`SETUP_TIMEOUT`].
    async fn session(
        &self,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), SessionEnd> {
        // The channel is kept open for as long as the session consumes on it.
        let (conn, _channel, mut deliveries) = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            opened = tokio::time::timeout(SETUP_TIMEOUT, self.open()) => {
                opened.map_err(|_| SessionEnd::SetupTimedOut)??
            }
        };
        let queue = self.source.queue.as_str();
        rubra_telemetry::metrics::gauge!("rubra_amqp_connected").set(1.0);
        tracing::info!(
            queue,
            prefetch = self.source.prefetch,
            "consuming messages from amqp"
        );
        *backoff = Backoff::new();
        let limit = usize::from(self.source.prefetch);
        loop {
            let first = tokio::select! {
                () = shutdown.cancelled() => {
                    // Unacknowledged deliveries go back to the queue with the connection.
                    let _ = conn.close(200, "shutting down".into()).await;
                    return Ok(());
                }
                d = deliveries.next() => d,
            };
            let mut group = vec![first.ok_or(SessionEnd::Canceled)??];
            // Everything already received joins the group (a zero timeout polls once).
            while group.len() < limit {
                match tokio::time::timeout(Duration::ZERO, deliveries.next()).await {
                    Ok(Some(d)) => group.push(d?),
                    Ok(None) | Err(_) => break,
                }
            }
            if !self.record(group, shutdown).await? {
                let _ = conn.close(200, "shutting down".into()).await;
                return Ok(());
            }
        }
    }

    /// Connects, declares the queue if it does not exist, and starts consuming it.
    async fn open(&self) -> Result<(Connection, lapin::Channel, lapin::Consumer), SessionEnd> {
        let props = ConnectionProperties::default()
            .with_connection_name(format!("rubra {}", self.tag).into());
        let conn = Connection::connect(&self.source.url, props).await?;
        let queue = self.source.queue.as_str();
        let mut channel = conn.create_channel().await?;
        // Use the queue as the operator made it (with a dead-letter exchange, say); declare it
        // durable, with no arguments, only when it does not exist (the passive declare then
        // closes the channel with 404).
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        if channel
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
            .is_err()
        {
            channel = conn.create_channel().await?;
            channel
                .queue_declare(
                    queue.into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
        }
        channel
            .basic_qos(self.source.prefetch, BasicQosOptions::default())
            .await?;
        let deliveries = channel
            .basic_consume(
                queue.into(),
                self.tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok((conn, channel, deliveries))
    }

    /// Records a group and acknowledges it; false when the shutdown interrupted the retries
    /// (nothing acknowledged: the broker redelivers).
    async fn record(
        &self,
        group: Vec<Delivery>,
        shutdown: &CancellationToken,
    ) -> Result<bool, lapin::Error> {
        let now = now_ms();
        let mut valid = Vec::with_capacity(group.len());
        let mut messages = Vec::with_capacity(group.len());
        for d in group {
            match parse(&d, now) {
                Ok(m) => {
                    messages.push(m);
                    valid.push(d);
                }
                Err(why) => reject(&d, "invalid", &why).await?,
            }
        }
        let Some(last) = valid.last() else {
            return Ok(true);
        };
        let mut backoff = Backoff::new();
        loop {
            match self.store.insert_messages(&messages).await {
                Ok(fresh) => {
                    self.count(&fresh);
                    last.acker.ack(BasicAckOptions { multiple: true }).await?;
                    return Ok(true);
                }
                Err(e) if is_poison(&e) => {
                    // One of them is at fault: record them one by one, rejecting the bad.
                    return self.record_singly(valid, messages, shutdown).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, messages = messages.len(),
                                   "recording messages failed; retrying, nothing acknowledged");
                    if !pause(backoff.next(), shutdown).await {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// Counts a recorded group (`fresh[i]`: message i was new, not a duplicate) in the
    /// metrics and in this consumer's total.
    fn count(&self, fresh: &[bool]) {
        self.consumed
            .fetch_add(fresh.len() as u64, Ordering::Relaxed);
        let duplicates = fresh.iter().filter(|f| !**f).count() as u64;
        rubra_telemetry::metrics::counter!("rubra_messages_consumed_total", "source" => "amqp")
            .increment(fresh.len() as u64);
        rubra_telemetry::metrics::counter!("rubra_messages_duplicates_total", "source" => "amqp")
            .increment(duplicates);
    }

    /// Records messages one at a time after their group failed on a bad one.
    async fn record_singly(
        &self,
        valid: Vec<Delivery>,
        messages: Vec<NewMessage>,
        shutdown: &CancellationToken,
    ) -> Result<bool, lapin::Error> {
        for (d, m) in valid.iter().zip(messages) {
            let mut backoff = Backoff::new();
            loop {
                match self.store.insert_messages(std::slice::from_ref(&m)).await {
                    Ok(fresh) => {
                        self.count(&fresh);
                        d.acker.ack(BasicAckOptions { multiple: false }).await?;
                        break;
                    }
                    Err(e) if is_poison(&e) => {
                        reject(d, "refused", &e.to_string()).await?;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "recording a message failed; retrying");
                        if !pause(backoff.next(), shutdown).await {
                            return Ok(false);
                        }
                    }
                }
            }
        }
        Ok(true)
    }
}

/// A failure caused by the message itself, which no retry cures: its client does not exist,
/// or it would make too many notifications.
fn is_poison(e: &StoreError) -> bool {
    match e {
        StoreError::TooManyNotifications(_) => true,
        other => other.is_missing_reference(),
    }
}

/// Rejects a delivery without requeue (RabbitMQ dead-letters it where the queue says so).
async fn reject(d: &Delivery, reason: &'static str, why: &str) -> Result<(), lapin::Error> {
    tracing::warn!(
        delivery_tag = d.delivery_tag,
        reason,
        error = why,
        "amqp message rejected without requeue"
    );
    rubra_telemetry::metrics::counter!("rubra_messages_rejected_total",
                                       "source" => "amqp", "reason" => reason)
    .increment(1);
    d.acker
        .reject(BasicRejectOptions { requeue: false })
        .await
        .map(|_| ())
}

/// A delivery's body as a message: the message JSON plus `client_id`.
fn parse(d: &Delivery, now: i64) -> Result<NewMessage, String> {
    let mut item: MessageIn =
        serde_json::from_slice(&d.data).map_err(|e| format!("not a message: {e}"))?;
    let client = item
        .client_id
        .take()
        .ok_or("client_id is required on the queue")?;
    let client = ClientId::parse(&client)
        .ok_or_else(|| format!("client_id {client:?} is not a client id"))?;
    let fallback = match d.properties.message_id() {
        Some(id) => MessageId::parse(id.as_str()).ok(),
        None => None,
    }
    .unwrap_or_else(|| body_id(&d.data));
    item.validate(client, now, Some(fallback))
        .map_err(|e| e.to_string())
}

/// The id of a message sent without one: a hash of its body, the same on every redelivery.
fn body_id(body: &[u8]) -> MessageId {
    let digest = Sha256::digest(body);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    MessageId::parse(&format!("sha256-{hex}")).unwrap_or_else(|_| MessageId::generate())
}
