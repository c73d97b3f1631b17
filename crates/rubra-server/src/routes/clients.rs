//! `/clients`: admins create clients and receive their first API key, set a client's own
//! rate limit and quotas, and disable or enable it.

use super::{Page, PageQuery, created_key, page_of};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ActingAs, Admin, ApiJson, ApiQuery, Caller};
use crate::state::AppState;
use crate::timefmt::format_ms;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use rubra_store::{
    Actor, ApiKey, Client, ClientId, NewKey, Principal, QuotaPatch, RateLimitPatch, Scope, Store,
};
use serde::{Deserialize, Deserializer, Serialize};
use std::num::NonZeroU32;
use utoipa::ToSchema;

/// Body of `POST /clients`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    /// Unique: 1–64 letters, digits, `-`, `_` and `.`.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    name: String,
}

/// A client's own quotas, where an admin set them; a missing one follows the server's default.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotasView {
    /// Live subscriptions.
    #[serde(skip_serializing_if = "Option::is_none")]
    subscriptions: Option<u64>,
    /// Queued and running jobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    jobs: Option<u64>,
    /// Watches.
    #[serde(skip_serializing_if = "Option::is_none")]
    watches: Option<u64>,
    /// Stored overlays.
    #[serde(skip_serializing_if = "Option::is_none")]
    overlays: Option<u64>,
    /// Bytes of all stored overlays together.
    #[serde(skip_serializing_if = "Option::is_none")]
    overlay_bytes: Option<u64>,
    /// Bytes of all stored images together.
    #[serde(skip_serializing_if = "Option::is_none")]
    image_bytes: Option<u64>,
}

/// A client as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    /// Its id.
    pub id: String,
    /// Its unique name.
    pub name: String,
    /// When it was created (RFC 3339, UTC, ms).
    pub created_at: String,
    /// Its own requests per second; null: the server's default.
    pub rate_limit_rps: Option<u32>,
    /// Its own burst; null: the server's default.
    pub rate_limit_burst: Option<u32>,
    /// Its own quotas.
    pub quotas: QuotasView,
    /// True while an admin has it disabled (its keys get 401 `client_disabled`).
    pub disabled: bool,
    /// Since when it is disabled (RFC 3339, UTC, ms); null while enabled.
    pub disabled_at: Option<String>,
}

impl From<Client> for ClientView {
    fn from(c: Client) -> Self {
        let q = c.quotas;
        ClientView {
            id: c.id.to_string(),
            name: c.name,
            created_at: format_ms(c.created_at),
            rate_limit_rps: c.rate_limit.rps.map(NonZeroU32::get),
            rate_limit_burst: c.rate_limit.burst.map(NonZeroU32::get),
            quotas: QuotasView {
                subscriptions: q.subscriptions,
                jobs: q.jobs,
                watches: q.watches,
                overlays: q.overlays,
                overlay_bytes: q.overlay_bytes,
                image_bytes: q.image_bytes,
            },
            disabled: c.disabled,
            disabled_at: c.disabled_at.map(format_ms),
        }
    }
}

/// A new client with its key, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedClient {
    /// The client.
    #[serde(flatten)]
    pub client: ClientView,
    /// Its first API key; only its hash is stored, so this is the one time it is shown.
    pub api_key: String,
}

/// Checks a client name: 1–64 characters of letters, digits, `-`, `_` and `.`.
pub fn validate_client_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err("a client name is 1–64 characters of letters, digits, '-', '_' and '.'".to_owned())
    }
}

/// Creates a client and its first key, both audited as done by `actor`. Shared by the API and
/// `rubra admin create-client`.
pub async fn create_client_with_key(
    store: &dyn Store,
    name: &str,
    actor: &Actor,
) -> Result<CreatedClient, ApiError> {
    validate_client_name(name).map_err(|m| ApiError::new(ErrorCode::InvalidName, m))?;
    let client = store.create_client(name, actor).await?;
    let key = ApiKey::generate();
    store
        .insert_key(
            &NewKey::new(&key, Principal::Client(client.id.clone()), "first key"),
            actor,
        )
        .await?;
    Ok(CreatedClient {
        client: client.into(),
        api_key: key.reveal().to_owned(),
    })
}

