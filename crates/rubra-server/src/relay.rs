//! The message relay (DESIGN §12): what a message is as sent (by `POST /messages` or on the
//! RabbitMQ queue), and its validation into a [`NewMessage`] for the store. Both sources parse
//! through here, so a body means the same wherever it comes from.

use rubra_store::{
    ClientId, MAX_MESSAGE_PAYLOAD_BYTES, MAX_MESSAGE_RECEIVER_BYTES, MAX_MESSAGE_TEXT_BYTES,
    MessageId, MessageType, NewMessage, compact_json,
};
use serde::Deserialize;
use serde_json::value::RawValue;

/// One message as sent. `client_id` is for admin keys and the queue (whose producer is trusted
/// like an admin).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Message)]
pub(crate) struct MessageIn {
    /// The sender's id for it: a second message with the same id is a duplicate; 1 to 200
    /// bytes (UTF-8) without control characters.
    #[serde(default)]
    #[schema(nullable = false, schema_with = message_id_schema)]
    id: Option<String>,
    /// Its type, e.g. `order.created`: what subscriptions' `types` match.
    #[schema(schema_with = crate::routes::messages::message_type_schema)]
    r#type: String,
    /// Text for people, at most 7 000 bytes (UTF-8).
    #[serde(default)]
    #[schema(nullable = false, max_length = 7000)]
    text: Option<String>,
    /// Any JSON, at most 64 KiB compact.
    #[serde(default)]
    #[schema(value_type = Option<serde_json::Value>)]
    payload: Option<Box<RawValue>>,
    /// Who it is for: 1 to 256 bytes (UTF-8), not only white space.
    #[serde(default)]
    #[schema(nullable = false, min_length = 1, max_length = 256, pattern = r"\S")]
    receiver: Option<String>,
    /// For admin keys: whose message it is; a client key may name only its own client.
    #[serde(default)]
    #[schema(nullable = false, pattern = "^cl_[0-9a-fA-F]{16}$")]
    pub(crate) client_id: Option<String>,
}

/// Characters a message id may not hold: Unicode's control characters (`char::is_control`).
const NO_CONTROL_CHARACTERS: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";

/// The schema of a message's `id`: 1 to [`MAX_MESSAGE_ID_BYTES`] bytes (as many characters in
/// ASCII) without control characters.
fn message_id_schema() -> utoipa::openapi::schema::Object {
    crate::openapi::text(
        Some(1),
        Some(rubra_store::MAX_MESSAGE_ID_BYTES),
        Some(NO_CONTROL_CHARACTERS),
    )
    .build()
}

/// Why a message was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    /// The field at fault (`type`, `id`, …), or empty for the whole message.
    pub(crate) field: &'static str,
    /// What is wrong.
    pub(crate) message: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        field,
        message: message.into(),
    }
}

impl MessageIn {
    /// Validates the message for `client`, received at `now` (epoch ms); one sent without
    /// an id gets `default_id`, else a fresh random one.
    pub(crate) fn validate(
        self,
        client: ClientId,
        now: i64,
        default_id: Option<MessageId>,
    ) -> Result<NewMessage, Invalid> {
        let kind = MessageType::parse(&self.r#type).map_err(|m| invalid("type", m))?;
        let id = match self.id {
            None => default_id.unwrap_or_else(MessageId::generate),
            Some(id) => MessageId::parse(&id).map_err(|m| invalid("id", m))?,
        };
        if let Some(text) = &self.text
            && text.len() > MAX_MESSAGE_TEXT_BYTES
        {
            return Err(invalid(
                "text",
                format!("at most {MAX_MESSAGE_TEXT_BYTES} bytes"),
            ));
        }
        let payload = self.payload.map(|p| compact_json(p.get()));
        if let Some(p) = &payload
            && p.len() > MAX_MESSAGE_PAYLOAD_BYTES
        {
            return Err(invalid(
                "payload",
                format!("at most {MAX_MESSAGE_PAYLOAD_BYTES} bytes of compact JSON"),
            ));
        }
        if let Some(r) = &self.receiver
            && (r.trim().is_empty() || r.len() > MAX_MESSAGE_RECEIVER_BYTES)
        {
            return Err(invalid(
                "receiver",
                format!("1 to {MAX_MESSAGE_RECEIVER_BYTES} bytes"),
            ));
        }
        Ok(NewMessage {
            client_id: client,
            id,
            kind,
            text: self.text,
            payload,
            receiver: self.receiver,
            received_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<NewMessage, Invalid> {
        let m: MessageIn = serde_json::from_str(json).expect("a message");
        let client = ClientId::parse("cl_0123456789abcdef").expect("client id");
        m.validate(client, 1, None)
    }

    #[test]
    fn a_message_keeps_its_id_and_compacts_its_payload() {
        let m =
            parse(r#"{"id":"tx-1","type":"transaction.status","payload":{ "amount" : 12.50 }}"#)
                .expect("valid");
        assert_eq!(m.id.as_str(), "tx-1");
        assert_eq!(m.payload.as_deref(), Some(r#"{"amount":12.50}"#));
        let m = parse(r#"{"type":"a"}"#).expect("valid");
        assert!(m.id.as_str().starts_with("msg_"));
    }

    #[test]
    fn bad_fields_are_named() {
        assert_eq!(parse(r#"{"type":"a b"}"#).unwrap_err().field, "type");
        assert_eq!(parse(r#"{"type":"a","id":""}"#).unwrap_err().field, "id");
        assert_eq!(
            parse(r#"{"type":"a","receiver":" "}"#).unwrap_err().field,
            "receiver"
        );
        let long = "x".repeat(MAX_MESSAGE_TEXT_BYTES + 1);
        let body = format!(r#"{{"type":"a","text":"{long}"}}"#);
        assert_eq!(parse(&body).unwrap_err().field, "text");
    }
}
