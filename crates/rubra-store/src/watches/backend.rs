//! The SQL of [`WatchStore`], the same on SQLite and PostgreSQL (see `shared.rs` for the
//! placeholders and casts both accept).

use super::{
    Baseline, ChangeOp, ClaimedWatch, NewChange, NewWatch, PollOutcome, Watch, WatchChange,
    WatchId, WatchLease, WatchSpec, WatchStore,
};
use crate::secrets::Place;
use crate::sql::{Backend, RowsAffected};
use crate::{ClientId, PgStore, Result, Scope, SqliteStore, StoreError, now_ms};
use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};
use std::time::Duration;

const WATCH_COLUMNS: &str = "id, client_id, url, interval_ms, pointer, array_key, headers, \
    created_at, baseline_at, last_ok_at, last_error, last_error_at, failures, last_seq, \
    lease_owner, lease_until, subscription_id";

/// The changes numbered from `first`, as the JSON array a watch notification carries (values
/// copied verbatim).
fn changes_json(first: i64, changes: &[NewChange]) -> String {
    let mut out = String::from("[");
    for (i, c) in changes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let seq = first + i64::try_from(i).unwrap_or(0);
        let path = serde_json::to_string(&c.path).unwrap_or_else(|_| "\"\"".to_owned());
        out.push_str(&format!(
            "{{\"seq\":{seq},\"path\":{path},\"op\":\"{}\",\"old\":{},\"new\":{}}}",
            c.op.as_str(),
            c.old.as_deref().unwrap_or("null"),
            c.new.as_deref().unwrap_or("null"),
        ));
    }
    out.push(']');
    out
}

/// The condition on `watches` that its client is not disabled: a disabled client's watches are
/// not claimed, and their leases are not renewed, so that polling stops at the next renewal.
const ENABLED: &str = "NOT EXISTS (SELECT 1 FROM clients c \
    WHERE c.id = watches.client_id AND c.disabled_at IS NOT NULL)";

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn encode_headers(headers: &[(String, String)]) -> Result<String> {
    serde_json::to_string(headers)
        .map_err(|e| StoreError::Config(format!("cannot encode watch headers: {e}")))
}

/// The headers as stored: sealed for watch `id`, unless there are none.
fn stored_headers(
    headers: &[(String, String)],
    id: &WatchId,
    secrets: &crate::secrets::SecretSlot,
) -> Result<String> {
    if headers.is_empty() {
        return Ok(crate::secrets::NO_HEADERS.to_owned());
    }
    secrets.seal(&encode_headers(headers)?, Place::WatchHeaders(id.as_str()))
}

fn decode_headers(text: &str) -> Result<Vec<(String, String)>> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Config(format!("stored watch headers are not valid: {e}")))
}

/// The queries of [`WatchStore`], written once for both databases: each backend's impl
/// delegates to these (`Watches(self)`).
pub(crate) struct Watches<'a, S>(pub(crate) &'a S);

