//! [`Timestamp`]: an instant that a client may name, bounded so that no arithmetic on it can
//! overflow (1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z, in epoch milliseconds).

use std::fmt;

/// An instant in epoch milliseconds (UTC) between [`Timestamp::MIN`] (1970-01-01T00:00:00Z)
/// and [`Timestamp::MAX`] (9999-12-31T23:59:59.999Z), both included.
///
/// It cannot hold another value, so code that receives one needs no range check: sums of a
/// few of them, of their differences, and of spans up to a day stay far from `i64`'s limits
/// (`MAX` is about 2.5·10¹⁴, `i64::MAX` about 9.2·10¹⁸), and each has a four-digit year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// A value outside [`Timestamp::MIN`]`..=`[`Timestamp::MAX`], in epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "{ms} ms is outside 1970-01-01T00:00:00Z ({}) ..= 9999-12-31T23:59:59.999Z ({})",
    Timestamp::MIN.0,
    Timestamp::MAX.0
)]
pub struct TimestampOutOfRange {
    /// The refused value (saturated to `i64` if it was larger still).
    pub ms: i64,
}

impl Timestamp {
    /// 1970-01-01T00:00:00.000Z.
    pub const MIN: Timestamp = Timestamp(0);
    /// 9999-12-31T23:59:59.999Z.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999);

    /// The instant `ms` milliseconds after the epoch, if it lies in range.
    pub const fn from_ms(ms: i64) -> Result<Timestamp, TimestampOutOfRange> {
        if ms >= Self::MIN.0 && ms <= Self::MAX.0 {
            Ok(Timestamp(ms))
        } else {
            Err(TimestampOutOfRange { ms })
        }
    }

    /// The instant nearest to `ms` in range (for values the server computes itself, such as
    /// "now + 1 ms" or "24 hours before").
    pub const fn saturating_from_ms(ms: i64) -> Timestamp {
        if ms < Self::MIN.0 {
            Self::MIN
        } else if ms > Self::MAX.0 {
            Self::MAX
        } else {
            Timestamp(ms)
        }
    }

    /// The current time (saturated into range).
    pub fn now() -> Timestamp {
        Self::saturating_from_ms(crate::now_ms())
    }

    /// Milliseconds since the epoch.
    pub const fn as_ms(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

impl TryFrom<i64> for Timestamp {
    type Error = TimestampOutOfRange;

    fn try_from(ms: i64) -> Result<Self, Self::Error> {
        Timestamp::from_ms(ms)
    }
}

impl From<Timestamp> for i64 {
    fn from(t: Timestamp) -> i64 {
        t.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_exactly_1970_to_the_end_of_9999() {
        assert_eq!(Timestamp::from_ms(0).map(Timestamp::as_ms), Ok(0));
        assert_eq!(
            Timestamp::from_ms(253_402_300_799_999).map(Timestamp::as_ms),
            Ok(253_402_300_799_999)
        );
        for ms in [
            -1,
            253_402_300_800_000,
            i64::MIN,
            i64::MAX,
            100_000_000_000_000_000,
        ] {
            assert_eq!(Timestamp::from_ms(ms), Err(TimestampOutOfRange { ms }));
            assert_eq!(Timestamp::try_from(ms), Err(TimestampOutOfRange { ms }));
        }
        assert_eq!(Timestamp::saturating_from_ms(i64::MIN), Timestamp::MIN);
        assert_eq!(Timestamp::saturating_from_ms(-1), Timestamp::MIN);
        assert_eq!(Timestamp::saturating_from_ms(i64::MAX), Timestamp::MAX);
        assert_eq!(Timestamp::saturating_from_ms(7).as_ms(), 7);
        assert!(Timestamp::MIN < Timestamp::now() && Timestamp::now() < Timestamp::MAX);
        let e = TimestampOutOfRange { ms: -1 }.to_string();
        assert!(e.contains("9999-12-31T23:59:59.999Z"), "{e}");
    }
}
