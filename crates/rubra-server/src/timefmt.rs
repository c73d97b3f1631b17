//! Instants on the wire: RFC 3339 text or epoch milliseconds in, RFC 3339 (UTC, ms) out.

use crate::error::{ApiError, ErrorCode};
use rubra_store::Timestamp;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Why a client's instant was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstantError {
    /// Neither RFC 3339 nor integer epoch milliseconds.
    Malformed(String),
    /// A well-formed instant outside 1970-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999Z.
    OutOfRange(String),
}

impl std::fmt::Display for InstantError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InstantError::Malformed(m) | InstantError::OutOfRange(m) => f.write_str(m),
        }
    }
}

/// The range every instant a client sends must lie in, as the messages say it.
const RANGE: &str =
    "between 1970-01-01T00:00:00Z (0) and 9999-12-31T23:59:59.999Z (253402300799999)";

/// Parses an instant given as RFC 3339 (`2026-11-23T08:00:00Z`, any offset) or as an integer
/// number of milliseconds since the epoch, into a [`Timestamp`] (so 1970 to the end of 9999).
///
/// An integer too large for `i64`, an RFC 3339 instant outside the range once in UTC, and an
/// RFC 3339-like text with a year of five digits or more are [`InstantError::OutOfRange`];
/// anything else that does not parse is [`InstantError::Malformed`].
pub fn parse_timestamp(s: &str) -> Result<Timestamp, InstantError> {
    let s = s.trim();
    let out_of_range = || InstantError::OutOfRange(format!("{s:?} is not {RANGE}"));
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        let ms = s.parse::<i64>().map_err(|_| out_of_range())?;
        return Timestamp::from_ms(ms).map_err(|_| out_of_range());
    }
    match OffsetDateTime::parse(s, &Rfc3339) {
        Ok(t) => i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000))
            .ok()
            .and_then(|ms| Timestamp::from_ms(ms).ok())
            .ok_or_else(out_of_range),
        // RFC 3339 has four-digit years only: `10000-01-01T00:00:00Z` is well formed but late.
        Err(_)
            if digits.split_once('-').is_some_and(|(year, _)| {
                year.len() > 4 && year.bytes().all(|b| b.is_ascii_digit())
            }) =>
        {
            Err(out_of_range())
        }
        Err(e) => Err(InstantError::Malformed(format!(
            "{s:?} is neither RFC 3339 nor epoch milliseconds: {e}"
        ))),
    }
}

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

/// Formats epoch ms as RFC 3339 in UTC with millisecond precision.
pub fn format_ms(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let t = t
        .replace_nanosecond((ms.rem_euclid(1000) as u32) * 1_000_000)
        .unwrap_or(t);
    let mut s = t.format(&Rfc3339).unwrap_or_else(|_| ms.to_string());
    // Rfc3339 drops trailing zero fractions; keep exactly three digits for stable output.
    if let Some(z) = s.strip_suffix('Z') {
        let (base, frac) = z.split_once('.').unwrap_or((z, ""));
        s = format!("{base}.{:0<3}Z", &frac[..frac.len().min(3)]);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> Result<i64, InstantError> {
        parse_timestamp(s).map(Timestamp::as_ms)
    }

    #[test]
    fn parses_rfc3339_and_epoch_ms() {
        assert_eq!(ms("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(ms("1970-01-01T01:00:01.5+01:00"), Ok(1500));
        assert_eq!(ms("1234"), Ok(1234));
        assert_eq!(ms(" +1234 "), Ok(1234));
        assert!(matches!(ms("yesterday"), Err(InstantError::Malformed(_))));
        assert!(matches!(ms("1e17"), Err(InstantError::Malformed(_))));
        assert!(matches!(ms(""), Err(InstantError::Malformed(_))));
        assert!(matches!(ms("-"), Err(InstantError::Malformed(_))));
    }

    #[test]
    fn timestamps_lie_between_1970_and_the_end_of_9999() {
        for edge in ["0", "1970-01-01T00:00:00Z", "1970-01-01T01:00:00+01:00"] {
            assert_eq!(ms(edge), Ok(0), "{edge}");
        }
        for edge in [
            "253402300799999",
            "9999-12-31T23:59:59.999Z",
            "9999-12-31T23:59:59.999+00:00",
        ] {
            assert_eq!(ms(edge), Ok(253_402_300_799_999), "{edge}");
        }
        for out in [
            "-1",
            "253402300800000",
            "9223372036854775807",
            "-9223372036854775808",
            "100000000000000000",
            "99999999999999999999999",
            "-99999999999999999999999",
            "1969-12-31T23:59:59.999Z",
            "1970-01-01T00:59:59.999+01:00",
            "9999-12-31T23:59:59.999-01:00",
            "10000-01-01T00:00:00Z",
            "275760-09-13T00:00:00Z",
            "0000-01-01T00:00:00Z",
        ] {
            let got = ms(out);
            assert!(
                matches!(got, Err(InstantError::OutOfRange(_))),
                "{out}: {got:?}"
            );
        }
        let e = query_timestamp("to", "9223372036854775807").unwrap_err();
        assert_eq!((e.status().as_u16(), e.code()), (422, "invalid_timestamp"));
        let e = query_timestamp("from", "soon").unwrap_err();
        assert_eq!((e.status().as_u16(), e.code()), (400, "invalid_query"));
    }

    #[test]
    fn formats_with_three_fraction_digits() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_500), "1970-01-01T00:00:01.500Z");
        assert_eq!(format_ms(1_763_884_800_123), "2025-11-23T08:00:00.123Z");
    }
}
