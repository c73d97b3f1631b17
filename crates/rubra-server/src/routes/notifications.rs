//! `/notifications`: the delivery log (every attempt, its status and latency) and the live
//! stream of a client's notifications as Server-Sent Events.
//!
//! The stream: each event's `id` is the notification's `seq`; a client reconnecting with
//! `Last-Event-ID` (or `?last_event_id=`) gets what it missed. The handler waits on the
//! in-process doorbell (rung on PostgreSQL by other processes' `NOTIFY`s) and also polls, since
//! the table is the truth. On PostgreSQL a seq can become visible after a higher one (identity
//! values are taken before commit), so the stream keeps re-reading the last
//! `replay_settle_ms` of rows — sending none twice — and a reconnect resumes from the last
//! settled seq, which may repeat notifications of the last few seconds (at-least-once;
//! deduplicate by id). The request time limit does not cut a stream: it only bounds the time
//! to the response head.

use super::Page;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ApiQuery, Caller};
use crate::state::AppState;
use crate::timefmt::format_ms;
use crate::workers::notify::{notification_body, webhook_id};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use rubra_store::{ClientId, LogPage, Principal, Scope, Store, SubscriptionId, now_ms};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};

/// How often a stream looks at the table when no doorbell rang.
const STREAM_POLL: Duration = Duration::from_millis(250);
/// Comment lines sent on an idle stream so proxies keep it open.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// Rows read per query.
const PAGE: u32 = 500;

/// `GET /notifications` query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Only this subscription's attempts.
    #[param(pattern = "^sub_[0-9a-f]{16}$")]
    subscription: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    cursor: Option<String>,
    /// Rows per page, 1 to 1000 [default 100].
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// An admin's: only this client's attempts.
    client: Option<String>,
}

/// One delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryAttemptView {
    /// The log row's id.
    id: i64,
    /// The notification's id as receivers see it (`webhook-id`).
    notification_id: String,
    /// The notification's seq (its SSE event id).
    seq: i64,
    /// Its subscription.
    subscription_id: String,
    /// The owner.
    client_id: String,
    /// 1 for the first attempt.
    attempt: i64,
    /// When the attempt ended (RFC 3339, UTC, ms).
    at: String,
    /// `delivered`, `retrying`, `failed`, or `superseded`: the call was made but its lease had
    /// run out and another worker had taken the notification over, so its verdict was not
    /// recorded (the taker's attempt is the one that counts).
    outcome: String,
    /// The receiver's HTTP status, if it answered.
    status_code: Option<i64>,
    /// How long the attempt took.
    latency_ms: i64,
    /// Why it failed.
    error: Option<String>,
}

fn admin_client(q: Option<&String>) -> ApiResult<Option<ClientId>> {
    q.map(|c| ClientId::parse(c).ok_or_else(|| ApiError::not_found("client")))
        .transpose()
}

/// `GET /notifications?subscription=&cursor=&limit=`: the delivery log, newest first;
/// `next_cursor` continues it.
#[utoipa::path(
    get,
    path = "/notifications",
    tag = "notifications",
    params(LogQuery),
    responses((status = 200, description = "A page of the delivery log, newest first", body = Page<DeliveryAttemptView>)),
)]
#[tracing::instrument(name = "http.notifications.log", skip_all)]
pub async fn log(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> ApiResult<Json<Page<DeliveryAttemptView>>> {
    let scope = match (&who, admin_client(q.client.as_ref())?) {
        (Principal::Admin, Some(c)) => Scope::Client(c),
        _ => who.scope(),
    };
    let subscription = match q.subscription.as_deref() {
        None => None,
        Some(s) => Some(SubscriptionId::parse(s).ok_or_else(|| {
            ApiError::new(ErrorCode::InvalidSubscription, "not a subscription id")
        })?),
    };
    let before_id = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(c.parse::<i64>().map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidCursor,
                "cursor is the next_cursor of a previous page",
            )
        })?),
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            "limit must be between 1 and 1000",
        ));
    }
    let rows = state
        .store
        .list_delivery_attempts(
            &scope,
            &LogPage {
                subscription,
                before_id,
                limit,
            },
        )
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    let items = rows
        .iter()
        .map(|r| DeliveryAttemptView {
            id: r.id,
            notification_id: webhook_id(r.notification_seq),
            seq: r.notification_seq,
            subscription_id: r.subscription_id.to_string(),
            client_id: r.client_id.to_string(),
            attempt: r.attempt,
            at: format_ms(r.at),
            outcome: r.outcome.clone(),
            status_code: r.status_code,
            latency_ms: r.latency_ms,
            error: r.error.clone(),
        })
        .collect();
    Ok(Json(Page {
        items,
        next_cursor: next,
    }))
}

/// `GET /notifications/stream` query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Resume after this seq (as the `Last-Event-ID` header does).
    #[param(pattern = "^\\s*(?:[+-]?[0-9]{1,18})?\\s*$")]
    last_event_id: Option<String>,
    /// An admin's: whose notifications (required for an admin).
    client: Option<String>,
}

