//! Standard Webhooks signatures: what Rubra sends and what a receiver checks.
//!
//! The signed content is `"{webhook-id}.{webhook-timestamp}.{body}"`; the signature is the
//! standard base64 of its HMAC-SHA256 under the secret's key, sent as
//! `webhook-signature: v1,<base64>`. The secret is shown to users as `whsec_` followed by the
//! base64 of the key bytes, and the key is those decoded bytes (not the text) — exactly the
//! specification, so any Standard Webhooks library verifies Rubra's requests.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;

/// Header carrying the message id, the same on every retry of one notification.
pub const HEADER_ID: &str = "webhook-id";
/// Header carrying the send time in whole seconds since the Unix epoch.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying one or more space-separated `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// How far a timestamp may be from the receiver's clock, as the specification suggests.
pub const DEFAULT_TOLERANCE_SECS: i64 = 5 * 60;

const PREFIX: &str = "whsec_";

/// A secret that is not `whsec_` + base64 of a usable key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// The text after the prefix is not standard base64.
    #[error("the webhook secret is not base64 after its whsec_ prefix")]
    NotBase64,
    /// The key is shorter than 24 or longer than 64 bytes.
    #[error("the webhook secret's key must be 24 to 64 bytes, not {0}")]
    BadLength(usize),
}

/// Why a received webhook was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required header is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// The timestamp is not an integer.
    #[error("webhook-timestamp is not a number of seconds")]
    BadTimestamp,
    /// The timestamp is too far from now (a replay, or a clock far off).
    #[error("webhook-timestamp is {0} s away from now")]
    Expired(i64),
    /// No `v1` signature in the header matches the content.
    #[error("no signature matches")]
    NoMatch,
}

/// The signing key of one subscription.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl WebhookSecret {
    /// A fresh secret with a 24-byte random key (192 bits, as the specification's examples).
    pub fn generate() -> Self {
        let mut key = vec![0u8; 24];
        // The OS random source failing is unrecoverable; there is nothing sane to fall back to.
        getrandom::fill(&mut key).expect("operating system random source failed");
        WebhookSecret { key }
    }

    /// Reads a secret as shown to users (`whsec_…`); the prefix is optional, as in the
    /// reference libraries.
    pub fn parse(text: &str) -> Result<Self, SigningError> {
        let b64 = text.strip_prefix(PREFIX).unwrap_or(text);
        let key = B64.decode(b64).map_err(|_| SigningError::NotBase64)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SigningError::BadLength(key.len()));
        }
        Ok(WebhookSecret { key })
    }

    /// Wraps raw key bytes (for tests and for keys held elsewhere).
    pub fn from_key(key: Vec<u8>) -> Self {
        WebhookSecret { key }
    }

    /// The `whsec_…` text to show once and store.
    pub fn reveal(&self) -> String {
        format!("{PREFIX}{}", B64.encode(&self.key))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length; new_from_slice cannot fail for it.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC accepts keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// The `webhook-signature` header value for one message: `v1,<base64 HMAC-SHA256>`.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = secret.mac(id, timestamp, body).finalize().into_bytes();
    format!("v1,{}", B64.encode(tag))
}

