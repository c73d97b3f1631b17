//! Splitting a query range into rollup blocks (whole days, hours, minutes) and raw edges.

/// One minute, one hour and one day in ms.
pub(crate) const MINUTE: i64 = 60_000;
/// One hour in ms.
pub(crate) const HOUR: i64 = 3_600_000;
/// One day in ms.
pub(crate) const DAY: i64 = 86_400_000;

/// The rollup levels, stored as their number.
pub(crate) const LEVELS: [(i16, i64); 3] = [(0, MINUTE), (1, HOUR), (2, DAY)];

/// The start of the period of length `span` holding `ts` (epoch-aligned, UTC).
pub(crate) fn floor_to(ts: i64, span: i64) -> i64 {
    ts.div_euclid(span) * span
}

/// The smallest multiple of `span` at or after `ts`.
pub(crate) fn ceil_to(ts: i64, span: i64) -> i64 {
    -floor_to(-ts, span)
}

/// A run of consecutive rollup rows of one level: starts `lo, lo+span, … < hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    /// The level number.
    pub level: i16,
    /// First block start.
    pub lo: i64,
    /// End (exclusive) of the last block.
    pub hi: i64,
}

/// Covers the minute-aligned `[a, b)` with the fewest whole days, hours and minutes, appending
/// them as runs (merged with the previous run when contiguous and of the same level).
pub(crate) fn cover(mut a: i64, b: i64, runs: &mut Vec<Run>) {
    while a < b {
        let (level, span) = LEVELS
            .iter()
            .rev()
            .copied()
            .find(|&(_, span)| a % span == 0 && a + span <= b)
            .unwrap_or(LEVELS[0]);
        match runs.last_mut() {
            Some(r) if r.level == level && r.hi == a => r.hi = a + span,
            _ => runs.push(Run {
                level,
                lo: a,
                hi: a + span,
            }),
        }
        a += span;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_with_the_largest_blocks() {
        let mut runs = Vec::new();
        let a = DAY + 23 * HOUR + 58 * MINUTE;
        let b = 4 * DAY + 2 * HOUR + 3 * MINUTE;
        cover(a, b, &mut runs);
        let total: i64 = runs
            .iter()
            .map(|r| {
                assert_eq!((r.hi - r.lo) % LEVELS[r.level as usize].1, 0);
                r.hi - r.lo
            })
            .sum();
        assert_eq!(total, b - a);
        assert_eq!(
            runs,
            vec![
                Run {
                    level: 0,
                    lo: a,
                    hi: 2 * DAY
                },
                Run {
                    level: 2,
                    lo: 2 * DAY,
                    hi: 4 * DAY
                },
                Run {
                    level: 1,
                    lo: 4 * DAY,
                    hi: 4 * DAY + 2 * HOUR
                },
                Run {
                    level: 0,
                    lo: 4 * DAY + 2 * HOUR,
                    hi: b
                },
            ]
        );
        assert_eq!(floor_to(-1, MINUTE), -MINUTE);
        assert_eq!(ceil_to(1, MINUTE), MINUTE);
        assert_eq!(ceil_to(MINUTE, MINUTE), MINUTE);
    }
}
