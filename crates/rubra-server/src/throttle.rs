//! Upload pacing: each client's request bodies are read at most at
//! `--rate-limit-upload-bytes-per-sec` (after a burst of `--rate-limit-upload-burst-bytes`),
//! per process.
//!
//! A request rate limit counts requests, not bytes: a client flooding `POST /red` with large
//! images stays under it and still makes the server read hundreds of megabytes a second, only
//! to refuse most of them (503 `overloaded`) once read — CPU the other clients' requests then
//! wait for. Refusing such a request before its body is read does not help: the connection
//! must then be closed with the body unread, and the client sees a reset instead of the
//! answer. So the body is read, but slowly: [`throttle_uploads`] wraps the body of a request
//! whose key is in the key cache in a [`Throttled`] body, which after each frame takes its
//! bytes from the client's bucket and, when the bucket is empty, waits before reading on.
//! While it waits the socket is not read, the kernel's receive window fills and the sender
//! stalls (TCP back-pressure): the flood costs neither side CPU, and every request is still
//! answered. A client within its rate is never slowed.
//!
//! Requests whose key is not cached yet (the first of a key in a while) are not paced; the
//! `Caller` extractor caches the key, so the client's next request is.

use crate::ratelimit::{Limit, RateLimiter};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use rubra_store::{ApiKey, Principal};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::time::Sleep;

/// The largest body frame charged at once; the burst must hold at least one.
pub const MAX_FRAME_BYTES: u32 = 1 << 20;

/// Middleware: paces the body of every request from a cached key (see the module docs).
pub async fn throttle_uploads(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let req = match subject(&state, &req) {
        Some(subject) => {
            let limit = Limit {
                rps: state.settings.rate_limit_upload_bytes_per_sec,
                burst: state.settings.rate_limit_upload_burst_bytes,
            };
            let uploads = state.uploads.clone();
            req.map(|body| Body::new(Throttled::new(body, uploads, subject, limit)))
        }
        None => req,
    };
    next.run(req).await
}

/// Whose bucket pays for this request's body: its client's (all of a client's keys share
/// one), or the admins' together; `None` for a request without a body or a cached key.
fn subject(state: &AppState, req: &Request) -> Option<Box<str>> {
    if req.body().is_end_stream() {
        return None;
    }
    let token = req
        .headers()
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?
        .trim();
    let holder = state.keys.cached(&ApiKey::from_token(token).hash())??;
    Some(match holder.principal {
        Principal::Client(id) => id.as_str().into(),
        Principal::Admin => "admin".into(),
    })
}

/// A request body read no faster than its subject's byte rate.
pub struct Throttled {
    inner: Body,
    uploads: Arc<RateLimiter>,
    subject: Box<str>,
    limit: Limit,
    /// The pause before `held` is handed on.
    pause: Option<Pin<Box<Sleep>>>,
    /// A frame read ahead of its bytes' time.
    held: Option<Frame<Bytes>>,
}

impl Throttled {
    /// Paces `inner` on `subject`'s bucket of `uploads` under `limit`.
    pub fn new(inner: Body, uploads: Arc<RateLimiter>, subject: Box<str>, limit: Limit) -> Self {
        Throttled {
            inner,
            uploads,
            subject,
            limit,
            pause: None,
            held: None,
        }
    }
}

impl http_body::Body for Throttled {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Some(pause) = this.pause.as_mut() {
            ready!(pause.as_mut().poll(cx));
            this.pause = None;
            return Poll::Ready(this.held.take().map(Ok));
        }
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        let Some(Ok(frame)) = frame else {
            return Poll::Ready(frame);
        };
        let bytes = frame.data_ref().map_or(0, Bytes::len);
        // A frame is at most what one read returns; charged in pieces the burst holds.
        let mut wait = std::time::Duration::ZERO;
        let mut left = bytes;
        while left > 0 {
            let piece = left.min(MAX_FRAME_BYTES as usize);
            // `piece` ≤ MAX_FRAME_BYTES, a u32.
            let n = u32::try_from(piece).unwrap_or(MAX_FRAME_BYTES);
            wait = this.uploads.reserve_n(&this.subject, this.limit, n);
            left -= piece;
        }
        if wait.is_zero() {
            return Poll::Ready(Some(Ok(frame)));
        }
        rubra_telemetry::metrics::counter!("rubra_upload_pauses_total").increment(1);
        rubra_telemetry::metrics::counter!("rubra_upload_paused_milliseconds_total")
            .increment(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
        let mut pause = Box::pin(tokio::time::sleep(wait));
        if pause.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Ok(frame)));
        }
        this.pause = Some(pause);
        this.held = Some(frame);
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let hint = self.inner.size_hint();
        let held = self
            .held
            .as_ref()
            .and_then(Frame::data_ref)
            .map_or(0, |d| d.len() as u64);
        if held == 0 {
            return hint;
        }
        let mut with_held = SizeHint::new();
        with_held.set_lower(hint.lower().saturating_add(held));
        if let Some(upper) = hint.upper() {
            with_held.set_upper(upper.saturating_add(held));
        }
        with_held
    }
}
