//! `POST /messages` (DESIGN §12): one message or an array of up to [`MAX_BATCH`], all or
//! nothing: `{"id"?, "type", "text"?, "payload"?, "receiver"?}` → `202 {"accepted": n,
//! "duplicates": m}` once the messages and their notifications are committed (the outbox).
//!
//! An `id` the client sent before is a duplicate: counted in `accepted` and in `duplicates`,
//! and nothing is sent again. A client key sends its own messages; an admin key names the
//! client with `client_id` in each message or `?client=` for all. Bad input: 400
//! `malformed_json`, 422 `invalid_message` naming `messages[i].field`, 422
//! `too_many_messages`, 422 `client_required`.

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ApiQuery, Caller};
use crate::ratelimit::Limit;
use crate::relay::{Invalid, MessageIn};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use rubra_store::{
    ClientId, MAX_MESSAGE_ID_BYTES, MAX_SUBSCRIPTION_TYPES, Principal, Scope, TypePattern, now_ms,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};

/// The most messages one request may carry.
pub const MAX_BATCH: usize = 1_000;

/// `?client=`: the client of every message of an admin's request.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessagesQuery {
    /// An admin's: the client of every message without a `client_id`.
    client: Option<String>,
}

/// The body of `POST /messages`: one message or an array of 1 to [`MAX_BATCH`] (only its
/// schema is used: [`items`] reads the body).
#[allow(dead_code)]
struct MessagesBody;

impl utoipa::PartialSchema for MessagesBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, OneOfBuilder};
        let one = || utoipa::openapi::Ref::from_schema_name(MessageIn::name());
        OneOfBuilder::new()
            .item(one())
            .item(
                ArrayBuilder::new()
                    .items(one())
                    .min_items(Some(1))
                    .max_items(Some(MAX_BATCH)),
            )
            .description(Some("One message, or an array of 1 to 1000"))
            .into()
    }
}

impl ToSchema for MessagesBody {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            MessageIn::name().into_owned(),
            <MessageIn as utoipa::PartialSchema>::schema(),
        ));
        MessageIn::schemas(schemas);
    }
}

/// `202` answer of `POST /messages`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagesAccepted {
    /// Messages recorded, duplicates included.
    accepted: usize,
    /// Messages whose id was seen before: nothing was sent again for them.
    duplicates: usize,
}

/// A message type as `MessageType::parse` takes it: dot-separated segments of letters,
/// digits, `_` and `-` (at most [`MAX_MESSAGE_ID_BYTES`], all ASCII).
pub(crate) const MESSAGE_TYPE_PATTERN: &str = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$";

/// A type pattern as `TypePattern::parse` takes it: a type, a type followed by `.*`, or `*`.
pub(crate) const TYPE_PATTERN_PATTERN: &str = r"^(\*|[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(\.\*)?)$";

/// The schema of a message's `type`.
pub(crate) fn message_type_schema() -> utoipa::openapi::schema::Object {
    crate::openapi::text(
        Some(1),
        Some(MAX_MESSAGE_ID_BYTES),
        Some(MESSAGE_TYPE_PATTERN),
    )
    .build()
}

/// The schema of a subscription's `types`: null, or 1 to [`MAX_SUBSCRIPTION_TYPES`] type
/// patterns.
pub(crate) fn type_patterns_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, SchemaType, Type};
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(crate::openapi::text(
            Some(1),
            Some(MAX_MESSAGE_ID_BYTES),
            Some(TYPE_PATTERN_PATTERN),
        ))
        .min_items(Some(1))
        .max_items(Some(MAX_SUBSCRIPTION_TYPES))
        .build()
}

/// The `types` of a new subscription, validated: 422 `invalid_types` names the bad one.
pub(crate) fn subscription_types(types: Option<&[String]>) -> ApiResult<Vec<TypePattern>> {
    let Some(types) = types else {
        return Ok(Vec::new());
    };
    if types.is_empty() || types.len() > MAX_SUBSCRIPTION_TYPES {
        return Err(ApiError::new(
            ErrorCode::InvalidTypes,
            format!("types holds 1 to {MAX_SUBSCRIPTION_TYPES} type patterns"),
        ));
    }
    types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            TypePattern::parse(t)
                .map_err(|m| ApiError::new(ErrorCode::InvalidTypes, format!("types[{i}]: {m}")))
        })
        .collect()
}

fn invalid(i: usize, message: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidMessage,
        format!("messages[{i}]: {message}"),
    )
}

fn invalid_field(i: usize, e: &Invalid) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidMessage,
        format!("messages[{i}].{}: {}", e.field, e.message),
    )
}

/// The items of a body: one object or an array of at most [`MAX_BATCH`], each still raw.
fn items(body: &[u8]) -> ApiResult<Vec<Box<RawValue>>> {
    let malformed = |e: serde_json::Error| {
        ApiError::new(ErrorCode::MalformedJson, format!("malformed JSON: {e}"))
    };
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let items: Vec<Box<RawValue>> = serde_json::from_slice(body).map_err(malformed)?;
        if items.len() > MAX_BATCH {
            return Err(ApiError::new(
                ErrorCode::TooManyMessages,
                format!(
                    "a request holds at most {MAX_BATCH} messages, this one has {}",
                    items.len()
                ),
            ));
        }
        if items.is_empty() {
            return Err(ApiError::new(
                ErrorCode::InvalidMessages,
                "the array holds no message",
            ));
        }
        Ok(items)
    } else {
        Ok(vec![serde_json::from_slice(body).map_err(malformed)?])
    }
}

