//! Request extractors that answer in the API's error shape: the caller's identity (charged to
//! its rate limit, or to its address's when it has no valid key), and JSON and query parsing
//! whose rejections become [`ApiError`]s instead of plain-text bodies.

use crate::error::{ApiError, ErrorCode};
use crate::ratelimit::{Limit, retry_after_secs};
use crate::state::AppState;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use rubra_store::{Actor, ApiKey, ClientId, KeyHash, KeyHolder, Principal, Scope};
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::time::Duration;

/// Whoever sent the request, authenticated by `Authorization: Bearer <key>`, with the request
/// taken from its rate limit: a client over its limit gets 429 `rate_limited` here, before any
/// body is read (handlers take `Caller` or `Admin` before their body).
///
/// A key past its `expires_at` is answered 401 `key_expired`, a key of a disabled client 401
/// `client_disabled` (neither is charged to a rate limit: both are answered from the key
/// cache). Requests without a valid key (none, or one the database does not know) are answered 401
/// and charged to their address's bucket of `rate-limit-anonymous-*`; when it is empty they
/// get 429 `rate_limited` instead, before the database is asked about their key. A key that
/// is not cached is charged there too before its lookup, and given back when it proves
/// valid.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Extracted once per request (e.g. by `Admin` and again by a handler): charged once.
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            charge_anonymous(state, parts)?;
            return Err(ApiError::unauthorized(
                "missing Authorization: Bearer <key> header",
            ));
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let Some(token) = token else {
            charge_anonymous(state, parts)?;
            return Err(ApiError::unauthorized(
                "the Authorization header must be Bearer <key>",
            ));
        };
        let hash = ApiKey::from_token(token).hash();
        let found = match state.keys.cached(&hash) {
            Some(Some(holder)) => {
                if state.keys.refresh_due(&hash) {
                    let (keys, store, hash) =
                        (state.keys.clone(), state.store.clone(), hash.clone());
                    tokio::spawn(async move {
                        if let Err(e) = keys.look_up(&store, &hash).await {
                            tracing::warn!(error = %e.code(), "refreshing a cached key failed");
                        }
                        keys.refresh_done(&hash);
                    });
                }
                Some(holder)
            }
            Some(None) => {
                charge_anonymous(state, parts)?;
                None
            }
            None => {
                // Charged before the lookup, so a flood of random keys costs the database at
                // most the address's rate; a key that proves valid is given back.
                let subject = charge_anonymous(state, parts)?;
                let found = state.keys.look_up(&state.store, &hash).await?;
                if found.is_some() {
                    state.anonymous.refund(&subject, anonymous_limit(state));
                }
                found
            }
        };
        let holder = found.ok_or_else(|| ApiError::unauthorized("unknown API key"))?;
        if holder.client_disabled {
            return Err(ApiError::new(
                ErrorCode::ClientDisabled,
                "this key's client is disabled; an admin can enable it again",
            ));
        }
        if holder.expired(rubra_store::now_ms()) {
            return Err(ApiError::new(
                ErrorCode::KeyExpired,
                format!("API key {} has expired; make a new one", holder.key_id),
            ));
        }
        charge(state, &holder, hash.as_str())?;
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip().to_canonical());
        parts.extensions.insert(ActingAs(Actor::key(
            &holder.principal,
            holder.key_id.clone(),
            peer,
        )));
        let caller = Caller(holder.principal);
        parts.extensions.insert(caller.clone());
        parts.extensions.insert(CallerKey(hash));
        Ok(caller)
    }
}

/// Who a request acts as, for the audit log: its key's id and kind and the address it came
/// from. Taken like [`Caller`] (it authenticates the request first), by handlers that change
/// something the audit log records.
#[derive(Debug, Clone)]
pub struct ActingAs(pub Actor);

impl FromRequestParts<AppState> for ActingAs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Caller::from_request_parts(parts, state).await?;
        parts
            .extensions
            .get::<ActingAs>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("unknown API key"))
    }
}

/// The hash of the key a request was authenticated with, for handlers that keep serving the
/// caller after the response head (streams): taken as `Extension<CallerKey>` after [`Caller`].
#[derive(Debug, Clone)]
pub struct CallerKey(pub KeyHash);

/// A token cancelled when the process shuts down or when the caller's key is no longer
/// accepted — revoked, expired, or its client disabled — as the key cache sees it, checked
/// every [`KeyCache::TTL`](crate::state::KeyCache::TTL); so an open stream ends within 2 s
/// of its key being taken back, in any process. The checks stop when `alive` (the stream's
/// sender) has been dropped.
pub fn until_key_refused<T: Send + 'static>(
    state: &AppState,
    key: &CallerKey,
    alive: &tokio::sync::mpsc::Sender<T>,
) -> tokio_util::sync::CancellationToken {
    let stop = state.shutdown.child_token();
    let (keys, store, hash) = (state.keys.clone(), state.store.clone(), key.0.clone());
    let (token, alive) = (stop.clone(), alive.downgrade());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(crate::state::KeyCache::TTL) => {}
            }
            if alive.upgrade().is_none() {
                return;
            }
            let accepted = match keys.resolve(&store, &hash).await {
                Ok(Some(h)) => !h.client_disabled && !h.expired(rubra_store::now_ms()),
                Ok(None) => false,
                // The database is away: the stream goes on; the next check decides.
                Err(_) => true,
            };
            if !accepted {
                tracing::info!("the stream's key is no longer accepted; the stream ends");
                token.cancel();
                return;
            }
        }
    });
    stop
}

