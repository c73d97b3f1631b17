//! The proptest twin of `fuzz/fuzz_targets/parse_instant.rs` (same oracle, same documented
//! difference: leap seconds), on texts shaped like instants with every part varied.

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use proptest::prelude::*;
use rubra_instant::{InstantError, Timestamp, format_ms, parse_timestamp};

const MAX: i64 = Timestamp::MAX.as_ms();

/// `Ok(ms)` in range, `Err(true)` well formed but out of range, `Err(false)` malformed;
/// and, for a leap second, chrono's millisecond (in range or not).
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
            let ms = dt.timestamp_millis();
            let leap = (dt.nanosecond() >= 1_000_000_000).then_some(dt.timestamp_millis());
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

/// The fuzz target's assertions, as a proptest result.
pub fn agrees(text: &str) -> Result<(), TestCaseError> {
    let ours = parse_timestamp(text).map(Timestamp::as_ms);
    let (theirs, leap) = oracle(text);
    if let Some(next_second) = leap {
        // chrono reads hh:mm:60.f as hh:mm+1:00.f; Rubra as hh:mm:59.999, when it accepts it.
        if let Ok(ms) = ours {
            prop_assert_eq!(
                ms,
                next_second - next_second.rem_euclid(1000) - 1,
                "{:?}",
                text
            );
        }
    } else {
        match (&ours, theirs) {
            (Ok(a), Ok(b)) => prop_assert_eq!(*a, b, "{:?}", text),
            (Err(InstantError::OutOfRange(_)), Err(true)) | (Err(_), Err(false)) => {}
            (a, b) => prop_assert!(false, "{:?}: Rubra {:?}, oracle {:?}", text, a, b),
        }
    }
    if let Ok(ms) = ours {
        let shown = format_ms(ms);
        let chrono_shown = DateTime::<Utc>::from_timestamp_millis(ms)
            .expect("in range")
            .to_rfc3339_opts(SecondsFormat::Millis, true);
        prop_assert_eq!(&shown, &chrono_shown);
        prop_assert_eq!(parse_timestamp(&shown).map(Timestamp::as_ms), Ok(ms));
    }
    Ok(())
}

/// Texts shaped like RFC 3339 instants, each part drawn from valid and invalid values.
fn instant_like() -> impl Strategy<Value = String> {
    let year = prop_oneof![
        Just("1970".to_string()),
        Just("9999".to_string()),
        (0u32..=10_999).prop_map(|y| format!("{y:04}"))
    ];
    let two = |hi: u32| (0..=hi).prop_map(|v| format!("{v:02}"));
    let sep = prop::sample::select(vec!["T", "t", " ", "X", "/", "_", "TT", ""]);
    let frac = prop_oneof![Just(String::new()), "\\.[0-9]{1,12}", Just(".".to_string())];
    let offset = prop_oneof![
        prop::sample::select(vec!["Z", "z", "+00:00", "-00:00", "", "+0100", "Q"])
            .prop_map(str::to_string),
        ((0u32..=25), (0u32..=61), any::<bool>())
            .prop_map(|(h, m, neg)| format!("{}{h:02}:{m:02}", if neg { '-' } else { '+' })),
    ];
    let pad = prop::sample::select(vec!["", " ", "\t", "\n "]);
    (
        year,
        two(13),
        two(32),
        sep,
        two(24),
        two(60),
        two(61),
        frac,
        offset,
        pad,
    )
        .prop_map(|(y, mo, d, sep, h, mi, s, frac, off, pad)| {
            format!("{pad}{y}-{mo}-{d}{sep}{h}:{mi}:{s}{frac}{off}{pad}")
        })
}

/// Epoch milliseconds, with signs, leading zeros and lengths past `i64`.
fn epoch_like() -> impl Strategy<Value = String> {
    prop_oneof![
        (any::<i64>()).prop_map(|v| v.to_string()),
        (0i64..=MAX + 10).prop_map(|v| v.to_string()),
        "[+-]?0{0,25}[0-9]{0,25}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn rfc3339_like_texts_read_as_chrono_reads_them(text in instant_like()) {
        agrees(&text)?;
    }

    #[test]
    fn epoch_ms_texts_read_as_plain_decimals(text in epoch_like()) {
        agrees(&text)?;
    }

    #[test]
    fn any_text_agrees_with_the_oracle(text in "\\PC{0,40}") {
        agrees(&text)?;
    }

    #[test]
    fn every_instant_prints_and_reads_back(ms in 0..=MAX) {
        agrees(&format_ms(ms))?;
        prop_assert_eq!(parse_timestamp(&format_ms(ms)).map(Timestamp::as_ms), Ok(ms));
    }
}

/// The leap second at the end of the range: chrono reads it past the range, Rubra as its
/// last millisecond (the oracle once expected chrono's reading in range).
#[test]
fn the_leap_second_at_the_end_of_9999_is_the_last_millisecond() {
    agrees("9999-12-31T23:59:60Z").expect("agrees");
    agrees("9999-12-31T23:59:60.5Z").expect("agrees");
    agrees("2016-12-31T23:59:60.250Z").expect("agrees");
    assert_eq!(
        parse_timestamp("9999-12-31T23:59:60Z").map(Timestamp::as_ms),
        Ok(MAX)
    );
}
