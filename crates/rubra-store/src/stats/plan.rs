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
///
/// The cost is a few steps per level, whatever the length of the range: the whole days of a
/// range are one run (one index range of day rows), found by arithmetic rather than by walking
/// the range a block at a time (which took ~2.9 million steps for the 10 000 years a client may
/// ask for). The blocks are those a greedy walk would take — at each point the largest aligned
/// block that fits — because no block of a level can start between `a` and the first boundary
/// of that level, and blocks of a lower level never cross it.
pub(crate) fn cover(a: i64, b: i64, runs: &mut Vec<Run>) {
    cover_with(&LEVELS, a, b, runs);
}

/// [`cover`] with `levels` only (finest first).
fn cover_with(levels: &[(i16, i64)], a: i64, b: i64, runs: &mut Vec<Run>) {
    let Some((&(level, span), finer)) = levels.split_last() else {
        return;
    };
    if a >= b {
        return;
    }
    let (lo, hi) = (ceil_to(a, span), floor_to(b, span));
    if lo >= hi {
        // Not one whole block of this level fits.
        cover_with(finer, a, b, runs);
        return;
    }
    cover_with(finer, a, lo, runs);
    push(runs, Run { level, lo, hi });
    cover_with(finer, hi, b, runs);
}

/// Covers the minute-aligned `[a, b)` as [`cover`] does, cut at the boundaries of buckets of
/// `width` (a multiple of a minute, dividing a day or a multiple of it) so that no run crosses
/// one. Every whole bucket is covered by blocks of the largest level that divides `width`, so
/// the whole buckets are one run and the cost does not grow with their number.
pub(crate) fn cover_buckets(a: i64, b: i64, width: i64, runs: &mut Vec<Run>) {
    if a >= b {
        return;
    }
    let (lo, hi) = (ceil_to(a, width), floor_to(b, width));
    if lo > hi {
        // Inside one bucket.
        cover(a, b, runs);
        return;
    }
    cover(a, lo, runs);
    if lo < hi {
        let (level, _) = LEVELS
            .iter()
            .rev()
            .copied()
            .find(|&(_, span)| width % span == 0)
            .unwrap_or(LEVELS[0]);
        push(runs, Run { level, lo, hi });
    }
    cover(hi, b, runs);
}

/// Appends `run`, merged with the last run when it continues it at the same level.
fn push(runs: &mut Vec<Run>, run: Run) {
    match runs.last_mut() {
        Some(r) if r.level == run.level && r.hi == run.lo => r.hi = run.hi,
        _ => runs.push(run),
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

    /// The walk `cover` replaced: at each point the largest aligned block that fits, one block
    /// at a time.
    fn greedy(mut a: i64, b: i64, runs: &mut Vec<Run>) {
        while a < b {
            let (level, span) = LEVELS
                .iter()
                .rev()
                .copied()
                .find(|&(_, span)| a % span == 0 && a + span <= b)
                .unwrap_or(LEVELS[0]);
            push(
                runs,
                Run {
                    level,
                    lo: a,
                    hi: a + span,
                },
            );
            a += span;
        }
    }

    /// A small deterministic generator (xorshift64*).
    fn next(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[test]
    fn cover_takes_the_blocks_of_the_greedy_walk() {
        let mut rng = 0x5eed_0000_0000_0017_u64;
        let spans = [MINUTE, HOUR, DAY, 40 * DAY];
        for _ in 0..2_000 {
            let mut pick = || {
                let span = spans[(next(&mut rng) % 4) as usize];
                let base = 20_000 * DAY;
                ceil_to(
                    base + (next(&mut rng) % (span as u64 / MINUTE as u64 * 3)) as i64 * MINUTE,
                    MINUTE,
                )
            };
            let (x, y) = (pick(), pick());
            let (a, b) = (x.min(y), x.max(y));
            let (mut got, mut want) = (Vec::new(), Vec::new());
            cover(a, b, &mut got);
            greedy(a, b, &mut want);
            assert_eq!(got, want, "[{a}, {b})");
            for width in [MINUTE, 5 * MINUTE, HOUR, DAY] {
                // The old plan: the greedy walk bucket by bucket.
                let (mut got, mut want) = (Vec::new(), Vec::new());
                cover_buckets(a, b, width, &mut got);
                let mut lo = a;
                while lo < b {
                    let hi = (floor_to(lo, width) + width).min(b);
                    greedy(lo, hi, &mut want);
                    lo = hi;
                }
                assert_eq!(got, want, "[{a}, {b}) in buckets of {width}");
            }
        }
    }

    #[test]
    fn ten_thousand_years_are_a_handful_of_runs() {
        // 1970 to the last whole minute of 9999 (the widest range a client may ask for).
        let (a, b) = (0, floor_to(253_402_300_799_999, MINUTE));
        let mut runs = Vec::new();
        cover(a, b, &mut runs);
        assert_eq!(
            runs,
            vec![
                Run {
                    level: 2,
                    lo: 0,
                    hi: floor_to(b, DAY)
                },
                Run {
                    level: 1,
                    lo: floor_to(b, DAY),
                    hi: floor_to(b, HOUR)
                },
                Run {
                    level: 0,
                    lo: floor_to(b, HOUR),
                    hi: b
                },
            ]
        );
        let mut runs = Vec::new();
        cover_buckets(MINUTE, b, DAY, &mut runs);
        assert_eq!(runs.len(), 5, "{runs:?}");
    }
}
