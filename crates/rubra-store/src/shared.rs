//! Queries whose SQL is the same on SQLite and PostgreSQL, written once.
//!
//! Both databases accept `$N` placeholders, `ON CONFLICT`, and `CAST(.. AS TEXT)`, so most of
//! the store is portable SQL. The one way code is shared between the backends, here and in
//! every feature module: a small struct generic over [`Backend`] (`Shared`, `Jobs`, `Watches`,
//! `Notify`) whose methods hold the queries, with one `where` clause naming what sqlx must
//! provide; each backend's trait impl is a list of one-line calls of them (`impl_store!` here,
//! as `#[async_trait]` needs the impl written out whole).

use crate::sql::{Backend, RowsAffected};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

/// The store's queries on clients, keys and images, written once for both databases: each
/// backend's `impl Store` delegates to these (`Shared(self)`).
pub(crate) struct Shared<'a, S>(pub(crate) &'a S);

impl<S, DB> Shared<'_, S>
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
    bool: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    (String, i64): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    fn image_from_row(row: &DB::Row) -> crate::Result<crate::ImageRecord> {
        let dim = |i: usize| -> crate::Result<u32> {
            let v: i64 = row.try_get(i)?;
            Ok(u32::try_from(v).unwrap_or(0))
        };
        let bytes: i64 = row.try_get(5)?;
        Ok(crate::ImageRecord {
            client_id: crate::ClientId::from_db(row.try_get(0)?),
            id: crate::ImageId::from_db(row.try_get(1)?),
            format: row.try_get(2)?,
            width: dim(3)?,
            height: dim(4)?,
            bytes: u64::try_from(bytes).unwrap_or(0),
            red: row.try_get(6)?,
            created_at: row.try_get(7)?,
        })
    }

    pub(crate) fn pool_usage(&self) -> crate::PoolUsage {
        let pool = self.0.pool();
        crate::PoolUsage {
            open: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
        }
    }

    pub(crate) async fn ping(&self) -> crate::Result<()> {
        sqlx::query("SELECT 1").execute(self.0.pool()).await?;
        Ok(())
    }

    #[tracing::instrument(name = "store.create_client", skip(self, actor))]
    pub(crate) async fn create_client(
        &self,
        name: &str,
        actor: &crate::Actor,
    ) -> crate::Result<crate::Client> {
        let client = crate::Client {
            id: crate::ClientId::generate(),
            name: name.to_owned(),
            created_at: crate::now_ms(),
            rate_limit: crate::RateLimitOverride::default(),
            quotas: crate::QuotaOverrides::default(),
            disabled: false,
            disabled_at: None,
        };
        let _gate = self.0.write_gate().await;
        let mut tx = self.0.pool().begin().await?;
        sqlx::query("INSERT INTO clients (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(client.id.as_str())
            .bind(&client.name)
            .bind(client.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| crate::StoreError::from_insert(e, "a client with this name"))?;
        let change = crate::Change::new(
            Some(&client.id),
            crate::Action::ClientCreate,
            client.id.as_str(),
        )
        .with_detail(serde_json::json!({ "name": client.name }));
        crate::audit::write(&mut *tx, actor, &change).await?;
        tx.commit().await?;
        Ok(client)
    }

    #[tracing::instrument(name = "store.list_clients", skip_all)]
    pub(crate) async fn list_clients(
        &self,
        scope: &crate::Scope,
    ) -> crate::Result<Vec<crate::Client>> {
        let rows = sqlx::query(
                "SELECT id, name, created_at, rate_limit_rps, rate_limit_burst, quotas, disabled_at FROM clients \
                 WHERE (CAST($1 AS TEXT) IS NULL OR id = $1) ORDER BY created_at, id",
            )
            .bind(scope.client_filter())
            .fetch_all(self.0.pool())
            .await?;
        rows.iter().map(client_row).collect()
    }

    #[tracing::instrument(name = "store.get_client", skip_all, fields(client = %id))]
    pub(crate) async fn get_client(
        &self,
        scope: &crate::Scope,
        id: &crate::ClientId,
    ) -> crate::Result<Option<crate::Client>> {
        let row = sqlx::query(
                "SELECT id, name, created_at, rate_limit_rps, rate_limit_burst, quotas, disabled_at FROM clients \
                 WHERE id = $1 AND (CAST($2 AS TEXT) IS NULL OR id = $2)",
            )
            .bind(id.as_str())
            .bind(scope.client_filter())
            .fetch_optional(self.0.pool())
            .await?;
        row.as_ref().map(client_row).transpose()
    }

    #[tracing::instrument(name = "store.insert_key", skip_all)]
    pub(crate) async fn insert_key(
        &self,
        key: &crate::NewKey,
        actor: &crate::Actor,
    ) -> crate::Result<crate::KeyInfo> {
        let (owner, admin) = match &key.principal {
            crate::Principal::Admin => (None, true),
            crate::Principal::Client(id) => (Some(id), false),
        };
        let client = owner.map(crate::ClientId::as_str);
        let info = crate::KeyInfo {
            id: crate::KeyId::generate(),
            name: key.label.clone(),
            prefix: key.prefix.clone(),
            created_at: crate::now_ms(),
            expires_at: key.expires_at,
            last_used_at: None,
        };
        let _gate = self.0.write_gate().await;
        let mut tx = self.0.pool().begin().await?;
        sqlx::query(
            "INSERT INTO api_keys (key_hash, client_id, is_admin, label, created_at, id, \
                                       prefix, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(key.hash.as_str())
        .bind(client)
        .bind(admin)
        .bind(&info.name)
        .bind(info.created_at)
        .bind(info.id.as_str())
        .bind(&info.prefix)
        .bind(info.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| crate::StoreError::from_insert(e, "this key"))?;
        let change = crate::Change::new(owner, crate::Action::KeyCreate, info.id.as_str())
            .with_detail(serde_json::json!({
                "name": info.name,
                "admin": admin,
                "expires_at": info.expires_at,
            }));
        crate::audit::write(&mut *tx, actor, &change).await?;
        tx.commit().await?;
        Ok(info)
    }

    #[tracing::instrument(name = "store.set_client_rate_limit", skip_all, fields(client = %id))]
    pub(crate) async fn set_client_rate_limit(
        &self,
        id: &crate::ClientId,
        patch: &crate::RateLimitPatch,
        actor: &crate::Actor,
    ) -> crate::Result<Option<crate::Client>> {
        // One statement, so two admins changing the two parts at once both win.
        let db = |v: Option<std::num::NonZeroU32>| v.map(|n| i64::from(n.get()));
        let _gate = self.0.write_gate().await;
        let mut tx = self.0.pool().begin().await?;
        let row = sqlx::query(
                "UPDATE clients SET \
                   rate_limit_rps = CASE WHEN $2 THEN $3 ELSE rate_limit_rps END, \
                   rate_limit_burst = CASE WHEN $4 THEN $5 ELSE rate_limit_burst END \
                 WHERE id = $1 \
                 RETURNING id, name, created_at, rate_limit_rps, rate_limit_burst, quotas, disabled_at",
            )
            .bind(id.as_str())
            .bind(patch.rps.is_some())
            .bind(patch.rps.and_then(db))
            .bind(patch.burst.is_some())
            .bind(patch.burst.and_then(db))
            .fetch_optional(&mut *tx)
            .await?;
        let Some(client) = row.as_ref().map(client_row).transpose()? else {
            tx.rollback().await?;
            return Ok(None);
        };
        let change = crate::Change::new(Some(id), crate::Action::ClientRateLimit, id.as_str())
            .with_detail(serde_json::json!({
                "rps": client.rate_limit.rps.map(std::num::NonZeroU32::get),
                "burst": client.rate_limit.burst.map(std::num::NonZeroU32::get),
            }));
        crate::audit::write(&mut *tx, actor, &change).await?;
        tx.commit().await?;
        Ok(Some(client))
    }

    #[tracing::instrument(name = "store.set_client_quotas", skip_all, fields(client = %id))]
    pub(crate) async fn set_client_quotas(
        &self,
        id: &crate::ClientId,
        patch: &crate::QuotaPatch,
        actor: &crate::Actor,
    ) -> crate::Result<Option<crate::Client>> {
        // Read, change, write back only if nobody changed it meanwhile (else again), so
        // two admins changing different quotas at once both win.
        loop {
            let current: Option<Option<String>> =
                sqlx::query_scalar("SELECT quotas FROM clients WHERE id = $1")
                    .bind(id.as_str())
                    .fetch_optional(self.0.pool())
                    .await?;
            let Some(current) = current else {
                return Ok(None);
            };
            let next = crate::QuotaOverrides::from_db(current.clone()).apply(patch);
            let _gate = self.0.write_gate().await;
            let mut tx = self.0.pool().begin().await?;
            let row = sqlx::query(
                    "UPDATE clients SET quotas = $2 \
                     WHERE id = $1 AND COALESCE(quotas, '') = COALESCE($3, '') \
                     RETURNING id, name, created_at, rate_limit_rps, rate_limit_burst, quotas, disabled_at",
                )
                .bind(id.as_str())
                .bind(next.to_db())
                .bind(current)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                tx.rollback().await?;
                continue;
            };
            let client = client_row(&row)?;
            let change = crate::Change::new(Some(id), crate::Action::ClientQuotas, id.as_str())
                .with_detail(serde_json::json!({ "quotas": next }));
            crate::audit::write(&mut *tx, actor, &change).await?;
            tx.commit().await?;
            return Ok(Some(client));
        }
    }

    #[tracing::instrument(name = "store.key_holder", skip_all)]
    pub(crate) async fn key_holder(
        &self,
        hash: &crate::KeyHash,
    ) -> crate::Result<Option<crate::KeyHolder>> {
        let row = sqlx::query(
            "SELECT k.client_id, k.is_admin, c.rate_limit_rps, c.rate_limit_burst, k.id, \
                        k.expires_at, k.last_used_at, c.disabled_at \
                 FROM api_keys k LEFT JOIN clients c ON c.id = k.client_id \
                 WHERE k.key_hash = $1",
        )
        .bind(hash.as_str())
        .fetch_optional(self.0.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let client: Option<String> = sqlx::Row::try_get(&row, 0)?;
        let admin: bool = sqlx::Row::try_get(&row, 1)?;
        // An admin key has no client row: the join gives NULLs, the default.
        let rate_limit = crate::RateLimitOverride::from_db(
            sqlx::Row::try_get(&row, 2)?,
            sqlx::Row::try_get(&row, 3)?,
        );
        let principal = match (admin, client) {
            (true, _) => crate::Principal::Admin,
            (false, Some(id)) => crate::Principal::Client(crate::ClientId::from_db(id)),
            (false, None) => return Ok(None),
        };
        let disabled_at: Option<i64> = sqlx::Row::try_get(&row, 7)?;
        Ok(Some(crate::KeyHolder {
            principal,
            rate_limit,
            key_id: crate::KeyId::from_db(sqlx::Row::try_get(&row, 4)?),
            expires_at: sqlx::Row::try_get(&row, 5)?,
            last_used_at: sqlx::Row::try_get(&row, 6)?,
            client_disabled: disabled_at.is_some(),
        }))
    }

    #[tracing::instrument(name = "store.bootstrap_admin_key", skip_all)]
    pub(crate) async fn bootstrap_admin_key(&self, hash: &crate::KeyHash) -> crate::Result<bool> {
        let mut tx = self.0.pool().begin().await?;
        let claimed = sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('admin_bootstrapped', $1) \
                 ON CONFLICT (key) DO NOTHING",
        )
        .bind(crate::now_ms().to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if claimed {
            let id = crate::KeyId::generate();
            sqlx::query(
                "INSERT INTO api_keys (key_hash, client_id, is_admin, label, created_at, id) \
                     VALUES ($1, NULL, TRUE, 'first admin key', $2, $3)",
            )
            .bind(hash.as_str())
            .bind(crate::now_ms())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
            let change = crate::Change::new(None, crate::Action::KeyCreate, id.as_str())
                .with_detail(serde_json::json!({ "name": "first admin key", "admin": true }));
            crate::audit::write(&mut *tx, &crate::Actor::system(), &change).await?;
        }
        tx.commit().await?;
        Ok(claimed)
    }

    #[tracing::instrument(name = "store.find_image", skip_all, fields(image = %id))]
    pub(crate) async fn find_image(
        &self,
        scope: &crate::Scope,
        id: &crate::ImageId,
    ) -> crate::Result<Option<crate::ImageRecord>> {
        let row = sqlx::query(
            "SELECT client_id, id, format, width, height, bytes, red, created_at FROM images \
                 WHERE id = $1 AND (CAST($2 AS TEXT) IS NULL OR client_id = $2) \
                 ORDER BY created_at LIMIT 1",
        )
        .bind(id.as_str())
        .bind(scope.client_filter())
        .fetch_optional(self.0.pool())
        .await?;
        row.as_ref().map(Self::image_from_row).transpose()
    }

    #[tracing::instrument(name = "store.insert_images", skip_all, fields(images = images.len()))]
    pub(crate) async fn insert_images(
        &self,
        images: &[crate::ImageRecord],
    ) -> crate::Result<Vec<(crate::ImageRecord, bool)>> {
        // Through the event writer: the images, their events, rollups and notifications
        // commit together.
        let inserted = self
            .0
            .writer()
            .submit(crate::stats::WriteOp::Images(images.to_vec()))
            .await?;
        let mut out = Vec::with_capacity(images.len());
        for (image, new) in images.iter().zip(inserted) {
            if new {
                out.push((image.clone(), true));
            } else {
                let scope = crate::Scope::Client(image.client_id.clone());
                let existing = self.find_image(&scope, &image.id).await?;
                out.push((existing.unwrap_or_else(|| image.clone()), false));
            }
        }
        Ok(out)
    }

    #[tracing::instrument(name = "store.delete_image", skip_all, fields(image = %id))]
    pub(crate) async fn delete_image(
        &self,
        scope: &crate::Scope,
        id: &crate::ImageId,
    ) -> crate::Result<bool> {
        // The record and the client's stored bytes change together.
        let mut tx = self.0.pool().begin().await?;
        let gone: Option<(String, i64)> = sqlx::query_as(
            "DELETE FROM images WHERE id = $1 AND (CAST($2 AS TEXT) IS NULL OR client_id = $2) \
                 RETURNING client_id, bytes",
        )
        .bind(id.as_str())
        .bind(scope.client_filter())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((client, bytes)) = gone else {
            return Ok(false);
        };
        sqlx::query(crate::stats::ADD_IMAGE_BYTES_SQL)
            .bind(client)
            .bind(-bytes)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(name = "store.stored_image_bytes", skip_all, fields(client = %client))]
    pub(crate) async fn stored_image_bytes(&self, client: &crate::ClientId) -> crate::Result<u64> {
        let bytes: Option<i64> =
            sqlx::query_scalar("SELECT image_bytes FROM client_usage WHERE client_id = $1")
                .bind(client.as_str())
                .fetch_optional(self.0.pool())
                .await?;
        Ok(bytes.map_or(0, |b| u64::try_from(b).unwrap_or(0)))
    }

    #[tracing::instrument(name = "store.list_images", skip_all)]
    pub(crate) async fn list_images(
        &self,
        scope: &crate::Scope,
        page: &crate::ImagePage,
    ) -> crate::Result<Vec<crate::ImageRecord>> {
        let (after_ts, after_id) = match &page.after {
            Some((ts, id)) => (Some(*ts), Some(id.as_str())),
            None => (None, None),
        };
        let rows = sqlx::query(
            "SELECT client_id, id, format, width, height, bytes, red, created_at FROM images \
                 WHERE (CAST($1 AS TEXT) IS NULL OR client_id = $1) \
                   AND (CAST($2 AS BIGINT) IS NULL OR created_at >= $2) \
                   AND (CAST($3 AS BIGINT) IS NULL OR created_at < $3) \
                   AND (CAST($4 AS BIGINT) IS NULL OR created_at < $4 \
                        OR (created_at = $4 AND id < $5)) \
                 ORDER BY created_at DESC, id DESC LIMIT $6",
        )
        .bind(scope.client_filter())
        .bind(page.from)
        .bind(page.to)
        .bind(after_ts)
        .bind(after_id)
        .bind(i64::from(page.limit))
        .fetch_all(self.0.pool())
        .await?;
        rows.iter().map(Self::image_from_row).collect()
    }

    #[tracing::instrument(name = "store.insert_event", skip_all)]
    pub(crate) async fn insert_event(&self, event: &crate::NewEvent) -> crate::Result<()> {
        self.0
            .writer()
            .submit(crate::stats::WriteOp::Events(vec![event.clone()], None))
            .await
            .map(|_| ())
    }
}

/// Implements [`Store`](crate::Store) for a backend: every method a one-line call — of
/// [`Shared`], or of the backend's own `NAME`, `bells` field and `run_migrations`.
macro_rules! impl_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl crate::Store for $store {
            fn backend(&self) -> &'static str {
                <$store>::NAME
            }
            fn bells(&self) -> &crate::Bells {
                &self.bells
            }
            async fn migrate(&self) -> crate::Result<()> {
                self.run_migrations().await
            }
            async fn ping(&self) -> crate::Result<()> {
                Shared(self).ping().await
            }
            fn pool_usage(&self) -> crate::PoolUsage {
                Shared(self).pool_usage()
            }
            async fn create_client(
                &self,
                name: &str,
                actor: &crate::Actor,
            ) -> crate::Result<crate::Client> {
                Shared(self).create_client(name, actor).await
            }
            async fn list_clients(
                &self,
                scope: &crate::Scope,
            ) -> crate::Result<Vec<crate::Client>> {
                Shared(self).list_clients(scope).await
            }
            async fn get_client(
                &self,
                scope: &crate::Scope,
                id: &crate::ClientId,
            ) -> crate::Result<Option<crate::Client>> {
                Shared(self).get_client(scope, id).await
            }
            async fn insert_key(
                &self,
                key: &crate::NewKey,
                actor: &crate::Actor,
            ) -> crate::Result<crate::KeyInfo> {
                Shared(self).insert_key(key, actor).await
            }
            async fn set_client_rate_limit(
                &self,
                id: &crate::ClientId,
                patch: &crate::RateLimitPatch,
                actor: &crate::Actor,
            ) -> crate::Result<Option<crate::Client>> {
                Shared(self).set_client_rate_limit(id, patch, actor).await
            }
            async fn set_client_quotas(
                &self,
                id: &crate::ClientId,
                patch: &crate::QuotaPatch,
                actor: &crate::Actor,
            ) -> crate::Result<Option<crate::Client>> {
                Shared(self).set_client_quotas(id, patch, actor).await
            }
            async fn key_holder(
                &self,
                hash: &crate::KeyHash,
            ) -> crate::Result<Option<crate::KeyHolder>> {
                Shared(self).key_holder(hash).await
            }
            async fn bootstrap_admin_key(&self, hash: &crate::KeyHash) -> crate::Result<bool> {
                Shared(self).bootstrap_admin_key(hash).await
            }
            async fn find_image(
                &self,
                scope: &crate::Scope,
                id: &crate::ImageId,
            ) -> crate::Result<Option<crate::ImageRecord>> {
                Shared(self).find_image(scope, id).await
            }
            async fn insert_images(
                &self,
                images: &[crate::ImageRecord],
            ) -> crate::Result<Vec<(crate::ImageRecord, bool)>> {
                Shared(self).insert_images(images).await
            }
            async fn delete_image(
                &self,
                scope: &crate::Scope,
                id: &crate::ImageId,
            ) -> crate::Result<bool> {
                Shared(self).delete_image(scope, id).await
            }
            async fn stored_image_bytes(&self, client: &crate::ClientId) -> crate::Result<u64> {
                Shared(self).stored_image_bytes(client).await
            }
            async fn list_images(
                &self,
                scope: &crate::Scope,
                page: &crate::ImagePage,
            ) -> crate::Result<Vec<crate::ImageRecord>> {
                Shared(self).list_images(scope, page).await
            }
            async fn insert_event(&self, event: &crate::NewEvent) -> crate::Result<()> {
                Shared(self).insert_event(event).await
            }
        }
    };
}

/// A client from a row of `id, name, created_at, rate_limit_rps, rate_limit_burst, quotas,
/// disabled_at`, on either database.
pub(crate) fn client_row<R: sqlx::Row>(row: &R) -> crate::Result<crate::Client>
where
    usize: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let disabled_at: Option<i64> = row.try_get(6)?;
    Ok(crate::Client {
        id: crate::ClientId::from_db(row.try_get(0)?),
        name: row.try_get(1)?,
        created_at: row.try_get(2)?,
        rate_limit: crate::RateLimitOverride::from_db(row.try_get(3)?, row.try_get(4)?),
        quotas: crate::QuotaOverrides::from_db(row.try_get(5)?),
        disabled: disabled_at.is_some(),
        disabled_at,
    })
}

pub(crate) use impl_store;