/// `POST /messages`.
#[utoipa::path(
    post,
    path = "/messages",
    tag = "messages",
    params(MessagesQuery),
    request_body = MessagesBody,
    responses((status = 202, description = "Recorded with their notifications", body = MessagesAccepted)),
)]
#[tracing::instrument(name = "http.messages.create", skip_all, fields(messages))]
pub async fn create(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<MessagesQuery>,
    req: Request,
) -> ApiResult<(StatusCode, Json<MessagesAccepted>)> {
    let body = crate::extract::json_body_bytes(req).await?;
    let items = items(&body)?;
    tracing::Span::current().record("messages", items.len());
    charge_messages(&state, &who, items.len())?;
    let batch_client = match (&who, &q.client) {
        (Principal::Admin, Some(c)) => Some(existing_client(&state, c).await?),
        (Principal::Client(id), Some(c)) if c != id.as_str() => {
            return Err(ApiError::not_found("client"));
        }
        _ => None,
    };
    let now = now_ms();
    let mut known: HashMap<String, Option<ClientId>> = HashMap::new();
    let mut messages = Vec::with_capacity(items.len());
    for (i, raw) in items.iter().enumerate() {
        let item: MessageIn = serde_json::from_str(raw.get()).map_err(|e| invalid(i, e))?;
        let client = match (&who, item.client_id.as_deref()) {
            (Principal::Client(own), None) => own.clone(),
            (Principal::Client(own), Some(c)) if c == own.as_str() => own.clone(),
            (Principal::Client(_), Some(_)) => {
                return Err(invalid(
                    i,
                    "client_id: a client key sends only its own messages",
                ));
            }
            (Principal::Admin, Some(c)) => {
                let found = match known.get(c) {
                    Some(found) => found.clone(),
                    None => {
                        let found = match ClientId::parse(c) {
                            Some(id) => state
                                .store
                                .get_client(&Scope::All, &id)
                                .await?
                                .map(|c| c.id),
                            None => None,
                        };
                        known.insert(c.to_owned(), found.clone());
                        found
                    }
                };
                found.ok_or_else(|| invalid(i, format!("client_id: no client {c:?}")))?
            }
            (Principal::Admin, None) => batch_client.clone().ok_or_else(|| {
                ApiError::new(
                    ErrorCode::ClientRequired,
                    format!(
                        "messages[{i}]: an admin key has no client of its own: give client_id \
                         in each message or ?client=CLIENT_ID"
                    ),
                )
            })?,
        };
        messages.push(
            item.validate(client, now, None)
                .map_err(|e| invalid_field(i, &e))?,
        );
    }
    let fresh = state.store.insert_messages(&messages).await?;
    let duplicates = fresh.iter().filter(|f| !**f).count();
    rubra_telemetry::metrics::counter!("rubra_messages_consumed_total", "source" => "http")
        .increment(messages.len() as u64);
    rubra_telemetry::metrics::counter!("rubra_messages_duplicates_total", "source" => "http")
        .increment(duplicates as u64);
    Ok((
        StatusCode::ACCEPTED,
        Json(MessagesAccepted {
            accepted: messages.len(),
            duplicates,
        }),
    ))
}

/// Takes `count` messages from the caller's bucket (its client's, or the admins' together):
/// 429 `rate_limited` with `Retry-After` when they do not fit, before anything is recorded.
fn charge_messages(state: &AppState, who: &Principal, count: usize) -> ApiResult<()> {
    let limit = Limit {
        rps: state.settings.rate_limit_messages_per_sec,
        burst: state.settings.rate_limit_messages_burst,
    };
    let subject = match who {
        Principal::Client(id) => id.as_str(),
        Principal::Admin => "admin",
    };
    let n = u32::try_from(count).unwrap_or(u32::MAX);
    state.messages.check_n(subject, limit, n).map_err(|wait| {
        crate::extract::rate_limited(wait, |secs| {
            format!(
                "over the message rate limit of {} messages per second (bursts of {}); retry \
                 in {secs} s",
                limit.rps, limit.burst
            )
        })
    })
}

async fn existing_client(state: &AppState, c: &str) -> ApiResult<ClientId> {
    let id = ClientId::parse(c).ok_or_else(|| ApiError::not_found("client"))?;
    state
        .store
        .get_client(&Scope::All, &id)
        .await?
        .map(|c| c.id)
        .ok_or_else(|| ApiError::not_found("client"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_object_or_an_array_up_to_the_limit() {
        assert_eq!(items(br#" {"type":"a"}"#).expect("one").len(), 1);
        assert_eq!(
            items(br#"[{"type":"a"},{"type":"b"}]"#).expect("two").len(),
            2
        );
        let many = vec![r#"{"type":"a"}"#; MAX_BATCH + 1].join(",");
        let e = items(format!("[{many}]").as_bytes()).expect_err("too many");
        assert_eq!(e.code(), "too_many_messages");
        assert_eq!(items(b"[{").expect_err("bad").code(), "malformed_json");
        assert_eq!(items(b"[]").expect_err("empty").code(), "invalid_messages");
    }
}
