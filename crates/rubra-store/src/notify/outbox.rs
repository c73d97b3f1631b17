//! The outbox: every notification row is written here, inside the transaction of what causes
//! it — an event ([`enqueue_events_sqlite`], [`enqueue_events_pg`]), a watch's changes
//! ([`enqueue_watch_changes`]) or a message ([`enqueue_messages`]) — so a crash between the
//! two loses nothing. The state a new row starts in is [`INITIAL_STATE`], written once.

use crate::messages::NewMessage;
use crate::sql::RowsAffected;
use crate::{NewEvent, Result, StoreError};
use sqlx::{
    AssertSqlSafe, Database, Encode, Executor, IntoArguments, Postgres, QueryBuilder, Sqlite,
    Transaction, Type,
};
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

/// The state a new notification starts in, as SQL over its subscription `s`: a stream
/// subscription's row is `stream` (nothing to send: the live stream reads it), a paused
/// subscription's row is `held` until it resumes, any other is `pending` (due at once).
pub(crate) const INITIAL_STATE: &str = "CASE WHEN s.channel_type = 'stream' THEN 'stream' \
    WHEN s.state = 'paused' THEN 'held' ELSE 'pending' END";

/// Writes one notification per live subscription of client `$1` that an event with red `$3`
/// exceeds. Parameters: `$1` client id, `$2` image id (nullable), `$3` red, `$4` event ts (ms),
/// `$5` now (ms).
static ENQUEUE_EVENT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO notifications (client_id, subscription_id, channel_type, image_id, red, \
                                    threshold, event_ts, created_at, next_attempt_at, state) \
         SELECT s.client_id, s.id, s.channel_type, $2, $3, s.threshold, $4, $5, $5, \
                {INITIAL_STATE} \
         FROM subscriptions s \
         WHERE s.client_id = $1 AND s.deleted_at IS NULL AND $3 > s.threshold"
    )
});

/// One notification for a poll's changes when the watch names a live subscription of its
/// client: `$1` watch, `$2` poll time, `$3` now, `$4` the changes as a JSON array.
static ENQUEUE_WATCH_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO notifications (client_id, subscription_id, channel_type, image_id, red, \
                                    threshold, event_ts, created_at, next_attempt_at, state, \
                                    watch_id, changes) \
         SELECT s.client_id, s.id, s.channel_type, NULL, 0.0, 0.0, $2, $3, $3, \
                {INITIAL_STATE}, w.id, $4 \
         FROM watches w JOIN subscriptions s ON s.id = w.subscription_id \
         WHERE w.id = $1 AND s.client_id = w.client_id AND s.deleted_at IS NULL"
    )
});

/// The live subscriptions by type of clients, with the state their new notifications start
/// in: `id, client_id, channel_type, initial state, types`, followed by the client filter.
pub(crate) fn type_subscriptions_sql(client_filter: &str) -> String {
    format!(
        "SELECT s.id, s.client_id, s.channel_type, {INITIAL_STATE}, s.types FROM subscriptions s \
         WHERE s.deleted_at IS NULL AND s.types IS NOT NULL AND {client_filter}"
    )
}

/// Events per outbox statement (5 parameters each).
const OUTBOX_CHUNK: usize = 1000;

