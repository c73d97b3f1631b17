//! Request extractors that answer in the API's error shape: the caller's identity, and JSON
//! and query parsing whose rejections become [`ApiError`]s instead of plain-text bodies.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use rubra_store::{ApiKey, ClientId, Principal, Scope};
use serde::de::DeserializeOwned;

/// Whoever sent the request, authenticated by `Authorization: Bearer <key>`.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <key> header"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be Bearer <key>")
            })?;
        let principal = state
            .keys
            .resolve(&state.store, &ApiKey::from_token(token))
            .await?;
        principal
            .map(Caller)
            .ok_or_else(|| ApiError::unauthorized("unknown API key"))
    }
}

/// The client a request acts for: a client key's own client, or for an admin key the client
/// named by `?client=` (which must exist). An admin without `?client=` gets 422
/// `client_required`: an admin key has no client of its own.
pub async fn client_of(
    state: &AppState,
    who: &Principal,
    client: Option<&str>,
) -> Result<ClientId, ApiError> {
    match (who, client) {
        (Principal::Client(id), _) => Ok(id.clone()),
        (Principal::Admin, Some(c)) => {
            let id = ClientId::parse(c).ok_or_else(|| ApiError::not_found("client"))?;
            state
                .store
                .get_client(&Scope::All, &id)
                .await?
                .map(|c| c.id)
                .ok_or_else(|| ApiError::not_found("client"))
        }
        (Principal::Admin, None) => Err(ApiError::unprocessable(
            "client_required",
            "an admin key has no client of its own: add ?client=CLIENT_ID",
        )),
    }
}

/// An authenticated caller holding an admin key.
#[derive(Debug, Clone)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Caller(principal) = Caller::from_request_parts(parts, state).await?;
        if principal.is_admin() {
            Ok(Admin)
        } else {
            Err(ApiError::forbidden("this needs an admin key"))
        }
    }
}

/// `axum::Json` with rejections in the API's error shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::JsonDataError(e) => ApiError::unprocessable("invalid_fields", e.body_text()),
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request("malformed_json", e.body_text()),
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::unsupported_media_type("expected Content-Type: application/json")
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::body_too_large(),
        other => ApiError::bad_request("bad_body", other.body_text()),
    }
}

/// `axum::extract::Query` with rejections in the API's error shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|r: QueryRejection| ApiError::bad_request("invalid_query", r.body_text()))
    }
}
