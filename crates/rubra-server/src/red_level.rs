//! A red level as the API takes it — an event's `red`, a subscription's `threshold`: a finite
//! number in [0, 1], checked once where the request is read and carried as [`RedLevel`] from
//! there, so no handler repeats the check.

/// A finite number in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub(crate) struct RedLevel(f64);

impl RedLevel {
    /// `v` when it is a finite number in [0, 1] (NaN and the infinities are not).
    pub(crate) fn new(v: f64) -> Option<RedLevel> {
        (v.is_finite() && (0.0..=1.0).contains(&v)).then_some(RedLevel(v))
    }

    /// The number.
    pub(crate) fn get(self) -> f64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::RedLevel;

    #[test]
    fn only_finite_numbers_from_0_to_1_are_red_levels() {
        for ok in [0.0, -0.0, 0.5, 1.0, f64::MIN_POSITIVE] {
            assert_eq!(RedLevel::new(ok).map(RedLevel::get), Some(ok), "{ok}");
        }
        for bad in [
            -1e-12,
            1.0 + f64::EPSILON,
            f64::NAN,
            f64::INFINITY,
            -f64::INFINITY,
        ] {
            assert!(RedLevel::new(bad).is_none(), "{bad}");
        }
    }
}
