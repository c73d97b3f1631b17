//! The API key lifecycle and disabling clients (issue #19): listing and revoking a client's
//! keys, recording when a key was last used, and turning a client off and on.
//!
//! Keys are made with [`Store::insert_key`](crate::Store::insert_key) and resolved with
//! [`Store::key_holder`](crate::Store::key_holder); a revoked key's row is deleted, so it
//! resolves to nothing. A disabled client's jobs, watches and deliveries are left out of the
//! claim queries (`clients.disabled_at IS NULL` in `jobs`, `watches` and `notify::fair`).
//!
//! The SQL is the same on both databases, so the functions here are generic over the sqlx
//! database; each backend's `KeyStore` delegates to them (SQLite behind its write gate).

use crate::shared::client_row;
use crate::sql::RowsAffected;
use crate::{
    Action, Actor, Change, Client, ClientId, KeyHash, KeyId, KeyInfo, PgStore, Result, SqliteStore,
};
use async_trait::async_trait;
use sqlx::{
    AssertSqlSafe, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type,
};

/// How often at most a key's `last_used_at` is written: a busy key costs one write a minute,
/// not one per request.
pub const LAST_USED_EVERY_MS: i64 = 60_000;

/// What [`KeyStore::revoke_key`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// The key is gone.
    Revoked,
    /// The client has no key with that id.
    NotFound,
    /// It is the client's last key and the caller asked to keep the last one.
    LastKey,
}

/// The key lifecycle's queries.
#[async_trait]
pub trait KeyStore {
    /// The keys of `client`, oldest first (never the token or its hash).
    async fn list_keys(&self, client: &ClientId) -> Result<Vec<KeyInfo>>;

    /// Revokes key `id` of `client`. With `keep_last`, the client's last key is not revoked
    /// ([`Revoked::LastKey`]); the check and the delete are serialized per client (on the
    /// client's row), so two revocations at once cannot both pass it. A revocation is
    /// recorded in the audit log as done by `actor`.
    async fn revoke_key(
        &self,
        client: &ClientId,
        id: &KeyId,
        keep_last: bool,
        actor: &Actor,
    ) -> Result<Revoked>;

    /// Disables or enables a client (audited as done by `actor`); `None` when there is no such
    /// client. Disabling an already disabled client keeps its first `disabled_at`.
    async fn set_client_disabled(
        &self,
        id: &ClientId,
        disabled: bool,
        actor: &Actor,
    ) -> Result<Option<Client>>;

    /// The admin keys, oldest first (never the token or its hash).
    async fn list_admin_keys(&self) -> Result<Vec<KeyInfo>>;

    /// Revokes admin key `id`, unless it is the last admin key ([`Revoked::LastKey`]: an
    /// installation keeps one); audited as done by `actor`. Revocations are serialized on
    /// one row of `meta`, so two at once cannot revoke the last two keys.
    async fn revoke_admin_key(&self, id: &KeyId, actor: &Actor) -> Result<Revoked>;

    /// Records that the key with `hash` was used at `at_ms`, unless that was already recorded
    /// less than [`LAST_USED_EVERY_MS`] before; answers whether it wrote.
    async fn touch_key(&self, hash: &KeyHash, at_ms: i64) -> Result<bool>;
}

const KEY_COLUMNS: &str = "id, label, prefix, created_at, expires_at, last_used_at";

/// A key as listed: [`KEY_COLUMNS`] of one row.
fn key_from_row<R: Row>(row: &R) -> Result<KeyInfo>
where
    usize: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(KeyInfo {
        id: KeyId::from_db(row.try_get(0)?),
        name: row.try_get(1)?,
        prefix: row.try_get(2)?,
        created_at: row.try_get(3)?,
        expires_at: row.try_get(4)?,
        last_used_at: row.try_get(5)?,
    })
}

/// [`KeyStore::list_keys`].
async fn list_keys<DB>(pool: &Pool<DB>, client: &ClientId) -> Result<Vec<KeyInfo>>
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    DB::QueryResult: RowsAffected,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    bool: for<'t> Encode<'t, DB> + Type<DB>,
    String: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<String>: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<i64>: for<'r> Decode<'r, DB> + Type<DB>,
{
    let rows = sqlx::query::<DB>(AssertSqlSafe(format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE client_id = $1 ORDER BY created_at, id"
    )))
    .bind(client.as_str())
    .fetch_all(pool)
    .await?;
    rows.iter().map(key_from_row).collect()
}

