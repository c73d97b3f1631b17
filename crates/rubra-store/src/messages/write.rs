//! The one transaction that records messages: the live type subscriptions of their clients are
//! read, the new `(client, id)` pairs inserted (a conflict is a duplicate), and one
//! notification per matching subscription written, all before the commit. The statements are
//! built the same way for both databases; only the client filter and the transaction's start
//! differ. On SQLite, concurrent calls share one transaction ([`MessageQueue`]).

use super::{MessageType, NewMessage, TypePattern};
use crate::notify::outbox::{self, MAX_NOTIFICATIONS_PER_WRITE, MessageNote};
use crate::{PgStore, Result, SqliteStore, Store as _, StoreError};
use sqlx::{AssertSqlSafe, Database, Encode, QueryBuilder, Row, Type};
use std::collections::HashSet;
use tokio::sync::oneshot;

/// Rows of one multi-row statement: 14 parameters each stays below either database's limit.
const ROWS_PER_STATEMENT: usize = 1_000;

/// A live subscription that matches messages by type (a row of
/// [`outbox::type_subscriptions_sql`]).
struct TypeSubscription {
    id: String,
    client_id: String,
    channel_type: String,
    /// The state its new notifications start in ([`outbox::INITIAL_STATE`]).
    note_state: String,
    types: Vec<TypePattern>,
}

impl TypeSubscription {
    fn from_row<R: Row>(row: &R) -> Result<Self>
    where
        usize: sqlx::ColumnIndex<R>,
        for<'r> String: sqlx::Decode<'r, R::Database> + Type<R::Database>,
    {
        let types: String = row.try_get(4)?;
        let types = super::types_from_db(Some(&types));
        Ok(TypeSubscription {
            id: row.try_get(0)?,
            client_id: row.try_get(1)?,
            channel_type: row.try_get(2)?,
            note_state: row.try_get(3)?,
            types,
        })
    }

    fn matches(&self, t: &MessageType) -> bool {
        self.types.iter().any(|p| p.matches(t))
    }
}

/// Per message, whether it is the first of its `(client, id)` in the batch.
fn first_of_batch(messages: &[NewMessage]) -> Vec<bool> {
    let mut seen = HashSet::with_capacity(messages.len());
    messages
        .iter()
        .map(|m| seen.insert((m.client_id.as_str(), m.id.as_str())))
        .collect()
}

/// The distinct clients of a batch.
fn clients(messages: &[NewMessage]) -> Vec<String> {
    let mut out: Vec<String> = messages
        .iter()
        .map(|m| m.client_id.as_str().to_owned())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// `INSERT INTO messages … RETURNING` for the first occurrences in a batch: the rows returned
/// are the new messages.
fn insert_ids<'a, DB: Database>(chunk: &[&'a NewMessage]) -> QueryBuilder<DB>
where
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut q = QueryBuilder::<DB>::new("INSERT INTO messages (client_id, id, type, received_at) ");
    q.push_values(chunk, |mut b, m| {
        b.push_bind(m.client_id.as_str())
            .push_bind(m.id.as_str())
            .push_bind(m.kind.as_str())
            .push_bind(m.received_at);
    });
    q.push(" ON CONFLICT (client_id, id) DO NOTHING RETURNING client_id, id");
    q
}

/// The notifications of the new messages, refusing a batch that would make too many.
fn plan<'a>(
    messages: &'a [NewMessage],
    fresh: &[bool],
    subs: &'a [TypeSubscription],
) -> Result<Vec<MessageNote<'a>>> {
    let mut notes = Vec::new();
    for (m, _) in messages.iter().zip(fresh).filter(|(_, f)| **f) {
        for s in subs
            .iter()
            .filter(|s| s.client_id == m.client_id.as_str() && s.matches(&m.kind))
        {
            notes.push(MessageNote {
                message: m,
                subscription_id: &s.id,
                channel_type: &s.channel_type,
                state: &s.note_state,
            });
        }
        if notes.len() as u64 > MAX_NOTIFICATIONS_PER_WRITE {
            return Err(StoreError::TooManyNotifications(format!(
                "these messages would make more than {MAX_NOTIFICATIONS_PER_WRITE} \
                 notifications at once; send them in smaller batches"
            )));
        }
    }
    Ok(notes)
}

/// Which messages are new: first of their batch and inserted (`inserted` holds the returned
/// `(client, id)` pairs).
fn fresh(
    messages: &[NewMessage],
    first: &[bool],
    inserted: &HashSet<(String, String)>,
) -> Vec<bool> {
    messages
        .iter()
        .zip(first)
        .map(|(m, first)| {
            *first
                && inserted.contains(&(m.client_id.as_str().to_owned(), m.id.as_str().to_owned()))
        })
        .collect()
}

/// A call to `insert_messages` waiting for the next group transaction on SQLite.
struct MessageJob {
    messages: Vec<NewMessage>,
    reply: oneshot::Sender<Result<Vec<bool>>>,
}

/// The message writes waiting for SQLite's write gate. Whoever gets the gate records every
/// waiting call (up to [`MAX_GROUP_MESSAGES`]) in one transaction: at 1 000 `POST /messages`
/// of one message a second, a transaction (and a turn at the gate) each kept the gate busy
/// and put ~75 ms on the p99 (issue #22); the event writer groups `POST /events` the same way.
#[derive(Default)]
pub(crate) struct MessageQueue(std::sync::Mutex<Vec<MessageJob>>);

impl std::fmt::Debug for MessageQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageQueue")
    }
}

impl MessageQueue {
    fn push(&self, job: MessageJob) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(job);
    }

    /// The oldest waiting calls, at least one, until they hold `max` messages.
    fn take(&self, max: usize) -> Vec<MessageJob> {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut n = 0;
        let mut count = 0;
        for job in q.iter() {
            if count > 0 && n + job.messages.len() > max {
                break;
            }
            n += job.messages.len();
            count += 1;
        }
        q.drain(..count).collect()
    }
}

