//! `/clients/{id}/keys`: a client's API keys — made (the key shown once), listed (never the
//! key), revoked. A client manages its own keys, an admin any client's.
//!
//! Rotation is: make a new key, move to it, revoke the old one. A client may revoke any of
//! its keys, the one it is using included, but not its last one (409 `last_key`): that would
//! lock it out until an admin made it a new key. An admin may revoke a client's last key (a
//! leaked key must be stoppable at once). A revoked key is refused by this process at once
//! and by every other within a second (see `KeyCache`).

use super::{Page, PageQuery, created_key, page_of};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ActingAs, Admin, ApiQuery, Caller};
use crate::state::AppState;
use crate::timefmt::{format_ms, parse_timestamp};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use rubra_store::{
    Actor, ApiKey, ClientId, KeyId, KeyInfo, NewKey, Principal, Revoked, Scope, Store, now_ms,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Longest key name, in characters.
const MAX_NAME_CHARS: usize = 100;

/// Body of `POST /clients/{id}/keys`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// A name for people (default: "key"): 1 to 100 characters, not only white space, no
    /// control characters.
    #[serde(default)]
    #[schema(
        max_length = 100,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    name: Option<String>,
    /// When the key stops working: RFC 3339 or epoch milliseconds; in the future.
    #[serde(default)]
    #[schema(schema_with = crate::openapi::instant_in_or_null)]
    expires_at: Option<Value>,
}

/// A key as listed: never the key itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    /// Its id, to revoke it by.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The first characters of the key, to tell keys apart (null for keys made before keys
    /// had prefixes).
    pub prefix: Option<String>,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// When it stops working (RFC 3339); null: never.
    pub expires_at: Option<String>,
    /// When it was last used (RFC 3339), to the minute; null: never.
    pub last_used_at: Option<String>,
}

impl From<KeyInfo> for KeyView {
    fn from(k: KeyInfo) -> Self {
        KeyView {
            id: k.id.as_str().to_owned(),
            name: k.name,
            prefix: k.prefix,
            created_at: format_ms(k.created_at),
            expires_at: k.expires_at.map(format_ms),
            last_used_at: k.last_used_at.map(format_ms),
        }
    }
}

/// A new key: shown this once, only its hash is kept.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// What will be listed about it.
    #[serde(flatten)]
    pub key: KeyView,
    /// The key itself.
    pub api_key: String,
}

/// Makes a key for `client` (which must exist and hold fewer than `max_keys` keys), audited as
/// made by `actor`. Shared by the API and `rubra admin create-key`.
pub async fn create_key(
    store: &dyn Store,
    max_keys: u32,
    client: &ClientId,
    name: Option<&str>,
    expires_at: Option<i64>,
    actor: &Actor,
) -> Result<CreatedKey, ApiError> {
    if store.get_client(&Scope::All, client).await?.is_none() {
        return Err(ApiError::not_found("client"));
    }
    let held = store.list_keys(client).await?.len();
    let owner = Principal::Client(client.clone());
    make_key(store, max_keys, held, owner, name, expires_at, actor).await
}

/// Makes another admin key (at most `max_keys` of them), audited as made by `actor`. Shared
/// by `POST /admin/keys` and `rubra admin create-admin-key`.
pub async fn create_admin_key(
    store: &dyn Store,
    max_keys: u32,
    name: Option<&str>,
    expires_at: Option<i64>,
    actor: &Actor,
) -> Result<CreatedKey, ApiError> {
    let held = store.list_admin_keys().await?.len();
    let name = name.or(Some("admin key"));
    make_key(
        store,
        max_keys,
        held,
        Principal::Admin,
        name,
        expires_at,
        actor,
    )
    .await
}

/// Checks the name, the expiry and the count (`held` of at most `max_keys`), then stores a
/// new key for `owner`.
async fn make_key(
    store: &dyn Store,
    max_keys: u32,
    held: usize,
    owner: Principal,
    name: Option<&str>,
    expires_at: Option<i64>,
    actor: &Actor,
) -> Result<CreatedKey, ApiError> {
    let name = name.unwrap_or("key").trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::new(
            ErrorCode::InvalidName,
            format!("a key name is 1–{MAX_NAME_CHARS} characters without control characters"),
        ));
    }
    if let Some(at) = expires_at
        && at <= now_ms()
    {
        return Err(ApiError::new(
            ErrorCode::InvalidExpiresAt,
            "expires_at must be in the future",
        ));
    }
    // Counted before the insert: requests racing here may pass the cap by their number.
    if u32::try_from(held).unwrap_or(u32::MAX) >= max_keys {
        rubra_telemetry::metrics::counter!(
            "rubra_rejected_requests_total", "reason" => "quota_exceeded"
        )
        .increment(1);
        return Err(ApiError::new(
            ErrorCode::QuotaExceeded,
            format!(
                "a client (and the admins together) hold at most {max_keys} keys \
                 (max-keys-per-client); revoke one first"
            ),
        ));
    }
    let key = ApiKey::generate();
    let mut new = NewKey::new(&key, owner, name);
    new.expires_at = expires_at;
    let info = store.insert_key(&new, actor).await?;
    Ok(CreatedKey {
        key: info.into(),
        api_key: key.reveal().to_owned(),
    })
}