impl<S, DB> Watches<'_, S>
where
    S: Backend<Db = DB>,
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    DB::QueryResult: RowsAffected,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> Option<&'t str>: Encode<'t, DB> + Type<DB>,
    String: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<String>: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<i64>: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    bool: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
{
    /// A watch row, its headers opened with the store's secret key.
    fn watch_from_row(&self, row: &DB::Row, now: i64) -> Result<Watch> {
        let id: String = row.try_get(0)?;
        let interval: i64 = row.try_get(3)?;
        let headers: String = row.try_get(6)?;
        let headers = self.0.secrets().open(&headers, Place::WatchHeaders(&id))?;
        let failures: i64 = row.try_get(12)?;
        let owner: Option<String> = row.try_get(14)?;
        let until: i64 = row.try_get(15)?;
        Ok(Watch {
            id: WatchId(id),
            client_id: ClientId::from_db(row.try_get(1)?),
            spec: WatchSpec {
                url: row.try_get(2)?,
                interval_ms: u32::try_from(interval).unwrap_or(u32::MAX),
                pointer: row.try_get(4)?,
                key: row.try_get(5)?,
                headers: decode_headers(&headers)?,
                subscription: row
                    .try_get::<Option<String>, _>(16)?
                    .and_then(|s| crate::SubscriptionId::parse(&s)),
            },
            created_at: row.try_get(7)?,
            baseline_at: row.try_get(8)?,
            last_ok_at: row.try_get(9)?,
            last_error: row.try_get(10)?,
            last_error_at: row.try_get(11)?,
            failures: u32::try_from(failures).unwrap_or(u32::MAX),
            last_seq: row.try_get(13)?,
            polled_by: owner.filter(|_| until >= now),
        })
    }

    #[tracing::instrument(name = "store.create_watch", skip_all, fields(client = %w.client_id))]
    pub(crate) async fn create_watch(&self, w: &NewWatch, actor: &crate::Actor) -> Result<Watch> {
        let id = WatchId::generate();
        let now = now_ms();
        let _gate = self.0.write_gate().await;
        let mut tx = self.0.pool().begin().await?;
        // One statement: the count and the insert see the same snapshot (SQLite has
        // one writer; on PostgreSQL two racing creates may pass the limit by one).
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO watches (id, client_id, url, interval_ms, pointer, array_key, \
                        headers, created_at, subscription_id) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $10 \
                     WHERE (SELECT COUNT(*) FROM watches WHERE client_id = $2) < $9 \
                     RETURNING {WATCH_COLUMNS}"
        )))
        .bind(id.as_str())
        .bind(w.client_id.as_str())
        .bind(&w.spec.url)
        .bind(i64::from(w.spec.interval_ms))
        .bind(w.spec.pointer.as_deref())
        .bind(w.spec.key.as_deref())
        .bind(stored_headers(&w.spec.headers, &id, self.0.secrets())?)
        .bind(now)
        .bind(i64::from(w.limit))
        .bind(w.spec.subscription.as_ref().map(|s| s.as_str().to_owned()))
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| StoreError::from_insert(e, "a watch with this id"))?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Err(StoreError::QuotaExceeded(format!(
                "quota max-watches-per-client: this client already has {} watches, \
                         the most allowed",
                w.limit
            )));
        };
        let watch = self.watch_from_row(&row, now)?;
        let change =
            crate::Change::new(Some(&w.client_id), crate::Action::WatchCreate, id.as_str())
                // Not the URL: its query or user part may carry a credential.
                .with_detail(serde_json::json!({ "interval_ms": w.spec.interval_ms }));
        crate::audit::write(&mut *tx, actor, &change).await?;
        tx.commit().await?;
        Ok(watch)
    }

    #[tracing::instrument(name = "store.get_watch", skip_all, fields(watch = %id))]
    pub(crate) async fn get_watch(&self, scope: &Scope, id: &WatchId) -> Result<Option<Watch>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WATCH_COLUMNS} FROM watches \
                     WHERE id = $1 AND (CAST($2 AS TEXT) IS NULL OR client_id = $2)"
        )))
        .bind(id.as_str())
        .bind(scope.client_filter())
        .fetch_optional(self.0.pool())
        .await?;
        let now = now_ms();
        row.map(|r| self.watch_from_row(&r, now)).transpose()
    }

    #[tracing::instrument(name = "store.list_watches", skip_all)]
    pub(crate) async fn list_watches(&self, scope: &Scope) -> Result<Vec<Watch>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WATCH_COLUMNS} FROM watches \
                     WHERE (CAST($1 AS TEXT) IS NULL OR client_id = $1) \
                     ORDER BY created_at, id"
        )))
        .bind(scope.client_filter())
        .fetch_all(self.0.pool())
        .await?;
        let now = now_ms();
        rows.iter().map(|r| self.watch_from_row(r, now)).collect()
    }

    #[tracing::instrument(name = "store.delete_watch", skip_all, fields(watch = %id))]
    pub(crate) async fn delete_watch(
        &self,
        scope: &Scope,
        id: &WatchId,
        actor: &crate::Actor,
    ) -> Result<bool> {
        // The delete first, its changes going with it by `ON DELETE CASCADE`, then its
        // audit row. (A read-then-write transaction here failed on SQLite with
        // "database is locked" whenever the poller wrote between its read and its
        // write; a transaction that writes first takes the lock at once.)
        let _gate = self.0.write_gate().await;
        let mut tx = self.0.pool().begin().await?;
        let owner: Option<String> = sqlx::query_scalar(
            "DELETE FROM watches \
                     WHERE id = $1 AND (CAST($2 AS TEXT) IS NULL OR client_id = $2) \
                     RETURNING client_id",
        )
        .bind(id.as_str())
        .bind(scope.client_filter())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(owner) = owner.map(crate::ClientId::from_db) else {
            tx.rollback().await?;
            return Ok(false);
        };
        let change = crate::Change::new(Some(&owner), crate::Action::WatchDelete, id.as_str());
        crate::audit::write(&mut *tx, actor, &change).await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(name = "store.watch_changes", skip_all, fields(watch = %id))]
    pub(crate) async fn watch_changes(
        &self,
        id: &WatchId,
        since: i64,
        limit: u32,
    ) -> Result<Vec<WatchChange>> {
        let rows = sqlx::query(
            "SELECT seq, ts, path, op, old, new FROM watch_changes \
                     WHERE watch_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(id.as_str())
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(self.0.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let op: String = r.try_get(3)?;
                Ok(WatchChange {
                    seq: r.try_get(0)?,
                    ts: r.try_get(1)?,
                    path: r.try_get(2)?,
                    op: ChangeOp::parse(&op)?,
                    old: r.try_get(4)?,
                    new: r.try_get(5)?,
                })
            })
            .collect()
    }

    #[tracing::instrument(level = "debug", name = "store.claim_watches", skip_all, fields(owner = %owner))]
    pub(crate) async fn claim_watches(
        &self,
        owner: &str,
        lease: Duration,
        max: u32,
    ) -> Result<Vec<ClaimedWatch>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = now_ms();
        // The inner SELECT picks free rows; re-checking `lease_until < now` in the
        // UPDATE's own WHERE makes a row that another process claimed in between
        // (PostgreSQL, READ COMMITTED re-evaluates it on the new row version) drop out
        // instead of being taken twice.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE watches SET lease_owner = $2, lease_gen = lease_gen + 1, \
                        lease_until = $3 \
                     WHERE lease_until < $1 AND id IN \
                        (SELECT id FROM watches WHERE lease_until < $1 \
                           AND {ENABLED} \
                         ORDER BY lease_until, id LIMIT $4) \
                     RETURNING {WATCH_COLUMNS}, lease_gen, doc, etag, last_modified"
        )))
        .bind(now)
        .bind(owner)
        .bind(now.saturating_add(ms(lease)))
        .bind(i64::from(max))
        .fetch_all(self.0.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let watch = self.watch_from_row(r, now)?;
                Ok(ClaimedWatch {
                    lease: WatchLease {
                        watch_id: watch.id.clone(),
                        owner: owner.to_owned(),
                        generation: r.try_get(17)?,
                    },
                    baseline: Baseline {
                        doc: r.try_get(18)?,
                        etag: r.try_get(19)?,
                        last_modified: r.try_get(20)?,
                    },
                    watch,
                })
            })
            .collect()
    }

    #[tracing::instrument(level = "debug", name = "store.renew_watches", skip_all, fields(owner = %owner))]
    pub(crate) async fn renew_watches(
        &self,
        owner: &str,
        lease: Duration,
    ) -> Result<Vec<WatchLease>> {
        // A disabled client's watches are let go (not just left to expire), so that
        // they are claimed afresh, by any process, once the client is enabled.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE watches SET lease_owner = NULL, lease_until = 0 \
                     WHERE lease_owner = $1 AND NOT {ENABLED}"
        )))
        .bind(owner)
        .execute(self.0.pool())
        .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE watches SET lease_until = $2 WHERE lease_owner = $1 \
                           AND {ENABLED} \
                         RETURNING id, lease_gen"
        )))
        .bind(owner)
        .bind(now_ms().saturating_add(ms(lease)))
        .fetch_all(self.0.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WatchLease {
                    watch_id: WatchId(r.try_get(0)?),
                    owner: owner.to_owned(),
                    generation: r.try_get(1)?,
                })
            })
            .collect()
    }

    #[tracing::instrument(name = "store.release_watches", skip_all, fields(owner = %owner))]
    pub(crate) async fn release_watches(&self, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE watches SET lease_owner = NULL, lease_until = 0 \
                     WHERE lease_owner = $1",
        )
        .bind(owner)
        .execute(self.0.pool())
        .await?;
        Ok(())
    }

    #[tracing::instrument(
                name = "store.record_poll", skip_all,
                fields(watch = %lease.watch_id, changes)
            )]
    pub(crate) async fn record_poll(
        &self,
        lease: &WatchLease,
        outcome: &PollOutcome,
    ) -> Result<Option<i64>> {
        const HELD: &str = "id = $1 AND lease_owner = $2 AND lease_gen = $3";
        let q = |sql: String| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(lease.watch_id.as_str())
                .bind(&lease.owner)
                .bind(lease.generation)
        };
        let mut tx = self.0.pool().begin().await?;
        let row = match outcome {
            PollOutcome::Unchanged { at } => {
                q(format!(
                    "UPDATE watches SET last_ok_at = $4, failures = 0, \
                                last_error = NULL WHERE {HELD} RETURNING last_seq"
                ))
                .bind(*at)
                .fetch_optional(&mut *tx)
                .await?
            }
            PollOutcome::Failed { at, error } => {
                q(format!(
                    "UPDATE watches SET last_error = $4, last_error_at = $5, \
                                failures = failures + 1 WHERE {HELD} RETURNING last_seq"
                ))
                .bind(error)
                .bind(*at)
                .fetch_optional(&mut *tx)
                .await?
            }
            PollOutcome::Document {
                at,
                baseline,
                changes,
            } => {
                tracing::Span::current().record("changes", changes.len());
                let n = i64::try_from(changes.len()).unwrap_or(i64::MAX);
                q(format!(
                    "UPDATE watches SET doc = $4, etag = $5, last_modified = $6, \
                                baseline_at = COALESCE(baseline_at, $7), last_ok_at = $7, \
                                failures = 0, last_error = NULL, last_seq = last_seq + $8 \
                             WHERE {HELD} RETURNING last_seq"
                ))
                .bind(baseline.doc.as_deref())
                .bind(baseline.etag.as_deref())
                .bind(baseline.last_modified.as_deref())
                .bind(*at)
                .bind(n)
                .fetch_optional(&mut *tx)
                .await?
            }
        };
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let last_seq: i64 = row.try_get(0)?;
        let mut notified = false;
        if let PollOutcome::Document { at, changes, .. } = outcome
            && !changes.is_empty()
        {
            let first = last_seq - i64::try_from(changes.len()).unwrap_or(0) + 1;
            // Many rows per statement; 6 parameters a row stays far below the
            // parameter limits of both databases.
            for (c, chunk) in changes.chunks(500).enumerate() {
                let mut b = sqlx::QueryBuilder::<DB>::new(
                    "INSERT INTO watch_changes (watch_id, seq, ts, path, op, old, new) ",
                );
                let base = first + i64::try_from(c * 500).unwrap_or(0);
                b.push_values(chunk.iter().enumerate(), |mut v, (i, ch)| {
                    v.push_bind(lease.watch_id.as_str().to_owned())
                        .push_bind(base + i64::try_from(i).unwrap_or(0))
                        .push_bind(*at)
                        .push_bind(ch.path.clone())
                        .push_bind(ch.op.as_str())
                        .push_bind(ch.old.clone())
                        .push_bind(ch.new.clone());
                });
                b.build().execute(&mut *tx).await?;
            }
            notified = crate::notify::outbox::enqueue_watch_changes::<DB>(
                &mut tx,
                lease.watch_id.as_str(),
                *at,
                changes_json(first, changes),
            )
            .await?;
        }
        tx.commit().await?;
        if matches!(outcome, PollOutcome::Document { changes, .. } if !changes.is_empty()) {
            self.0.bells().watch_changes.ring();
        }
        if notified {
            self.0.bells().outbox.ring();
        }
        Ok(Some(last_seq))
    }
}