/// Most messages in one group transaction (a single call may hold more: up to the API's
/// 1 000, or a queue group of `--amqp-prefetch`).
const MAX_GROUP_MESSAGES: usize = 4_000;

/// Records messages on SQLite: the call waits with the others for the write gate, and the
/// first to get it records every waiting call in one transaction, all or nothing per call —
/// if the group fails, each call is tried alone, so one call's bad message (a client that does
/// not exist, too many notifications) fails only that call. The work runs in its own task, so
/// a caller that goes away (a canceled request) abandons neither its group nor its own call.
pub(super) async fn sqlite(store: &SqliteStore, messages: &[NewMessage]) -> Result<Vec<bool>> {
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let (reply, mut answer) = oneshot::channel();
    store.message_queue().push(MessageJob {
        messages: messages.to_vec(),
        reply,
    });
    let store = store.clone();
    let run = tokio::spawn(async move {
        loop {
            let gate = store.write_gate().await;
            match answer.try_recv() {
                // Recorded by an earlier group.
                Ok(done) => return done,
                Err(oneshot::error::TryRecvError::Empty) => {}
                Err(oneshot::error::TryRecvError::Closed) => return Err(group_lost()),
            }
            let jobs = store.message_queue().take(MAX_GROUP_MESSAGES);
            record_group(&store, jobs).await;
            drop(gate);
        }
    });
    run.await.map_err(|_| group_lost())?
}

/// The answer when the task recording a call's group ended without answering (it panicked).
fn group_lost() -> StoreError {
    StoreError::Database(sqlx::Error::WorkerCrashed)
}

/// Records waiting calls in one transaction (the caller holds the write gate) and answers each.
async fn record_group(store: &SqliteStore, jobs: Vec<MessageJob>) {
    if let [_] = jobs.as_slice() {
        let Some(job) = jobs.into_iter().next() else {
            return;
        };
        let _ = job.reply.send(sqlite_tx(store, &job.messages).await);
        return;
    }
    let all: Vec<NewMessage> = jobs.iter().flat_map(|j| j.messages.clone()).collect();
    match sqlite_tx(store, &all).await {
        Ok(fresh) => {
            let mut at = 0;
            for job in jobs {
                let n = job.messages.len();
                let _ = job.reply.send(Ok(fresh[at..at + n].to_vec()));
                at += n;
            }
        }
        Err(_) => {
            for job in jobs {
                let _ = job.reply.send(sqlite_tx(store, &job.messages).await);
            }
        }
    }
}

/// One transaction recording `messages` on SQLite; the caller holds the write gate.
async fn sqlite_tx(store: &SqliteStore, messages: &[NewMessage]) -> Result<Vec<bool>> {
    let first = first_of_batch(messages);
    let firsts: Vec<&NewMessage> = messages
        .iter()
        .zip(&first)
        .filter_map(|(m, f)| f.then_some(m))
        .collect();
    let clients = serde_json::to_string(&clients(messages)).unwrap_or_else(|_| "[]".to_owned());
    let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await?;
    let subs = sqlx::query(AssertSqlSafe(outbox::type_subscriptions_sql(
        "s.client_id IN (SELECT value FROM json_each($1))",
    )))
    .bind(clients)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(TypeSubscription::from_row)
    .collect::<Result<Vec<_>>>()?;
    let mut inserted = HashSet::new();
    for chunk in firsts.chunks(ROWS_PER_STATEMENT) {
        for row in insert_ids::<sqlx::Sqlite>(chunk)
            .build()
            .fetch_all(&mut *tx)
            .await?
        {
            inserted.insert((row.try_get(0)?, row.try_get(1)?));
        }
    }
    let fresh = fresh(messages, &first, &inserted);
    let notes = plan(messages, &fresh, &subs)?;
    let now = crate::now_ms();
    for chunk in notes.chunks(ROWS_PER_STATEMENT) {
        outbox::enqueue_messages::<sqlx::Sqlite>(chunk, now)
            .build()
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    if !notes.is_empty() {
        store.bells().outbox.ring();
    }
    Ok(fresh)
}

/// Records messages on PostgreSQL (its trigger rings other processes' doorbells).
pub(super) async fn postgres(store: &PgStore, messages: &[NewMessage]) -> Result<Vec<bool>> {
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let first = first_of_batch(messages);
    let firsts: Vec<&NewMessage> = messages
        .iter()
        .zip(&first)
        .filter_map(|(m, f)| f.then_some(m))
        .collect();
    let mut tx = store.pool().begin().await?;
    let subs = sqlx::query(AssertSqlSafe(outbox::type_subscriptions_sql(
        "s.client_id = ANY($1)",
    )))
    .bind(clients(messages))
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(TypeSubscription::from_row)
    .collect::<Result<Vec<_>>>()?;
    let mut inserted = HashSet::new();
    for chunk in firsts.chunks(ROWS_PER_STATEMENT) {
        for row in insert_ids::<sqlx::Postgres>(chunk)
            .build()
            .fetch_all(&mut *tx)
            .await?
        {
            inserted.insert((row.try_get(0)?, row.try_get(1)?));
        }
    }
    let fresh = fresh(messages, &first, &inserted);
    let notes = plan(messages, &fresh, &subs)?;
    let now = crate::now_ms();
    for chunk in notes.chunks(ROWS_PER_STATEMENT) {
        outbox::enqueue_messages::<sqlx::Postgres>(chunk, now)
            .build()
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    if !notes.is_empty() {
        store.bells().outbox.ring();
    }
    Ok(fresh)
}
