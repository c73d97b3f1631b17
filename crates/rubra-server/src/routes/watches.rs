//! `/watches`: JSON sources polled on an interval, and every change found in them (DESIGN §8).
//!
//! A change is `{seq, ts, path, op, old, new}`: `seq` counts from 1 per watch (the SSE event
//! id and the `since=` cursor), `path` is a JSON Pointer into the fetched document, `old` and
//! `new` are the values exactly as the source wrote them. The first successful poll sets the
//! baseline (`baseline_at`) and is not a change. A watch with a `subscription_id` also sends
//! every poll's changes through that subscription's channel (type `watch.changed`). Changes of a watch commit in `seq` order, so
//! `since=` and `Last-Event-ID` never skip one.

use super::{Page, created_key, page_of};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ActingAs, ApiJson, ApiQuery, Caller, client_of};
use crate::quotas::{self, Quota};
use crate::state::AppState;
use crate::timefmt::format_ms;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use rubra_store::{NewWatch, Scope, Store, SubscriptionId, Watch, WatchChange, WatchId, WatchSpec};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};

/// Shortest interval between two polls of one watch.
pub const MIN_INTERVAL_MS: u32 = 100;
/// Longest interval: a day.
pub const MAX_INTERVAL_MS: u32 = 86_400_000;
/// Most extra request headers a watch may send.
const MAX_HEADERS: usize = 32;
/// Headers the poller sets itself, or that would break the request.
const RESERVED_HEADERS: [&str; 7] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "if-none-match",
    "if-modified-since",
    "upgrade",
];
/// Changes per page of `GET /watches/{id}/changes` (and per read of a stream).
const PAGE: u32 = 1000;
/// How often a stream looks at the table when no doorbell rang.
const STREAM_POLL: Duration = Duration::from_millis(250);
/// Comment lines on an idle stream so proxies keep it open.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// Body of `POST /watches`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWatch {
    /// The JSON source: http(s) on a `--fetch-allow` host (else 403 `fetch_forbidden`).
    #[schema(schema_with = crate::openapi::fetch_url)]
    url: String,
    /// Milliseconds between two polls, 100 to 86 400 000 [default 1000].
    #[serde(default, deserialize_with = "crate::integral::optional_integer")]
    #[schema(minimum = 100, maximum = 86_400_000)]
    interval_ms: Option<u32>,
    /// A JSON Pointer: watch only this part of the document (empty: all of it).
    #[schema(pattern = "^(/.*)?$")]
    pointer: Option<String>,
    /// Match array elements by this member instead of by position.
    #[schema(min_length = 1)]
    key: Option<String>,
    /// Extra request headers (at most 32; values are never shown back). Not the ones the
    /// poller sets itself (`Host`, `If-None-Match`, …).
    #[serde(default)]
    #[schema(schema_with = request_headers_schema)]
    headers: BTreeMap<String, String>,
    /// Also send every poll's changes through this subscription of the same client (422
    /// `invalid_subscription` when the client has no such subscription).
    #[schema(pattern = "^sub_[0-9a-fA-F]{16}$")]
    subscription_id: Option<String>,
}

/// A header name: an HTTP token (RFC 9110).
const HEADER_NAME: &str = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";

/// A header value as `reqwest`'s `HeaderValue::from_str` takes it: no control character but
/// tab, no DEL (other bytes of UTF-8 text pass as obs-text).
const HEADER_VALUE_PATTERN: &str = "^[^\\u0000-\\u0008\\u000A-\\u001F\\u007F]*$";

/// The schema of a watch's `headers`: at most [`MAX_HEADERS`] names that are tokens and not
/// [`RESERVED_HEADERS`] (in any case), each with a header value.
fn request_headers_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    // JSON Schema patterns have no case-insensitive flag: `[Hh][Oo][Ss][Tt]`.
    let any_case = |name: &str| -> String {
        name.chars()
            .map(|c| {
                if c.is_ascii_alphabetic() {
                    format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
                } else {
                    c.to_string()
                }
            })
            .collect()
    };
    let reserved: Vec<String> = RESERVED_HEADERS.iter().map(|n| any_case(n)).collect();
    let names = format!("^(?!({})$){HEADER_NAME}$", reserved.join("|"));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(crate::openapi::text(Some(1), None, Some(&names))))
        .additional_properties(Some(crate::openapi::text(
            None,
            None,
            Some(HEADER_VALUE_PATTERN),
        )))
        .max_properties(Some(MAX_HEADERS))
        .build()
}

