//! Messages (DESIGN §12): another system hands Rubra typed messages; each makes one
//! notification per live subscription of its client whose `types` match, written in the
//! transaction that records the message (the outbox), so a message acknowledged to its
//! producer is never lost.
//!
//! A message's `(client, id)` is recorded in `messages`: the same id again from the same client
//! is a duplicate, accepted and not sent again. Type patterns are matched in Rust (a few per
//! subscription), so the SQL stays the same on both databases.

pub(crate) mod write;

use crate::{ClientId, PgStore, Result, SqliteStore};
use async_trait::async_trait;
use std::fmt;

/// The longest message id, type or type pattern, in bytes.
pub const MAX_MESSAGE_ID_BYTES: usize = 200;
/// The longest `text` of a message, in bytes (Viber's own limit is 7 000 characters).
pub const MAX_MESSAGE_TEXT_BYTES: usize = 7_000;
/// The longest `payload` of a message, as compact JSON, in bytes.
pub const MAX_MESSAGE_PAYLOAD_BYTES: usize = 64 * 1024;
/// The longest `receiver` of a message, in bytes (as for a Viber channel).
pub const MAX_MESSAGE_RECEIVER_BYTES: usize = 256;
/// The most type patterns one subscription may carry.
pub const MAX_SUBSCRIPTION_TYPES: usize = 32;

/// A segment of a type: letters, digits, `_` and `-`.
fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The type of a message: dot-separated segments of letters, digits, `_` and `-`
/// (`transaction.status`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageType(String);

impl MessageType {
    /// Accepts a type as sent; the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() > MAX_MESSAGE_ID_BYTES {
            return Err(format!("a type is at most {MAX_MESSAGE_ID_BYTES} bytes"));
        }
        if !s.split('.').all(valid_segment) {
            return Err(format!(
                "{s:?} is not a type: dot-separated segments of letters, digits, '_' and '-'"
            ));
        }
        Ok(MessageType(s.to_owned()))
    }

    /// The type as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A subscription's type pattern: a type, or a type prefix followed by `.*`, which matches one
/// or more further segments (`payment.*` matches `payment.refund` and `payment.refund.late`,
/// not `payment`); `*` alone matches every type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TypePattern(String);

impl TypePattern {
    /// Accepts a pattern as sent; the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() > MAX_MESSAGE_ID_BYTES {
            return Err(format!(
                "a type pattern is at most {MAX_MESSAGE_ID_BYTES} bytes"
            ));
        }
        let prefix = match s.strip_suffix('*') {
            Some("") => return Ok(TypePattern(s.to_owned())),
            Some(p) => p.strip_suffix('.').ok_or_else(|| {
                format!("{s:?}: '*' stands only for whole trailing segments (\"payment.*\")")
            })?,
            None => s,
        };
        if !prefix.split('.').all(valid_segment) {
            return Err(format!(
                "{s:?} is not a type pattern: dot-separated segments of letters, digits, '_' \
                 and '-', the last one may be '*'"
            ));
        }
        Ok(TypePattern(s.to_owned()))
    }

    /// True when a message of type `t` matches.
    pub fn matches(&self, t: &MessageType) -> bool {
        match self.0.strip_suffix('*') {
            // "p.*": "p." then at least one character, which (types being valid) is at least
            // one whole segment.
            Some(prefix) => t.0.len() > prefix.len() && t.0.starts_with(prefix),
            None => self.0 == t.0,
        }
    }

    /// The pattern as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The id of a message: the producer's (at most [`MAX_MESSAGE_ID_BYTES`] bytes, no control
/// characters), or `msg_` and 16 random hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageId(String);

impl MessageId {
    /// A fresh random id, for a message sent without one.
    pub fn generate() -> Self {
        MessageId(format!("msg_{}", crate::random_id(8)))
    }

    /// Accepts an id as sent; the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > MAX_MESSAGE_ID_BYTES {
            return Err(format!("an id is 1 to {MAX_MESSAGE_ID_BYTES} bytes"));
        }
        if s.chars().any(char::is_control) {
            return Err("an id holds no control characters".to_owned());
        }
        Ok(MessageId(s.to_owned()))
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// Whose subscriptions it goes to.
    pub client_id: ClientId,
    /// Its id (a repeat from the same client is a duplicate).
    pub id: MessageId,
    /// Its type, matched against the subscriptions' patterns.
    pub kind: MessageType,
    /// The text to send to Viber.
    pub text: Option<String>,
    /// Its payload, compact JSON (see [`compact_json`]).
    pub payload: Option<String>,
    /// A Viber receiver overriding the subscription's.
    pub receiver: Option<String>,
    /// When Rubra received it, epoch ms.
    pub received_at: i64,
}

/// What a notification made by a message carries to its channels.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageContent {
    /// The message id.
    pub id: String,
    /// The message type.
    pub kind: String,
    /// The text, if the message had one.
    pub text: Option<String>,
    /// The payload as compact JSON, if the message had one.
    pub payload: Option<String>,
    /// The receiver overriding a Viber subscription's.
    pub receiver: Option<String>,
}

