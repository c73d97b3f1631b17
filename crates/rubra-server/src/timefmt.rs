//! Instants on the wire: RFC 3339 text or epoch milliseconds in, RFC 3339 (UTC, ms) out.
//! The parsing and formatting live in `rubra-instant` (shared with the store and the fuzz
//! target `parse_instant`); this module maps a refused instant to the API's errors.

use crate::error::{ApiError, ErrorCode};
pub use rubra_instant::{InstantError, format_ms, parse_timestamp};
use rubra_store::Timestamp;

/// [`parse_timestamp`] for the query parameter `name`: a malformed value is 400
/// `invalid_query`, a value out of range 422 `invalid_timestamp`, the message starting with
/// `name:`.
pub fn query_timestamp(name: &str, s: &str) -> Result<Timestamp, ApiError> {
    parse_timestamp(s).map_err(|e| match e {
        InstantError::Malformed(m) => {
            ApiError::new(ErrorCode::InvalidQuery, format!("{name}: {m}"))
        }
        InstantError::OutOfRange(m) => {
            ApiError::new(ErrorCode::InvalidTimestamp, format!("{name}: {m}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_instants_are_400_or_422() {
        let e = query_timestamp("to", "9223372036854775807").unwrap_err();
        assert_eq!((e.status().as_u16(), e.code()), (422, "invalid_timestamp"));
        let e = query_timestamp("from", "soon").unwrap_err();
        assert_eq!((e.status().as_u16(), e.code()), (400, "invalid_query"));
    }
}
