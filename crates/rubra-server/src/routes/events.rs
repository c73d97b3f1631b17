//! `POST /events`: external producers (another RED) record measurements in batches of up to
//! [`MAX_BATCH`], all or nothing.
//!
//! Body: a JSON array of `{"red": 0.5, "ts"?: "2026-…Z" | epoch ms, "image_id"?: "…",
//! "client_id"?: "cl_…"}`. `ts` defaults to now and lies between 1970-01-01T00:00:00Z and
//! 9999-12-31T23:59:59.999Z (else 422 `invalid_event` naming `events[i].ts`, as a
//! [`Timestamp`] holds no other value); `client_id` is for admin keys (or
//! `?client=` for the whole batch); a client key records only its own events. Every item is
//! validated before anything is written; the first bad one is named by its index. Answers
//! `201 {"accepted": n}` once the batch is committed (durable: a crash after the answer loses
//! nothing), together with its rollups and notifications.

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ApiQuery, Caller};
use crate::idempotency::{AnswerKept, IdempotencyTicket};
use crate::ratelimit::Limit;
use crate::red_level::RedLevel;
use crate::state::AppState;
use crate::timefmt::parse_timestamp;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use rubra_store::{ClientId, ImageId, NewEvent, Principal, Scope, Timestamp};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};

/// The most events one request may carry.
pub const MAX_BATCH: usize = 10_000;

/// One event as sent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Event)]
struct EventIn {
    /// The red level, in [0, 1].
    #[schema(minimum = 0.0, maximum = 1.0)]
    red: f64,
    /// When it was measured [default: now].
    #[serde(default)]
    #[schema(schema_with = crate::openapi::instant_in)]
    ts: Option<TsIn>,
    /// The image it was measured on: its id, 64 hex digits.
    #[serde(default)]
    #[schema(nullable = false, pattern = "^[0-9a-fA-F]{64}$")]
    image_id: Option<String>,
    /// For admin keys: whose event it is (or `?client=` for the batch); a client key may
    /// name only its own client.
    #[serde(default)]
    #[schema(nullable = false, pattern = "^cl_[0-9a-fA-F]{16}$")]
    client_id: Option<String>,
}

/// A timestamp as sent: epoch ms or RFC 3339 text. An integer past `i64::MAX` (up to
/// `u64::MAX`) is read too, to be refused as out of range rather than as malformed.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TsIn {
    Ms(i64),
    Huge(u64),
    /// `1.7e12` or `1700000000000.0`: an integer to JSON Schema when its fraction is zero.
    Float(f64),
    Text(String),
}

/// `?client=`: the client of every event of an admin's batch.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// An admin's: the client of every event without a `client_id`.
    client: Option<String>,
}

/// `201` answer of `POST /events`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsAccepted {
    /// Events recorded.
    accepted: usize,
}

fn invalid(i: usize, message: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::InvalidEvent, format!("events[{i}]: {message}"))
}

/// Why the array could not be read, as far as serde's text-only errors cannot say it.
#[derive(Debug, Default)]
struct Failure {
    /// The array had more than [`MAX_BATCH`] items.
    too_many: bool,
    /// The index of the first item that is not an event, and why.
    item: Option<(usize, String)>,
}

/// Reads the array item by item: it stops at the first bad item (naming its index) and at item
/// [`MAX_BATCH`] + 1, so a huge body never becomes a huge `Vec` or `Value` tree.
struct Batch<'a>(&'a mut Failure);

impl<'de> DeserializeSeed<'de> for Batch<'_> {
    type Value = Vec<EventIn>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<EventIn>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Batch<'_> {
    type Value = Vec<EventIn>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<EventIn>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_BATCH));
        loop {
            if items.len() == MAX_BATCH {
                // One more item of any shape makes the batch too large; it is skipped, not built.
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    self.0.too_many = true;
                    return Err(serde::de::Error::custom("too many events"));
                }
                return Ok(items);
            }
            match seq.next_element::<EventIn>() {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return Ok(items),
                Err(e) => {
                    self.0.item = Some((items.len(), e.to_string()));
                    return Err(e);
                }
            }
        }
    }
}

/// Parses the body into at most [`MAX_BATCH`] events, naming the first bad one.
fn parse_items(body: &[u8]) -> ApiResult<Vec<EventIn>> {
    let mut failure = Failure::default();
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = Batch(&mut failure)
        .deserialize(&mut de)
        .and_then(|items| de.end().map(|()| items));
    let e = match parsed {
        Ok(items) => return Ok(items),
        Err(e) => e,
    };
    if e.is_syntax() || e.is_eof() {
        return Err(ApiError::new(
            ErrorCode::MalformedJson,
            format!("malformed JSON: {e}"),
        ));
    }
    if failure.too_many {
        return Err(too_many());
    }
    match failure.item {
        Some((i, msg)) if msg.contains("did not match any variant") => Err(invalid_ts(
            i,
            "must be RFC 3339 text or integer epoch milliseconds",
        )),
        Some((i, msg)) => Err(invalid(i, msg)),
        None => Err(ApiError::new(
            ErrorCode::InvalidEvents,
            "the body must be a JSON array of events",
        )),
    }
}

