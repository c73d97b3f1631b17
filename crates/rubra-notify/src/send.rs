//! The two outbound calls — a signed webhook POST and a Viber bot `send_message` — each made
//! with a reused HTTP client and a time limit, each answering an [`Outcome`] instead of an
//! error so that every attempt is recorded the same way.
//!
//! A webhook URL is chosen by a client, so webhooks go through the egress [`Guard`] of
//! `rubra-fetch` (the one overlay URLs and watches use): the URL is checked before every
//! attempt, addresses again at connect time, redirects are not followed and proxies not used.
//! The Viber base URL is the operator's, so Viber calls use a plain client. Either way at most
//! [`MAX_ANSWER_BYTES`] of an answer is read.

use crate::signing::{self, WebhookSecret};
use rubra_fetch::{FetchError, Guard, read_capped};
use std::time::{Duration, Instant};

/// The most of a receiver's answer that is read; past it the connection is dropped.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The receiver's HTTP status, when it answered at all.
    pub status: Option<u16>,
    /// From sending the request to the end of the answer (or the failure).
    pub latency: Duration,
    /// Why the attempt failed; `None` when it succeeded.
    pub error: Option<String>,
}

impl Outcome {
    /// True when the receiver accepted the notification.
    pub fn is_success(&self) -> bool {
        self.error.is_none()
    }
}

/// A webhook to send.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// The endpoint.
    pub url: &'a str,
    /// The `webhook-id`: the same on every attempt of one notification.
    pub id: &'a str,
    /// The `webhook-timestamp` in seconds: the time of this attempt.
    pub timestamp: i64,
    /// The JSON body, exactly as signed.
    pub body: &'a [u8],
    /// The subscription's key.
    pub secret: &'a WebhookSecret,
    /// The key before a rotation, while it still signs: the request then carries both
    /// signatures, so a receiver that knows either accepts it.
    pub previous_secret: Option<&'a WebhookSecret>,
}

/// A Viber bot text message.
#[derive(Debug, Clone, Copy)]
pub struct ViberMessage<'a> {
    /// The bot's `X-Viber-Auth-Token`.
    pub auth_token: &'a str,
    /// The Viber user id to send to.
    pub receiver: &'a str,
    /// The sender name shown to the user.
    pub sender_name: &'a str,
    /// The text.
    pub text: &'a str,
    /// Sent as Viber's `tracking_data` (a message relayed by Rubra: its id), when given.
    pub tracking_data: Option<&'a str>,
}

/// Sends notifications over HTTP. Cheap to clone; clones share the connection pools.
#[derive(Debug, Clone)]
pub struct Sender {
    guard: Guard,
    webhooks: reqwest::Client,
    viber: reqwest::Client,
}

impl Sender {
    /// A sender whose every request (connect, send, read the answer) ends within `timeout`;
    /// webhooks go only where `guard` lets them.
    pub fn new(timeout: Duration, guard: Guard) -> Self {
        let user_agent = concat!("rubra-notify/", env!("CARGO_PKG_VERSION"));
        let limits = |b: reqwest::ClientBuilder| {
            b.timeout(timeout)
                .connect_timeout(timeout)
                .pool_idle_timeout(Duration::from_secs(60))
                .user_agent(user_agent)
                .build()
                // Only a broken TLS backend makes the builder fail; nothing to do without one.
                .expect("the HTTP client can be built")
        };
        Sender {
            webhooks: limits(guard.client_builder()),
            viber: limits(reqwest::Client::builder()),
            guard,
        }
    }

    /// POSTs a signed webhook. Any 2xx is success (however long the answer: at most
    /// [`MAX_ANSWER_BYTES`] of it is read); a redirect, another status, a refused address, a
    /// timeout or a connection failure is a failure to retry.
    pub async fn webhook(&self, req: &WebhookRequest<'_>) -> Outcome {
        let started = Instant::now();
        let url = match self.guard.parse_url(req.url) {
            Ok(url) => url,
            Err(e) => {
                return Outcome {
                    status: None,
                    latency: started.elapsed(),
                    error: Some(refusal(e)),
                };
            }
        };
        let secrets: Vec<&WebhookSecret> = std::iter::once(req.secret)
            .chain(req.previous_secret)
            .collect();
        let signature = signing::sign_all(&secrets, req.id, req.timestamp, req.body);
        let sent = self
            .webhooks
            .post(url)
            .header("content-type", "application/json")
            .header(signing::HEADER_ID, req.id)
            .header(signing::HEADER_TIMESTAMP, req.timestamp.to_string())
            .header(signing::HEADER_SIGNATURE, signature)
            .body(req.body.to_vec())
            .send()
            .await;
        let (status, error) = match sent {
            Err(e) => (e.status().map(|s| s.as_u16()), Some(describe(e))),
            Ok(mut resp) => {
                let status = resp.status();
                // Read the (ignored) answer so the connection goes back to the pool; a longer
                // one is cut off and its connection closed.
                let read = read_capped(&mut resp, MAX_ANSWER_BYTES).await;
                let error = if status.is_redirection() {
                    Some(format!(
                        "HTTP {}: redirects are not followed",
                        status.as_u16()
                    ))
                } else if !status.is_success() {
                    Some(format!("HTTP {}", status.as_u16()))
                } else {
                    read.err().map(refusal)
                };
                (Some(status.as_u16()), error)
            }
        };
        Outcome {
            status,
            latency: started.elapsed(),
            error,
        }
    }