/// [`KeyStore::revoke_key`].
async fn revoke_key<DB>(
    pool: &Pool<DB>,
    client: &ClientId,
    id: &KeyId,
    keep_last: bool,
    actor: &Actor,
) -> Result<Revoked>
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    DB::QueryResult: RowsAffected,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    bool: for<'t> Encode<'t, DB> + Type<DB>,
    String: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<String>: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<i64>: for<'r> Decode<'r, DB> + Type<DB>,
{
    let mut tx = pool.begin().await?;
    // Locks the client's row (PostgreSQL) or the database (SQLite) first, so a concurrent
    // revocation of the client's other key waits and then counts anew.
    let locked = sqlx::query::<DB>("UPDATE clients SET id = id WHERE id = $1")
        .bind(client.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if locked == 0 {
        tx.rollback().await?;
        return Ok(Revoked::NotFound);
    }
    if keep_last {
        let others: i64 = sqlx::query_scalar::<DB, i64>(
            "SELECT COUNT(*) FROM api_keys WHERE client_id = $1 AND id <> $2",
        )
        .bind(client.as_str())
        .bind(id.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if others == 0 {
            let exists: i64 = sqlx::query_scalar::<DB, i64>(
                "SELECT COUNT(*) FROM api_keys WHERE client_id = $1 AND id = $2",
            )
            .bind(client.as_str())
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await?;
            tx.rollback().await?;
            return Ok(if exists == 0 {
                Revoked::NotFound
            } else {
                Revoked::LastKey
            });
        }
    }
    let gone = sqlx::query::<DB>("DELETE FROM api_keys WHERE client_id = $1 AND id = $2")
        .bind(client.as_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if gone == 0 {
        tx.rollback().await?;
        return Ok(Revoked::NotFound);
    }
    let change = Change::new(Some(client), Action::KeyRevoke, id.as_str());
    crate::audit::write(&mut *tx, actor, &change).await?;
    tx.commit().await?;
    Ok(Revoked::Revoked)
}

/// [`KeyStore::set_client_disabled`].
async fn set_client_disabled<DB>(
    pool: &Pool<DB>,
    id: &ClientId,
    disabled: bool,
    actor: &Actor,
) -> Result<Option<Client>>
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    DB::QueryResult: RowsAffected,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    bool: for<'t> Encode<'t, DB> + Type<DB>,
    String: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<String>: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<i64>: for<'r> Decode<'r, DB> + Type<DB>,
{
    let mut tx = pool.begin().await?;
    let row = sqlx::query::<DB>(
        "UPDATE clients SET disabled_at = \
           CASE WHEN $2 THEN COALESCE(disabled_at, $3) ELSE NULL END \
         WHERE id = $1 \
         RETURNING id, name, created_at, rate_limit_rps, rate_limit_burst, quotas, disabled_at",
    )
    .bind(id.as_str())
    .bind(disabled)
    .bind(crate::now_ms())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(client) = row.as_ref().map(client_row).transpose()? else {
        tx.rollback().await?;
        return Ok(None);
    };
    let action = if disabled {
        Action::ClientDisable
    } else {
        Action::ClientEnable
    };
    crate::audit::write(&mut *tx, actor, &Change::new(Some(id), action, id.as_str())).await?;
    tx.commit().await?;
    Ok(Some(client))
}

/// [`KeyStore::list_admin_keys`].
async fn list_admin_keys<DB>(pool: &Pool<DB>) -> Result<Vec<KeyInfo>>
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    DB::QueryResult: RowsAffected,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    bool: for<'t> Encode<'t, DB> + Type<DB>,
    String: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<String>: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<i64>: for<'r> Decode<'r, DB> + Type<DB>,
{
    let rows = sqlx::query::<DB>(AssertSqlSafe(format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE is_admin ORDER BY created_at, id"
    )))
    .fetch_all(pool)
    .await?;
    rows.iter().map(key_from_row).collect()
}

/// [`KeyStore::revoke_admin_key`].
async fn revoke_admin_key<DB>(pool: &Pool<DB>, id: &KeyId, actor: &Actor) -> Result<Revoked>
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    DB::QueryResult: RowsAffected,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    bool: for<'t> Encode<'t, DB> + Type<DB>,
    String: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<String>: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<i64>: for<'r> Decode<'r, DB> + Type<DB>,
{
    let mut tx = pool.begin().await?;
    // A write first: it takes SQLite's lock, and on PostgreSQL this row's, so a concurrent
    // revocation waits here and then counts anew.
    sqlx::query::<DB>(
        "INSERT INTO meta (key, value) VALUES ('admin_keys_revoked_at', $1) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(crate::now_ms().to_string())
    .execute(&mut *tx)
    .await?;
    let exists: i64 =
        sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM api_keys WHERE is_admin AND id = $1")
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await?;
    let others: i64 =
        sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM api_keys WHERE is_admin AND id <> $1")
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await?;
    let verdict = match (exists, others) {
        (0, _) => Revoked::NotFound,
        (_, 0) => Revoked::LastKey,
        _ => Revoked::Revoked,
    };
    if verdict != Revoked::Revoked {
        tx.rollback().await?;
        return Ok(verdict);
    }
    sqlx::query::<DB>("DELETE FROM api_keys WHERE is_admin AND id = $1")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    let change = Change::new(None, Action::KeyRevoke, id.as_str())
        .with_detail(serde_json::json!({ "admin": true }));
    crate::audit::write(&mut *tx, actor, &change).await?;
    tx.commit().await?;
    Ok(Revoked::Revoked)
}

/// [`KeyStore::touch_key`].
async fn touch_key<DB>(pool: &Pool<DB>, hash: &KeyHash, at_ms: i64) -> Result<bool>
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    DB::QueryResult: RowsAffected,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    bool: for<'t> Encode<'t, DB> + Type<DB>,
    String: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<String>: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<i64>: for<'r> Decode<'r, DB> + Type<DB>,
{
    let done = sqlx::query::<DB>(
        "UPDATE api_keys SET last_used_at = $2 WHERE key_hash = $1 \
         AND (last_used_at IS NULL OR last_used_at <= $3)",
    )
    .bind(hash.as_str())
    .bind(at_ms)
    .bind(at_ms.saturating_sub(LAST_USED_EVERY_MS))
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

#[async_trait]
impl KeyStore for SqliteStore {
    #[tracing::instrument(name = "store.list_keys", skip_all, fields(client = %client))]
    async fn list_keys(&self, client: &ClientId) -> Result<Vec<KeyInfo>> {
        list_keys(self.pool(), client).await
    }

    #[tracing::instrument(name = "store.revoke_key", skip_all, fields(client = %client, key = %id))]
    async fn revoke_key(
        &self,
        client: &ClientId,
        id: &KeyId,
        keep_last: bool,
        actor: &Actor,
    ) -> Result<Revoked> {
        let _gate = self.write_gate().await;
        revoke_key(self.pool(), client, id, keep_last, actor).await
    }

    #[tracing::instrument(name = "store.set_client_disabled", skip_all, fields(client = %id))]
    async fn set_client_disabled(
        &self,
        id: &ClientId,
        disabled: bool,
        actor: &Actor,
    ) -> Result<Option<Client>> {
        let _gate = self.write_gate().await;
        set_client_disabled(self.pool(), id, disabled, actor).await
    }

    #[tracing::instrument(name = "store.list_admin_keys", skip_all)]
    async fn list_admin_keys(&self) -> Result<Vec<KeyInfo>> {
        list_admin_keys(self.pool()).await
    }

    #[tracing::instrument(name = "store.revoke_admin_key", skip_all, fields(key = %id))]
    async fn revoke_admin_key(&self, id: &KeyId, actor: &Actor) -> Result<Revoked> {
        let _gate = self.write_gate().await;
        revoke_admin_key(self.pool(), id, actor).await
    }

    #[tracing::instrument(name = "store.touch_key", skip_all)]
    async fn touch_key(&self, hash: &KeyHash, at_ms: i64) -> Result<bool> {
        touch_key(self.pool(), hash, at_ms).await
    }
}

#[async_trait]
impl KeyStore for PgStore {
    #[tracing::instrument(name = "store.list_keys", skip_all, fields(client = %client))]
    async fn list_keys(&self, client: &ClientId) -> Result<Vec<KeyInfo>> {
        list_keys(self.pool(), client).await
    }

    #[tracing::instrument(name = "store.revoke_key", skip_all, fields(client = %client, key = %id))]
    async fn revoke_key(
        &self,
        client: &ClientId,
        id: &KeyId,
        keep_last: bool,
        actor: &Actor,
    ) -> Result<Revoked> {
        let _gate = self.write_gate().await;
        revoke_key(self.pool(), client, id, keep_last, actor).await
    }

    #[tracing::instrument(name = "store.set_client_disabled", skip_all, fields(client = %id))]
    async fn set_client_disabled(
        &self,
        id: &ClientId,
        disabled: bool,
        actor: &Actor,
    ) -> Result<Option<Client>> {
        let _gate = self.write_gate().await;
        set_client_disabled(self.pool(), id, disabled, actor).await
    }

    #[tracing::instrument(name = "store.list_admin_keys", skip_all)]
    async fn list_admin_keys(&self) -> Result<Vec<KeyInfo>> {
        list_admin_keys(self.pool()).await
    }

    #[tracing::instrument(name = "store.revoke_admin_key", skip_all, fields(key = %id))]
    async fn revoke_admin_key(&self, id: &KeyId, actor: &Actor) -> Result<Revoked> {
        let _gate = self.write_gate().await;
        revoke_admin_key(self.pool(), id, actor).await
    }

    #[tracing::instrument(name = "store.touch_key", skip_all)]
    async fn touch_key(&self, hash: &KeyHash, at_ms: i64) -> Result<bool> {
        touch_key(self.pool(), hash, at_ms).await
    }
}