/// `?client=` — the client an admin acts for.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClientQuery {
    /// An admin's: the client to act for.
    client: Option<String>,
}

/// `GET /watches` query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// An admin's: only this client's watches.
    client: Option<String>,
    /// Items per page, 1 to 1000 [default 100].
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A watch and the health of its polling.
#[derive(Debug, Serialize, ToSchema)]
pub struct WatchView {
    /// Its id.
    id: String,
    /// Whose.
    client_id: String,
    /// The JSON source.
    url: String,
    /// Milliseconds between two polls.
    interval_ms: u32,
    /// The part of the document watched.
    pointer: Option<String>,
    /// The member array elements are matched by.
    key: Option<String>,
    /// The names of the extra request headers (never their values).
    headers: Vec<String>,
    /// When it was made (RFC 3339, UTC, ms).
    created_at: String,
    /// `pending` (no successful poll yet), `ok` or `failing`.
    status: &'static str,
    /// The first successful poll, changes are counted from.
    baseline_at: Option<String>,
    /// The last successful poll.
    last_ok_at: Option<String>,
    /// The last failure's message; cleared by the next success.
    last_error: Option<String>,
    /// When the last failure happened.
    last_error_at: Option<String>,
    /// Failed polls in a row.
    consecutive_failures: u32,
    /// The seq of the newest change (0: none yet).
    last_seq: i64,
    /// The process polling it, while its lease runs.
    polled_by: Option<String>,
    /// The subscription its changes also go through.
    subscription_id: Option<String>,
}

/// The JSON of a watch. Header values are not shown back (they often hold tokens).
pub fn watch_json(w: &Watch) -> WatchView {
    let status = if w.failures > 0 {
        "failing"
    } else if w.baseline_at.is_none() {
        "pending"
    } else {
        "ok"
    };
    WatchView {
        id: w.id.to_string(),
        client_id: w.client_id.to_string(),
        url: w.spec.url.clone(),
        interval_ms: w.spec.interval_ms,
        pointer: w.spec.pointer.clone(),
        key: w.spec.key.clone(),
        headers: w.spec.headers.iter().map(|(n, _)| n.clone()).collect(),
        created_at: format_ms(w.created_at),
        status,
        baseline_at: w.baseline_at.map(format_ms),
        last_ok_at: w.last_ok_at.map(format_ms),
        last_error: w.last_error.clone(),
        last_error_at: w.last_error_at.map(format_ms),
        consecutive_failures: w.failures,
        last_seq: w.last_seq,
        polled_by: w.polled_by.clone(),
        subscription_id: w.spec.subscription.as_ref().map(ToString::to_string),
    }
}

/// A change as JSON, with `old`/`new` copied verbatim (numbers keep every digit).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WatchChange)]
pub struct ChangeJson<'a> {
    /// Counts from 1 per watch: the SSE event id and the `since` cursor.
    seq: i64,
    /// When the poll found it (RFC 3339, UTC, ms).
    ts: String,
    /// A JSON Pointer into the fetched document.
    path: &'a str,
    /// `add`, `remove` or `replace`.
    op: &'static str,
    /// The value before, as the source wrote it (absent for `add`: null).
    #[schema(value_type = Option<serde_json::Value>)]
    old: Option<&'a RawValue>,
    /// The value after, as the source wrote it (absent for `remove`: null).
    #[schema(value_type = Option<serde_json::Value>)]
    new: Option<&'a RawValue>,
}

/// The body of `GET /watches/{id}/changes`: the one list shape, with seqs as cursors.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangesPage<'a> {
    /// Changes with `seq` above the cursor, oldest first.
    items: Vec<ChangeJson<'a>>,
    /// The last seq of this page, to give back as `cursor` (or `since`); null when this
    /// page was not full, so no more changes are recorded yet.
    next_cursor: Option<String>,
}

