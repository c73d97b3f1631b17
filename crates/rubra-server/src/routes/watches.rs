//! `/watches`: JSON sources polled on an interval, and every change found in them (DESIGN §8).
//!
//! A change is `{seq, ts, path, op, old, new}`: `seq` counts from 1 per watch (the SSE event
//! id and the `since=` cursor), `path` is a JSON Pointer into the fetched document, `old` and
//! `new` are the values exactly as the source wrote them. The first successful poll sets the
//! baseline (`baseline_at`) and is not a change. A watch with a `subscription_id` also sends
//! every poll's changes through that subscription's channel (type `watch.changed`). Changes of a watch commit in `seq` order, so
//! `since=` and `Last-Event-ID` never skip one.

use crate::error::{ApiError, ApiResult};
use crate::extract::{ActingAs, ApiJson, ApiQuery, Caller, client_of};
use crate::quotas::{self, Quota};
use crate::state::AppState;
use crate::timefmt::format_ms;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use rubra_store::{
    NewWatch, Scope, Store, SubscriptionId, Watch, WatchChange, WatchId, WatchSpec,
    watch_changes_bell,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWatch {
    url: String,
    interval_ms: Option<u32>,
    pointer: Option<String>,
    key: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    subscription_id: Option<String>,
}

/// `?client=` — the client an admin acts for.
#[derive(Debug, Default, Deserialize)]
pub struct ClientQuery {
    client: Option<String>,
}

/// The JSON of a watch. Header values are not shown back (they often hold tokens).
pub fn watch_json(w: &Watch) -> Value {
    let status = if w.failures > 0 {
        "failing"
    } else if w.baseline_at.is_none() {
        "pending"
    } else {
        "ok"
    };
    let headers: Vec<&str> = w.spec.headers.iter().map(|(n, _)| n.as_str()).collect();
    json!({
        "id": w.id,
        "client_id": w.client_id,
        "url": w.spec.url,
        "interval_ms": w.spec.interval_ms,
        "pointer": w.spec.pointer,
        "key": w.spec.key,
        "headers": headers,
        "created_at": format_ms(w.created_at),
        "status": status,
        "baseline_at": w.baseline_at.map(format_ms),
        "last_ok_at": w.last_ok_at.map(format_ms),
        "last_error": w.last_error,
        "last_error_at": w.last_error_at.map(format_ms),
        "consecutive_failures": w.failures,
        "last_seq": w.last_seq,
        "polled_by": w.polled_by,
        "subscription_id": w.spec.subscription,
    })
}

/// A change as JSON, with `old`/`new` copied verbatim (numbers keep every digit).
#[derive(Debug, Serialize)]
pub struct ChangeJson<'a> {
    seq: i64,
    ts: String,
    path: &'a str,
    op: &'static str,
    old: Option<&'a RawValue>,
    new: Option<&'a RawValue>,
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
    ApiError::unprocessable(
        "invalid_subscription",
        "subscription_id must name a subscription of the same client",
    )
}

fn validate(body: CreateWatch) -> ApiResult<WatchSpec> {
    let interval_ms = body.interval_ms.unwrap_or(1000);
    if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&interval_ms) {
        return Err(ApiError::unprocessable(
            "invalid_interval",
            format!("interval_ms must be between {MIN_INTERVAL_MS} and {MAX_INTERVAL_MS}"),
        ));
    }
    if let Some(p) = &body.pointer {
        rubra_watch::check_pointer(p)
            .map_err(|e| ApiError::unprocessable("invalid_pointer", e.to_string()))?;
    }
    if body.key.as_deref().is_some_and(str::is_empty) {
        return Err(ApiError::unprocessable(
            "invalid_key",
            "key must name a member of the array elements",
        ));
    }
    if body.headers.len() > MAX_HEADERS {
        return Err(ApiError::unprocessable(
            "invalid_header",
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    let headers: Vec<(String, String)> = body.headers.into_iter().collect();
    if let Some((name, _)) = headers
        .iter()
        .find(|(n, _)| RESERVED_HEADERS.contains(&n.to_ascii_lowercase().as_str()))
    {
        return Err(ApiError::unprocessable(
            "invalid_header",
            format!("the header {name:?} is set by the poller itself"),
        ));
    }
    rubra_fetch::request_headers(&headers)
        .map_err(|e| ApiError::unprocessable("invalid_header", e.to_string()))?;
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
#[tracing::instrument(name = "http.watches.create", skip_all)]
pub async fn create(
    State(state): State<AppState>,
    Caller(who): Caller,
    ActingAs(actor): ActingAs,
    ApiQuery(q): ApiQuery<ClientQuery>,
    ApiJson(body): ApiJson<CreateWatch>,
) -> ApiResult<(StatusCode, Json<Value>)> {
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
#[tracing::instrument(name = "http.watches.list", skip_all)]
pub async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<ClientQuery>,
) -> ApiResult<Json<Value>> {
    let scope = match &q.client {
        Some(c) if who.is_admin() => Scope::Client(client_of(&state, &who, Some(c)).await?),
        _ => who.scope(),
    };
    let watches = state.store.list_watches(&scope).await?;
    let items: Vec<Value> = watches.iter().map(watch_json).collect();
    Ok(Json(json!({ "items": items })))
}

/// `GET /watches/{id}`: the watch and the health of its polling.
#[tracing::instrument(name = "http.watches.get", skip_all, fields(id = %id))]
pub async fn get(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(watch_json(&find(&state, &who.scope(), &id).await?)))
}

/// `DELETE /watches/{id}` → 204; its changes go with it. The process polling it stops within
/// a third of the lease time.
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
#[derive(Debug, Default, Deserialize)]
pub struct ChangesQuery {
    since: Option<i64>,
    limit: Option<u32>,
}

/// `GET /watches/{id}/changes?since=SEQ&limit=N`: changes with `seq > since` (default 0),
/// oldest first, at most `limit` (default and most 1000); `next_since` continues.
#[tracing::instrument(name = "http.watches.changes", skip_all, fields(id = %id))]
pub async fn changes(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ChangesQuery>,
) -> ApiResult<impl IntoResponse> {
    let watch = find(&state, &who.scope(), &id).await?;
    let since = q.since.unwrap_or(0).max(0);
    let limit = q.limit.unwrap_or(PAGE).clamp(1, PAGE);
    let rows = state.store.watch_changes(&watch.id, since, limit).await?;
    let next = rows.last().map_or(since, |c| c.seq);
    #[derive(Serialize)]
    struct Page<'a> {
        changes: Vec<ChangeJson<'a>>,
        next_since: i64,
    }
    let body = serde_json::to_vec(&Page {
        changes: rows.iter().map(ChangeJson::of).collect(),
        next_since: next,
    })
    .map_err(|e| ApiError::internal(&e))?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    ))
}

/// `GET /watches/{id}/stream` query.
#[derive(Debug, Default, Deserialize)]
pub struct StreamQuery {
    last_event_id: Option<String>,
}

/// `GET /watches/{id}/stream`: the watch's changes as Server-Sent Events (`event: change`,
/// `id:` its seq). With `Last-Event-ID` (or `?last_event_id=`) the stream first replays
/// every change after it; without, it starts at the present.
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
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(q.last_event_id);
    let cursor = match last.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => watch.last_seq,
        Some(s) => s.parse::<i64>().map_err(|_| {
            ApiError::bad_request("invalid_last_event_id", "Last-Event-ID is a change seq")
        })?,
    };
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
    let mut bell = watch_changes_bell();
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
