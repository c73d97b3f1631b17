//! The statistics' histogram blobs as read back from the database (`rubra-hist`, used by
//! rubra-store's rollups: band counts of a period row, fine-bin counts of a band row) and
//! the value bins. Any bytes decode without a panic into at most one entry per two bytes,
//! in non-decreasing bin order; re-encoding what was decoded decodes to the same entries;
//! `above` and `add` on the blob agree with a plain computation over the decoded entries;
//! a canonical histogram (strictly increasing bins, no zero count) round trips exactly.
//! The first 8 bytes, as an `f64`, also go through the bins: `fine_bin` lands in
//! `0..=FINE` between the right edges, and its coarse bin and band are in range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rubra_hist::bins::{self, FINE, Split};
use rubra_hist::hist;

fn check_bins(red: f64) {
    let k = bins::fine_bin(red);
    assert!(k <= FINE, "{red}: bin {k}");
    if red.is_nan() || red <= 0.0 {
        assert_eq!(k, 0, "{red}");
    } else if red >= 1.0 {
        assert_eq!(k, FINE, "{red}");
    } else {
        assert!(k >= 1 && red <= bins::fine_edge(k), "{red}: bin {k}");
        assert!(k == 1 || red > bins::fine_edge(k - 1), "{red}: bin {k}");
    }
    assert!(bins::coarse_of_fine(k) <= 1000 && bins::band_of_fine(k) <= 100);
    assert_eq!(bins::coarse_of_fine(k), k.div_ceil(10));
    if red.is_finite() {
        match bins::split(red) {
            Split::All => assert!(red < 0.0),
            Split::None => assert!(red >= 1.0),
            Split::At { bin, exact } => {
                assert!((0.0..1.0).contains(&red) && bin == k, "{red}");
                assert_eq!(exact, red == bins::fine_edge(bin), "{red}");
            }
        }
    }
}

fuzz_target!(|input: &[u8]| {
    if let Some(word) = input.first_chunk::<8>() {
        check_bins(f64::from_le_bytes(*word));
    }
    let decoded = hist::decode(input);
    assert!(
        decoded.len() <= input.len() / 2,
        "{} entries",
        decoded.len()
    );
    assert!(decoded.windows(2).all(|w| w[0].0 <= w[1].0), "{decoded:?}");
    assert_eq!(hist::entries(input).collect::<Vec<_>>(), decoded);
    assert_eq!(hist::decode(&hist::encode(&decoded)), decoded);

    let cut = input.first().map_or(0, |&b| u16::from(b) * 40);
    let above = decoded
        .iter()
        .filter(|&&(b, _)| b > cut)
        .fold(0u64, |s, &(_, n)| s.saturating_add(n));
    assert_eq!(hist::above(input, cut), above, "above {cut}");

    // A canonical histogram from the decoded entries: duplicates summed, zeros dropped.
    let mut canonical: hist::Bins = Vec::new();
    for &(b, n) in &decoded {
        match canonical.last_mut() {
            Some((last, m)) if *last == b => *m = m.saturating_add(n),
            _ => canonical.push((b, n)),
        }
    }
    canonical.retain(|&(_, n)| n > 0);
    let blob = hist::encode(&canonical);
    assert_eq!(hist::decode(&blob), canonical);

    // Adding the canonical histogram to the stored blob, as a rollup write does.
    let (total, added) = hist::add(input, &canonical);
    let merged = hist::merge(&decoded, &canonical);
    assert_eq!(hist::decode(&added), merged);
    let sum = merged.iter().fold(0u64, |s, &(_, n)| s.saturating_add(n));
    assert_eq!(total, i64::try_from(sum).unwrap_or(i64::MAX));
});
