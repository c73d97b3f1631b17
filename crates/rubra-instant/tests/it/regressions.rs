//! Regression tests of what the fuzz target `parse_instant` and its proptest twin found.
//! Each input is under `tests/fixtures/`.

use rubra_instant::{InstantError, parse_timestamp};

/// The `time` crate's RFC 3339 parser takes any one byte between the date and the time
/// (`1970-01-01X00:00:00+00:00` was 0 ms); RFC 3339 allows `T`, `t` and, by its note, a
/// space only.
#[test]
fn instant_with_a_separator_other_than_t_or_space_is_refused() {
    let text = include_str!("../fixtures/separator-x.txt");
    assert!(
        matches!(parse_timestamp(text), Err(InstantError::Malformed(_))),
        "{:?}",
        parse_timestamp(text)
    );
    for sep in ["/", "_", "\u{0}", "-", "+", "0"] {
        let text = format!("1970-01-01{sep}00:00:00Z");
        assert!(parse_timestamp(&text).is_err(), "{text:?}");
    }
    for sep in ["T", "t", " "] {
        let text = format!("1970-01-01{sep}00:00:01Z");
        assert_eq!(
            parse_timestamp(&text).map(|t| t.as_ms()),
            Ok(1000),
            "{text:?}"
        );
    }
}
