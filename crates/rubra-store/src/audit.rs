//! The audit log: who changed what, when and from where.
//!
//! Every store method that makes an admin action, creates or revokes a key, disables a
//! client, or creates or deletes a subscription or watch takes the [`Actor`] that asks for it
//! and writes one `audit_log` row **in the same transaction** as the change, with [`write`]: a
//! change is never without its row, and a row never without its change. Overlays have no row
//! of their own (they live in the blob store), so their routes record them with
//! [`AuditStore::record_audit`] right after the blob is written or deleted.
//!
//! The SQL is the same on both databases, so the functions here are generic over the sqlx
//! database; each backend's `AuditStore` is a two-line delegation.

use crate::{ClientId, KeyId, PgStore, Principal, Result, SqliteStore, StoreError};
use async_trait::async_trait;
use serde_json::Value;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};
use std::net::IpAddr;

/// What kind of caller made a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActorKind {
    /// An admin API key.
    Admin,
    /// A client API key.
    Client,
    /// An operator at the console (`rubra admin …`).
    Cli,
    /// Rubra itself (first start, migrations, tests).
    System,
}

impl ActorKind {
    /// The name stored and shown: `admin`, `client`, `cli` or `system`.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Admin => "admin",
            ActorKind::Client => "client",
            ActorKind::Cli => "cli",
            ActorKind::System => "system",
        }
    }

    fn from_db(s: &str) -> Result<Self> {
        Ok(match s {
            "admin" => ActorKind::Admin,
            "client" => ActorKind::Client,
            "cli" => ActorKind::Cli,
            "system" => ActorKind::System,
            other => {
                return Err(corrupt(format!("audit_log.actor_kind holds {other:?}")));
            }
        })
    }
}

/// Who asks for a change: recorded with it in the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// Admin key, client key, console or Rubra itself.
    pub kind: ActorKind,
    /// The API key that authorised the change; `None` for the console and Rubra itself.
    pub key_id: Option<KeyId>,
    /// The address the request came from, when it came over the network.
    pub peer: Option<IpAddr>,
}

impl Actor {
    /// The holder of API key `key_id`, calling from `peer`.
    pub fn key(principal: &Principal, key_id: KeyId, peer: Option<IpAddr>) -> Self {
        Actor {
            kind: if principal.is_admin() {
                ActorKind::Admin
            } else {
                ActorKind::Client
            },
            key_id: Some(key_id),
            peer,
        }
    }

    /// An operator running `rubra admin …` on the machine.
    pub fn cli() -> Self {
        Actor {
            kind: ActorKind::Cli,
            key_id: None,
            peer: None,
        }
    }

    /// Rubra itself (first start; fixtures of tests).
    pub fn system() -> Self {
        Actor {
            kind: ActorKind::System,
            key_id: None,
            peer: None,
        }
    }
}

/// What was done. The stored names are `<thing>.<verb>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A client was created.
    ClientCreate,
    /// A client's own rate limit was changed.
    ClientRateLimit,
    /// A client's own quotas were changed.
    ClientQuotas,
    /// A client was disabled.
    ClientDisable,
    /// A client was enabled again.
    ClientEnable,
    /// An API key was made.
    KeyCreate,
    /// An API key was revoked.
    KeyRevoke,
    /// A subscription was created.
    SubscriptionCreate,
    /// A subscription was deleted.
    SubscriptionDelete,
    /// A webhook subscription's signing secret was rotated.
    SubscriptionRotateSecret,
    /// A paused subscription was resumed.
    SubscriptionResume,
    /// A watch was created.
    WatchCreate,
    /// A watch was deleted.
    WatchDelete,
    /// An overlay was stored (new or replaced).
    OverlayPut,
    /// An overlay was deleted.
    OverlayDelete,
    /// Every stored secret was sealed anew under the first secret key.
    SecretsRotate,
}

impl Action {
    /// The name stored and shown, e.g. `key.revoke`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ClientCreate => "client.create",
            Action::ClientRateLimit => "client.rate_limit",
            Action::ClientQuotas => "client.quotas",
            Action::ClientDisable => "client.disable",
            Action::ClientEnable => "client.enable",
            Action::KeyCreate => "key.create",
            Action::KeyRevoke => "key.revoke",
            Action::SubscriptionCreate => "subscription.create",
            Action::SubscriptionDelete => "subscription.delete",
            Action::SubscriptionRotateSecret => "subscription.rotate_secret",
            Action::SubscriptionResume => "subscription.resume",
            Action::WatchCreate => "watch.create",
            Action::WatchDelete => "watch.delete",
            Action::OverlayPut => "overlay.put",
            Action::OverlayDelete => "overlay.delete",
            Action::SecretsRotate => "secrets.rotate",
        }
    }
}

/// One change to record: on whose data, what, on which object, with what (never a secret).
#[derive(Clone, Debug)]
pub struct Change<'a> {
    /// The client whose data changed; `None` for installation-wide actions.
    pub client: Option<&'a ClientId>,
    /// What was done.
    pub action: Action,
    /// The id of the object it was done to (a client, key, subscription, watch or overlay).
    pub target: &'a str,
    /// What else is worth knowing (a new limit, a key's name); never a secret.
    pub detail: Option<Value>,
}

