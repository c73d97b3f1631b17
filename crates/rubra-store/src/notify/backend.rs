//! The [`NotifyStore`](super::NotifyStore) queries whose SQL is the same on both databases,
//! written once as methods of [`Notify`], generic over the backend (see `sql::Backend`).

use super::*;
use crate::secrets::{Place, SecretSlot};
use crate::sql::{Backend, RowsAffected};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

/// Columns of `subscriptions`, in the order `subscription_from_row` reads them.
macro_rules! subscription_columns {
    () => {
        "id, client_id, threshold, channel, secret, state, paused_reason, \
         consecutive_failures, created_at, previous_secret, previous_secret_until, types"
    };
}

/// Columns of `notifications`, in the order `notification_from_row` reads them.
macro_rules! notification_columns {
    () => {
        "seq, client_id, subscription_id, channel_type, image_id, red, threshold, event_ts, \
         created_at, state, attempts, watch_id, changes, message_id, message_type, payload, \
         text, receiver"
    };
}

/// Columns of `delivery_attempts`, in the order `attempt_from_row` reads them.
macro_rules! attempt_columns {
    () => {
        "id, notification_seq, subscription_id, client_id, attempt, at, outcome, status_code, \
         latency_ms, error"
    };
}

/// The queries of [`NotifyStore`](super::NotifyStore) written once for both databases, with
/// the row decoders the backends' own queries share; each backend's impl delegates to these
/// (`Notify(self)`), and to its own methods on `Notify<'_, ThatStore>` (claiming, recording
/// verdicts, listening) in `notify/sqlite.rs` and `notify/postgres.rs`.
pub(crate) struct Notify<'a, S>(pub(crate) &'a S);

