//! Delivering Rubra's notifications: everything about talking to a receiver, nothing about
//! where notifications come from.
//!
//! - [`signing`]: [Standard Webhooks](https://www.standardwebhooks.com) signatures — the
//!   `whsec_` secret, the `webhook-id` / `webhook-timestamp` / `webhook-signature` headers,
//!   and a [`signing::verify`] that receivers (and Rubra's tests) use.
//! - [`retry`]: when a failed delivery is tried again, and when it is given up.
//! - [`send`]: the webhook POST and the Viber bot `send_message` call, each returning an
//!   [`send::Outcome`] (status code, latency, error) rather than failing, so the caller can
//!   record every attempt the same way. Webhooks go through `rubra-fetch`'s egress guard.
//!
//! The crate depends on no server or store crate (only on `rubra-fetch` for the guard): it is
//! usable alone, e.g. by a receiver written in Rust that wants to check Rubra's signatures.
#![deny(missing_docs)]

pub mod retry;
pub mod send;
pub mod signing;

pub use retry::RetrySchedule;
pub use send::{MAX_ANSWER_BYTES, Outcome, Sender, ViberMessage, WebhookRequest};
pub use signing::{SigningError, VerifyError, WebhookSecret, sign, sign_all, verify};