/// The `webhook-signature` header value signed by each of `secrets`: their `v1,<base64>`
/// signatures separated by spaces, as the specification allows during a secret rotation.
pub fn sign_all(secrets: &[&WebhookSecret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| sign(s, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The three headers of a received webhook, as text.
#[derive(Debug, Clone, Copy)]
pub struct ReceivedHeaders<'a> {
    /// `webhook-id`.
    pub id: Option<&'a str>,
    /// `webhook-timestamp`.
    pub timestamp: Option<&'a str>,
    /// `webhook-signature`.
    pub signature: Option<&'a str>,
}

/// Checks a received webhook: the timestamp is within `tolerance_secs` of `now_secs`, and one
/// of the header's `v1` signatures is the HMAC of `"{id}.{timestamp}.{body}"` (compared in
/// constant time). Signatures of other versions are ignored, as the specification says.
pub fn verify(
    secret: &WebhookSecret,
    headers: ReceivedHeaders<'_>,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let id = headers.id.ok_or(VerifyError::MissingHeader(HEADER_ID))?;
    let ts_text = headers
        .timestamp
        .ok_or(VerifyError::MissingHeader(HEADER_TIMESTAMP))?;
    let sigs = headers
        .signature
        .ok_or(VerifyError::MissingHeader(HEADER_SIGNATURE))?;
    let ts: i64 = ts_text
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    let skew = now_secs.saturating_sub(ts);
    if skew.abs() > tolerance_secs {
        return Err(VerifyError::Expired(skew));
    }
    let mac = secret.mac(id, ts, body);
    let matched = sigs
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| B64.decode(b64).ok())
        .any(|tag| mac.clone().verify_slice(&tag).is_ok());
    if matched {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TS: i64 = 1_614_265_330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers<'a>(id: &'a str, ts: &'a str, sig: &'a str) -> ReceivedHeaders<'a> {
        ReceivedHeaders {
            id: Some(id),
            timestamp: Some(ts),
            signature: Some(sig),
        }
    }

    #[test]
    fn signature_matches_the_standard_webhooks_test_vector() {
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        assert_eq!(sign(&secret, VECTOR_ID, VECTOR_TS, VECTOR_BODY), VECTOR_SIG);
    }

    #[test]
    fn verifier_accepts_the_test_vector_among_other_signatures() {
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        let ts = VECTOR_TS.to_string();
        let many = format!("v1,bm9wZQ== v2,whatever {VECTOR_SIG}");
        verify(
            &secret,
            headers(VECTOR_ID, &ts, &many),
            VECTOR_BODY,
            VECTOR_TS + 10,
            300,
        )
        .unwrap();
    }

    #[test]
    fn verifier_rejects_tampering_expiry_and_missing_headers() {
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        let ts = VECTOR_TS.to_string();
        let h = headers(VECTOR_ID, &ts, VECTOR_SIG);
        assert_eq!(
            verify(&secret, h, br#"{"test": 2432232315}"#, VECTOR_TS, 300),
            Err(VerifyError::NoMatch)
        );
        let other = headers("msg_other", &ts, VECTOR_SIG);
        assert_eq!(
            verify(&secret, other, VECTOR_BODY, VECTOR_TS, 300),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&secret, h, VECTOR_BODY, VECTOR_TS + 301, 300),
            Err(VerifyError::Expired(301))
        );
        let wrong = WebhookSecret::generate();
        assert_eq!(
            verify(&wrong, h, VECTOR_BODY, VECTOR_TS, 300),
            Err(VerifyError::NoMatch)
        );
        let none = ReceivedHeaders {
            signature: None,
            ..h
        };
        assert_eq!(
            verify(&secret, none, VECTOR_BODY, VECTOR_TS, 300),
            Err(VerifyError::MissingHeader(HEADER_SIGNATURE))
        );
    }

    #[test]
    fn a_header_signed_by_two_secrets_verifies_under_either() {
        let (old, new) = (WebhookSecret::generate(), WebhookSecret::generate());
        let header = sign_all(&[&new, &old], VECTOR_ID, VECTOR_TS, VECTOR_BODY);
        assert_eq!(header.split(' ').count(), 2);
        let ts = VECTOR_TS.to_string();
        for secret in [&old, &new] {
            let h = headers(VECTOR_ID, &ts, &header);
            verify(secret, h, VECTOR_BODY, VECTOR_TS, 300).unwrap();
        }
        let other = WebhookSecret::generate();
        let h = headers(VECTOR_ID, &ts, &header);
        assert_eq!(
            verify(&other, h, VECTOR_BODY, VECTOR_TS, 300),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn generated_secrets_round_trip_through_their_text() {
        let s = WebhookSecret::generate();
        let text = s.reveal();
        assert!(text.starts_with("whsec_"), "{text}");
        assert_eq!(WebhookSecret::parse(&text).unwrap(), s);
        assert_ne!(WebhookSecret::generate(), s);
        assert!(!format!("{s:?}").contains(&text[6..]));
    }

    #[test]
    fn bad_secrets_are_refused() {
        assert_eq!(
            WebhookSecret::parse("whsec_***"),
            Err(SigningError::NotBase64)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_AAAA"),
            Err(SigningError::BadLength(3))
        );
    }
}
