//! `Idempotency-Key` on the `POST`s that create something — `/events`, `/jobs`,
//! `/subscriptions`, `/watches`, `/messages`: a client that retries after a timeout gets the
//! first answer again instead of a duplicate.
//!
//! The key is the client's (all of a client's keys share one namespace; the admin keys
//! share another): the same key with the same request (method, path and query, body) within
//! [`TTL`] answers the stored status and body with `Idempotency-Replayed: true`, without
//! running the request; the same key with another request is `422 idempotency_key_reused`;
//! while the first request still runs, `409 idempotency_key_in_use` (retry shortly). An
//! answer is kept when it would be the same if repeated (2xx and the 4xx of a bad request);
//! after a 5xx, a 429 or a 401/403 the key is let go, so the retry runs. The keys live in
//! the database, so a retry sent to another process of a cluster is answered the same.
//! A key claimed by a process that died before answering is taken over by the first retry
//! after the request timeout + 30 s, which runs the request again. For `POST /events` the
//! answer is written in the batch's own transaction ([`IdempotencyTicket`]), so a batch that
//! committed just before the crash is replayed, never counted twice; for the other routes the
//! answer is stored just after the work, and work that committed in that gap is done again.

use crate::error::{ApiError, ErrorCode};
use crate::extract::Caller;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rubra_store::{Claim, Principal, StoredResponse};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// How long a key and its answer are kept.
pub const TTL: Duration = Duration::from_secs(24 * 3600);

/// How long past the request timeout a claim without an answer is still taken for running.
const ABANDONED_AFTER_TIMEOUT: Duration = Duration::from_secs(30);

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// The longest key accepted, in bytes.
pub(crate) const MAX_KEY_BYTES: usize = 255;

/// The routes whose `POST` honours the header.
pub(crate) const ROUTES: [&str; 5] = [
    "/events",
    "/jobs",
    "/subscriptions",
    "/watches",
    "/messages",
];

/// Put in the request's extensions when its `Idempotency-Key` was claimed: a handler whose
/// work commits in one store transaction (`POST /events`) keeps the answer in that same
/// transaction ([`IdempotencyTicket::answer`]) and marks its response [`AnswerKept`].
#[derive(Clone, Debug)]
pub(crate) struct IdempotencyTicket {
    subject: String,
    key: String,
}

impl IdempotencyTicket {
    /// The answer to keep under this key, for the store.
    pub(crate) fn answer(
        &self,
        status: StatusCode,
        content_type: &str,
        body: &[u8],
    ) -> rubra_store::IdempotentAnswer {
        rubra_store::IdempotentAnswer {
            subject: self.subject.clone(),
            key: self.key.clone(),
            response: StoredResponse {
                status: status.as_u16(),
                content_type: Some(content_type.to_owned()),
                body: body.to_vec(),
            },
        }
    }
}

/// In a response's extensions: its answer was kept under the key with the work itself.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AnswerKept;