/// `GET /notifications/stream`: the caller's notifications as Server-Sent Events.
#[utoipa::path(
    get,
    path = "/notifications/stream",
    tag = "notifications",
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, nullable = false, pattern = "^\\s*(?:[+-]?[0-9]{1,18})?\\s*$", description = "Resume after this seq"),
    ),
    responses((status = 200, description = "Server-Sent Events: one event per notification, its `id` the seq", content_type = "text/event-stream", body = crate::openapi::SseEvent)),
)]
#[tracing::instrument(name = "http.notifications.stream", skip_all)]
pub async fn stream(
    State(state): State<AppState>,
    Caller(who): Caller,
    axum::Extension(key): axum::Extension<crate::extract::CallerKey>,
    ApiQuery(q): ApiQuery<StreamQuery>,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let client = match (&who, admin_client(q.client.as_ref())?) {
        (Principal::Client(id), _) => id.clone(),
        (Principal::Admin, Some(c)) => c,
        (Principal::Admin, None) => {
            return Err(ApiError::new(
                ErrorCode::ClientRequired,
                "an admin key has no client of its own: add ?client=CLIENT_ID",
            ));
        }
    };
    // Counted against the caller until the stream's reader ends (the client went away).
    let slot = state.streams.open(&who)?;
    // Both are read, so a bad query is refused even where the header wins.
    let from_query = seq_after(q.last_event_id.as_deref())?;
    let header = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("?"));
    let last = seq_after(header)?.or(from_query);
    let store = state.store.clone();
    let settle = store.replay_settle_ms();
    let mut reader = StreamReader {
        store: store.clone(),
        client,
        settle,
        low: 0,
        sent: BTreeSet::new(),
    };
    match last {
        // Resume after what the client saw, re-reading the unsettled tail on PostgreSQL.
        Some(l) if settle == 0 => reader.low = l,
        Some(l) => {
            reader.low = store
                .settled_cursor(&reader.client, l, now_ms() - settle)
                .await?
        }
        // A new stream starts at the present: the rows already there count as sent.
        None => {
            let latest = store.latest_notification_seq(&reader.client).await?;
            reader.low = if settle == 0 {
                latest
            } else {
                store
                    .settled_cursor(&reader.client, latest, now_ms() - settle)
                    .await?
            };
            // Only rows that exist now: one committing later below `latest` is still sent.
            let present = store
                .notifications_after(&reader.client, reader.low, PAGE)
                .await?;
            reader
                .sent
                .extend(present.iter().map(|n| n.seq).filter(|&s| s <= latest));
        }
    }
    let (tx, rx) = mpsc::channel(64);
    // Ends with the process, or when the key is revoked or its client disabled.
    let shutdown = crate::extract::until_key_refused(&state, &key, &tx);
    tokio::spawn(async move {
        let _slot = slot;
        reader.run(tx, shutdown).await;
    });
    Ok(Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::new().interval(HEARTBEAT)))
}

struct StreamReader {
    store: Arc<dyn Store>,
    client: ClientId,
    settle: i64,
    /// Every notification with seq ≤ low has been sent (or was before the stream began).
    low: i64,
    /// Seqs above `low` already sent.
    sent: BTreeSet<i64>,
}

impl StreamReader {
    async fn run(
        mut self,
        tx: mpsc::Sender<Result<Event, Infallible>>,
        shutdown: CancellationToken,
    ) {
        let mut bell = self.store.bells().outbox.listen();
        loop {
            match self.pass(&tx).await {
                Ok(true) => {}
                Ok(false) => return, // the client went away
                Err(e) => tracing::warn!(error = %e, "reading notifications for a stream failed"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tx.closed() => return,
                _ = bell.changed() => {}
                () = tokio::time::sleep(STREAM_POLL) => {}
            }
        }
    }

    /// Sends every unsent row above `low`, then moves `low` over the settled prefix. False
    /// when the client is gone.
    async fn pass(
        &mut self,
        tx: &mpsc::Sender<Result<Event, Infallible>>,
    ) -> rubra_store::Result<bool> {
        let settled_before = now_ms() - self.settle;
        let mut cursor = self.low;
        let mut settled = true;
        loop {
            let rows = self
                .store
                .notifications_after(&self.client, cursor, PAGE)
                .await?;
            for n in &rows {
                cursor = n.seq;
                if self.sent.insert(n.seq) {
                    let event = Event::default()
                        .id(n.seq.to_string())
                        .event("notification")
                        .data(notification_body(n));
                    if tx.send(Ok(event)).await.is_err() {
                        return Ok(false);
                    }
                }
                settled = settled && (self.settle == 0 || n.created_at < settled_before);
                if settled {
                    self.low = n.seq;
                }
            }
            if rows.len() < PAGE as usize {
                break;
            }
        }
        let low = self.low;
        self.sent.retain(|&s| s > low);
        Ok(true)
    }
}

/// The seq a `Last-Event-ID` (header or query) names; blank is none.
fn seq_after(value: Option<&str>) -> ApiResult<Option<i64>> {
    match value.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s.parse::<i64>().map(Some).map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidLastEventId,
                "Last-Event-ID is a notification seq",
            )
        }),
    }
}