/// `POST /clients` (admin).
#[utoipa::path(
    post,
    path = "/clients",
    tag = "clients",
    request_body = CreateClient,
    responses((status = 201, description = "The client and its first key, shown this once", body = CreatedClient)),
)]
#[tracing::instrument(name = "http.clients.create", skip_all)]
pub async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    ActingAs(actor): ActingAs,
    ApiJson(body): ApiJson<CreateClient>,
) -> ApiResult<(StatusCode, Json<CreatedClient>)> {
    let created = create_client_with_key(state.store.as_ref(), &body.name, &actor).await?;
    // Should this key have been presented before it existed, it works now, not in a while.
    state
        .keys
        .forget_unknown(&ApiKey::from_token(&created.api_key).hash());
    tracing::info!(client = %created.client.id, name = %created.client.name, "client created");
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /clients`: all clients for an admin, the caller's own for a client.
#[utoipa::path(
    get,
    path = "/clients",
    tag = "clients",
    params(PageQuery),
    responses((status = 200, description = "All clients for an admin, its own for a client, oldest first", body = Page<ClientView>)),
)]
#[tracing::instrument(name = "http.clients.list", skip_all)]
pub async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<ClientView>>> {
    let clients = state.store.list_clients(&who.scope()).await?;
    let views = clients.into_iter().map(ClientView::from).collect();
    Ok(Json(page_of(
        views,
        |c: &ClientView| created_key(&c.created_at, &c.id),
        q.limit,
        q.cursor.as_deref(),
    )?))
}

/// `GET /clients/{id}`.
#[utoipa::path(
    get,
    path = "/clients/{id}",
    tag = "clients",
    params(("id" = String, Path, description = "The client's id")),
    responses((status = 200, description = "The client", body = ClientView)),
)]
#[tracing::instrument(name = "http.clients.get", skip_all, fields(client = %id))]
pub async fn get(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientView>> {
    let id = ClientId::parse(&id).ok_or_else(|| ApiError::not_found("client"))?;
    state
        .store
        .get_client(&who.scope(), &id)
        .await?
        .map(|c| Json(c.into()))
        .ok_or_else(|| ApiError::not_found("client"))
}

/// Body of `PATCH /clients/{id}`: a field left out stays as it is; `null` returns it to the
/// server's default. Values are whole numbers from 1 to 4 294 967 295.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchClient {
    /// Requests per second; null: the server's default.
    #[serde(default, deserialize_with = "present_nonzero")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 4_294_967_295_u32, format = Int64)]
    rate_limit_rps: Option<Option<NonZeroU32>>,
    /// Burst; null: the server's default.
    #[serde(default, deserialize_with = "present_nonzero")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 4_294_967_295_u32, format = Int64)]
    rate_limit_burst: Option<Option<NonZeroU32>>,
    /// Quotas to set (a number), clear (null) or keep (left out); `null` for the whole object
    /// keeps them all.
    #[serde(default, deserialize_with = "quotas_object")]
    quotas: Option<PatchQuotas>,
    /// `true` disables the client (its keys get 401 `client_disabled`; its jobs, watches and
    /// deliveries wait), `false` enables it again; null leaves it as it is.
    #[serde(default)]
    disabled: Option<bool>,
}

/// The `quotas` of `PATCH /clients/{id}`: per quota, a whole number sets it, `null` returns it
/// to the server's default, leaving it out keeps it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchQuotas {
    #[serde(default, deserialize_with = "present_quota")]
    subscriptions: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present_quota")]
    jobs: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present_quota")]
    watches: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present_quota")]
    overlays: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present_quota")]
    overlay_bytes: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present_quota")]
    image_bytes: Option<Option<u64>>,
}

// The `present_…` readers tell a field given as `null` (`Some(None)`) from one left out
// (`None`, via `default`), for whole numbers (`5.0` is 5, as JSON Schema counts it).

/// The `quotas` object: serde would take its fields from an array too (`[null, null]`).
fn quotas_object<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PatchQuotas>, D::Error> {
    let fields: Option<serde_json::Map<String, serde_json::Value>> = Option::deserialize(d)?;
    fields
        .map(|f| PatchQuotas::deserialize(serde_json::Value::Object(f)))
        .transpose()
        .map_err(serde::de::Error::custom)
}

/// A quota given (`Some`): 0 to `i64::MAX` (the document's int64; the stores keep quotas as
/// signed 64-bit integers) or null; `5.0` is 5.
fn present_quota<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    let n: Option<i64> = crate::integral::optional_integer(d)?;
    n.map(|n| {
        u64::try_from(n).map_err(|_| {
            serde::de::Error::invalid_value(serde::de::Unexpected::Signed(n), &"0 or more")
        })
    })
    .transpose()
    .map(Some)
}

/// A rate limit given (`Some`): a whole number from 1, or null.
fn present_nonzero<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<NonZeroU32>>, D::Error> {
    let n: Option<u32> = crate::integral::optional_integer(d)?;
    n.map(|n| {
        NonZeroU32::new(n).ok_or_else(|| {
            serde::de::Error::invalid_value(serde::de::Unexpected::Unsigned(0), &"1 or more")
        })
    })
    .transpose()
    .map(Some)
}

/// Disables or enables a client, audited as done by `actor`. Shared by the API and
/// `rubra admin disable-client`.
pub async fn set_client_disabled(
    store: &dyn Store,
    id: &ClientId,
    disabled: bool,
    actor: &Actor,
) -> Result<Client, ApiError> {
    let client = store
        .set_client_disabled(id, disabled, actor)
        .await?
        .ok_or_else(|| ApiError::not_found("client"))?;
    tracing::info!(client = %client.id, disabled, "client disabled state set");
    Ok(client)
}

/// `PATCH /clients/{id}` (admin): sets or clears the client's own rate limit and quotas, and
/// disables or enables it. This process applies it to the next request; others within the key
/// cache's lifetime (1 s).
#[utoipa::path(
    patch,
    path = "/clients/{id}",
    tag = "clients",
    params(("id" = String, Path, description = "The client's id")),
    request_body = PatchClient,
    responses((status = 200, description = "The client as it now is", body = ClientView)),
)]
#[tracing::instrument(name = "http.clients.patch", skip_all, fields(client = %id))]
pub async fn patch(
    State(state): State<AppState>,
    _admin: Admin,
    ActingAs(actor): ActingAs,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchClient>,
) -> ApiResult<Json<ClientView>> {
    let id = ClientId::parse(&id).ok_or_else(|| ApiError::not_found("client"))?;
    let patch = RateLimitPatch {
        rps: body.rate_limit_rps,
        burst: body.rate_limit_burst,
    };
    // Only what the body changes is written (and audited).
    let client = if patch.rps.is_some() || patch.burst.is_some() {
        state
            .store
            .set_client_rate_limit(&id, &patch, &actor)
            .await?
    } else {
        state.store.get_client(&Scope::All, &id).await?
    };
    let mut client = client.ok_or_else(|| ApiError::not_found("client"))?;
    if let Some(q) = body.quotas {
        let patch = QuotaPatch {
            subscriptions: q.subscriptions,
            jobs: q.jobs,
            watches: q.watches,
            overlays: q.overlays,
            overlay_bytes: q.overlay_bytes,
            image_bytes: q.image_bytes,
        };
        client = state
            .store
            .set_client_quotas(&id, &patch, &actor)
            .await?
            .ok_or_else(|| ApiError::not_found("client"))?;
        tracing::info!(client = %client.id, quotas = ?client.quotas, "client quotas set");
    }
    if let Some(disabled) = body.disabled {
        client = set_client_disabled(state.store.as_ref(), &id, disabled, &actor).await?;
    }
    state.keys.forget_client(&client.id);
    tracing::info!(
        client = %client.id,
        rps = ?client.rate_limit.rps,
        burst = ?client.rate_limit.burst,
        "client rate limit set"
    );
    Ok(Json(client.into()))
}