fn raw(text: Option<&str>) -> Option<&RawValue> {
    // Stored values were produced by the JSON parser, so this cannot fail; a value that did
    // would show as null rather than break the whole page.
    text.and_then(|t| serde_json::from_str::<&RawValue>(t).ok())
}

impl<'a> ChangeJson<'a> {
    fn of(c: &'a WatchChange) -> Self {
        ChangeJson {
            seq: c.seq,
            ts: format_ms(c.ts),
            path: &c.path,
            op: c.op.as_str(),
            old: raw(c.old.as_deref()),
            new: raw(c.new.as_deref()),
        }
    }
}

fn parse_id(id: &str) -> ApiResult<WatchId> {
    WatchId::parse(id).ok_or_else(|| ApiError::not_found("watch"))
}

async fn find(state: &AppState, scope: &Scope, id: &str) -> ApiResult<Watch> {
    state
        .store
        .get_watch(scope, &parse_id(id)?)
        .await?
        .ok_or_else(|| ApiError::not_found("watch"))
}

fn no_subscription() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidSubscription,
        "subscription_id must name a subscription of the same client",
    )
}

fn validate(body: CreateWatch) -> ApiResult<WatchSpec> {
    let interval_ms = body.interval_ms.unwrap_or(1000);
    if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&interval_ms) {
        return Err(ApiError::new(
            ErrorCode::InvalidInterval,
            format!("interval_ms must be between {MIN_INTERVAL_MS} and {MAX_INTERVAL_MS}"),
        ));
    }
    if let Some(p) = &body.pointer {
        rubra_watch::check_pointer(p)
            .map_err(|e| ApiError::new(ErrorCode::InvalidPointer, e.to_string()))?;
    }
    if body.key.as_deref().is_some_and(str::is_empty) {
        return Err(ApiError::new(
            ErrorCode::InvalidKey,
            "key must name a member of the array elements",
        ));
    }
    if body.headers.len() > MAX_HEADERS {
        return Err(ApiError::new(
            ErrorCode::InvalidHeader,
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    let headers: Vec<(String, String)> = body.headers.into_iter().collect();
    if let Some((name, _)) = headers
        .iter()
        .find(|(n, _)| RESERVED_HEADERS.contains(&n.to_ascii_lowercase().as_str()))
    {
        return Err(ApiError::new(
            ErrorCode::InvalidHeader,
            format!("the header {name:?} is set by the poller itself"),
        ));
    }
    rubra_fetch::request_headers(&headers)
        .map_err(|e| ApiError::new(ErrorCode::InvalidHeader, e.to_string()))?;
    let subscription = body
        .subscription_id
        .map(|s| SubscriptionId::parse(&s).ok_or_else(no_subscription))
        .transpose()?;
    Ok(WatchSpec {
        url: body.url,
        interval_ms,
        pointer: body.pointer.filter(|p| !p.is_empty()),
        key: body.key,
        headers,
        subscription,
    })
}

/// `POST /watches` → 201 with the watch. The URL must be http(s) (400 `invalid_url`) on a
/// `--fetch-allow` host (403 `fetch_forbidden`, as for overlay URLs).
#[utoipa::path(
    post,
    path = "/watches",
    tag = "watches",
    params(ClientQuery),
    request_body = CreateWatch,
    responses((status = 201, description = "The watch", body = WatchView)),
)]
#[tracing::instrument(name = "http.watches.create", skip_all)]
pub async fn create(
    State(state): State<AppState>,
    Caller(who): Caller,
    ActingAs(actor): ActingAs,
    ApiQuery(q): ApiQuery<ClientQuery>,
    ApiJson(body): ApiJson<CreateWatch>,
) -> ApiResult<(StatusCode, Json<WatchView>)> {
    let spec = validate(body)?;
    state
        .remote_overlays
        .fetcher()
        .check_url(&spec.url)
        .map_err(ApiError::from)?;
    let client = client_of(&state, &who, q.client.as_deref()).await?;
    if let Some(sub) = &spec.subscription
        && state
            .store
            .get_subscription(&Scope::Client(client.clone()), sub)
            .await?
            .is_none()
    {
        return Err(no_subscription());
    }
    let limit = quotas::limit_u32(&state, &client, Quota::Watches).await?;
    let watch = state
        .store
        .create_watch(
            &NewWatch {
                client_id: client,
                spec,
                limit,
            },
            &actor,
        )
        .await?;
    tracing::info!(watch = %watch.id, client = %watch.client_id, url = %watch.spec.url, "watch created");
    state.wakeups.watches.ring();
    Ok((StatusCode::CREATED, Json(watch_json(&watch))))
}

