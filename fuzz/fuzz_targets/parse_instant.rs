//! The API's instants (`rubra_server::admin::parse_instant`, every `from`/`to` query
//! parameter): `rubra_instant::parse_timestamp` against an independent reading of the same
//! text — epoch milliseconds as a plain decimal integer, RFC 3339 by `chrono` — with the
//! range check 1970-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999Z. The two must agree on
//! accepting the text and on the millisecond it names, and an accepted instant must print
//! (`format_ms`) as the RFC 3339 text `chrono` prints, which reads back to the same instant.
//!
//! One documented difference: a leap second (`:60`). `chrono` takes it anywhere as the
//! second after `:59`; Rubra (the `time` crate) takes it only as the last second of a
//! month in UTC, read as the last millisecond before the next minute.
#![no_main]

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use libfuzzer_sys::fuzz_target;
use rubra_instant::{InstantError, Timestamp, format_ms, parse_timestamp};

const MAX: i64 = Timestamp::MAX.as_ms();

/// What the text names, read without Rubra's code: `Ok(ms)` in range, `Err(true)` well
/// formed but out of range, `Err(false)` malformed; and, for a leap second, chrono's
/// millisecond (in range or not).
fn oracle(text: &str) -> (Result<i64, bool>, Option<i64>) {
    let t = text.trim();
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        let significant = digits.trim_start_matches('0');
        if significant.is_empty() {
            return (Ok(0), None);
        }
        if negative || significant.len() > 15 {
            return (Err(true), None);
        }
        let ms: i64 = significant.parse().expect("at most 15 digits");
        return (if ms <= MAX { Ok(ms) } else { Err(true) }, None);
    }
    match DateTime::parse_from_rfc3339(t) {
        Ok(dt) => {
            let leap = (dt.nanosecond() >= 1_000_000_000).then_some(dt.timestamp_millis());
            let ms = dt.timestamp_millis();
            (
                if (0..=MAX).contains(&ms) {
                    Ok(ms)
                } else {
                    Err(true)
                },
                leap,
            )
        }
        Err(_) => (Err(false), None),
    }
}

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let ours = parse_timestamp(text).map(Timestamp::as_ms);
    let (theirs, leap) = oracle(text);
    if let Some(next_second) = leap {
        // chrono reads hh:mm:60.f as hh:mm+1:00.f; Rubra as hh:mm:59.999, when it accepts it.
        if let Ok(ms) = ours {
            assert_eq!(
                ms,
                next_second - next_second.rem_euclid(1000) - 1,
                "{text:?}"
            );
        }
    } else {
        match (&ours, theirs) {
            (Ok(a), Ok(b)) => assert_eq!(*a, b, "{text:?}: Rubra {a} ms, oracle {b} ms"),
            (Err(InstantError::OutOfRange(_)), Err(true)) => {}
            (Err(_), Err(false)) => {}
            (a, b) => panic!("{text:?}: Rubra {a:?}, oracle {b:?}"),
        }
    }
    if let Ok(ms) = ours {
        let shown = format_ms(ms);
        let chrono_shown = DateTime::<Utc>::from_timestamp_millis(ms)
            .expect("in range")
            .to_rfc3339_opts(SecondsFormat::Millis, true);
        assert_eq!(shown, chrono_shown, "{ms} ms");
        assert_eq!(
            parse_timestamp(&shown).map(Timestamp::as_ms),
            Ok(ms),
            "{shown}"
        );
    }
});
