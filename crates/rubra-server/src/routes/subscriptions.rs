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
//! `paused_reason` say so), and so is one its client pauses (`POST /subscriptions/{id}/pause`);
//! its notifications are held, not dropped; `POST /subscriptions/{id}/resume` delivers them
//! again.

use super::{Page, created_key, page_of};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ActingAs, ApiJson, ApiQuery, Caller, client_of};
use crate::quotas::{self, Quota};
use crate::red_level::RedLevel;
use crate::state::AppState;
use crate::timefmt::format_ms;
use crate::workers::notify::webhook_guard;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use rubra_fetch::FetchError;
use rubra_notify::WebhookSecret;
use rubra_store::{Channel, NewSubscription, Principal, Scope, Subscription, SubscriptionId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Body of `POST /subscriptions`: a threshold, types, or both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscription {
    /// Notify when an event's red level is strictly above this, in [0, 1].
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 1.0)]
    threshold: Option<f64>,
    /// Message types (DESIGN §12): instead of, or beside, a threshold; 1 to 32 type patterns
    /// (`order.created`, `payment.*`, `*`).
    #[serde(default)]
    #[schema(schema_with = crate::routes::messages::type_patterns_schema)]
    types: Option<Vec<String>>,
    /// Where notifications go.
    channel: ChannelIn,
}

/// Where a subscription's notifications go.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ChannelIn {
    /// A signed POST to `url` (http or https; internal addresses only when allowed).
    Webhook {
        /// The endpoint: an http(s) URL with a host and no credentials; an IP literal or
        /// `localhost` only when `--fetch-allow` lists it (else 422 `url_not_allowed`).
        #[schema(schema_with = crate::openapi::public_url)]
        url: String,
    },
    /// A Viber bot message.
    Viber {
        /// The Viber user id: 1 to 256 bytes (UTF-8), not only white space.
        #[schema(schema_with = viber_field)]
        receiver: String,
        /// The bot's auth token: 1 to 256 bytes (UTF-8), not only white space; never shown back.
        #[schema(schema_with = viber_field)]
        auth_token: String,
    },
    /// Only the live stream (`GET /notifications/stream`).
    Stream,
}

impl From<ChannelIn> for Channel {
    fn from(c: ChannelIn) -> Self {
        match c {
            ChannelIn::Webhook { url } => Channel::Webhook { url },
            ChannelIn::Viber {
                receiver,
                auth_token,
            } => Channel::Viber {
                receiver,
                auth_token,
            },
            ChannelIn::Stream => Channel::Stream,
        }
    }
}

/// A channel as shown back: a Viber token is `***`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ChannelView {
    /// A signed POST to `url`.
    Webhook {
        /// The endpoint.
        url: String,
    },
    /// A Viber bot message.
    Viber {
        /// The Viber user id.
        receiver: String,
        /// Always `***`.
        auth_token: &'static str,
    },
    /// Only the live stream.
    Stream,
}

impl From<&Channel> for ChannelView {
    fn from(c: &Channel) -> Self {
        match c {
            Channel::Webhook { url } => ChannelView::Webhook { url: url.clone() },
            Channel::Viber { receiver, .. } => ChannelView::Viber {
                receiver: receiver.clone(),
                auth_token: "***",
            },
            Channel::Stream => ChannelView::Stream,
        }
    }
}

/// A subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    /// Its id.
    id: String,
    /// Whose.
    client_id: String,
    /// Notify above this red level; null: types only.
    threshold: Option<f64>,
    /// Message types it matches.
    types: Vec<String>,
    /// Where notifications go.
    channel: ChannelView,
    /// `active` or `paused` (deliveries kept failing; see `paused_reason`).
    #[schema(value_type = String)]
    state: rubra_store::SubscriptionState,
    /// Why it was paused.
    paused_reason: Option<String>,
    /// Failed attempts since the last success.
    consecutive_failures: i64,
    /// When it was made (RFC 3339, UTC, ms).
    created_at: String,
    /// The webhook signing secret: only in the answers to create and rotate-secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    /// After a rotation: until when deliveries carry the old secret's signature too.
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_secret_until: Option<Option<String>>,
}

/// The longest Viber `receiver` or `auth_token`, in bytes (`Channel::validate`).
const MAX_VIBER_FIELD_BYTES: usize = 256;

/// A Viber `receiver` or `auth_token`: at most [`MAX_VIBER_FIELD_BYTES`] bytes, with a
/// character that is not white space. JSON Schema counts characters, not bytes: the
/// document's `maxLength` is the byte limit, which ASCII values meet exactly.
fn viber_field() -> utoipa::openapi::schema::Object {
    crate::openapi::text(Some(1), Some(MAX_VIBER_FIELD_BYTES), Some(r"\S")).build()
}