    /// Calls `POST {base_url}/pa/send_message`. Success is HTTP 200 with `"status": 0`; Viber
    /// reports most failures (bad token, unknown receiver) as a 200 with a non-zero status.
    pub async fn viber(&self, base_url: &str, msg: &ViberMessage<'_>) -> Outcome {
        let mut body = serde_json::json!({
            "receiver": msg.receiver,
            "min_api_version": 1,
            "sender": { "name": msg.sender_name },
            "type": "text",
            "text": msg.text,
        });
        if let Some(tracking) = msg.tracking_data {
            body["tracking_data"] = tracking.into();
        }
        let url = format!("{}/pa/send_message", base_url.trim_end_matches('/'));
        let started = Instant::now();
        let sent = self
            .viber
            .post(url)
            .header("content-type", "application/json")
            .header("X-Viber-Auth-Token", msg.auth_token)
            .body(body.to_string())
            .send()
            .await;
        let (status, error) = match sent {
            Err(e) => (e.status().map(|s| s.as_u16()), Some(describe(e))),
            Ok(mut resp) => {
                let status = resp.status();
                let read = read_capped(&mut resp, MAX_ANSWER_BYTES).await;
                let error = match (status.is_success(), read) {
                    (false, _) => Some(format!("HTTP {}", status.as_u16())),
                    (true, Err(e)) => Some(refusal(e)),
                    (true, Ok(None)) => Some(format!(
                        "viber answered more than {} KiB",
                        MAX_ANSWER_BYTES / 1024
                    )),
                    (true, Ok(Some(bytes))) => viber_error(&bytes),
                };
                (Some(status.as_u16()), error)
            }
        };
        Outcome {
            status,
            latency: started.elapsed(),
            error,
        }
    }
}

/// The failure in a Viber answer body, if any.
fn viber_error(body: &[u8]) -> Option<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Some("viber answered something that is not JSON".to_owned());
    };
    match v.get("status").and_then(serde_json::Value::as_i64) {
        Some(0) => None,
        Some(code) => {
            let msg = v
                .get("status_message")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            Some(format!("viber status {code}: {msg}"))
        }
        None => Some("viber answered without a status".to_owned()),
    }
}

/// A failed request in the words of the delivery log: the guard's refusal as it gave it
/// ("address not allowed: …"), else a short cause.
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_owned();
    }
    let connect = e.is_connect();
    match FetchError::from(e) {
        FetchError::Forbidden(why) => why,
        _ if connect => "connection failed".to_owned(),
        other => refusal(other),
    }
}

