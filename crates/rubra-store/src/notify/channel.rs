//! Where a subscription's notifications go: the channel types and their validation.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a subscription's notifications go.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Channel {
    /// A signed POST to `url`.
    Webhook {
        /// The http(s) endpoint.
        url: String,
    },
    /// A Viber bot message.
    Viber {
        /// The Viber user id.
        receiver: String,
        /// The bot's auth token (never shown back).
        auth_token: String,
    },
    /// Only the live stream (`GET /notifications/stream`).
    Stream,
}

impl Channel {
    /// Checks the values: a webhook URL is http(s) with a host, Viber needs both fields.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Channel::Webhook { url } => {
                let parsed =
                    url::Url::parse(url).map_err(|e| format!("webhook url {url:?}: {e}"))?;
                if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                    return Err(format!("webhook url {url:?} is not an http(s) URL"));
                }
                Ok(())
            }
            Channel::Viber {
                receiver,
                auth_token,
            } => {
                if receiver.trim().is_empty() || auth_token.trim().is_empty() {
                    return Err("a viber channel needs a receiver and an auth_token".to_owned());
                }
                if receiver.len() > 256 || auth_token.len() > 256 {
                    return Err("viber receiver and auth_token are at most 256 bytes".to_owned());
                }
                Ok(())
            }
            Channel::Stream => Ok(()),
        }
    }

    /// `webhook`, `viber` or `stream`, as stored in `channel_type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Webhook { .. } => "webhook",
            Channel::Viber { .. } => "viber",
            Channel::Stream => "stream",
        }
    }

    /// The channel as shown to API callers: secrets (the Viber token) redacted.
    pub fn redacted(&self) -> serde_json::Value {
        match self {
            Channel::Viber { receiver, .. } => serde_json::json!({
                "type": "viber", "receiver": receiver, "auth_token": "***"
            }),
            other => serde_json::to_value(other).unwrap_or(serde_json::Value::Null),
        }
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Channel({})", self.redacted())
    }
}
