//! Differential oracle: RFC 3339 timestamps (`--since`, `--until` and every line's `ts`)
//! read by rubra-slowlog against `chrono`'s parser, on valid timestamps of every year
//! from 0000 to 9999 (the edges of the `i64` nanosecond range included): the same
//! instant, or both refuse it (outside the range), never a panic; and the printed
//! form reads back as the same instant (to the microsecond that it prints).

use chrono::DateTime;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use rubra_slowlog::Timestamp;

fn days_in(y: u32, m: u32) -> u32 {
    match m {
        2 if y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A valid RFC 3339 timestamp; a third of them on the first or last day of the range.
fn timestamp() -> impl Strategy<Value = String> {
    let year = prop_oneof![2 => 0u32..=9999, 1 => Just(1677u32), 1 => Just(2262u32)];
    let date = (year, 1u32..=12, 1u32..=31).prop_map(|(y, m, d)| {
        let (m, d) = match y {
            1677 => (9, 21),
            2262 => (4, 11),
            _ => (m, d.min(days_in(y, m))),
        };
        format!("{y:04}-{m:02}-{d:02}")
    });
    let offset = prop_oneof![
        Just("Z".to_owned()),
        Just("z".to_owned()),
        ("[+-]", 0u32..=23, 0u32..=59).prop_map(|(s, h, m)| format!("{s}{h:02}:{m:02}")),
    ];
    (
        date,
        prop_oneof![Just('T'), Just('t'), Just(' ')],
        (0u32..=23, 0u32..=59, 0u32..=59),
        prop::option::of("[0-9]{1,9}"),
        offset,
    )
        .prop_map(|(date, sep, (h, m, s), frac, offset)| {
            let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
            format!("{date}{sep}{h:02}:{m:02}:{s:02}{frac}{offset}")
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1024),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/prop_timestamp.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn timestamps_read_as_chrono_reads_them(s in timestamp()) {
        let want = DateTime::parse_from_rfc3339(&s)
            .expect("chrono reads every generated timestamp")
            .timestamp_nanos_opt();
        let ours = s.parse::<Timestamp>().ok();
        prop_assert_eq!(ours.map(|t| t.0), want, "{}", s);
        if let Some(t) = ours {
            let printed = t.to_string();
            let back = printed.parse::<Timestamp>().expect("a printed timestamp reads back");
            prop_assert_eq!(back.0, t.0 - t.0.rem_euclid(1000), "{} printed as {}", s, printed);
        }
    }

    #[test]
    fn a_date_alone_is_its_midnight_utc(y in 0u32..=9999, m in 1u32..=12, d in 1u32..=31) {
        let date = format!("{y:04}-{m:02}-{:02}", d.min(days_in(y, m)));
        let want = DateTime::parse_from_rfc3339(&format!("{date}T00:00:00Z"))
            .expect("valid")
            .timestamp_nanos_opt();
        prop_assert_eq!(date.parse::<Timestamp>().ok().map(|t| t.0), want, "{}", date);
    }
}