/// `GET /watches`: the caller's watches (an admin's: everyone's, or `?client=`'s), oldest
/// first.
#[utoipa::path(
    get,
    path = "/watches",
    tag = "watches",
    params(ListQuery),
    responses((status = 200, description = "The watches, oldest first", body = Page<WatchView>)),
)]
#[tracing::instrument(name = "http.watches.list", skip_all)]
pub async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<WatchView>>> {
    let scope = match &q.client {
        Some(c) if who.is_admin() => Scope::Client(client_of(&state, &who, Some(c)).await?),
        _ => who.scope(),
    };
    let watches = state.store.list_watches(&scope).await?;
    let items = watches.iter().map(watch_json).collect();
    Ok(Json(page_of(
        items,
        |w: &WatchView| created_key(&w.created_at, &w.id),
        q.limit,
        q.cursor.as_deref(),
    )?))
}

/// `GET /watches/{id}`: the watch and the health of its polling.
#[utoipa::path(
    get,
    path = "/watches/{id}",
    tag = "watches",
    params(("id" = String, Path, description = "The watch's id")),
    responses((status = 200, description = "The watch", body = WatchView)),
)]
#[tracing::instrument(name = "http.watches.get", skip_all, fields(id = %id))]
pub async fn get(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<WatchView>> {
    Ok(Json(watch_json(&find(&state, &who.scope(), &id).await?)))
}

/// `DELETE /watches/{id}` → 204; its changes go with it. The process polling it stops within
/// a third of the lease time.
#[utoipa::path(
    delete,
    path = "/watches/{id}",
    tag = "watches",
    params(("id" = String, Path, description = "The watch's id")),
    responses((status = 204, description = "Deleted, with its changes")),
)]
#[tracing::instrument(name = "http.watches.delete", skip_all, fields(id = %id))]
pub async fn delete(
    State(state): State<AppState>,
    Caller(who): Caller,
    ActingAs(actor): ActingAs,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id)?;
    if state.store.delete_watch(&who.scope(), &id, &actor).await? {
        tracing::info!(watch = %id, "watch deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("watch"))
    }
}

/// `GET /watches/{id}/changes` query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// Changes after this seq: the `next_cursor` of the previous page [default 0; a
    /// negative one counts as 0].
    cursor: Option<i64>,
    /// The same as `cursor` (a seq), for clients that poll with the last seq they saw.
    since: Option<i64>,
    /// Changes per page, 1 to 1000 (larger is taken as 1000) [default 1000].
    limit: Option<u32>,
}

/// `GET /watches/{id}/changes?cursor=SEQ&limit=N`: changes with `seq > cursor` (default 0;
/// `since` is the same), oldest first, at most `limit` (default and most 1000);
/// `next_cursor` continues while pages are full.
#[utoipa::path(
    get,
    path = "/watches/{id}/changes",
    tag = "watches",
    params(("id" = String, Path, description = "The watch's id"), ChangesQuery),
    responses((status = 200, description = "Changes, oldest first", body = ChangesPage)),
)]
#[tracing::instrument(name = "http.watches.changes", skip_all, fields(id = %id))]
pub async fn changes(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ChangesQuery>,
) -> ApiResult<impl IntoResponse> {
    let watch = find(&state, &who.scope(), &id).await?;
    if q.cursor.is_some() && q.since.is_some() {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            "give cursor or since, not both",
        ));
    }
    let since = q.cursor.or(q.since).unwrap_or(0).max(0);
    let limit = q.limit.unwrap_or(PAGE).clamp(1, PAGE);
    let rows = state.store.watch_changes(&watch.id, since, limit).await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|c| c.seq.to_string()))
        .flatten();
    let body = serde_json::to_vec(&ChangesPage {
        items: rows.iter().map(ChangeJson::of).collect(),
        next_cursor: next,
    })
    .map_err(|e| ApiError::internal(&e))?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    ))
}

