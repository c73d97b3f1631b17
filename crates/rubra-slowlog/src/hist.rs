//! A fixed-layout log-linear histogram of nanosecond durations, for percentiles in bounded
//! memory.
//!
//! Values below 256 ns are exact; above, each power of two is split into 128 equal buckets,
//! so a bucket is at most 1/128 (0.78 %) of its lower bound wide. A percentile is reported as
//! the middle of its bucket, clamped to the observed minimum and maximum, so it is within
//! ±0.4 % of the true sample value of that rank. The bucket array grows only up to the
//! largest value seen (at most 7 424 buckets, 58 KiB, for `u64::MAX`; 27 KiB for 10 s).

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;

/// A histogram of `u64` values (nanoseconds) with ~0.4 % percentile error.
#[derive(Debug, Clone, Default)]
pub struct LogHistogram {
    counts: Vec<u64>,
    total: u64,
    min: u64,
    max: u64,
}

fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let e = 63 - v.leading_zeros();
    let s = e - SUB_BITS;
    // s <= 56 and (v >> s) < 256, so this is below 7 424.
    (u64::from(s) * SUB + (v >> s)) as usize
}

/// Lowest value and width of bucket `i`.
fn bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < 2 * SUB {
        return (i, 1);
    }
    let s = i / SUB - 1;
    let m = i - s * SUB;
    (m << s, 1 << s)
}

impl LogHistogram {
    /// An empty histogram.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one value.
    pub fn record(&mut self, v: u64) {
        let i = index(v);
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        if self.total == 0 {
            self.min = v;
            self.max = v;
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.total += 1;
    }

    /// How many values were recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0.0–1.0): the smallest value with at least `q` of the
    /// samples at or below it, within the documented error. 0 when empty.
    #[must_use]
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let q = q.clamp(0.0, 1.0);
        // Rank of the sample wanted, 1-based.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        if rank == 1 {
            return self.min;
        }
        if rank == self.total {
            return self.max;
        }
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, width) = bounds(i);
                let mid = lo + (width - 1) / 2;
                return mid.clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_bounds_agree() {
        for v in (0..5000).chain([u64::MAX, u64::MAX / 3, 1 << 40, (1 << 40) - 1]) {
            let (lo, w) = bounds(index(v));
            assert!(lo <= v && v - lo < w, "v={v} lo={lo} w={w}");
        }
        assert_eq!(index(u64::MAX), 7423);
    }

    #[test]
    fn percentiles_are_within_half_a_percent() {
        let mut h = LogHistogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        for (q, exact) in [(0.5, 50_000_000u64), (0.95, 95_000_000), (0.99, 99_000_000)] {
            let got = h.quantile(q);
            let err = (got as f64 - exact as f64).abs() / exact as f64;
            assert!(err < 0.004, "q={q} got={got} exact={exact}");
        }
        assert_eq!(h.quantile(1.0), 100_000_000);
        assert_eq!(h.quantile(0.0), 1000);
    }

    #[test]
    fn single_value_is_exact() {
        let mut h = LogHistogram::new();
        h.record(123_456_789);
        assert_eq!(h.quantile(0.5), 123_456_789);
        assert_eq!(h.count(), 1);
    }
}
