//! Instants on the wire: RFC 3339 text or epoch milliseconds in, RFC 3339 (UTC, ms) out.

use crate::Timestamp;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Why a client's instant was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstantError {
    /// Neither RFC 3339 nor integer epoch milliseconds.
    #[error("{0}")]
    Malformed(String),
    /// A well-formed instant outside 1970-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999Z.
    #[error("{0}")]
    OutOfRange(String),
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
    // RFC 3339 separates the date and the time by `T` (either case) or, by its note, a space;
    // the `time` crate takes any one byte there (`1970-01-01X00:00:00Z`).
    let parsed = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| e.to_string())
        .and_then(|t| match s.as_bytes().get(10) {
            Some(b'T' | b't' | b' ') => Ok(t),
            _ => Err("the date and the time must be separated by T or a space".to_string()),
        });
    match parsed {
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
    }

    #[test]
    fn formats_with_three_fraction_digits() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_500), "1970-01-01T00:00:01.500Z");
        assert_eq!(format_ms(1_763_884_800_123), "2025-11-23T08:00:00.123Z");
    }
}
