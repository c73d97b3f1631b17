//! Times and durations: RFC 3339 timestamps (`--since`/`--until`, the `ts` of each line),
//! tracing's `time.busy` strings (`1.2ms`), and short human-readable durations for tables.

use std::fmt;
use std::str::FromStr;

/// A point in time, in nanoseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// The error of parsing a [`Timestamp`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3339 timestamp {0:?} (expected e.g. 2026-01-02T03:04:05Z or 2026-01-02)")]
pub struct ParseTimestampError(pub String);

impl FromStr for Timestamp {
    type Err = ParseTimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_rfc3339(s).ok_or_else(|| ParseTimestampError(s.to_owned()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1_000_000_000);
        let nanos = self.0.rem_euclid(1_000_000_000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            rem / 3600,
            (rem / 60) % 60,
            rem % 60
        )?;
        // Printed to the microsecond: a fraction under one is left out, as ".000000"
        // would read back as another time than the one it printed (issue #20).
        if nanos / 1000 != 0 {
            write!(f, ".{:06}", nanos / 1000)?;
        }
        f.write_str("Z")
    }
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0, |acc, &c| acc * 10 + i64::from(c - b'0')))
}

/// Parses `YYYY-MM-DD[(T| )HH:MM:SS[.frac](Z|±HH:MM)]` into nanoseconds since the epoch.
pub(crate) fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.trim().as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let day_s = days_from_civil(y, mo, d) * 86_400;
    if b.len() == 10 {
        return from_secs(day_s, 0);
    }
    if b.len() < 20 || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, se) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut frac_ns = 0;
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let mut scale = 100_000_000;
        for &c in &rest[1..=n.min(9)] {
            frac_ns += i64::from(c - b'0') * scale;
            scale /= 10;
        }
        rest = &rest[1 + n..];
    }
    let offset_s = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), oh @ .., b':', om1, om2] if oh.len() == 2 => {
            let off = digits(oh)? * 3600 + digits(&[*om1, *om2])? * 60;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    from_secs(day_s + h * 3600 + mi * 60 + se - offset_s, frac_ns)
}

/// `secs` seconds and `nanos` nanoseconds after the epoch, if that fits in an `i64` of
/// nanoseconds (1677-09-21T00:12:43.145224192Z to 2262-04-11T23:47:16.854775807Z).
fn from_secs(secs: i64, nanos: i64) -> Option<Timestamp> {
    let ns = i128::from(secs) * 1_000_000_000 + i128::from(nanos);
    i64::try_from(ns).ok().map(Timestamp)
}

/// Parses tracing-subscriber's `time.busy`/`time.idle` values (`1.23ms`, `4.5µs`, `789ns`,
/// `1.00s`) into nanoseconds.
pub(crate) fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let scale = match unit.trim() {
        "ns" => 1.0,
        "µs" | "μs" | "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        _ => return None,
    };
    let ns = (v * scale).round();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    (ns.is_finite() && ns >= 0.0).then_some(ns as u64)
}

/// A short human-readable duration with 3 significant digits: `812ns`, `4.20µs`, `13.5ms`,
/// `2.50s`, `3m05s`.
#[must_use]
pub fn human_duration(ns: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let f = ns as f64;
    let sig = |v: f64, unit: &str| {
        if v >= 99.95 {
            format!("{v:.0}{unit}")
        } else if v >= 9.995 {
            format!("{v:.1}{unit}")
        } else {
            format!("{v:.2}{unit}")
        }
    };
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 999_500 {
        sig(f / 1e3, "µs")
    } else if ns < 999_500_000 {
        sig(f / 1e6, "ms")
    } else if ns < 60_000_000_000 {
        sig(f / 1e9, "s")
    } else {
        let secs = ns / 1_000_000_000;
        if secs < 3600 {
            format!("{}m{:02}s", secs / 60, secs % 60)
        } else {
            format!("{}h{:02}m", secs / 3600, (secs / 60) % 60)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_fuzz_sub_microsecond_fraction_prints_as_it_parses_back() {
        // The `timestamp` fuzz target's input: 115.96… ns past the second printed as
        // ".000000", which parses back as a whole second and prints without a fraction.
        let t: Timestamp = "2026-01-02T03:04:10.00000011596069009475823834+01:30"
            .parse()
            .expect("valid");
        let shown = t.to_string();
        let back: Timestamp = shown.parse().expect("printed form parses");
        assert_eq!(back.to_string(), shown);
        assert_eq!(shown, "2026-01-02T01:34:10Z");
    }

    #[test]
    fn rfc3339_round_trips_and_honours_offsets() {
        let t: Timestamp = "2024-02-29T12:34:56.789012Z".parse().expect("valid");
        assert_eq!(t.0, 1_709_210_096_789_012_000);
        assert_eq!(t.to_string(), "2024-02-29T12:34:56.789012Z");
        let o: Timestamp = "2024-02-29T14:34:56.789012+02:00".parse().expect("valid");
        assert_eq!(o, t);
        let d: Timestamp = "1970-01-02".parse().expect("valid");
        assert_eq!(d.0, 86_400_000_000_000);
        assert!("2024-13-01".parse::<Timestamp>().is_err());
        assert!("yesterday".parse::<Timestamp>().is_err());
        assert!("2024-01-01T00:00:00".parse::<Timestamp>().is_err());
    }

    #[test]
    fn tracing_durations_parse() {
        assert_eq!(parse_duration("1.2ms"), Some(1_200_000));
        assert_eq!(parse_duration("3µs"), Some(3_000));
        assert_eq!(parse_duration("3.5us"), Some(3_500));
        assert_eq!(parse_duration("789ns"), Some(789));
        assert_eq!(parse_duration("1.00s"), Some(1_000_000_000));
        assert_eq!(parse_duration("fast"), None);
    }

    #[test]
    fn humanised() {
        assert_eq!(human_duration(812), "812ns");
        assert_eq!(human_duration(4_200), "4.20µs");
        assert_eq!(human_duration(13_500_000), "13.5ms");
        assert_eq!(human_duration(250_000_000), "250ms");
        assert_eq!(human_duration(2_500_000_000), "2.50s");
        assert_eq!(human_duration(185_000_000_000), "3m05s");
    }
}