impl<S, DB> Notify<'_, S>
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
    f64: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<f64>: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    bool: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
{
    pub(crate) fn decode_err(
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> crate::StoreError {
        crate::StoreError::Database(sqlx::Error::Decode(Box::new(e)))
    }

    /// A subscription row, its secrets opened with `secrets`.
    pub(crate) fn subscription_from_row(
        row: &DB::Row,
        secrets: &SecretSlot,
    ) -> Result<Subscription> {
        let id: String = row.try_get(0)?;
        let channel: String = row.try_get(3)?;
        let state: String = row.try_get(5)?;
        let place = Place::WebhookSecret(&id);
        let open = |v: Option<String>| v.map(|v| secrets.open(&v, place)).transpose();
        let secret = open(row.try_get(4)?)?;
        let previous_secret = open(row.try_get(9)?)?;
        let channel = match serde_json::from_str(&channel).map_err(Self::decode_err)? {
            Channel::Viber {
                receiver,
                auth_token,
            } => Channel::Viber {
                receiver,
                auth_token: secrets.open(&auth_token, Place::ViberToken(&id))?,
            },
            other => other,
        };
        let threshold: f64 = row.try_get(2)?;
        let types: Option<String> = row.try_get(11)?;
        Ok(Subscription {
            id: SubscriptionId(id),
            client_id: ClientId::from_db(row.try_get(1)?),
            // A types-only subscription stores +Infinity: no red exceeds it.
            threshold: threshold.is_finite().then_some(threshold),
            types: crate::messages::types_from_db(types.as_deref()),
            channel,
            secret,
            previous_secret,
            previous_secret_until: row.try_get(10)?,
            state: SubscriptionState::from_db(&state),
            paused_reason: row.try_get(6)?,
            consecutive_failures: row.try_get(7)?,
            created_at: row.try_get(8)?,
        })
    }

    /// The channel JSON as stored: a Viber token sealed for subscription `id`.
    pub(crate) fn stored_channel(
        channel: &Channel,
        id: &str,
        secrets: &SecretSlot,
    ) -> Result<String> {
        let sealed = match channel {
            Channel::Viber {
                receiver,
                auth_token,
            } => Channel::Viber {
                receiver: receiver.clone(),
                auth_token: secrets.seal(auth_token, Place::ViberToken(id))?,
            },
            other => other.clone(),
        };
        serde_json::to_string(&sealed).map_err(Self::decode_err)
    }

    pub(crate) fn notification_from_row(row: &DB::Row) -> Result<Notification> {
        Ok(Notification {
            seq: row.try_get(0)?,
            client_id: ClientId::from_db(row.try_get(1)?),
            subscription_id: SubscriptionId(row.try_get(2)?),
            channel_type: row.try_get(3)?,
            image_id: row.try_get(4)?,
            red: row.try_get(5)?,
            threshold: row.try_get(6)?,
            event_ts: row.try_get(7)?,
            created_at: row.try_get(8)?,
            state: row.try_get(9)?,
            attempts: row.try_get(10)?,
            watch_id: row.try_get(11)?,
            changes: row.try_get(12)?,
            message: match row.try_get::<Option<String>, _>(13)? {
                None => None,
                Some(id) => Some(crate::MessageContent {
                    id,
                    kind: row.try_get::<Option<String>, _>(14)?.unwrap_or_default(),
                    payload: row.try_get(15)?,
                    text: row.try_get(16)?,
                    receiver: row.try_get(17)?,
                }),
            },
        })
    }

    pub(crate) fn attempt_from_row(row: &DB::Row) -> Result<DeliveryAttempt> {
        Ok(DeliveryAttempt {
            id: row.try_get(0)?,
            notification_seq: row.try_get(1)?,
            subscription_id: SubscriptionId(row.try_get(2)?),
            client_id: ClientId::from_db(row.try_get(3)?),
            attempt: row.try_get(4)?,
            at: row.try_get(5)?,
            outcome: row.try_get(6)?,
            status_code: row.try_get(7)?,
            latency_ms: row.try_get(8)?,
            error: row.try_get(9)?,
        })
    }

    /// The subscriptions with pending notifications, for [`fair::plan`].
    pub(crate) async fn read_candidates(
        &self,
        now: i64,
        total: u32,
    ) -> Result<Vec<fair::Candidate>> {
        let rows = sqlx::query(fair::CANDIDATES_SQL)
            .bind(now)
            .bind(i64::from(total))
            .fetch_all(self.0.pool())
            .await?;
        rows.iter()
            .map(|row| {
                let due: i64 = row.try_get(2)?;
                let in_flight: i64 = row.try_get(3)?;
                let first_at: Option<i64> = row.try_get(4)?;
                let relay: i64 = row.try_get(5)?;
                Ok(fair::Candidate {
                    subscription: row.try_get(0)?,
                    client: row.try_get(1)?,
                    due: u32::try_from(due).unwrap_or(u32::MAX),
                    in_flight: u32::try_from(in_flight).unwrap_or(u32::MAX),
                    first_at: first_at.unwrap_or(i64::MAX),
                    relay: relay != 0,
                })
            })
            .collect()
    }

    /// Pairs claimed notifications with their subscriptions (read after the claim).
    pub(crate) fn join_subscriptions(
        notes: Vec<Notification>,
        subs: &[DB::Row],
        secrets: &SecretSlot,
    ) -> Result<Vec<ClaimedNotification>> {
        let subs = subs
            .iter()
            .map(|r| Self::subscription_from_row(r, secrets))
            .collect::<Result<Vec<_>>>()?;
        Ok(notes
            .into_iter()
            .filter_map(|notification| {
                let subscription = subs
                    .iter()
                    .find(|s| s.id == notification.subscription_id)?
                    .clone();
                Some(ClaimedNotification {
                    notification,
                    subscription,
                })
            })
            .collect())
    }

    #[tracing::instrument(name = "store.create_subscription", skip_all,
                                      fields(client = %new.client_id))]
    pub(crate) async fn create_subscription(
        &self,
        new: &NewSubscription,
        actor: &crate::Actor,
    ) -> Result<Subscription> {
        let sub = Subscription {
            id: SubscriptionId::generate(),
            client_id: new.client_id.clone(),
            threshold: new.threshold,
            types: new.types.clone(),
            channel: new.channel.clone(),
            secret: new.secret.clone(),
            previous_secret: None,
            previous_secret_until: None,
            state: SubscriptionState::Active,
            paused_reason: None,
            consecutive_failures: 0,
            created_at: crate::now_ms(),
        };
        let channel = Self::stored_channel(&sub.channel, sub.id.as_str(), self.0.secrets())?;
        let secret = sub
            .secret
            .as_deref()
            .map(|s| {
                self.0
                    .secrets()
                    .seal(s, Place::WebhookSecret(sub.id.as_str()))
            })
            .transpose()?;
        // One statement: the count and the insert see the same snapshot (SQLite has
        // one writer; on PostgreSQL two racing creates may pass the limit by one).
        let _gate = self.0.write_gate().await;
        let mut tx = self.0.pool().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO subscriptions \
                         (id, client_id, threshold, channel_type, channel, secret, created_at, \
                          types) \
                         SELECT $1, $2, $3, $4, $5, $6, $7, $9 \
                         WHERE (SELECT COUNT(*) FROM subscriptions \
                                WHERE client_id = $2 AND deleted_at IS NULL) < $8",
        )
        .bind(sub.id.as_str())
        .bind(sub.client_id.as_str())
        .bind(sub.threshold.unwrap_or(f64::INFINITY))
        .bind(sub.channel.kind())
        .bind(channel)
        .bind(secret)
        .bind(sub.created_at)
        .bind(i64::from(new.limit))
        .bind(crate::messages::types_to_db(&sub.types))
        .execute(&mut *tx)
        .await
        .map_err(|e| crate::StoreError::from_insert(e, "this subscription"))?;
        if inserted.rows_affected() == 0 {
            tx.rollback().await?;
            return Err(crate::StoreError::QuotaExceeded(format!(
                "quota max-subscriptions-per-client: this client already has {} \
                             subscriptions, the most allowed",
                new.limit
            )));
        }
        let change = crate::Change::new(
            Some(&sub.client_id),
            crate::Action::SubscriptionCreate,
            sub.id.as_str(),
        )
        .with_detail(serde_json::json!({
            "channel": sub.channel.kind(),
            "threshold": sub.threshold,
        }));
        crate::audit::write(&mut *tx, actor, &change).await?;
        tx.commit().await?;
        Ok(sub)
    }

    #[tracing::instrument(name = "store.get_subscription", skip_all, fields(id = %id))]
    pub(crate) async fn get_subscription(
        &self,
        scope: &Scope,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            subscription_columns!(),
            " FROM subscriptions \
                         WHERE id = $1 AND deleted_at IS NULL \
                           AND (CAST($2 AS TEXT) IS NULL OR client_id = $2)"
        ))
        .bind(id.as_str())
        .bind(scope.client_filter())
        .fetch_optional(self.0.pool())
        .await?;
        row.as_ref()
            .map(|r| Self::subscription_from_row(r, self.0.secrets()))
            .transpose()
    }

    #[tracing::instrument(name = "store.list_subscriptions", skip_all)]
    pub(crate) async fn list_subscriptions(&self, scope: &Scope) -> Result<Vec<Subscription>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            subscription_columns!(),
            " FROM subscriptions \
                         WHERE deleted_at IS NULL \
                           AND (CAST($1 AS TEXT) IS NULL OR client_id = $1) \
                         ORDER BY created_at, id"
        ))
        .bind(scope.client_filter())
        .fetch_all(self.0.pool())
        .await?;
        rows.iter()
            .map(|r| Self::subscription_from_row(r, self.0.secrets()))
            .collect()
    }

    #[tracing::instrument(name = "store.delete_subscription", skip_all, fields(id = %id))]
    pub(crate) async fn delete_subscription(
        &self,
        scope: &Scope,
        id: &SubscriptionId,
        actor: &crate::Actor,
    ) -> Result<bool> {
        let _gate = self.0.write_gate().await;
        let mut tx = self.0.pool().begin().await?;
        let owner: Option<String> = sqlx::query_scalar(
            "UPDATE subscriptions SET deleted_at = $3 \
                         WHERE id = $1 AND deleted_at IS NULL \
                           AND (CAST($2 AS TEXT) IS NULL OR client_id = $2) \
                         RETURNING client_id",
        )
        .bind(id.as_str())
        .bind(scope.client_filter())
        .bind(crate::now_ms())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(owner) = owner.map(crate::ClientId::from_db) else {
            tx.rollback().await?;
            return Ok(false);
        };
        let change =
            crate::Change::new(Some(&owner), crate::Action::SubscriptionDelete, id.as_str());
        crate::audit::write(&mut *tx, actor, &change).await?;
        sqlx::query(
            "UPDATE notifications SET state = 'canceled', lease_owner = NULL, \
                                lease_until = NULL \
                         WHERE subscription_id = $1 AND state IN ('pending', 'held')",
        )
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(name = "store.rotate_webhook_secret", skip_all, fields(id = %id))]
    pub(crate) async fn rotate_webhook_secret(
        &self,
        scope: &Scope,
        id: &SubscriptionId,
        new_secret: &str,
        overlap_until: i64,
        actor: &crate::Actor,
    ) -> Result<Option<Subscription>> {
        let sealed = self
            .0
            .secrets()
            .seal(new_secret, Place::WebhookSecret(id.as_str()))?;
        // One statement: the current secret (sealed for this row, whichever column
        // holds it) becomes the previous one as the new one is stored.
        let _gate = self.0.write_gate().await;
        let mut tx = self.0.pool().begin().await?;
        let owner: Option<String> = sqlx::query_scalar(
            "UPDATE subscriptions \
                         SET previous_secret = secret, previous_secret_until = $3, secret = $4 \
                         WHERE id = $1 AND deleted_at IS NULL AND channel_type = 'webhook' \
                           AND (CAST($2 AS TEXT) IS NULL OR client_id = $2) \
                         RETURNING client_id",
        )
        .bind(id.as_str())
        .bind(scope.client_filter())
        .bind(overlap_until)
        .bind(sealed)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(owner) = owner.map(crate::ClientId::from_db) else {
            tx.rollback().await?;
            return Ok(None);
        };
        let change = crate::Change::new(
            Some(&owner),
            crate::Action::SubscriptionRotateSecret,
            id.as_str(),
        )
        .with_detail(serde_json::json!({ "previous_valid_until": overlap_until }));
        crate::audit::write(&mut *tx, actor, &change).await?;
        tx.commit().await?;
        drop(_gate);
        self.get_subscription(scope, id).await
    }

    #[tracing::instrument(name = "store.pause_subscription", skip_all, fields(id = %id))]
    pub(crate) async fn pause_subscription(
        &self,
        scope: &Scope,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>> {
        let _gate = self.0.write_gate().await;
        let mut tx = self.0.pool().begin().await?;
        let paused = sqlx::query(
            "UPDATE subscriptions SET state = 'paused', paused_reason = $3 \
                         WHERE id = $1 AND deleted_at IS NULL AND state = 'active' \
                           AND (CAST($2 AS TEXT) IS NULL OR client_id = $2)",
        )
        .bind(id.as_str())
        .bind(scope.client_filter())
        .bind(super::PAUSED_BY_CLIENT)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if paused > 0 {
            // As when failures pause it: rows leased right now finish their
            // attempt and are held when they record it.
            sqlx::query(
                "UPDATE notifications SET state = 'held' \
                             WHERE subscription_id = $1 AND state = 'pending' \
                               AND (lease_owner IS NULL OR lease_until < $2)",
            )
            .bind(id.as_str())
            .bind(crate::now_ms())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.get_subscription(scope, id).await
    }

    #[tracing::instrument(name = "store.resume_subscription", skip_all, fields(id = %id))]
    pub(crate) async fn resume_subscription(
        &self,
        scope: &Scope,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>> {
        let _gate = self.0.write_gate().await;
        let mut tx = self.0.pool().begin().await?;
        let resumed = sqlx::query(
            "UPDATE subscriptions \
                         SET state = 'active', paused_reason = NULL, consecutive_failures = 0 \
                         WHERE id = $1 AND deleted_at IS NULL AND state = 'paused' \
                           AND (CAST($2 AS TEXT) IS NULL OR client_id = $2)",
        )
        .bind(id.as_str())
        .bind(scope.client_filter())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if resumed > 0 {
            sqlx::query(
                "UPDATE notifications SET state = 'pending', next_attempt_at = $2 \
                             WHERE subscription_id = $1 AND state = 'held'",
            )
            .bind(id.as_str())
            .bind(crate::now_ms())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if resumed > 0 {
            self.0.bells().outbox.ring();
        }
        self.get_subscription(scope, id).await
    }

    pub(crate) async fn next_due_notification(&self) -> Result<Option<i64>> {
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM notifications WHERE state = 'pending'",
        )
        .fetch_one(self.0.pool())
        .await?;
        Ok(due)
    }

    #[tracing::instrument(name = "store.notifications_after", skip_all, fields(after = after))]
    pub(crate) async fn notifications_after(
        &self,
        client: &ClientId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Notification>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            notification_columns!(),
            " FROM notifications \
                         WHERE client_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        ))
        .bind(client.as_str())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.0.pool())
        .await?;
        rows.iter().map(Self::notification_from_row).collect()
    }

    pub(crate) async fn settled_cursor(
        &self,
        client: &ClientId,
        at_most: i64,
        created_before: i64,
    ) -> Result<i64> {
        let seq: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM notifications \
                         WHERE client_id = $1 AND seq <= $2 AND created_at < $3 \
                         ORDER BY seq DESC LIMIT 1",
        )
        .bind(client.as_str())
        .bind(at_most)
        .bind(created_before)
        .fetch_optional(self.0.pool())
        .await?;
        Ok(seq.unwrap_or(0))
    }

    pub(crate) async fn latest_notification_seq(&self, client: &ClientId) -> Result<i64> {
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT MAX(seq) FROM notifications WHERE client_id = $1")
                .bind(client.as_str())
                .fetch_one(self.0.pool())
                .await?;
        Ok(seq.unwrap_or(0))
    }

    pub(crate) async fn pending_notifications(&self) -> Result<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE state = 'pending'")
                .fetch_one(self.0.pool())
                .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    #[tracing::instrument(name = "store.insert_delivery_attempts", skip_all,
                                      fields(rows = rows.len()))]
    pub(crate) async fn insert_delivery_attempts(&self, rows: &[DeliveryAttempt]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let _gate = self.0.write_gate().await;
        let mut tx = self.0.pool().begin().await?;
        // 9 parameters a row: 500 rows stay far below either database's limit.
        for chunk in rows.chunks(500) {
            let mut q = sqlx::QueryBuilder::<DB>::new(
                "INSERT INTO delivery_attempts (notification_seq, subscription_id, \
                             client_id, attempt, at, outcome, status_code, latency_ms, error) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.notification_seq)
                    .push_bind(r.subscription_id.as_str().to_owned())
                    .push_bind(r.client_id.as_str().to_owned())
                    .push_bind(r.attempt)
                    .push_bind(r.at)
                    .push_bind(r.outcome.clone())
                    .push_bind(r.status_code)
                    .push_bind(r.latency_ms)
                    .push_bind(r.error.clone());
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(name = "store.list_delivery_attempts", skip_all)]
    pub(crate) async fn list_delivery_attempts(
        &self,
        scope: &Scope,
        page: &LogPage,
    ) -> Result<Vec<DeliveryAttempt>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            attempt_columns!(),
            " FROM delivery_attempts \
                         WHERE (CAST($1 AS TEXT) IS NULL OR client_id = $1) \
                           AND (CAST($2 AS TEXT) IS NULL OR subscription_id = $2) \
                           AND (CAST($3 AS BIGINT) IS NULL OR id < $3) \
                         ORDER BY id DESC LIMIT $4"
        ))
        .bind(scope.client_filter())
        .bind(page.subscription.as_ref().map(|s| s.as_str()))
        .bind(page.before_id)
        .bind(i64::from(page.limit))
        .fetch_all(self.0.pool())
        .await?;
        rows.iter().map(Self::attempt_from_row).collect()
    }
}

pub(crate) use {notification_columns, subscription_columns};
