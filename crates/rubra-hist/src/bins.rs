//! Value bins of `red`: fine bins for the rollup histograms, coarse bins for the raw index.
//!
//! Bin edges are decimal (`k / 10 000` and `c / 1 000`, each the correctly rounded double), so
//! a threshold written with up to four decimals (`0.8`, `0.25`, `0.1234`) falls exactly on a
//! fine edge and is answered from the rollups alone. Bins are closed above: fine bin `k ≥ 1`
//! holds `(edge(k-1), edge(k)]` and bin 0 holds exactly `0`, so "red > edge(k)" is "bin > k".
//! Fine edge `10c` is the same double as coarse edge `c` (both are the correctly rounded
//! `c / 1000`), so every fine bin lies inside one coarse bin: `coarse = ceil(fine / 10)`.

/// Number of fine bins above zero; fine bins are `0..=FINE`.
pub const FINE: u16 = 10_000;
/// Fine bins per coarse bin.
const FINE_PER_COARSE: u16 = 10;

/// The upper edge of fine bin `k`: the double nearest to `k / 10 000`.
pub fn fine_edge(k: u16) -> f64 {
    f64::from(k) / f64::from(FINE)
}

/// The fine bin of `red` (clamped into `[0, 1]`): 0 for `red <= 0`, else the smallest `k` with
/// `red <= fine_edge(k)`.
pub fn fine_bin(red: f64) -> u16 {
    if red.is_nan() || red <= 0.0 {
        return 0;
    }
    if red >= 1.0 {
        return FINE;
    }
    // A first guess from multiplication, then exact fix-ups against the true edges.
    let guess = (red * f64::from(FINE)).ceil();
    let mut k = if guess < 1.0 {
        1
    } else if guess > f64::from(FINE) {
        FINE
    } else {
        guess as u16
    };
    while k > 1 && red <= fine_edge(k - 1) {
        k -= 1;
    }
    while k < FINE && red > fine_edge(k) {
        k += 1;
    }
    k
}

/// The coarse bin (`0..=1000`) that fine bin `k` lies in; stored with each raw event.
pub fn coarse_of_fine(k: u16) -> u16 {
    k.div_ceil(FINE_PER_COARSE)
}

/// Fine bins per band: the rollups keep one histogram row per band (see `stats` docs).
pub const FINE_PER_BAND: u16 = 100;

/// The band (`0..=100`) that fine bin `k` lies in: band 0 is `red == 0`, band `b` holds fine
/// bins `100(b-1)+1 ..= 100b`, that is `red` in `((b-1)/100, b/100]`.
pub fn band_of_fine(k: u16) -> u16 {
    k.div_ceil(FINE_PER_BAND)
}

/// Whether fine bin `k` is the last of its band: events above it are then exactly the events
/// of the higher bands, and no band histogram has to be read.
pub fn ends_band(k: u16) -> bool {
    k.is_multiple_of(FINE_PER_BAND)
}

/// How a threshold splits the fine bins.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Split {
    /// Every event is above (threshold below 0).
    All,
    /// No event is above (threshold at or past 1).
    None,
    /// Events in fine bins `> bin` are above, those in bins `< bin` are not; when `exact`
    /// (the threshold is `fine_edge(bin)`), bin `bin` itself is not above either, otherwise
    /// its events must be compared one by one: above when `threshold < red <= fine_edge(bin)`.
    At {
        /// The fine bin holding the threshold.
        bin: u16,
        /// The threshold is the bin's upper edge.
        exact: bool,
    },
}

/// Where threshold `t` (finite) falls among the fine bins.
pub fn split(t: f64) -> Split {
    if t < 0.0 {
        Split::All
    } else if t >= 1.0 {
        Split::None
    } else {
        let bin = fine_bin(t);
        Split::At {
            bin,
            exact: t == fine_edge(bin),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fine_edges_nest_in_coarse_edges() {
        for c in 0..=1000u16 {
            assert_eq!(fine_edge(c * 10), f64::from(c) / 1000.0, "c={c}");
        }
    }

    #[test]
    fn bins_are_closed_above_and_monotone() {
        assert_eq!(fine_bin(0.0), 0);
        assert_eq!(fine_bin(-0.0), 0);
        assert_eq!(fine_bin(1.0), FINE);
        assert_eq!(fine_bin(0.8), 8000);
        assert_eq!(fine_bin(f64::from_bits(0.8f64.to_bits() + 1)), 8001);
        assert_eq!(fine_bin(f64::MIN_POSITIVE), 1);
        for k in 1..=FINE {
            let e = fine_edge(k);
            assert_eq!(fine_bin(e), k, "edge {k}");
            assert_eq!(fine_bin(f64::from_bits(e.to_bits() - 1)).max(1), k.max(1));
            if k < FINE {
                assert_eq!(fine_bin(f64::from_bits(e.to_bits() + 1)), k + 1);
            }
        }
        assert_eq!(coarse_of_fine(0), 0);
        assert_eq!(coarse_of_fine(1), 1);
        assert_eq!(coarse_of_fine(10), 1);
        assert_eq!(coarse_of_fine(11), 2);
        assert_eq!(coarse_of_fine(FINE), 1000);
        assert_eq!(band_of_fine(0), 0);
        assert_eq!(band_of_fine(1), 1);
        assert_eq!(band_of_fine(100), 1);
        assert_eq!(band_of_fine(101), 2);
        assert_eq!(band_of_fine(FINE), 100);
        assert!(ends_band(0) && ends_band(2500) && !ends_band(2501));
    }

    #[test]
    fn thresholds_split_the_bins() {
        assert_eq!(split(-0.1), Split::All);
        assert_eq!(split(1.0), Split::None);
        assert_eq!(
            split(0.0),
            Split::At {
                bin: 0,
                exact: true
            }
        );
        assert_eq!(
            split(0.8),
            Split::At {
                bin: 8000,
                exact: true
            }
        );
        assert_eq!(
            split(0.12345),
            Split::At {
                bin: 1235,
                exact: false
            }
        );
    }
}
