//! Regression tests of what the fuzz target `stats_hist` and its proptest twin found: blobs
//! read back from the database that made the rollup code panic (overflow checks are on in
//! release builds too). Each input is under `tests/fixtures/`.

use rubra_hist::hist;

/// Adding an event to a stored count of `u64::MAX` overflowed in `merge`.
#[test]
fn hist_add_to_a_count_at_u64_max_saturates() {
    let blob = include_bytes!("../fixtures/count-at-u64-max.bin");
    assert_eq!(hist::decode(blob), vec![(5, u64::MAX)]);
    let (total, added) = hist::add(blob, &[(5, 1), (6, 2)]);
    assert_eq!(hist::decode(&added), vec![(5, u64::MAX), (6, 2)]);
    assert_eq!(total, i64::MAX);
}

/// The total of a stored histogram whose counts sum past `u64::MAX` overflowed in `add`
/// and `above`.
#[test]
fn hist_counts_summing_past_u64_saturate() {
    let blob = include_bytes!("../fixtures/counts-summing-past-u64.bin");
    assert_eq!(hist::decode(blob), vec![(1, u64::MAX), (2, 1)]);
    assert_eq!(hist::add(blob, &[]).0, i64::MAX);
    assert_eq!(hist::above(blob, 0), u64::MAX);
    assert_eq!(hist::above(blob, 1), 1);
}

/// A bin delta near `u64::MAX` after a first entry overflowed the running bin in
/// `entries`; it is a corrupt tail, which ends the histogram.
#[test]
fn hist_bin_delta_past_u64_ends_the_blob() {
    let blob = include_bytes!("../fixtures/bin-delta-past-u64.bin");
    assert_eq!(hist::decode(blob), vec![(1, 0)]);
    assert_eq!(hist::above(blob, 0), 0);
}
