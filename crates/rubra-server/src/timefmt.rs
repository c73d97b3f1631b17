//! Instants on the wire: RFC 3339 text or epoch milliseconds in, RFC 3339 (UTC, ms) out.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Parses an instant given as RFC 3339 (`2026-11-23T08:00:00Z`, any offset) or as an integer
/// number of milliseconds since the epoch. Returns epoch ms UTC.
pub fn parse_instant(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("{s:?} is neither RFC 3339 nor epoch milliseconds: {e}"))?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| format!("{s:?} is out of range"))
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

    #[test]
    fn parses_rfc3339_and_epoch_ms() {
        assert_eq!(parse_instant("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(parse_instant("1970-01-01T01:00:01.5+01:00"), Ok(1500));
        assert_eq!(parse_instant("1234"), Ok(1234));
        assert!(parse_instant("yesterday").is_err());
    }

    #[test]
    fn formats_with_three_fraction_digits() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_500), "1970-01-01T00:00:01.500Z");
        assert_eq!(format_ms(1_763_884_800_123), "2025-11-23T08:00:00.123Z");
    }
}