/// What the derived schemas of a subscription's body cannot say alone: `CreateSubscription`
/// needs a threshold, types, or both, each not null (else 422 `invalid_subscription`); a
/// channel has no other fields than its type's (422, as serde refuses them).
pub(crate) fn subscription_rules(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{
        AdditionalProperties, AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, Type,
    };
    let Some(schemas) = doc.components.as_mut().map(|c| &mut c.schemas) else {
        return;
    };
    if let Some(RefOr::T(Schema::OneOf(channels))) = schemas.get_mut("ChannelIn") {
        for channel in &mut channels.items {
            if let RefOr::T(Schema::Object(fields)) = channel {
                fields.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
    }
    let Some(fields) = schemas.remove("CreateSubscription") else {
        return;
    };
    let threshold = ObjectBuilder::new()
        .property("threshold", ObjectBuilder::new().schema_type(Type::Number))
        .required("threshold");
    let types = ObjectBuilder::new()
        .property("types", ArrayBuilder::new())
        .required("types");
    let either = AnyOfBuilder::new().item(threshold).item(types);
    schemas.insert(
        "CreateSubscription".to_owned(),
        AllOfBuilder::new().item(fields).item(either).into(),
    );
}

/// `?client=` — the client an admin creates a subscription for.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClientQuery {
    /// An admin's: the client to act for.
    client: Option<String>,
}

/// `GET /subscriptions` query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// An admin's: only this client's subscriptions.
    client: Option<String>,
    /// Items per page, 1 to 1000 [default 100].
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The JSON of a subscription (the webhook secret only when `with_secret`).
pub fn subscription_json(s: &Subscription, with_secret: bool) -> SubscriptionView {
    SubscriptionView {
        id: s.id.to_string(),
        client_id: s.client_id.to_string(),
        threshold: s.threshold,
        types: s.types.iter().map(|t| t.as_str().to_owned()).collect(),
        channel: (&s.channel).into(),
        state: s.state,
        paused_reason: s.paused_reason.clone(),
        consecutive_failures: s.consecutive_failures,
        created_at: format_ms(s.created_at),
        secret: if with_secret { s.secret.clone() } else { None },
        previous_secret_until: None,
    }
}

/// 422 `url_not_allowed`: the webhook URL is refused by the egress guard (an internal address
/// not listed in `--fetch-allow`, credentials in the URL, http under `--webhook-https-only`).
fn url_not_allowed(e: FetchError) -> ApiError {
    let why = match e {
        FetchError::Forbidden(m) | FetchError::InvalidUrl(m) => m,
        other => other.to_string(),
    };
    ApiError::new(
        ErrorCode::UrlNotAllowed,
        format!("webhook url not allowed: {why}"),
    )
}

fn parse_id(id: &str) -> ApiResult<SubscriptionId> {
    SubscriptionId::parse(id).ok_or_else(|| ApiError::not_found("subscription"))
}

/// `POST /subscriptions` → 201 with the subscription (and, for a webhook, its secret).
#[utoipa::path(
    post,
    path = "/subscriptions",
    tag = "subscriptions",
    params(ClientQuery),
    request_body = CreateSubscription,
    responses((status = 201, description = "The subscription, with a webhook's secret shown this once", body = SubscriptionView)),
)]
#[tracing::instrument(name = "http.subscriptions.create", skip_all)]
pub async fn create(
    State(state): State<AppState>,
    Caller(who): Caller,
    ActingAs(actor): ActingAs,
    ApiQuery(q): ApiQuery<ClientQuery>,
    ApiJson(body): ApiJson<CreateSubscription>,
) -> ApiResult<(StatusCode, Json<SubscriptionView>)> {
    let channel = Channel::from(body.channel);
    let threshold = body
        .threshold
        .map(|t| {
            RedLevel::new(t).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidThreshold,
                    "threshold must be a number in [0, 1]",
                )
            })
        })
        .transpose()?;
    let types = crate::routes::messages::subscription_types(body.types.as_deref())?;
    if threshold.is_none() && types.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidSubscription,
            "a subscription needs a threshold, types, or both",
        ));
    }
    channel
        .validate()
        .map_err(|m| ApiError::new(ErrorCode::InvalidChannel, m))?;
    if let Channel::Webhook { url } = &channel {
        webhook_guard(&state.settings)
            .parse_url(url)
            .map_err(url_not_allowed)?;
    }
    let client = client_of(&state, &who, q.client.as_deref()).await?;
    let secret =
        matches!(channel, Channel::Webhook { .. }).then(|| WebhookSecret::generate().reveal());
    let limit = quotas::limit_u32(&state, &client, Quota::Subscriptions).await?;
    let sub = state
        .store
        .create_subscription(
            &NewSubscription {
                client_id: client,
                threshold: threshold.map(RedLevel::get),
                types,
                channel,
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
#[utoipa::path(
    get,
    path = "/subscriptions",
    tag = "subscriptions",
    params(ListQuery),
    responses((status = 200, description = "The subscriptions, oldest first", body = Page<SubscriptionView>)),
)]
#[tracing::instrument(name = "http.subscriptions.list", skip_all)]
pub async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<SubscriptionView>>> {
    let scope = match (&who, &q.client) {
        (Principal::Admin, Some(_)) => {
            Scope::Client(client_of(&state, &who, q.client.as_deref()).await?)
        }
        _ => who.scope(),
    };
    let subs = state.store.list_subscriptions(&scope).await?;
    let items = subs.iter().map(|s| subscription_json(s, false)).collect();
    Ok(Json(page_of(
        items,
        |s: &SubscriptionView| created_key(&s.created_at, &s.id),
        q.limit,
        q.cursor.as_deref(),
    )?))
}