/// Enqueues the notifications of events on SQLite: the rows of [`enqueue_events_pg`], for many
/// events per statement, numbered in the same order (by event, then by threshold and age of
/// the subscription). Events whose client has no subscription below their red are left out
/// before any statement is built.
pub(crate) async fn enqueue_events_sqlite(
    tx: &mut Transaction<'_, Sqlite>,
    events: &[&NewEvent],
) -> Result<()> {
    let mut clients: Vec<&str> = events.iter().map(|e| e.client_id.as_str()).collect();
    clients.sort_unstable();
    clients.dedup();
    let mut sql = String::from("WITH c(id) AS (VALUES ");
    crate::stats::push_tuples(&mut sql, clients.len(), 1);
    sql.push_str(
        ") SELECT s.client_id, s.threshold FROM c \
         JOIN subscriptions s ON s.client_id = c.id AND s.deleted_at IS NULL",
    );
    let mut q = sqlx::query_as::<_, (String, f64)>(AssertSqlSafe(sql));
    for c in &clients {
        q = q.bind(*c);
    }
    let thresholds = Thresholds::from_rows(q.fetch_all(&mut **tx).await?);
    if thresholds.is_empty() {
        return Ok(());
    }
    thresholds.check(events)?;
    let min_threshold = thresholds.minimums();
    let candidates: Vec<&NewEvent> = events
        .iter()
        .copied()
        .filter(|e| may_notify(e, &min_threshold))
        .collect();
    let now = crate::now_ms();
    for chunk in candidates.chunks(OUTBOX_CHUNK) {
        let mut sql = String::from("WITH e(k, client_id, image_id, red, ts) AS (VALUES ");
        crate::stats::push_tuples(&mut sql, chunk.len(), 5);
        sql.push_str(&format!(
            ") INSERT INTO notifications (client_id, subscription_id, channel_type, image_id, \
                 red, threshold, event_ts, created_at, next_attempt_at, state) \
             SELECT s.client_id, s.id, s.channel_type, e.image_id, e.red, s.threshold, e.ts, \
                    ?, ?, {INITIAL_STATE} \
             FROM e JOIN subscriptions s \
               ON s.client_id = e.client_id AND s.deleted_at IS NULL AND e.red > s.threshold \
             ORDER BY e.k, s.threshold, s.rowid"
        ));
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (k, e) in chunk.iter().enumerate() {
            q = q
                .bind(i64::try_from(k).unwrap_or(i64::MAX))
                .bind(e.client_id.as_str())
                .bind(e.image_id.as_ref().map(|i| i.as_str()))
                .bind(e.red)
                .bind(e.ts);
        }
        q.bind(now).bind(now).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Enqueues the notifications of events on PostgreSQL: one row per event and live
/// subscription of its client that the event's red exceeds, one statement per event that can
/// match ([`ENQUEUE_EVENT_SQL`]).
pub(crate) async fn enqueue_events_pg(
    tx: &mut Transaction<'_, Postgres>,
    events: &[&NewEvent],
) -> Result<()> {
    let distinct: Vec<&str> = events
        .iter()
        .map(|e| e.client_id.as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let rows: Vec<(String, f64)> = sqlx::query_as(
        "SELECT client_id, threshold FROM subscriptions \
         WHERE client_id = ANY($1::text[]) AND deleted_at IS NULL",
    )
    .bind(&distinct)
    .fetch_all(&mut **tx)
    .await?;
    let thresholds = Thresholds::from_rows(rows);
    if thresholds.is_empty() {
        return Ok(());
    }
    thresholds.check(events)?;
    let min_threshold = thresholds.minimums();
    let now = crate::now_ms();
    for e in events {
        if may_notify(e, &min_threshold) {
            sqlx::query(ENQUEUE_EVENT_SQL.as_str())
                .bind(e.client_id.as_str())
                .bind(e.image_id.as_ref().map(|i| i.as_str()))
                .bind(e.red)
                .bind(e.ts)
                .bind(now)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// Enqueues the notification of a watch poll's changes (`changes`: the JSON array the
/// notification carries) when the watch names a live subscription of its client; `true` when
/// one was written. Paused subscriptions hold it, stream subscriptions only show it.
pub(crate) async fn enqueue_watch_changes<DB>(
    conn: &mut DB::Connection,
    watch_id: &str,
    polled_at: i64,
    changes: String,
) -> Result<bool>
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    i64: for<'t> Encode<'t, DB> + Type<DB>,
    String: for<'t> Encode<'t, DB> + Type<DB>,
    DB::QueryResult: RowsAffected,
{
    let written = sqlx::query::<DB>(ENQUEUE_WATCH_SQL.as_str())
        .bind(watch_id)
        .bind(polled_at)
        .bind(crate::now_ms())
        .bind(changes)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(written > 0)
}

/// A message's notification to write: the message, its subscription's id and channel, and
/// the state the row starts in (from [`type_subscriptions_sql`]).
pub(crate) struct MessageNote<'a> {
    /// The message.
    pub message: &'a NewMessage,
    /// The subscription it matches.
    pub subscription_id: &'a str,
    /// That subscription's channel type.
    pub channel_type: &'a str,
    /// [`INITIAL_STATE`] of that subscription.
    pub state: &'a str,
}

/// `INSERT INTO notifications` for messages' notifications, due at `now`.
pub(crate) fn enqueue_messages<'a, DB: Database>(
    chunk: &[MessageNote<'a>],
    now: i64,
) -> QueryBuilder<DB>
where
    &'a str: Encode<'a, DB> + Type<DB>,
    Option<&'a str>: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
    f64: Encode<'a, DB> + Type<DB>,
{
    let mut q = QueryBuilder::<DB>::new(
        "INSERT INTO notifications (client_id, subscription_id, channel_type, red, threshold, \
         event_ts, created_at, next_attempt_at, state, message_id, message_type, payload, text, \
         receiver) ",
    );
    q.push_values(chunk, |mut b, n| {
        let m = n.message;
        b.push_bind(m.client_id.as_str())
            .push_bind(n.subscription_id)
            .push_bind(n.channel_type)
            .push_bind(0.0_f64)
            .push_bind(0.0_f64)
            .push_bind(m.received_at)
            .push_bind(now)
            .push_bind(now)
            .push_bind(n.state)
            .push_bind(m.id.as_str())
            .push_bind(m.kind.as_str())
            .push_bind(m.payload.as_deref())
            .push_bind(m.text.as_deref())
            .push_bind(m.receiver.as_deref());
    });
    q
}

/// The most notification rows one write transaction may make (events × the live
/// subscriptions they exceed). A `POST /events` of 10 000 events to a client with 1 000
/// subscriptions below them would otherwise write 10⁷ rows while holding the single SQLite
/// writer (or a PostgreSQL transaction) for minutes, stalling every other tenant's writes.
pub(crate) const MAX_NOTIFICATIONS_PER_WRITE: u64 = 100_000;

/// Whether an event may produce a notification: its client has a subscription with a lower
/// threshold (`min_threshold`, over every subscription row, deleted or not, so this is never
/// stricter than the outbox query itself, which makes the final choice).
fn may_notify(event: &NewEvent, min_threshold: &HashMap<String, f64>) -> bool {
    min_threshold
        .get(event.client_id.as_str())
        .is_some_and(|&t| event.red > t)
}

/// The live subscriptions' thresholds of some clients, sorted, to count the notifications a
/// batch of events makes before writing any.
#[derive(Debug, Default)]
struct Thresholds(HashMap<String, Vec<f64>>);

impl Thresholds {
    /// From `(client_id, threshold)` rows of live subscriptions.
    fn from_rows(rows: Vec<(String, f64)>) -> Self {
        let mut map: HashMap<String, Vec<f64>> = HashMap::new();
        for (client, t) in rows {
            map.entry(client).or_default().push(t);
        }
        for ts in map.values_mut() {
            ts.sort_unstable_by(f64::total_cmp);
        }
        Thresholds(map)
    }

    /// True when no client has a subscription.
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The lowest threshold of each client: an event at or below it notifies nobody.
    fn minimums(&self) -> HashMap<String, f64> {
        self.0
            .iter()
            .filter_map(|(c, ts)| Some((c.clone(), *ts.first()?)))
            .collect()
    }

    /// How many notifications `event` makes: its client's subscriptions strictly below its red.
    fn fan_out(&self, event: &NewEvent) -> u64 {
        self.0
            .get(event.client_id.as_str())
            .map_or(0, |ts| ts.partition_point(|&t| t < event.red) as u64)
    }

    /// Refuses a batch that would make more than [`MAX_NOTIFICATIONS_PER_WRITE`] notifications,
    /// counting without building any.
    fn check(&self, events: &[&NewEvent]) -> Result<()> {
        let mut total = 0u64;
        for e in events {
            total = total.saturating_add(self.fan_out(e));
            if total > MAX_NOTIFICATIONS_PER_WRITE {
                return Err(StoreError::TooManyNotifications(format!(
                    "these events would make more than {MAX_NOTIFICATIONS_PER_WRITE} \
                     notifications at once (events times the subscriptions whose threshold \
                     they exceed); send them in smaller batches"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientId;

    #[test]
    fn fan_out_counts_the_thresholds_strictly_below_the_red_and_refuses_past_the_bound() {
        let c = ClientId::generate();
        let t = Thresholds::from_rows(vec![
            (c.as_str().to_owned(), 0.5),
            (c.as_str().to_owned(), 0.1),
            (c.as_str().to_owned(), 0.8),
        ]);
        let ev = |red: f64| NewEvent {
            client_id: c.clone(),
            image_id: None,
            red,
            ts: 0,
        };
        assert_eq!(t.fan_out(&ev(0.8)), 2, "0.8 does not exceed 0.8");
        assert_eq!(t.fan_out(&ev(0.05)), 0);
        assert_eq!(t.minimums()[c.as_str()], 0.1);
        let big = ev(1.0);
        let under: Vec<&NewEvent> = vec![&big; (MAX_NOTIFICATIONS_PER_WRITE / 3) as usize];
        assert!(t.check(&under).is_ok());
        let over: Vec<&NewEvent> = vec![&big; (MAX_NOTIFICATIONS_PER_WRITE / 3 + 1) as usize];
        assert!(matches!(
            t.check(&over),
            Err(StoreError::TooManyNotifications(_))
        ));
    }
}