/// Takes one request from the caller's token bucket: a client's (shared by all its keys, with
/// the client's own limit if an admin set one), or an admin key's own (with the defaults: an
/// admin may raise a client's limit, not flood the service).
fn charge(state: &AppState, holder: &KeyHolder, key_hash: &str) -> Result<(), ApiError> {
    let settings = &state.settings;
    let limit = Limit {
        rps: holder.rate_limit.rps.unwrap_or(settings.rate_limit_rps),
        burst: holder.rate_limit.burst.unwrap_or(settings.rate_limit_burst),
    };
    let subject = match &holder.principal {
        Principal::Client(id) => id.as_str(),
        Principal::Admin => key_hash,
    };
    state.limiter.check(subject, limit).map_err(|wait| {
        rate_limited(wait, |secs| {
            format!(
                "over the rate limit of {} requests per second (bursts of {}); retry in {secs} s",
                limit.rps, limit.burst
            )
        })
    })
}

/// The limit of requests without a valid key, per address.
fn anonymous_limit(state: &AppState) -> Limit {
    Limit {
        rps: state.settings.rate_limit_anonymous_rps,
        burst: state.settings.rate_limit_anonymous_burst,
    }
}

/// Takes one request from the bucket of the request's address, for requests without a valid
/// key; answers the bucket's name (to give the request back if its key proves valid).
/// Requests that did not come through the server (in-process tests) share one bucket.
fn charge_anonymous(state: &AppState, parts: &Parts) -> Result<String, ApiError> {
    let subject = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(
            || "-".to_owned(),
            |ConnectInfo(peer)| crate::serve::client_address(peer.ip()).to_string(),
        );
    let limit = anonymous_limit(state);
    match state.anonymous.check(&subject, limit) {
        Ok(()) => Ok(subject),
        Err(wait) => Err(rate_limited(wait, |secs| {
            format!(
                "too many requests without a valid API key from this address (at most {} per \
                 second, bursts of {}); retry in {secs} s",
                limit.rps, limit.burst
            )
        })),
    }
}

/// 429 `rate_limited` with `Retry-After` for a wait, counted in the rejection metric.
pub(crate) fn rate_limited(wait: Duration, message: impl FnOnce(u64) -> String) -> ApiError {
    rubra_telemetry::metrics::counter!(
        "rubra_rejected_requests_total",
        "reason" => "rate_limited"
    )
    .increment(1);
    let secs = retry_after_secs(wait);
    ApiError::new(ErrorCode::RateLimited, message(secs)).with_retry_after(secs)
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
        (Principal::Admin, None) => Err(ApiError::new(
            ErrorCode::ClientRequired,
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

/// `axum::Json` of an object body (a struct), with rejections in the API's error shape. The
/// body must be a JSON object: serde would also take a struct's fields from an array, in order
/// (`[null, null]`), which the document does not allow.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let raw =
            match axum::Json::<Box<serde_json::value::RawValue>>::from_request(req, state).await {
                Ok(axum::Json(raw)) => raw,
                Err(rejection) => return Err(json_rejection(rejection)),
            };
        if !raw.get().trim_start().starts_with('{') {
            return Err(ApiError::new(
                ErrorCode::InvalidFields,
                "the body must be a JSON object",
            ));
        }
        match axum::Json::<T>::from_bytes(raw.get().as_bytes()) {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::JsonDataError(e) => ApiError::new(ErrorCode::InvalidFields, e.body_text()),
        JsonRejection::JsonSyntaxError(e) => ApiError::new(ErrorCode::MalformedJson, e.body_text()),
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::unsupported_media_type("expected Content-Type: application/json")
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::body_too_large(),
        other => ApiError::new(ErrorCode::BadBody, other.body_text()),
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
            .map_err(|r: QueryRejection| ApiError::new(ErrorCode::InvalidQuery, r.body_text()))
    }
}

/// The raw body of a request that must be JSON (`application/json` or `…+json`): 415 for
/// another content type, 413 past the body limit, 400 when it cannot be read. For handlers
/// that parse large JSON bodies themselves (batches of events or messages).
pub async fn json_body_bytes(req: Request) -> Result<axum::body::Bytes, ApiError> {
    let json = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let ct = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            ct == "application/json" || ct.ends_with("+json")
        });
    if !json {
        return Err(ApiError::unsupported_media_type(
            "expected Content-Type: application/json",
        ));
    }
    body_bytes(req).await
}

/// The whole body of a request, within the body limit (`max-body-bytes`): 413
/// `body_too_large` past it, 400 `bad_body` when it cannot be read.
pub async fn body_bytes(req: Request) -> Result<axum::body::Bytes, ApiError> {
    axum::body::Bytes::from_request(req, &())
        .await
        .map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::body_too_large()
            } else {
                ApiError::new(ErrorCode::BadBody, e.body_text())
            }
        })
}
