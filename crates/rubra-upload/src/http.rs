//! Talking to the server: `HEAD /images/{id}` and `POST /images` over one
//! keep-alive client, each with retries (backoff and jitter) on broken
//! connections, timeouts, 429 and 5xx — never on other 4xx.

use crate::backoff;
use crate::body::Body;
use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A complete answer from the server (status and body), after retries.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The whole response body.
    pub body: Bytes,
}

impl Answer {
    /// The server's `{"error":{"code","message"}}`, or a stand-in built from
    /// the status and the raw body.
    pub fn error(&self) -> (String, String) {
        #[derive(serde::Deserialize)]
        struct Wrapper {
            error: Inner,
        }
        #[derive(serde::Deserialize)]
        struct Inner {
            code: String,
            message: String,
        }
        match serde_json::from_slice::<Wrapper>(&self.body) {
            Ok(w) => (w.error.code, w.error.message),
            Err(_) => {
                let text = String::from_utf8_lossy(&self.body);
                let text: String = text.chars().take(200).collect();
                (format!("http_{}", self.status), text)
            }
        }
    }
}

/// The uploader's connection to one server.
#[derive(Debug)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    auth: String,
    retries: u32,
    backoff_base: Duration,
    /// Attempts that were retried.
    pub retried: AtomicU64,
    /// `POST` body bytes handed to the network, retries included.
    pub sent: AtomicU64,
}

impl Api {
    /// A client for `base` (`http://host:port`, no trailing slash needed).
    pub fn new(
        base: &str,
        key: &str,
        concurrency: usize,
        timeout: Duration,
        retries: u32,
        backoff_base: Duration,
    ) -> reqwest::Result<Api> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(concurrency.max(1))
            .tcp_nodelay(true)
            .no_proxy()
            .build()?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_owned(),
            auth: format!("Bearer {key}"),
            retries,
            backoff_base,
            retried: AtomicU64::new(0),
            sent: AtomicU64::new(0),
        })
    }

    /// `HEAD /images/{id}`.
    pub async fn head_image(&self, id: &str) -> Result<Answer, String> {
        let url = format!("{}/images/{id}", self.base);
        self.with_retries(|| self.http.head(&url).header(AUTHORIZATION, &self.auth))
            .await
    }

    /// `POST /images` with `body` as `content_type`.
    pub async fn post_images(&self, body: &Body, content_type: &str) -> Result<Answer, String> {
        let url = format!("{}/images", self.base);
        self.with_retries(|| {
            self.sent.fetch_add(body.len(), Ordering::Relaxed);
            self.http
                .post(&url)
                .header(AUTHORIZATION, &self.auth)
                .header(CONTENT_TYPE, content_type)
                .header(CONTENT_LENGTH, body.len())
                .body(body.clone().into_reqwest())
        })
        .await
    }

    /// Sends what `make` builds until it gets an answer that is not worth
    /// retrying or the retries run out. `Err` is the last network error.
    async fn with_retries(
        &self,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Answer, String> {
        let mut attempt = 0;
        loop {
            let (wait, outcome) = match make().send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let after = resp
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(backoff::retry_after);
                    match resp.bytes().await {
                        Ok(body) => {
                            let answer = Answer { status, body };
                            if status != 429 && status < 500 {
                                return Ok(answer);
                            }
                            (after, Ok(answer))
                        }
                        Err(e) => (None, Err(describe(&e))),
                    }
                }
                Err(e) => (None, Err(describe(&e))),
            };
            if attempt >= self.retries {
                return outcome;
            }
            let wait = wait.unwrap_or_else(|| backoff::delay(self.backoff_base, attempt));
            self.retried.fetch_add(1, Ordering::Relaxed);
            attempt += 1;
            tokio::time::sleep(wait).await;
        }
    }
}

/// The error with its causes: reqwest's own message alone hides whether the
/// connection was refused, reset or timed out.
fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}
