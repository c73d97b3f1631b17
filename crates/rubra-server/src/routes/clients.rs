//! `/clients`: admins create clients and receive their first API key.

use crate::error::{ApiError, ApiResult};
use crate::extract::{Admin, ApiJson, Caller};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use rubra_store::{ApiKey, Client, ClientId, NewKey, Principal, Store};
use serde::{Deserialize, Serialize};

/// Body of `POST /clients`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    name: String,
}

/// A new client with its key, shown once.
#[derive(Debug, Serialize)]
pub struct CreatedClient {
    /// The client.
    #[serde(flatten)]
    pub client: Client,
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

/// Creates a client and its first key. Shared by the API and `rubra admin create-client`.
pub async fn create_client_with_key(
    store: &dyn Store,
    name: &str,
) -> Result<CreatedClient, ApiError> {
    validate_client_name(name).map_err(|m| ApiError::unprocessable("invalid_name", m))?;
    let client = store.create_client(name).await?;
    let key = ApiKey::generate();
    store
        .insert_key(&NewKey {
            hash: key.hash(),
            principal: Principal::Client(client.id.clone()),
            label: "first key".to_owned(),
        })
        .await?;
    Ok(CreatedClient {
        client,
        api_key: key.reveal().to_owned(),
    })
}

/// `POST /clients` (admin).
#[tracing::instrument(name = "http.clients.create", skip_all)]
pub async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(body): ApiJson<CreateClient>,
) -> ApiResult<(StatusCode, Json<CreatedClient>)> {
    let created = create_client_with_key(state.store.as_ref(), &body.name).await?;
    tracing::info!(client = %created.client.id, name = %created.client.name, "client created");
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /clients`: all clients for an admin, the caller's own for a client.
#[tracing::instrument(name = "http.clients.list", skip_all)]
pub async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<Json<Vec<Client>>> {
    Ok(Json(state.store.list_clients(&who.scope()).await?))
}

/// `GET /clients/{id}`.
#[tracing::instrument(name = "http.clients.get", skip_all, fields(client = %id))]
pub async fn get(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Client>> {
    let id = ClientId::parse(&id).ok_or_else(|| ApiError::not_found("client"))?;
    state
        .store
        .get_client(&who.scope(), &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("client"))
}
