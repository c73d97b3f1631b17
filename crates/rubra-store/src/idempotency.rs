//! Idempotency keys: a `POST` retried with the same `Idempotency-Key` is answered with the
//! first answer instead of doing the work twice.
//!
//! The server claims `(subject, key)` with a hash of the request before running it
//! ([`IdempotencyStore::claim_idempotency_key`]): the first claim inserts a row without an
//! answer, and the server stores the answer when the request is done
//! ([`IdempotencyStore::complete_idempotency_key`]) or drops the row when the answer should
//! not be repeated — a 5xx, a 429 — so that a retry runs again
//! ([`IdempotencyStore::release_idempotency_key`]). A row older than the time to live is
//! taken over by the next claim as if it were not there, and swept by retention; so is a
//! claim still unanswered after the in-flight time (its process died before it answered).
//!
//! The claim is one statement (an insert that takes over an expired row), so two processes
//! claiming the same key at once cannot both run the request: one gets
//! [`Claim::InProgress`]. The SQL is the same on both databases; the functions are generic
//! over the sqlx database.

use crate::{PgStore, Result, SqliteStore};
use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

/// An answer kept for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The HTTP status.
    pub status: u16,
    /// Its `Content-Type`, if it had one.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// The answer of a request claimed under an idempotency key, to be written in the same
/// transaction as the request's work (see [`StatsStore::insert_events_answered`]): once the
/// work is committed, so is the answer, and a retry after a crash between the two is replayed
/// instead of doing the work again.
///
/// [`StatsStore::insert_events_answered`]: crate::StatsStore::insert_events_answered
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentAnswer {
    /// Whose key (a client id, or `admin`).
    pub subject: String,
    /// The key.
    pub key: String,
    /// The answer to keep.
    pub response: StoredResponse,
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is new (or its row had expired): run the request, then complete or release.
    New,
    /// The same request was answered before: answer this again.
    Replay(StoredResponse),
    /// The key was used for another request (another hash).
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
}

/// The idempotency-key queries.
#[async_trait]
pub trait IdempotencyStore {
    /// Claims `key` of `subject` for the request hashing to `request_hash` at `now_ms`; a row
    /// older than `ttl_ms` counts as absent, and so does a claim still without an answer after
    /// `abandoned_ms` (its process died before it answered: the retry runs the request).
    async fn claim_idempotency_key(
        &self,
        subject: &str,
        key: &str,
        request_hash: &str,
        now_ms: i64,
        ttl_ms: i64,
        abandoned_ms: i64,
    ) -> Result<Claim>;

    /// Keeps `response` as the answer of a claimed key.
    async fn complete_idempotency_key(
        &self,
        subject: &str,
        key: &str,
        response: &StoredResponse,
    ) -> Result<()>;

    /// Drops a claimed key whose answer is not to be repeated, so that a retry runs again; a
    /// key that already holds an answer (kept with the work itself) is left as it is.
    async fn release_idempotency_key(&self, subject: &str, key: &str) -> Result<()>;
}

/// [`IdempotencyStore::claim_idempotency_key`] on `pool`.
async fn claim<DB>(
    pool: &Pool<DB>,
    (subject, key, request_hash): (&str, &str, &str),
    (now_ms, ttl_ms, abandoned_ms): (i64, i64, i64),
) -> Result<Claim>
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    usize: ColumnIndex<DB::Row>,
    i64: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    String: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<i64>: for<'r> Decode<'r, DB> + Type<DB>,
    Option<String>: for<'r> Decode<'r, DB> + Type<DB>,
    Option<Vec<u8>>: for<'r> Decode<'r, DB> + Type<DB>,
{
    let taken = sqlx::query(
        "INSERT INTO idempotency_keys (subject, key, request_hash, created_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (subject, key) DO UPDATE SET request_hash = excluded.request_hash, \
           status = NULL, content_type = NULL, body = NULL, created_at = excluded.created_at \
         WHERE idempotency_keys.created_at < $5 \
            OR (idempotency_keys.status IS NULL AND idempotency_keys.created_at < $6) \
         RETURNING created_at",
    )
    .bind(subject.to_owned())
    .bind(key.to_owned())
    .bind(request_hash.to_owned())
    .bind(now_ms)
    .bind(now_ms.saturating_sub(ttl_ms))
    .bind(now_ms.saturating_sub(abandoned_ms))
    .fetch_optional(pool)
    .await?;
    if taken.is_some() {
        return Ok(Claim::New);
    }
    let row = sqlx::query(
        "SELECT request_hash, status, content_type, body FROM idempotency_keys \
         WHERE subject = $1 AND key = $2",
    )
    .bind(subject.to_owned())
    .bind(key.to_owned())
    .fetch_optional(pool)
    .await?;
    // Released between the two statements: the retry may run.
    let Some(row) = row else {
        return Ok(Claim::InProgress);
    };
    let hash: String = row.try_get(0)?;
    if hash != request_hash {
        return Ok(Claim::Mismatch);
    }
    let status: Option<i64> = row.try_get(1)?;
    Ok(match status {
        None => Claim::InProgress,
        Some(status) => Claim::Replay(StoredResponse {
            status: u16::try_from(status).unwrap_or(500),
            content_type: row.try_get(2)?,
            body: row.try_get::<Option<Vec<u8>>, _>(3)?.unwrap_or_default(),
        }),
    })
}

