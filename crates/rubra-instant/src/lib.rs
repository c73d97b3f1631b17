//! Instants as Rubra keeps and shows them: [`Timestamp`], epoch milliseconds bounded to
//! 1970–9999 so that no arithmetic on one can overflow, and the API's text form of it
//! ([`parse_timestamp`]: RFC 3339 or epoch milliseconds in; [`format_ms`]: RFC 3339 out).
//!
//! A crate of its own, with no database or HTTP dependency, so that the store, the server and
//! the fuzz target of the parser (`fuzz/fuzz_targets/parse_instant.rs`) share one copy.

#![deny(missing_docs)]

mod text;
mod timestamp;

pub use text::{InstantError, format_ms, parse_timestamp};
pub use timestamp::{Timestamp, TimestampOutOfRange};

/// Milliseconds since the Unix epoch, UTC, now (`i64::MAX` past the year 292 million).
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
