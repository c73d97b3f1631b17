//! The histograms stored in the rollup rows — counts per band in a period row, per fine bin in
//! a band row —, sparse and varint-encoded.
//!
//! Layout: for every non-empty bin in increasing order, `varint(bin - previous_bin)` then
//! `varint(count)` (the first delta is from 0). A busy band row takes ~2–3 bytes per fine bin
//! (≤ 100 of them); a quiet minute only as many entries as it has distinct bins.

use crate::bins;

/// Counts per bin (fine bin or band), sorted by bin, no zero counts.
pub type Bins = Vec<(u16, u64)>;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

/// Encodes sorted bins.
pub fn encode(bins: &[(u16, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bins.len() * 3);
    let mut prev = 0u16;
    for &(bin, n) in bins {
        put_varint(&mut out, u64::from(bin - prev));
        put_varint(&mut out, n);
        prev = bin;
    }
    out
}

/// Iterates the (bin, count) entries of an encoded histogram, bins in non-decreasing order,
/// at most one entry per two bytes. A corrupt tail (a cut varint, a bin past `u16::MAX`)
/// ends the iteration: the store wrote every blob itself, but it reads them back from a
/// database, so any bytes must read without a panic.
pub fn entries(buf: &[u8]) -> impl Iterator<Item = (u16, u64)> + '_ {
    let mut pos = 0usize;
    let mut bin = 0u64;
    std::iter::from_fn(move || {
        if pos >= buf.len() {
            return None;
        }
        let delta = get_varint(buf, &mut pos)?;
        let n = get_varint(buf, &mut pos)?;
        bin = bin.checked_add(delta)?;
        Some((u16::try_from(bin).ok()?, n))
    })
}

/// Decodes a histogram.
pub fn decode(buf: &[u8]) -> Bins {
    entries(buf).collect()
}

/// Adds sorted `delta` into sorted `into` (counts saturate at `u64::MAX`).
pub fn merge(into: &[(u16, u64)], delta: &[(u16, u64)]) -> Bins {
    let mut out = Vec::with_capacity(into.len() + delta.len());
    let (mut i, mut j) = (0, 0);
    while i < into.len() || j < delta.len() {
        match (into.get(i), delta.get(j)) {
            (Some(&(a, n)), Some(&(b, m))) if a == b => {
                out.push((a, n.saturating_add(m)));
                i += 1;
                j += 1;
            }
            (Some(&(a, n)), Some(&(b, _))) if a < b => {
                out.push((a, n));
                i += 1;
            }
            (Some(_), Some(&(b, m))) | (None, Some(&(b, m))) => {
                out.push((b, m));
                j += 1;
            }
            (Some(&(a, n)), None) => {
                out.push((a, n));
                i += 1;
            }
            (None, None) => break,
        }
    }
    out
}

/// Adds sorted `delta` into the encoded histogram `current` (empty for a new row): the new
/// total (saturated to `i64::MAX`) and the new encoding.
pub fn add(current: &[u8], delta: &[(u16, u64)]) -> (i64, Vec<u8>) {
    let merged = merge(&decode(current), delta);
    let total = merged
        .iter()
        .fold(0u64, |sum, &(_, n)| sum.saturating_add(n));
    (i64::try_from(total).unwrap_or(i64::MAX), encode(&merged))
}

/// The events of an encoded histogram in bins `> bin` (saturated to `u64::MAX`).
pub fn above(buf: &[u8], bin: u16) -> u64 {
    entries(buf)
        .skip_while(|&(b, _)| b <= bin)
        .fold(0, |sum, (_, n)| sum.saturating_add(n))
}

/// Counts from a list of fine bins (any order): sorted (bin, count) pairs.
pub fn from_bins(bins: Vec<u16>) -> Bins {
    if bins.len() > COUNTING_FROM {
        // Many events: one counter per possible bin beats sorting them.
        let mut counts = vec![0u64; usize::from(bins::FINE) + 1];
        for &b in &bins {
            if let Some(c) = counts.get_mut(usize::from(b)) {
                *c += 1;
            } else {
                return from_bins_sorted(bins);
            }
        }
        return (0..=bins::FINE)
            .zip(counts)
            .filter(|&(_, n)| n > 0)
            .collect();
    }
    from_bins_sorted(bins)
}

/// Above this many events, [`from_bins`] counts instead of sorting.
const COUNTING_FROM: usize = 4096;

fn from_bins_sorted(mut bins: Vec<u16>) -> Bins {
    bins.sort_unstable();
    let mut out: Bins = Vec::new();
    for b in bins {
        match out.last_mut() {
            Some((last, n)) if *last == b => *n += 1,
            _ => out.push((b, 1)),
        }
    }
    out
}

/// `(total, above)` of an encoded histogram where "above" is every bin `> bin`
/// (`None` counts every event as above).
#[cfg(test)]
pub fn total_and_above(buf: &[u8], bin: Option<u16>) -> (u64, u64) {
    let (mut total, mut above) = (0u64, 0u64);
    for (b, n) in entries(buf) {
        total += n;
        if bin.is_none_or(|k| b > k) {
            above += n;
        }
    }
    (total, above)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_merge_and_sums() {
        let a = from_bins(vec![5, 0, 10_000, 5, 300]);
        assert_eq!(a, vec![(0, 1), (5, 2), (300, 1), (10_000, 1)]);
        let enc = encode(&a);
        assert_eq!(decode(&enc), a);
        let b = from_bins(vec![5, 7, 7, 10_000]);
        let m = merge(&a, &b);
        assert_eq!(m, vec![(0, 1), (5, 3), (7, 2), (300, 1), (10_000, 2)]);
        let enc = encode(&m);
        assert_eq!(total_and_above(&enc, Some(5)), (9, 5));
        assert_eq!(total_and_above(&enc, Some(0)), (9, 8));
        assert_eq!(total_and_above(&enc, None), (9, 9));
        assert_eq!(total_and_above(&enc, Some(10_000)), (9, 0));
        assert_eq!(above(&enc, 5), 5);
        assert_eq!(above(&enc, 4), 8);
        assert_eq!(above(&enc, 10_000), 0);
        assert_eq!(add(&enc, &[(5, 1), (6, 2)]).0, 12);
        assert_eq!(
            decode(&add(&[], &[(6, 2)]).1),
            vec![(6, 2)],
            "a new row is the delta"
        );
        // Large inputs are counted rather than sorted, with the same answer.
        let many: Vec<u16> = (0..20_000u32)
            .map(|i| ((i * 7919) % 10_001) as u16)
            .collect();
        let mut sorted = many.clone();
        sorted.sort_unstable();
        assert_eq!(from_bins(many), from_bins_sorted(sorted));
        let big = encode(&[(1, 1 << 40)]);
        assert_eq!(decode(&big), vec![(1, 1 << 40)]);
        assert_eq!(decode(&[]), vec![]);
    }
}