impl MessageContent {
    /// The text of a Viber message: `text`, else the payload's compact JSON, else the type.
    pub fn viber_text(&self) -> &str {
        self.text
            .as_deref()
            .or(self.payload.as_deref())
            .unwrap_or(&self.kind)
    }
}

/// A subscription's `types` column: a JSON array, or NULL for none.
pub(crate) fn types_to_db(types: &[TypePattern]) -> Option<String> {
    if types.is_empty() {
        return None;
    }
    let list: Vec<&str> = types.iter().map(TypePattern::as_str).collect();
    serde_json::to_string(&list).ok()
}

/// Reads a subscription's `types` column; a stored pattern that no longer parses is left out
/// (it matches nothing) rather than failing every read.
pub(crate) fn types_from_db(types: Option<&str>) -> Vec<TypePattern> {
    types
        .and_then(|t| serde_json::from_str::<Vec<String>>(t).ok())
        .unwrap_or_default()
        .iter()
        .filter_map(|t| TypePattern::parse(t).ok())
        .collect()
}

/// Removes the whitespace between the tokens of valid JSON text, keeping every other byte (so
/// numbers keep all their digits).
pub fn compact_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

/// Recording messages (DESIGN §12).
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Records messages and their notifications in one transaction, all or nothing. Answers,
    /// per message in order, `true` when it is new and `false` for a duplicate: an id this
    /// client sent before (or earlier in the same call), which makes no notification. Ids are
    /// kept for the retention of messages (`Retained::Messages`).
    async fn insert_messages(&self, messages: &[NewMessage]) -> Result<Vec<bool>>;
}

#[async_trait]
impl MessageStore for SqliteStore {
    #[tracing::instrument(name = "store.insert_messages", skip_all,
                          fields(messages = messages.len()))]
    async fn insert_messages(&self, messages: &[NewMessage]) -> Result<Vec<bool>> {
        write::sqlite(self, messages).await
    }
}

#[async_trait]
impl MessageStore for PgStore {
    #[tracing::instrument(name = "store.insert_messages", skip_all,
                          fields(messages = messages.len()))]
    async fn insert_messages(&self, messages: &[NewMessage]) -> Result<Vec<bool>> {
        write::postgres(self, messages).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> MessageType {
        MessageType::parse(s).expect("a type")
    }

    fn p(s: &str) -> TypePattern {
        TypePattern::parse(s).expect("a pattern")
    }

    #[test]
    fn a_star_matches_one_or_more_trailing_segments() {
        assert!(p("payment.*").matches(&t("payment.refund")));
        assert!(p("payment.*").matches(&t("payment.refund.late")));
        assert!(!p("payment.*").matches(&t("payment")));
        assert!(!p("payment.*").matches(&t("payments.refund")));
        assert!(!p("payment.*").matches(&t("x.payment.refund")));
        assert!(p("transaction.status").matches(&t("transaction.status")));
        assert!(!p("transaction.status").matches(&t("transaction.status.x")));
        assert!(!p("transaction.status").matches(&t("transaction")));
        assert!(p("*").matches(&t("a")));
        assert!(p("a.b.*").matches(&t("a.b.c")));
        assert!(!p("a.b.*").matches(&t("a.bc")));
    }

    #[test]
    fn malformed_types_and_patterns_are_refused() {
        for bad in ["", ".", "a.", ".a", "a..b", "a b", "a.*", "é", "a/b"] {
            assert!(MessageType::parse(bad).is_err(), "{bad:?}");
        }
        for bad in ["", "a*", "*.a", "a.*.b", "a.**", "a..*", ".*", "a b.*"] {
            assert!(TypePattern::parse(bad).is_err(), "{bad:?}");
        }
        assert!(MessageType::parse(&"a".repeat(MAX_MESSAGE_ID_BYTES + 1)).is_err());
        assert!(MessageId::parse("").is_err());
        assert!(MessageId::parse("a\nb").is_err());
        assert!(MessageId::parse("tx-81723-settled").is_ok());
    }

    #[test]
    fn compact_json_drops_whitespace_outside_strings_only() {
        let raw = "{ \"a\" : [1 ,\n 2.50000000000000000001 ],\t\"b\": \"x y \\\" z\" }";
        assert_eq!(
            compact_json(raw),
            r#"{"a":[1,2.50000000000000000001],"b":"x y \" z"}"#
        );
    }

    #[test]
    fn viber_text_is_the_text_else_the_payload_else_the_type() {
        let mut c = MessageContent {
            id: "m".into(),
            kind: "t.s".into(),
            text: Some("hi".into()),
            payload: Some("{}".into()),
            receiver: None,
        };
        assert_eq!(c.viber_text(), "hi");
        c.text = None;
        assert_eq!(c.viber_text(), "{}");
        c.payload = None;
        assert_eq!(c.viber_text(), "t.s");
    }
}