/// Revokes key `key` of `client`; `keep_last` refuses to revoke the client's last key (409
/// `last_key`); audited as done by `actor`. Shared by the API and `rubra admin revoke-key`.
pub async fn revoke_key(
    store: &dyn Store,
    client: &ClientId,
    key: &KeyId,
    keep_last: bool,
    actor: &Actor,
) -> Result<(), ApiError> {
    match store.revoke_key(client, key, keep_last, actor).await? {
        Revoked::Revoked => Ok(()),
        Revoked::NotFound => Err(ApiError::not_found("key")),
        Revoked::LastKey => Err(ApiError::new(
            ErrorCode::LastKey,
            "this is the client's last key: make another first (an admin may revoke it)",
        )),
    }
}

/// The client of the path, if the caller may manage its keys: its own client, or any for an
/// admin. Anything else is 404, as for a client that does not exist.
fn client_in_path(who: &Principal, id: &str) -> Result<ClientId, ApiError> {
    let id = ClientId::parse(id).ok_or_else(|| ApiError::not_found("client"))?;
    match who {
        Principal::Admin => Ok(id),
        Principal::Client(own) if *own == id => Ok(id),
        Principal::Client(_) => Err(ApiError::not_found("client")),
    }
}

/// Reads `expires_at` as given: RFC 3339 text or a whole number of epoch milliseconds.
fn expires_at(v: Option<Value>) -> Result<Option<i64>, ApiError> {
    let text = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::InvalidExpiresAt,
                "expires_at is RFC 3339 text or epoch milliseconds",
            ));
        }
    };
    parse_timestamp(&text)
        .map(|t| Some(t.as_ms()))
        .map_err(|e| ApiError::new(ErrorCode::InvalidExpiresAt, format!("expires_at: {e}")))
}