/// Middleware: answers a retried `POST` from the key's stored answer (see the module docs).
pub async fn idempotency(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST || !ROUTES.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get(HEADER) else {
        return next.run(req).await;
    };
    let key = match key.to_str() {
        Ok(k)
            if (1..=MAX_KEY_BYTES).contains(&k.len())
                && k.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            k.to_owned()
        }
        _ => {
            return ApiError::new(
                ErrorCode::InvalidIdempotencyKey,
                format!("Idempotency-Key is 1 to {MAX_KEY_BYTES} visible ASCII characters"),
            )
            .into_response();
        }
    };
    let (mut parts, body) = req.into_parts();
    // Authenticated (and charged) here; the handler finds the caller already extracted.
    let subject = match Caller::from_request_parts(&mut parts, &state).await {
        Ok(Caller(Principal::Client(id))) => id.as_str().to_owned(),
        Ok(Caller(Principal::Admin)) => "admin".to_owned(),
        Err(e) => return e.into_response(),
    };
    let bytes = match axum::body::to_bytes(body, state.settings.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => return ApiError::body_too_large().into_response(),
    };
    let hash = request_hash(&parts.method, parts.uri.to_string().as_bytes(), &bytes);
    let ttl_ms = i64::try_from(TTL.as_millis()).unwrap_or(i64::MAX);
    // A claim still unanswered this long after it was made outlived every request timeout:
    // its process died before answering, and the retry runs the request.
    let abandoned_ms =
        i64::try_from((state.settings.request_timeout + ABANDONED_AFTER_TIMEOUT).as_millis())
            .unwrap_or(i64::MAX);
    let claim = state
        .store
        .claim_idempotency_key(
            &subject,
            &key,
            &hash,
            rubra_store::now_ms(),
            ttl_ms,
            abandoned_ms,
        )
        .await;
    match claim {
        Err(e) => return ApiError::from(e).into_response(),
        Ok(Claim::Replay(stored)) => return replay(stored),
        Ok(Claim::Mismatch) => {
            return ApiError::new(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was used for another request in the last 24 h",
            )
            .into_response();
        }
        Ok(Claim::InProgress) => {
            return ApiError::new(
                ErrorCode::IdempotencyKeyInUse,
                "the first request with this Idempotency-Key is still running; retry shortly",
            )
            .with_retry_after(1)
            .into_response();
        }
        Ok(Claim::New) => {}
    }
    parts.extensions.insert(IdempotencyTicket {
        subject: subject.clone(),
        key: key.clone(),
    });
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if resp.extensions().get::<AnswerKept>().is_some() {
        return resp;
    }
    if !kept(resp.status()) {
        if let Err(e) = state.store.release_idempotency_key(&subject, &key).await {
            tracing::warn!(error = %e, "could not let an idempotency key go");
        }
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            let _ = state.store.release_idempotency_key(&subject, &key).await;
            return ApiError::internal(&e).into_response();
        }
    };
    let stored = StoredResponse {
        status: parts.status.as_u16(),
        content_type: parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: body.to_vec(),
    };
    if let Err(e) = state
        .store
        .complete_idempotency_key(&subject, &key, &stored)
        .await
    {
        // The work is done; a retry will see the key in progress until it expires, which is
        // better than doing the work twice.
        tracing::warn!(error = %e, "could not keep an idempotent answer");
    }
    Response::from_parts(parts, Body::from(body))
}

/// Whether an answer is the one a repeat of the request must get: a success, or a refusal
/// of the request itself. Not a 5xx, a rate limit, an authentication failure or a conflict
/// with the state of the moment, which a retry may get past.
fn kept(status: StatusCode) -> bool {
    status.is_success()
        || matches!(
            status,
            StatusCode::BAD_REQUEST
                | StatusCode::NOT_FOUND
                | StatusCode::PAYLOAD_TOO_LARGE
                | StatusCode::UNSUPPORTED_MEDIA_TYPE
                | StatusCode::UNPROCESSABLE_ENTITY
        )
}

/// The hex SHA-256 of the method, the path with its query, and the body.
fn request_hash(method: &Method, uri: &[u8], body: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [method.as_str().as_bytes(), uri, body] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The stored answer again, marked as a replay.
fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut resp = (status, stored.body).into_response();
    let headers = resp.headers_mut();
    if let Some(ct) = stored
        .content_type
        .and_then(|ct| HeaderValue::from_str(&ct).ok())
    {
        headers.insert(CONTENT_TYPE, ct);
    }
    headers.insert("idempotency-replayed", HeaderValue::from_static("true"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_hash_tells_method_path_and_body_apart() {
        let a = request_hash(&Method::POST, b"/events", b"[1]");
        assert_eq!(a, request_hash(&Method::POST, b"/events", b"[1]"));
        assert_ne!(a, request_hash(&Method::POST, b"/events", b"[2]"));
        assert_ne!(a, request_hash(&Method::POST, b"/jobs", b"[1]"));
        // The parts are length-prefixed: moving a byte across a boundary changes the hash.
        assert_ne!(
            request_hash(&Method::POST, b"/events?", b"x"),
            request_hash(&Method::POST, b"/events", b"?x")
        );
    }

    #[test]
    fn only_answers_a_repeat_must_get_are_kept() {
        assert!(kept(StatusCode::CREATED));
        assert!(kept(StatusCode::ACCEPTED));
        assert!(kept(StatusCode::UNPROCESSABLE_ENTITY));
        assert!(!kept(StatusCode::TOO_MANY_REQUESTS));
        assert!(!kept(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!kept(StatusCode::UNAUTHORIZED));
        assert!(!kept(StatusCode::CONFLICT));
    }
}