fn invalid_ts(i: usize, message: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidEvent,
        format!("events[{i}].ts: {message}"),
    )
}

/// The timestamp of item `i` as sent.
fn timestamp(i: usize, ts: TsIn) -> ApiResult<Timestamp> {
    let out_of_range = |ms: &dyn std::fmt::Display| {
        invalid_ts(
            i,
            format!(
                "{ms} is not between 1970-01-01T00:00:00Z (0) and 9999-12-31T23:59:59.999Z \
                 (253402300799999)"
            ),
        )
    };
    match ts {
        TsIn::Ms(ms) => Timestamp::from_ms(ms).map_err(|_| out_of_range(&ms)),
        TsIn::Huge(ms) => Err(out_of_range(&ms)),
        TsIn::Float(f) => match crate::integral::whole(f) {
            Some(ms) => Timestamp::from_ms(ms).map_err(|_| out_of_range(&f)),
            None => Err(invalid_ts(
                i,
                "must be RFC 3339 text or integer epoch milliseconds",
            )),
        },
        TsIn::Text(s) => parse_timestamp(&s).map_err(|e| invalid_ts(i, e)),
    }
}

fn too_many() -> ApiError {
    ApiError::new(
        ErrorCode::TooManyEvents,
        format!("a batch holds at most {MAX_BATCH} events, this one has more"),
    )
}

/// The caller's event bucket: its subject and limit.
fn event_bucket<'a>(state: &AppState, who: &'a Principal) -> (&'a str, Limit) {
    let settings = &state.settings;
    let limit = Limit {
        rps: settings.rate_limit_events_per_sec,
        burst: settings.rate_limit_events_burst,
    };
    let subject = match who {
        Principal::Client(id) => id.as_str(),
        Principal::Admin => "admin",
    };
    (subject, limit)
}

/// Gives one event back to the caller's bucket.
fn refund_event(state: &AppState, who: &Principal) {
    let (subject, limit) = event_bucket(state, who);
    state.events.refund(subject, limit);
}

/// Takes `count` events from the caller's event bucket (`rate-limit-events-per-sec`; the
/// admin keys share one), or refuses the whole batch with 429 `rate_limited`: the cost of a
/// batch to the single event writer grows with its size, which the request rate limit does
/// not see.
fn charge_events(state: &AppState, who: &Principal, count: usize) -> ApiResult<()> {
    let (subject, limit) = event_bucket(state, who);
    let n = u32::try_from(count).unwrap_or(u32::MAX);
    state.events.check_n(subject, limit, n).map_err(|wait| {
        crate::extract::rate_limited(wait, |secs| {
            format!(
                "over the event rate limit of {} events per second (bursts of {}); retry in \
                 {secs} s, or send smaller batches",
                limit.rps, limit.burst
            )
        })
    })
}

