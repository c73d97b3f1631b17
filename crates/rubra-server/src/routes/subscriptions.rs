//! `/subscriptions`: a client's alert rules — notify when an event's red level is strictly
//! above a threshold, or when a message of a matching type arrives (`types`, see
//! `routes::messages`), by signed webhook, Viber or the live stream.
//!
//! A webhook URL must pass the egress guard (`workers::notify::webhook_guard`): an internal
//! address (IP literal or `localhost`) not listed in `--fetch-allow`, credentials in the URL, or
//! plain http under `--webhook-https-only` is 422 `url_not_allowed`. Names are resolved, and
//! checked again, when each delivery connects.
//!
//! A webhook subscription's signing secret is returned once, by `POST`; the Viber auth token is
//! never shown back. `POST /subscriptions/{id}/rotate-secret` returns a new secret, once; the
//! old one goes on signing beside it for `--webhook-secret-overlap-secs` (24 h), so a
//! receiver that checks either finds one that matches while it switches. A subscription whose deliveries keep failing is paused (its `state` and
//! `paused_reason` say so) and its notifications are held, not dropped; `POST
//! /subscriptions/{id}/resume` delivers them again.

use crate::error::{ApiError, ApiResult};
use crate::extract::{ActingAs, ApiJson, ApiQuery, Caller, client_of};
use crate::quotas::{self, Quota};
use crate::state::AppState;
use crate::timefmt::format_ms;
use crate::workers::notify::webhook_guard;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use rubra_fetch::FetchError;
use rubra_notify::WebhookSecret;
use rubra_store::{
    Channel, NewSubscription, Principal, Scope, Subscription, SubscriptionId, TypePattern,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// Body of `POST /subscriptions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscription {
    #[serde(default)]
    threshold: Option<f64>,
    /// Message types (DESIGN §12): instead of, or beside, a threshold.
    #[serde(default)]
    types: Option<Vec<String>>,
    channel: Channel,
}

/// `?client=` — the client an admin creates a subscription for.
#[derive(Debug, Default, Deserialize)]
pub struct ClientQuery {
    client: Option<String>,
}

/// The JSON of a subscription (the webhook secret only when `with_secret`).
pub fn subscription_json(s: &Subscription, with_secret: bool) -> Value {
    let mut v = json!({
        "id": s.id,
        "client_id": s.client_id,
        "threshold": s.threshold,
        "types": s.types.iter().map(TypePattern::as_str).collect::<Vec<_>>(),
        "channel": s.channel.redacted(),
        "state": s.state,
        "paused_reason": s.paused_reason,
        "consecutive_failures": s.consecutive_failures,
        "created_at": format_ms(s.created_at),
    });
    if with_secret && let Some(secret) = &s.secret {
        v["secret"] = json!(secret);
    }
    v
}

/// 422 `url_not_allowed`: the webhook URL is refused by the egress guard (an internal address
/// not listed in `--fetch-allow`, credentials in the URL, http under `--webhook-https-only`).
fn url_not_allowed(e: FetchError) -> ApiError {
    let why = match e {
        FetchError::Forbidden(m) | FetchError::InvalidUrl(m) => m,
        other => other.to_string(),
    };
    ApiError::unprocessable("url_not_allowed", format!("webhook url not allowed: {why}"))
}

fn parse_id(id: &str) -> ApiResult<SubscriptionId> {
    SubscriptionId::parse(id).ok_or_else(|| ApiError::not_found("subscription"))
}