impl<'a> Change<'a> {
    /// `action` on `target`, of `client`'s data, without detail.
    pub fn new(client: Option<&'a ClientId>, action: Action, target: &'a str) -> Self {
        Change {
            client,
            action,
            target,
            detail: None,
        }
    }

    /// The same change with `detail`.
    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// A row of the audit log as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRecord {
    /// Its place in the log: later rows have larger numbers.
    pub seq: i64,
    /// When, epoch ms.
    pub at: i64,
    /// The client whose data changed; `None` for installation-wide actions.
    pub client_id: Option<ClientId>,
    /// Who.
    pub actor: Actor,
    /// What, e.g. `key.revoke` (see [`Action::as_str`]).
    pub action: String,
    /// On which object.
    pub target: String,
    /// What else was recorded.
    pub detail: Option<Value>,
}

/// Which rows of the audit log to read: newest first.
#[derive(Clone, Debug)]
pub struct AuditPage {
    /// Only the rows of this client; `None`: every row.
    pub client: Option<ClientId>,
    /// Only rows older than this `seq` (the previous page's last).
    pub before: Option<i64>,
    /// At most this many rows.
    pub limit: u32,
}

/// Reading the audit log, and recording changes the database holds no row of.
#[async_trait]
pub trait AuditStore {
    /// Records `change` by `actor` on its own. Only for changes outside the database
    /// (overlays); every other change is recorded by the store method that makes it.
    async fn record_audit(&self, actor: &Actor, change: &Change<'_>) -> Result<()>;

    /// A page of the audit log, newest first.
    async fn list_audit(&self, page: &AuditPage) -> Result<Vec<AuditRecord>>;
}

/// A row that does not decode.
fn corrupt(what: String) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(what.into()))
}

/// Writes the row of `change` by `actor` on `conn` — the transaction of the change itself.
pub(crate) async fn write<'c, DB, E>(conn: E, actor: &Actor, change: &Change<'_>) -> Result<()>
where
    DB: Database,
    E: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    i64: for<'t> Encode<'t, DB> + Type<DB>,
    Option<String>: for<'t> Encode<'t, DB> + Type<DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    String: for<'t> Encode<'t, DB> + Type<DB>,
{
    sqlx::query(
        "INSERT INTO audit_log \
         (at, client_id, actor_kind, actor_key_id, peer, action, target, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(crate::now_ms())
    .bind(change.client.map(|c| c.as_str().to_owned()))
    .bind(actor.kind.as_str())
    .bind(actor.key_id.as_ref().map(|k| k.as_str().to_owned()))
    .bind(actor.peer.map(|p| p.to_string()))
    .bind(change.action.as_str())
    .bind(change.target.to_owned())
    .bind(change.detail.as_ref().map(Value::to_string))
    .execute(conn)
    .await?;
    Ok(())
}

/// Reads a page of the log from `pool`.
async fn list<DB>(pool: &Pool<DB>, page: &AuditPage) -> Result<Vec<AuditRecord>>
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    usize: ColumnIndex<DB::Row>,
    i64: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<i64>: for<'t> Encode<'t, DB> + Type<DB>,
    Option<String>: for<'t> Encode<'t, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    String: for<'r> Decode<'r, DB> + Type<DB>,
{
    let rows = sqlx::query(
        "SELECT seq, at, client_id, actor_kind, actor_key_id, peer, action, target, detail \
         FROM audit_log \
         WHERE (CAST($1 AS TEXT) IS NULL OR client_id = $1) \
           AND (CAST($2 AS BIGINT) IS NULL OR seq < $2) \
         ORDER BY seq DESC LIMIT $3",
    )
    .bind(page.client.as_ref().map(|c| c.as_str().to_owned()))
    .bind(page.before)
    .bind(i64::from(page.limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let kind: String = row.try_get(3)?;
            let peer: Option<String> = row.try_get(5)?;
            let detail: Option<String> = row.try_get(8)?;
            Ok(AuditRecord {
                seq: row.try_get(0)?,
                at: row.try_get(1)?,
                client_id: row.try_get::<Option<String>, _>(2)?.map(ClientId::from_db),
                actor: Actor {
                    kind: ActorKind::from_db(&kind)?,
                    key_id: row.try_get::<Option<String>, _>(4)?.map(KeyId::from_db),
                    peer: peer.and_then(|p| p.parse().ok()),
                },
                action: row.try_get(6)?,
                target: row.try_get(7)?,
                detail: detail
                    .map(|d| serde_json::from_str(&d))
                    .transpose()
                    .map_err(|e| corrupt(format!("audit_log.detail: {e}")))?,
            })
        })
        .collect()
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn record_audit(&self, actor: &Actor, change: &Change<'_>) -> Result<()> {
        let _gate = self.write_gate().await;
        write(self.pool(), actor, change).await
    }

    async fn list_audit(&self, page: &AuditPage) -> Result<Vec<AuditRecord>> {
        list(self.pool(), page).await
    }
}

#[async_trait]
impl AuditStore for PgStore {
    async fn record_audit(&self, actor: &Actor, change: &Change<'_>) -> Result<()> {
        write(self.pool(), actor, change).await
    }

    async fn list_audit(&self, page: &AuditPage) -> Result<Vec<AuditRecord>> {
        list(self.pool(), page).await
    }
}