/// The message of a guard or read error, without the error type's prefix.
fn refusal(e: FetchError) -> String {
    match e {
        FetchError::Forbidden(m) | FetchError::InvalidUrl(m) | FetchError::Network(m) => m,
        FetchError::Timeout => "timed out".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::signing::{ReceivedHeaders, verify};
    use axum::Router;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use std::sync::{Arc, Mutex};

    type Seen = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    fn recorder(status: StatusCode, answer: &'static str) -> (Router, Seen) {
        let seen: Seen = Arc::default();
        let s = seen.clone();
        let app = Router::new().fallback(post(move |h: HeaderMap, b: axum::body::Bytes| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push((h, b.to_vec()));
                (status, answer)
            }
        }));
        (app, seen)
    }

    /// A sender allowed to reach this machine's 127.0.0.1.
    fn test_sender(timeout: Duration) -> Sender {
        let allow = rubra_fetch::AllowList::new(["127.0.0.1"]);
        Sender::new(timeout, Guard::new(allow, rubra_fetch::Reach::Public))
    }

    fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
        h.get(name).and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn webhook_is_signed_so_the_verifier_accepts_it() {
        let (app, seen) = recorder(StatusCode::NO_CONTENT, "");
        let base = serve(app).await;
        let secret = WebhookSecret::generate();
        let sender = test_sender(Duration::from_secs(5));
        let now = 1_700_000_000;
        let out = sender
            .webhook(&WebhookRequest {
                url: &format!("{base}/hook"),
                id: "ntf_1",
                timestamp: now,
                body: br#"{"a":1}"#,
                secret: &secret,
                previous_secret: None,
            })
            .await;
        assert_eq!(out.status, Some(204));
        assert!(out.is_success(), "{out:?}");
        let seen = seen.lock().unwrap();
        let (h, body) = &seen[0];
        assert_eq!(body, br#"{"a":1}"#);
        let received = ReceivedHeaders {
            id: header(h, "webhook-id"),
            timestamp: header(h, "webhook-timestamp"),
            signature: header(h, "webhook-signature"),
        };
        assert_eq!(received.id, Some("ntf_1"));
        verify(&secret, received, body, now, 300).unwrap();
    }

    #[tokio::test]
    async fn webhook_failures_are_outcomes_not_errors() {
        let (app, _) = recorder(StatusCode::INTERNAL_SERVER_ERROR, "boom");
        let base = serve(app).await;
        let secret = WebhookSecret::generate();
        let sender = test_sender(Duration::from_millis(500));
        let req = WebhookRequest {
            url: &base,
            id: "ntf_2",
            timestamp: 1,
            body: b"{}",
            secret: &secret,
            previous_secret: None,
        };
        let out = sender.webhook(&req).await;
        assert_eq!(out.status, Some(500));
        assert_eq!(out.error.as_deref(), Some("HTTP 500"));
        // Nothing listens on this port once the listener is dropped.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let out = sender.webhook(&WebhookRequest { url: &url, ..req }).await;
        assert_eq!(out.status, None);
        assert!(out.error.is_some());
        // A receiver slower than the time limit.
        let slow = Router::new().fallback(post(|| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            "late"
        }));
        let slow = serve(slow).await;
        let out = sender.webhook(&WebhookRequest { url: &slow, ..req }).await;
        assert_eq!(out.error.as_deref(), Some("timed out"));
        assert!(out.latency < Duration::from_secs(2), "{out:?}");
    }

    /// A raw HTTP/1.1 server that answers every request with a `len`-byte 200 (with a
    /// content-length, or `chunked`), written in 16 KiB pieces, the first 64 KiB at once and then one piece every 10 ms; `written` counts
    /// the bytes the socket took (writing stops when the peer goes away).
    async fn huge_answer(
        len: usize,
        chunked: bool,
        written: Arc<std::sync::atomic::AtomicUsize>,
    ) -> String {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let written = written.clone();
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 4096];
                    // The whole request: its head, then content-length bytes of body.
                    loop {
                        let n = sock.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        req.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&req).to_ascii_lowercase();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let body_len = text
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if req.len() >= end + 4 + body_len {
                                break;
                            }
                        }
                    }
                    let framing = if chunked {
                        "transfer-encoding: chunked".to_owned()
                    } else {
                        format!("content-length: {len}")
                    };
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{framing}\r\n\r\n"
                    );
                    if sock.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let piece = vec![b' '; 16 * 1024];
                    let mut sent = 0;
                    while sent < len {
                        let n = piece.len().min(len - sent);
                        let wrote = if chunked {
                            let mut framed = format!("{n:x}\r\n").into_bytes();
                            framed.extend_from_slice(&piece[..n]);
                            framed.extend_from_slice(b"\r\n");
                            sock.write_all(&framed).await
                        } else {
                            sock.write_all(&piece[..n]).await
                        };
                        if wrote.is_err() {
                            return;
                        }
                        sent += n;
                        written.fetch_add(n, Ordering::SeqCst);
                        if sent >= 64 * 1024 {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn webhook_reads_at_most_64_kib_of_a_10_mb_answer() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        for chunked in [false, true] {
            let written = Arc::new(AtomicUsize::new(0));
            let base = huge_answer(10 * 1024 * 1024, chunked, written.clone()).await;
            let secret = WebhookSecret::generate();
            let sender = test_sender(Duration::from_secs(30));
            let out = sender
                .webhook(&WebhookRequest {
                    url: &base,
                    id: "ntf_big",
                    timestamp: 1,
                    body: b"{}",
                    secret: &secret,
                    previous_secret: None,
                })
                .await;
            // A 2xx is success whatever follows it; the answer is not read past the cap.
            assert!(out.is_success(), "chunked {chunked}: {out:?}");
            assert_eq!(out.status, Some(200));
            assert!(out.latency < Duration::from_secs(1), "{out:?}");
            // Once the connection is dropped the receiver cannot write much more: it would
            // take ~6 s to write all 10 MB at its pace.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let n = written.load(Ordering::SeqCst);
            assert!(
                n < 1024 * 1024,
                "chunked {chunked}: the receiver wrote {n} bytes"
            );
        }
    }

    #[tokio::test]
    async fn webhook_to_an_internal_address_is_refused_without_connecting() {
        let (app, seen) = recorder(StatusCode::OK, "");
        let base = serve(app).await;
        let port = base.rsplit(':').next().unwrap();
        let secret = WebhookSecret::generate();
        let guard = Guard::new(
            rubra_fetch::AllowList::default(),
            rubra_fetch::Reach::Public,
        );
        let sender = Sender::new(Duration::from_secs(5), guard);
        for url in [
            base.clone(),
            format!("http://localhost:{port}/"),
            format!("http://[::ffff:127.0.0.1]:{port}/"),
        ] {
            let out = sender
                .webhook(&WebhookRequest {
                    url: &url,
                    id: "ntf_3",
                    timestamp: 1,
                    body: b"{}",
                    secret: &secret,
                    previous_secret: None,
                })
                .await;
            assert_eq!(out.status, None);
            let error = out.error.unwrap();
            assert!(error.starts_with("address not allowed"), "{url}: {error}");
        }
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn webhook_redirect_is_a_failure_and_not_followed() {
        let (target, seen) = recorder(StatusCode::OK, "");
        let target = serve(target).await;
        let to = format!("{target}/elsewhere");
        let app = Router::new().fallback(post(move || {
            let to = to.clone();
            async move { (StatusCode::TEMPORARY_REDIRECT, [("location", to)]) }
        }));
        let base = serve(app).await;
        let secret = WebhookSecret::generate();
        let out = test_sender(Duration::from_secs(5))
            .webhook(&WebhookRequest {
                url: &base,
                id: "ntf_4",
                timestamp: 1,
                body: b"{}",
                secret: &secret,
                previous_secret: None,
            })
            .await;
        assert_eq!(out.status, Some(307));
        assert_eq!(
            out.error.as_deref(),
            Some("HTTP 307: redirects are not followed")
        );
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn viber_answer_is_read_up_to_64_kib() {
        use std::sync::atomic::AtomicUsize;
        let written = Arc::new(AtomicUsize::new(0));
        let base = huge_answer(10 * 1024 * 1024, true, written).await;
        let sender = test_sender(Duration::from_secs(30));
        let msg = ViberMessage {
            auth_token: "tok",
            receiver: "user",
            sender_name: "Rubra",
            text: "hi",
            tracking_data: None,
        };
        let out = sender.viber(&base, &msg).await;
        assert_eq!(out.status, Some(200));
        assert!(out.latency < Duration::from_secs(1), "{out:?}");
        let error = out.error.unwrap();
        assert!(error.contains("64 KiB"), "{error}");
    }

    #[tokio::test]
    async fn viber_request_has_the_token_and_body_and_reads_the_status() {
        let (app, seen) = recorder(StatusCode::OK, r#"{"status":0,"status_message":"ok"}"#);
        let base = serve(app).await;
        let sender = test_sender(Duration::from_secs(5));
        let msg = ViberMessage {
            auth_token: "tok-1",
            receiver: "user-9",
            sender_name: "Rubra",
            text: "hello",
            tracking_data: None,
        };
        let out = sender.viber(&format!("{base}/"), &msg).await;
        assert!(out.is_success(), "{out:?}");
        {
            let seen = seen.lock().unwrap();
            let (h, body) = &seen[0];
            assert_eq!(header(h, "x-viber-auth-token"), Some("tok-1"));
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert_eq!(
                v,
                serde_json::json!({"receiver": "user-9", "min_api_version": 1,
                    "sender": {"name": "Rubra"}, "type": "text", "text": "hello"})
            );
        }
        let tracked = ViberMessage {
            tracking_data: Some("tx-81723-settled"),
            ..msg
        };
        assert!(sender.viber(&base, &tracked).await.is_success());
        {
            let seen = seen.lock().unwrap();
            let v: serde_json::Value = serde_json::from_slice(&seen[1].1).unwrap();
            assert_eq!(v["tracking_data"], "tx-81723-settled");
            assert_eq!(v["text"], "hello");
        }
        let (app, _) = recorder(
            StatusCode::OK,
            r#"{"status":2,"status_message":"invalidAuthToken"}"#,
        );
        let base = serve(app).await;
        let out = sender.viber(&base, &msg).await;
        assert_eq!(out.status, Some(200));
        assert_eq!(
            out.error.as_deref(),
            Some("viber status 2: invalidAuthToken")
        );
    }
}