/// `POST /subscriptions` → 201 with the subscription (and, for a webhook, its secret).
#[tracing::instrument(name = "http.subscriptions.create", skip_all)]
pub async fn create(
    State(state): State<AppState>,
    Caller(who): Caller,
    ActingAs(actor): ActingAs,
    ApiQuery(q): ApiQuery<ClientQuery>,
    ApiJson(body): ApiJson<CreateSubscription>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if let Some(t) = body.threshold
        && !(t.is_finite() && (0.0..=1.0).contains(&t))
    {
        return Err(ApiError::unprocessable(
            "invalid_threshold",
            "threshold must be a number in [0, 1]",
        ));
    }
    let types = crate::routes::messages::subscription_types(body.types.as_deref())?;
    if body.threshold.is_none() && types.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_subscription",
            "a subscription needs a threshold, types, or both",
        ));
    }
    body.channel
        .validate()
        .map_err(|m| ApiError::unprocessable("invalid_channel", m))?;
    if let Channel::Webhook { url } = &body.channel {
        webhook_guard(&state.settings)
            .parse_url(url)
            .map_err(url_not_allowed)?;
    }
    let client = client_of(&state, &who, q.client.as_deref()).await?;
    let secret =
        matches!(body.channel, Channel::Webhook { .. }).then(|| WebhookSecret::generate().reveal());
    let limit = quotas::limit_u32(&state, &client, Quota::Subscriptions).await?;
    let sub = state
        .store
        .create_subscription(
            &NewSubscription {
                client_id: client,
                threshold: body.threshold,
                types,
                channel: body.channel,
                secret,
                limit,
            },
            &actor,
        )
        .await?;
    tracing::info!(subscription = %sub.id, client = %sub.client_id, "subscription created");
    Ok((StatusCode::CREATED, Json(subscription_json(&sub, true))))
}

/// `GET /subscriptions`: the caller's (an admin's: everyone's, or `?client=`'s).
#[tracing::instrument(name = "http.subscriptions.list", skip_all)]
pub async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<ClientQuery>,
) -> ApiResult<Json<Value>> {
    let scope = match (&who, &q.client) {
        (Principal::Admin, Some(_)) => {
            Scope::Client(client_of(&state, &who, q.client.as_deref()).await?)
        }
        _ => who.scope(),
    };
    let subs = state.store.list_subscriptions(&scope).await?;
    let items: Vec<Value> = subs.iter().map(|s| subscription_json(s, false)).collect();
    Ok(Json(json!({ "items": items })))
}

/// `GET /subscriptions/{id}`.
#[tracing::instrument(name = "http.subscriptions.get", skip_all, fields(id = %id))]
pub async fn get(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let sub = state
        .store
        .get_subscription(&who.scope(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("subscription"))?;
    Ok(Json(subscription_json(&sub, false)))
}

/// `DELETE /subscriptions/{id}` → 204; undelivered notifications are canceled, the delivery
/// log stays.
#[tracing::instrument(name = "http.subscriptions.delete", skip_all, fields(id = %id))]
pub async fn delete(
    State(state): State<AppState>,
    Caller(who): Caller,
    ActingAs(actor): ActingAs,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id)?;
    if state
        .store
        .delete_subscription(&who.scope(), &id, &actor)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("subscription"))
    }
}

/// `POST /subscriptions/{id}/rotate-secret` → the webhook subscription with its new secret
/// (shown this once) and `previous_secret_until`, until when deliveries carry the old
/// secret's signature too. A rotation during an overlap ends the older secret's at once.
#[tracing::instrument(name = "http.subscriptions.rotate_secret", skip_all, fields(id = %id))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Caller(who): Caller,
    ActingAs(actor): ActingAs,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let scope = who.scope();
    let current = state
        .store
        .get_subscription(&scope, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("subscription"))?;
    if !matches!(current.channel, Channel::Webhook { .. }) {
        return Err(ApiError::unprocessable(
            "not_a_webhook",
            "only a webhook subscription has a signing secret",
        ));
    }
    let overlap =
        i64::try_from(state.settings.webhook_secret_overlap.as_millis()).unwrap_or(i64::MAX);
    let until = rubra_store::now_ms().saturating_add(overlap);
    let secret = WebhookSecret::generate().reveal();
    let sub = state
        .store
        .rotate_webhook_secret(&scope, &id, &secret, until, &actor)
        .await?
        .ok_or_else(|| ApiError::not_found("subscription"))?;
    tracing::info!(subscription = %sub.id, "webhook secret rotated");
    let mut body = subscription_json(&sub, true);
    body["previous_secret_until"] = json!(sub.previous_secret_until.map(format_ms));
    Ok(Json(body))
}

/// `POST /subscriptions/{id}/resume`: a paused subscription is active again, its failure
/// count reset and its held notifications due at once. Resuming an active one is a no-op.
#[tracing::instrument(name = "http.subscriptions.resume", skip_all, fields(id = %id))]
pub async fn resume(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let sub = state
        .store
        .resume_subscription(&who.scope(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("subscription"))?;
    Ok(Json(subscription_json(&sub, false)))
}