/// `GET /watches/{id}/stream` query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Replay every change after this seq first (as the `Last-Event-ID` header does).
    #[param(pattern = "^\\s*(?:[+-]?[0-9]{1,18})?\\s*$")]
    last_event_id: Option<String>,
}

/// `GET /watches/{id}/stream`: the watch's changes as Server-Sent Events (`event: change`,
/// `id:` its seq). With `Last-Event-ID` (or `?last_event_id=`) the stream first replays
/// every change after it; without, it starts at the present.
#[utoipa::path(
    get,
    path = "/watches/{id}/stream",
    tag = "watches",
    params(
        ("id" = String, Path, description = "The watch's id"),
        StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, nullable = false, pattern = "^\\s*(?:[+-]?[0-9]{1,18})?\\s*$", description = "Replay every change after this seq first"),
    ),
    responses((status = 200, description = "Server-Sent Events: `event: change`, `id:` its seq, `data:` a WatchChange", content_type = "text/event-stream", body = crate::openapi::SseEvent)),
)]
#[tracing::instrument(name = "http.watches.stream", skip_all, fields(id = %id))]
pub async fn stream(
    State(state): State<AppState>,
    Caller(who): Caller,
    axum::Extension(key): axum::Extension<crate::extract::CallerKey>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<StreamQuery>,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let watch = find(&state, &who.scope(), &id).await?;
    // Counted against the caller until `follow` ends (the client went away).
    let slot = state.streams.open(&who)?;
    // Both are read, so a bad query is refused even where the header wins.
    let seq = |s: Option<&str>| -> ApiResult<Option<i64>> {
        match s.map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => s.parse::<i64>().map(Some).map_err(|_| {
                ApiError::new(
                    ErrorCode::InvalidLastEventId,
                    "Last-Event-ID is a change seq",
                )
            }),
        }
    };
    let from_query = seq(q.last_event_id.as_deref())?;
    let header = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("?"));
    let cursor = seq(header)?.or(from_query).unwrap_or(watch.last_seq);
    let (tx, rx) = mpsc::channel(64);
    // Ends with the process, or when the key is revoked or its client disabled.
    let stop = crate::extract::until_key_refused(&state, &key, &tx);
    let following = follow(state.store.clone(), watch.id, cursor, tx, stop);
    tokio::spawn(async move {
        let _slot = slot;
        following.await;
    });
    Ok(Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::new().interval(HEARTBEAT)))
}

/// Sends every change after `cursor` as it is recorded, until the client leaves, the watch
/// is deleted or the server shuts down.
async fn follow(
    store: Arc<dyn Store>,
    watch: WatchId,
    mut cursor: i64,
    tx: mpsc::Sender<Result<Event, Infallible>>,
    shutdown: CancellationToken,
) {
    let mut bell = store.bells().watch_changes.listen();
    let mut idle_passes = 0u32;
    loop {
        match store.watch_changes(&watch, cursor, PAGE).await {
            Ok(rows) => {
                let full = rows.len() == PAGE as usize;
                for c in &rows {
                    cursor = c.seq;
                    let data = match serde_json::to_string(&ChangeJson::of(c)) {
                        Ok(d) => d,
                        Err(e) => {
                            tracing::warn!(error = %e, "encoding a change failed");
                            continue;
                        }
                    };
                    let event = Event::default()
                        .id(c.seq.to_string())
                        .event("change")
                        .data(data);
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                if full {
                    continue;
                }
                idle_passes = if rows.is_empty() { idle_passes + 1 } else { 0 };
            }
            Err(e) => tracing::warn!(error = %e, "reading watch changes for a stream failed"),
        }
        // Now and then, end the stream of a watch that was deleted.
        if idle_passes >= 40 {
            idle_passes = 0;
            if let Ok(None) = store.get_watch(&Scope::All, &watch).await {
                return;
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tx.closed() => return,
            _ = bell.changed() => {}
            () = tokio::time::sleep(STREAM_POLL) => {}
        }
    }
}
