//! The two outbound calls — a signed webhook POST and a Viber bot `send_message` — each made
//! with one reused HTTP client and a time limit, each answering an [`Outcome`] instead of an
//! error so that every attempt is recorded the same way.

use crate::signing::{self, WebhookSecret};
use std::time::{Duration, Instant};

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
}

/// Sends notifications over HTTP. Cheap to clone; clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Sender {
    http: reqwest::Client,
}

impl Sender {
    /// A sender whose every request (connect, send, read the answer) ends within `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("rubra-notify/", env!("CARGO_PKG_VERSION")))
            .build()
            // Only a broken TLS backend makes the builder fail; nothing to do without one.
            .expect("the HTTP client can be built");
        Sender { http }
    }

    /// POSTs a signed webhook. Any 2xx is success; other statuses, timeouts and connection
    /// failures are failures to retry.
    pub async fn webhook(&self, req: &WebhookRequest<'_>) -> Outcome {
        let signature = signing::sign(req.secret, req.id, req.timestamp, req.body);
        let started = Instant::now();
        let sent = self
            .http
            .post(req.url)
            .header("content-type", "application/json")
            .header(signing::HEADER_ID, req.id)
            .header(signing::HEADER_TIMESTAMP, req.timestamp.to_string())
            .header(signing::HEADER_SIGNATURE, signature)
            .body(req.body.to_vec())
            .send()
            .await;
        let (status, error) = match sent {
            Err(e) => (e.status().map(|s| s.as_u16()), Some(describe(&e))),
            Ok(resp) => {
                let status = resp.status();
                // Read the (ignored) answer so the connection goes back to the pool.
                let read = resp.bytes().await;
                let error = if !status.is_success() {
                    Some(format!("HTTP {}", status.as_u16()))
                } else {
                    read.err().map(|e| describe(&e))
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
        let body = serde_json::json!({
            "receiver": msg.receiver,
            "min_api_version": 1,
            "sender": { "name": msg.sender_name },
            "type": "text",
            "text": msg.text,
        });
        let url = format!("{}/pa/send_message", base_url.trim_end_matches('/'));
        let started = Instant::now();
        let sent = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("X-Viber-Auth-Token", msg.auth_token)
            .body(body.to_string())
            .send()
            .await;
        let (status, error) = match sent {
            Err(e) => (e.status().map(|s| s.as_u16()), Some(describe(&e))),
            Ok(resp) => {
                let status = resp.status();
                let read = resp.bytes().await;
                let error = match (status.is_success(), read) {
                    (false, _) => Some(format!("HTTP {}", status.as_u16())),
                    (true, Err(e)) => Some(describe(&e)),
                    (true, Ok(bytes)) => viber_error(&bytes),
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

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
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

    fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
        h.get(name).and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn webhook_is_signed_so_the_verifier_accepts_it() {
        let (app, seen) = recorder(StatusCode::NO_CONTENT, "");
        let base = serve(app).await;
        let secret = WebhookSecret::generate();
        let sender = Sender::new(Duration::from_secs(5));
        let now = 1_700_000_000;
        let out = sender
            .webhook(&WebhookRequest {
                url: &format!("{base}/hook"),
                id: "ntf_1",
                timestamp: now,
                body: br#"{"a":1}"#,
                secret: &secret,
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
        let sender = Sender::new(Duration::from_millis(500));
        let req = WebhookRequest {
            url: &base,
            id: "ntf_2",
            timestamp: 1,
            body: b"{}",
            secret: &secret,
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

    #[tokio::test]
    async fn viber_request_has_the_token_and_body_and_reads_the_status() {
        let (app, seen) = recorder(StatusCode::OK, r#"{"status":0,"status_message":"ok"}"#);
        let base = serve(app).await;
        let sender = Sender::new(Duration::from_secs(5));
        let msg = ViberMessage {
            auth_token: "tok-1",
            receiver: "user-9",
            sender_name: "Rubra",
            text: "hello",
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