/// `GET /subscriptions/{id}`.
#[utoipa::path(
    get,
    path = "/subscriptions/{id}",
    tag = "subscriptions",
    params(("id" = String, Path, description = "The subscription's id")),
    responses((status = 200, description = "The subscription", body = SubscriptionView)),
)]
#[tracing::instrument(name = "http.subscriptions.get", skip_all, fields(id = %id))]
pub async fn get(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SubscriptionView>> {
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
#[utoipa::path(
    delete,
    path = "/subscriptions/{id}",
    tag = "subscriptions",
    params(("id" = String, Path, description = "The subscription's id")),
    responses((status = 204, description = "Deleted")),
)]
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
#[utoipa::path(
    post,
    path = "/subscriptions/{id}/rotate-secret",
    tag = "subscriptions",
    params(("id" = String, Path, description = "The subscription's id")),
    responses((status = 200, description = "The subscription with its new secret, shown this once", body = SubscriptionView)),
)]
#[tracing::instrument(name = "http.subscriptions.rotate_secret", skip_all, fields(id = %id))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Caller(who): Caller,
    ActingAs(actor): ActingAs,
    Path(id): Path<String>,
) -> ApiResult<Json<SubscriptionView>> {
    let id = parse_id(&id)?;
    let scope = who.scope();
    let current = state
        .store
        .get_subscription(&scope, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("subscription"))?;
    if !matches!(current.channel, Channel::Webhook { .. }) {
        return Err(ApiError::new(
            ErrorCode::NotAWebhook,
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
    body.previous_secret_until = Some(sub.previous_secret_until.map(format_ms));
    Ok(Json(body))
}

/// `POST /subscriptions/{id}/pause`: an active subscription is paused at its client's request
/// (`paused_reason` says so); its notifications are held, not dropped, until it is resumed.
/// Pausing a paused one is a no-op.
#[utoipa::path(
    post,
    path = "/subscriptions/{id}/pause",
    tag = "subscriptions",
    params(("id" = String, Path, description = "The subscription's id")),
    responses((status = 200, description = "The subscription, paused", body = SubscriptionView)),
)]
#[tracing::instrument(name = "http.subscriptions.pause", skip_all, fields(id = %id))]
pub async fn pause(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SubscriptionView>> {
    let id = parse_id(&id)?;
    let sub = state
        .store
        .pause_subscription(&who.scope(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("subscription"))?;
    Ok(Json(subscription_json(&sub, false)))
}

/// `POST /subscriptions/{id}/resume`: a paused subscription is active again, its failure
/// count reset and its held notifications due at once. Resuming an active one is a no-op.
#[utoipa::path(
    post,
    path = "/subscriptions/{id}/resume",
    tag = "subscriptions",
    params(("id" = String, Path, description = "The subscription's id")),
    responses((status = 200, description = "The subscription, active", body = SubscriptionView)),
)]
#[tracing::instrument(name = "http.subscriptions.resume", skip_all, fields(id = %id))]
pub async fn resume(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SubscriptionView>> {
    let id = parse_id(&id)?;
    let sub = state
        .store
        .resume_subscription(&who.scope(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("subscription"))?;
    Ok(Json(subscription_json(&sub, false)))
}