/// `POST /clients/{id}/keys`: `201` with the new key, shown once.
#[utoipa::path(
    post,
    path = "/clients/{id}/keys",
    tag = "keys",
    params(("id" = String, Path, description = "The client's id")),
    request_body(content = Option<CreateKey>, description = "Optional: an empty body makes a key named `key` that never expires", content_type = "application/json"),
    responses((status = 201, description = "The new key, shown this once", body = CreatedKey)),
)]
#[tracing::instrument(name = "http.keys.create", skip_all, fields(client = %id))]
pub async fn create(
    State(state): State<AppState>,
    Caller(who): Caller,
    ActingAs(actor): ActingAs,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let client = client_in_path(&who, &id)?;
    let body = optional_body(&body)?;
    let expires = expires_at(body.expires_at)?;
    let created = create_key(
        state.store.as_ref(),
        state.settings.max_keys_per_client,
        &client,
        body.name.as_deref(),
        expires,
        &actor,
    )
    .await?;
    // Should this key have been presented before it existed, it works now, not in a while.
    state
        .keys
        .forget_unknown(&ApiKey::from_token(&created.api_key).hash());
    tracing::info!(client = %client, key = %created.key.id, "key created");
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /clients/{id}/keys`: the client's keys, oldest first.
#[utoipa::path(
    get,
    path = "/clients/{id}/keys",
    tag = "keys",
    params(("id" = String, Path, description = "The client's id"), PageQuery),
    responses((status = 200, description = "The client's keys, oldest first", body = Page<KeyView>)),
)]
#[tracing::instrument(name = "http.keys.list", skip_all, fields(client = %id))]
pub async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<KeyView>>> {
    let client = client_in_path(&who, &id)?;
    if state
        .store
        .get_client(&Scope::All, &client)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("client"));
    }
    let keys = state.store.list_keys(&client).await?;
    let views = keys.into_iter().map(KeyView::from).collect();
    Ok(Json(page_of(
        views,
        key_order,
        q.limit,
        q.cursor.as_deref(),
    )?))
}

/// `DELETE /clients/{id}/keys/{key_id}`: `204`; refused from this process's cache at once.
#[utoipa::path(
    delete,
    path = "/clients/{id}/keys/{key_id}",
    tag = "keys",
    params(
        ("id" = String, Path, description = "The client's id"),
        ("key_id" = String, Path, description = "The key's id"),
    ),
    responses((status = 204, description = "Revoked")),
)]
#[tracing::instrument(name = "http.keys.revoke", skip_all, fields(client = %id, key = %key_id))]
pub async fn revoke(
    State(state): State<AppState>,
    Caller(who): Caller,
    ActingAs(actor): ActingAs,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let client = client_in_path(&who, &id)?;
    let key = KeyId::parse(&key_id).ok_or_else(|| ApiError::not_found("key"))?;
    revoke_key(state.store.as_ref(), &client, &key, !who.is_admin(), &actor).await?;
    state.keys.forget_client(&client);
    tracing::info!(client = %client, key = %key, "key revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes admin key `key` unless it is the last one (409 `last_key`); audited as done by
/// `actor`. Shared by `DELETE /admin/keys/{key_id}` and `rubra admin revoke-admin-key`.
pub async fn revoke_admin_key(
    store: &dyn Store,
    key: &KeyId,
    actor: &Actor,
) -> Result<(), ApiError> {
    match store.revoke_admin_key(key, actor).await? {
        Revoked::Revoked => Ok(()),
        Revoked::NotFound => Err(ApiError::not_found("key")),
        Revoked::LastKey => Err(ApiError::new(
            ErrorCode::LastKey,
            "this is the last admin key: make another first",
        )),
    }
}

/// `GET /admin/keys` (admin): the admin keys, oldest first, never the keys.
#[utoipa::path(
    get,
    path = "/admin/keys",
    tag = "keys",
    params(PageQuery),
    responses((status = 200, description = "The admin keys, oldest first", body = Page<KeyView>)),
)]
#[tracing::instrument(name = "http.admin_keys.list", skip_all)]
pub async fn list_admin(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<KeyView>>> {
    let keys = state.store.list_admin_keys().await?;
    let views = keys.into_iter().map(KeyView::from).collect();
    Ok(Json(page_of(
        views,
        key_order,
        q.limit,
        q.cursor.as_deref(),
    )?))
}

/// `POST /admin/keys` (admin): `201` with a new admin key, shown once.
#[utoipa::path(
    post,
    path = "/admin/keys",
    tag = "keys",
    request_body(content = Option<CreateKey>, description = "Optional: an empty body makes a key named `admin key` that never expires", content_type = "application/json"),
    responses((status = 201, description = "The new admin key, shown this once", body = CreatedKey)),
)]
#[tracing::instrument(name = "http.admin_keys.create", skip_all)]
pub async fn create_admin(
    State(state): State<AppState>,
    _admin: Admin,
    ActingAs(actor): ActingAs,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let body = optional_body(&body)?;
    let created = create_admin_key(
        state.store.as_ref(),
        state.settings.max_keys_per_client,
        body.name.as_deref(),
        expires_at(body.expires_at)?,
        &actor,
    )
    .await?;
    state
        .keys
        .forget_unknown(&ApiKey::from_token(&created.api_key).hash());
    tracing::info!(key = %created.key.id, "admin key created");
    Ok((StatusCode::CREATED, Json(created)))
}

/// `DELETE /admin/keys/{key_id}` (admin): `204`; refused by this process at once and by
/// every other within a second; the last admin key: `409 last_key`.
#[utoipa::path(
    delete,
    path = "/admin/keys/{key_id}",
    tag = "keys",
    params(("key_id" = String, Path, description = "The key's id")),
    responses((status = 204, description = "Revoked")),
)]
#[tracing::instrument(name = "http.admin_keys.revoke", skip_all, fields(key = %key_id))]
pub async fn revoke_admin(
    State(state): State<AppState>,
    _admin: Admin,
    ActingAs(actor): ActingAs,
    Path(key_id): Path<String>,
) -> ApiResult<StatusCode> {
    let key = KeyId::parse(&key_id).ok_or_else(|| ApiError::not_found("key"))?;
    revoke_admin_key(state.store.as_ref(), &key, &actor).await?;
    state.keys.forget_key(&key);
    tracing::info!(key = %key, "admin key revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Keys are listed oldest first.
fn key_order(k: &KeyView) -> String {
    created_key(&k.created_at, &k.id)
}

/// The optional body of a key creation: none (or JSON `null`, as the document allows) makes a
/// key that never expires, named by default.
fn optional_body(body: &[u8]) -> Result<CreateKey, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(CreateKey::default());
    }
    // serde would take a struct's fields from an array too (`[null, null]`); the document
    // says an object or null.
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        return Err(ApiError::new(
            ErrorCode::InvalidFields,
            "the body must be a JSON object or null",
        ));
    }
    serde_json::from_slice::<Option<CreateKey>>(body)
        .map(Option::unwrap_or_default)
        .map_err(|e| {
            if e.is_data() {
                ApiError::new(ErrorCode::InvalidFields, e.to_string())
            } else {
                ApiError::new(ErrorCode::MalformedJson, e.to_string())
            }
        })
}
