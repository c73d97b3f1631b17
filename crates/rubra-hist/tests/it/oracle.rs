//! The proptest twin of `fuzz/fuzz_targets/stats_hist.rs`: the same properties on blobs of
//! random bytes, on blobs that are encodings with random bytes mixed in, and on any `f64`.

use proptest::prelude::*;
use rubra_hist::bins::{self, FINE, Split};
use rubra_hist::hist;

/// The fuzz target's properties of the bins, for one value.
pub fn bins_hold(red: f64) -> Result<(), TestCaseError> {
    let k = bins::fine_bin(red);
    prop_assert!(k <= FINE);
    if red.is_nan() || red <= 0.0 {
        prop_assert_eq!(k, 0);
    } else if red >= 1.0 {
        prop_assert_eq!(k, FINE);
    } else {
        prop_assert!(k >= 1 && red <= bins::fine_edge(k), "{} in bin {}", red, k);
        prop_assert!(
            k == 1 || red > bins::fine_edge(k - 1),
            "{} in bin {}",
            red,
            k
        );
    }
    prop_assert!(bins::coarse_of_fine(k) <= 1000 && bins::band_of_fine(k) <= 100);
    if red.is_finite() {
        match bins::split(red) {
            Split::All => prop_assert!(red < 0.0),
            Split::None => prop_assert!(red >= 1.0),
            Split::At { bin, exact } => {
                prop_assert!((0.0..1.0).contains(&red) && bin == k);
                prop_assert_eq!(exact, red == bins::fine_edge(bin));
            }
        }
    }
    Ok(())
}

/// The fuzz target's properties of a blob read back from the database.
pub fn blob_holds(input: &[u8]) -> Result<(), TestCaseError> {
    let decoded = hist::decode(input);
    prop_assert!(decoded.len() <= input.len() / 2);
    prop_assert!(decoded.windows(2).all(|w| w[0].0 <= w[1].0));
    prop_assert_eq!(hist::decode(&hist::encode(&decoded)), decoded.clone());

    let cut = input.first().map_or(0, |&b| u16::from(b) * 40);
    let above = decoded
        .iter()
        .filter(|&&(b, _)| b > cut)
        .fold(0u64, |s, &(_, n)| s.saturating_add(n));
    prop_assert_eq!(hist::above(input, cut), above);

    let mut canonical: hist::Bins = Vec::new();
    for &(b, n) in &decoded {
        match canonical.last_mut() {
            Some((last, m)) if *last == b => *m = m.saturating_add(n),
            _ => canonical.push((b, n)),
        }
    }
    canonical.retain(|&(_, n)| n > 0);
    prop_assert_eq!(hist::decode(&hist::encode(&canonical)), canonical.clone());

    let (total, added) = hist::add(input, &canonical);
    let merged = hist::merge(&decoded, &canonical);
    prop_assert_eq!(hist::decode(&added), merged.clone());
    let sum = merged.iter().fold(0u64, |s, &(_, n)| s.saturating_add(n));
    prop_assert_eq!(total, i64::try_from(sum).unwrap_or(i64::MAX));
    Ok(())
}

/// A canonical histogram: strictly increasing bins up to `FINE`, no zero count.
fn canonical() -> impl Strategy<Value = hist::Bins> {
    prop::collection::btree_map(0..=FINE, 1..=u64::MAX, 0..40).prop_map(|m| m.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn any_bytes_decode_into_something_bounded(blob in prop::collection::vec(any::<u8>(), 0..64)) {
        blob_holds(&blob)?;
    }

    #[test]
    fn damaged_encodings_decode_into_something_bounded(
        h in canonical(),
        damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let mut blob = hist::encode(&h);
        for (at, byte) in damage {
            if !blob.is_empty() {
                let i = at.index(blob.len());
                blob[i] = byte;
            }
        }
        blob_holds(&blob)?;
    }

    #[test]
    fn canonical_histograms_round_trip(h in canonical()) {
        prop_assert_eq!(hist::decode(&hist::encode(&h)), h.clone());
        blob_holds(&hist::encode(&h))?;
    }

    #[test]
    fn every_value_lands_in_its_bin(bits in any::<u64>(), unit in 0.0f64..=1.0) {
        bins_hold(f64::from_bits(bits))?;
        bins_hold(unit)?;
    }
}