/// Keeps an answer for a claimed key: `$1` subject, `$2` key, `$3` status, `$4` content type,
/// `$5` body (also run inside an event batch's transaction, `stats::ingest::store_answers`).
pub(crate) const COMPLETE_SQL: &str = "UPDATE idempotency_keys SET status = $3, content_type = $4, body = $5 \
     WHERE subject = $1 AND key = $2";

/// [`IdempotencyStore::complete_idempotency_key`] on `pool`.
async fn complete<DB>(
    pool: &Pool<DB>,
    subject: &str,
    key: &str,
    response: &StoredResponse,
) -> Result<()>
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    i64: for<'t> Encode<'t, DB> + Type<DB>,
    String: for<'t> Encode<'t, DB> + Type<DB>,
    Option<String>: for<'t> Encode<'t, DB> + Type<DB>,
    Vec<u8>: for<'t> Encode<'t, DB> + Type<DB>,
{
    sqlx::query(COMPLETE_SQL)
        .bind(subject.to_owned())
        .bind(key.to_owned())
        .bind(i64::from(response.status))
        .bind(response.content_type.clone())
        .bind(response.body.clone())
        .execute(pool)
        .await?;
    Ok(())
}

/// [`IdempotencyStore::release_idempotency_key`] on `pool`.
async fn release<DB>(pool: &Pool<DB>, subject: &str, key: &str) -> Result<()>
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    String: for<'t> Encode<'t, DB> + Type<DB>,
{
    // Only a claim still without an answer: an answer written with the work (an event
    // batch's, in its transaction) stays, even when the caller saw the commit fail.
    sqlx::query("DELETE FROM idempotency_keys WHERE subject = $1 AND key = $2 AND status IS NULL")
        .bind(subject.to_owned())
        .bind(key.to_owned())
        .execute(pool)
        .await?;
    Ok(())
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim_idempotency_key(
        &self,
        subject: &str,
        key: &str,
        request_hash: &str,
        now_ms: i64,
        ttl_ms: i64,
        abandoned_ms: i64,
    ) -> Result<Claim> {
        let _gate = self.write_gate().await;
        claim(
            self.pool(),
            (subject, key, request_hash),
            (now_ms, ttl_ms, abandoned_ms),
        )
        .await
    }

    async fn complete_idempotency_key(
        &self,
        subject: &str,
        key: &str,
        response: &StoredResponse,
    ) -> Result<()> {
        let _gate = self.write_gate().await;
        complete(self.pool(), subject, key, response).await
    }

    async fn release_idempotency_key(&self, subject: &str, key: &str) -> Result<()> {
        let _gate = self.write_gate().await;
        release(self.pool(), subject, key).await
    }
}

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn claim_idempotency_key(
        &self,
        subject: &str,
        key: &str,
        request_hash: &str,
        now_ms: i64,
        ttl_ms: i64,
        abandoned_ms: i64,
    ) -> Result<Claim> {
        claim(
            self.pool(),
            (subject, key, request_hash),
            (now_ms, ttl_ms, abandoned_ms),
        )
        .await
    }

    async fn complete_idempotency_key(
        &self,
        subject: &str,
        key: &str,
        response: &StoredResponse,
    ) -> Result<()> {
        complete(self.pool(), subject, key, response).await
    }

    async fn release_idempotency_key(&self, subject: &str, key: &str) -> Result<()> {
        release(self.pool(), subject, key).await
    }
}