/// `POST /events`.
#[utoipa::path(
    post,
    path = "/events",
    tag = "events",
    params(EventsQuery),
    request_body(content = inline(Vec<EventIn>), description = "0 to 10 000 events, all or nothing"),
    responses((status = 201, description = "Committed", body = EventsAccepted)),
)]
#[tracing::instrument(name = "http.events.create", skip_all, fields(events))]
pub async fn create(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<EventsQuery>,
    req: Request,
) -> ApiResult<Response> {
    let ticket = req.extensions().get::<IdempotencyTicket>().cloned();
    let body = crate::extract::json_body_bytes(req).await?;
    // Parsing up to max-body-bytes of JSON is real CPU: off the async threads.
    // One event first, before the parse: a client whose event bucket is empty is refused
    // without its batch costing the CPU of parsing it (a flood's refused batches did).
    charge_events(&state, &who, 1)?;
    let items = tokio::task::spawn_blocking(move || parse_items(&body))
        .await
        .map_err(|e| ApiError::internal(&e))??;
    tracing::Span::current().record("events", items.len());
    if let Err(refused) = charge_events(&state, &who, items.len().saturating_sub(1)) {
        // The batch is refused whole: the one event taken before the parse goes back.
        refund_event(&state, &who);
        return Err(refused);
    }

    let batch_client = match (&who, &q.client) {
        (Principal::Admin, Some(c)) => Some(existing_client(&state, c).await?),
        (Principal::Client(id), Some(c)) if c != id.as_str() => {
            return Err(ApiError::not_found("client"));
        }
        _ => None,
    };
    let now = Timestamp::now();
    let mut known: HashMap<String, bool> = HashMap::new();
    let mut events = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let red = RedLevel::new(item.red)
            .ok_or_else(|| invalid(i, "red must be a finite number in [0, 1]"))?;
        let ts = match item.ts {
            None => now,
            Some(ts) => timestamp(i, ts)?,
        };
        let image_id = match item.image_id {
            None => None,
            Some(s) => Some(
                ImageId::parse(&s)
                    .ok_or_else(|| invalid(i, "image_id must be an image id (64 hex digits)"))?,
            ),
        };
        let client_id = match (&who, item.client_id) {
            (Principal::Client(own), None) => own.clone(),
            (Principal::Client(own), Some(c)) if c == own.as_str() => own.clone(),
            (Principal::Client(_), Some(_)) => {
                return Err(invalid(
                    i,
                    "client_id: a client key records only its own events",
                ));
            }
            (Principal::Admin, Some(c)) => {
                let exists = match known.get(&c) {
                    Some(&e) => e,
                    None => {
                        let e = match ClientId::parse(&c) {
                            Some(id) => state.store.get_client(&Scope::All, &id).await?.is_some(),
                            None => false,
                        };
                        known.insert(c.clone(), e);
                        e
                    }
                };
                if !exists {
                    return Err(invalid(i, format!("client_id: no client {c:?}")));
                }
                ClientId::parse(&c).ok_or_else(|| invalid(i, "client_id is malformed"))?
            }
            (Principal::Admin, None) => batch_client.clone().ok_or_else(|| {
                ApiError::new(
                    ErrorCode::ClientRequired,
                    format!(
                        "events[{i}]: an admin key has no client of its own: give client_id \
                         in each event or ?client=CLIENT_ID"
                    ),
                )
            })?,
        };
        events.push(NewEvent {
            client_id,
            image_id,
            red: red.get(),
            ts: ts.as_ms(),
        });
    }
    // The answer is known before the write: under an Idempotency-Key it is kept in the
    // batch's own transaction, so a crash after the commit cannot make a retry count it twice.
    let answer = serde_json::to_vec(&EventsAccepted {
        accepted: events.len(),
    })
    .map_err(|e| ApiError::internal(&e))?;
    let kept = ticket.map(|t| t.answer(StatusCode::CREATED, "application/json", &answer));
    let stored = kept.is_some();
    state.store.insert_events_answered(events, kept).await?;
    let mut resp = (
        StatusCode::CREATED,
        [(CONTENT_TYPE, "application/json")],
        answer,
    )
        .into_response();
    if stored {
        resp.extensions_mut().insert(AnswerKept);
    }
    Ok(resp)
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

    fn code(r: ApiResult<Vec<EventIn>>) -> (&'static str, String) {
        let e = r.expect_err("refused");
        (e.code(), e.to_string())
    }

    #[test]
    fn a_batch_past_the_limit_is_refused_at_the_extra_item_without_reading_the_rest() {
        // 10 001 events, then bytes that are not JSON at all: the parse stops before them.
        let mut body = String::from("[");
        for _ in 0..=MAX_BATCH {
            body.push_str(r#"{"red":0.5},"#);
        }
        body.push_str("this is never read");
        assert_eq!(code(parse_items(body.as_bytes())).0, "too_many_events");
    }

    #[test]
    fn exactly_the_limit_is_accepted() {
        let items = vec![r#"{"red":0.5}"#; MAX_BATCH].join(",");
        let parsed = parse_items(format!("[{items}]").as_bytes()).expect("accepted");
        assert_eq!(parsed.len(), MAX_BATCH);
    }

    #[test]
    fn the_first_bad_item_is_named_and_malformed_json_is_a_400() {
        let (c, msg) = code(parse_items(br#"[{"red":0.1},{"red":"x"}]"#));
        assert_eq!(c, "invalid_event");
        assert!(msg.contains("events[1]"), "{msg}");
        let (c, msg) = code(parse_items(br#"[{"red":0.1},{"red":0.2,"ts":true}]"#));
        assert_eq!(c, "invalid_event");
        assert!(msg.contains("events[1].ts"), "{msg}");
        assert_eq!(code(parse_items(br#"[{"red":0.1}"#)).0, "malformed_json");
        assert_eq!(code(parse_items(br#"[{"red":0.1}] x"#)).0, "malformed_json");
        assert_eq!(code(parse_items(br#"{"red":0.1}"#)).0, "invalid_events");
    }
}