/// Implements [`WatchStore`] for a backend: every method a one-line call of [`Watches`].
macro_rules! impl_watch_store {
    ($store:ty) => {
        #[async_trait]
        impl WatchStore for $store {
            async fn create_watch(&self, w: &NewWatch, actor: &crate::Actor) -> Result<Watch> {
                Watches(self).create_watch(w, actor).await
            }
            async fn get_watch(&self, scope: &Scope, id: &WatchId) -> Result<Option<Watch>> {
                Watches(self).get_watch(scope, id).await
            }
            async fn list_watches(&self, scope: &Scope) -> Result<Vec<Watch>> {
                Watches(self).list_watches(scope).await
            }
            async fn delete_watch(
                &self,
                scope: &Scope,
                id: &WatchId,
                actor: &crate::Actor,
            ) -> Result<bool> {
                Watches(self).delete_watch(scope, id, actor).await
            }
            async fn watch_changes(
                &self,
                id: &WatchId,
                since: i64,
                limit: u32,
            ) -> Result<Vec<WatchChange>> {
                Watches(self).watch_changes(id, since, limit).await
            }
            async fn claim_watches(
                &self,
                owner: &str,
                lease: Duration,
                max: u32,
            ) -> Result<Vec<ClaimedWatch>> {
                Watches(self).claim_watches(owner, lease, max).await
            }
            async fn renew_watches(&self, owner: &str, lease: Duration) -> Result<Vec<WatchLease>> {
                Watches(self).renew_watches(owner, lease).await
            }
            async fn release_watches(&self, owner: &str) -> Result<()> {
                Watches(self).release_watches(owner).await
            }
            async fn record_poll(
                &self,
                lease: &WatchLease,
                outcome: &PollOutcome,
            ) -> Result<Option<i64>> {
                Watches(self).record_poll(lease, outcome).await
            }
        }
    };
}

impl_watch_store!(SqliteStore);
impl_watch_store!(PgStore);
