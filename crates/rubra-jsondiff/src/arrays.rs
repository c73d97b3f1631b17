//! Arrays: ordered alignment (common prefix/suffix, Myers with a cost cap,
//! unique-element anchors, positional fallback) and unordered matching (set,
//! multiset, keyed) that keeps the number tolerance.
//!
//! Unordered matching runs in two phases. Exact phase: elements are hashed with
//! numbers in canonical decimal form, so identical values meet in one bucket in
//! O(n). Tolerant phase, for what is left: elements are grouped by a hash that
//! ignores numbers entirely (so near-equal values can never be split by a rounding
//! boundary, which is how bucketing by rounded numbers fails), and inside a group
//! sorted by the sum of their numbers; two equal values have sums at most the
//! sum of their per-number tolerances apart, so each element only checks the
//! neighbours inside that window, with the real tolerant equality.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;

use crate::engine::{Cx, Disp, EXACT, Engine, Ptr, Side, mix};
use crate::parse::Node;
use crate::path::{State, Step};
use crate::policy::ArrayMode;
use crate::report::Op;

/// Hasher for keys that are already hashes: one mixing step, no SipHash.
#[derive(Default)]
struct PreHashed(u64);

impl std::hash::Hasher for PreHashed {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = mix(self.0 ^ b as u64);
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.0 = mix(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = mix(i);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type Map<K, V> = HashMap<K, V, BuildHasherDefault<PreHashed>>;
type Set<K> = HashSet<K, BuildHasherDefault<PreHashed>>;

/// One step of an alignment of A's elements with B's (indices relative to the arrays).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Edit {
    Keep(u32, u32),
    Change(u32, u32),
    Del(u32),
    Ins(u32),
}

/// Most equality checks one Myers run may spend before giving up.
const MYERS_BUDGET: usize = 4_000_000;
/// Most candidates one element may check in the tolerant phase.
const WINDOW_CAP: usize = 1_000;

/// Result of unordered matching: what was left without a partner.
struct Unmatched {
    a: Vec<u32>,
    b: Vec<u32>,
    /// Keyed pairs (relative indices) that need a recursive diff.
    pairs: Vec<(u32, u32)>,
}

impl<'d> Engine<'d> {
    pub(crate) fn arr_eq(&mut self, fa: u32, na: u32, fb: u32, nb: u32, cx: Cx<'d>) -> bool {
        let mark = self.mark();
        let Some(ecx) = self.child(cx, Step::Index) else {
            self.reset(mark);
            return true;
        };
        let mode = self.mode(cx);
        let eq = match mode {
            ArrayMode::Ordered => na == nb && (0..na).all(|i| self.eq(fa + i, fb + i, ecx)),
            _ => {
                let u = self.unordered(fa, na, fb, nb, ecx, mode);
                u.a.is_empty()
                    && u.b.is_empty()
                    && u.pairs.iter().all(|&(i, j)| self.eq(fa + i, fb + j, ecx))
            }
        };
        self.reset(mark);
        eq
    }

    pub(crate) fn arr_diff(&mut self, fa: u32, na: u32, fb: u32, nb: u32, cx: Cx<'d>) {
        let mark = self.mark();
        if let Some(ecx) = self.child(cx, Step::Index) {
            match self.mode(cx) {
                ArrayMode::Ordered => self.ordered_diff(fa, na, fb, nb, ecx),
                mode => {
                    let u = self.unordered(fa, na, fb, nb, ecx, mode);
                    self.unordered_diff(fa, fb, ecx, mode, u);
                }
            }
        }
        self.reset(mark);
    }

    // ---- ordered -----------------------------------------------------------

    fn ordered_diff(&mut self, fa: u32, na: u32, fb: u32, nb: u32, ecx: Cx<'d>) {
        let edits = self.align(fa, 0, na, fb, 0, nb, ecx, true);
        let edits = self.pair_hunks(edits, fa, fb, ecx);
        let mut pos = 0u32;
        for e in edits {
            if self.stop {
                return;
            }
            match e {
                Edit::Keep(..) => pos += 1,
                Edit::Change(i, j) => {
                    self.push_elem(Disp::Index(i), Ptr::Index(pos));
                    self.diff(fa + i, fb + j, ecx);
                    self.pop_elem();
                    pos += 1;
                }
                Edit::Del(i) => {
                    self.push_elem(Disp::Index(i), Ptr::Index(pos));
                    self.removed(fa + i, true);
                    self.pop_elem();
                }
                Edit::Ins(j) => {
                    self.push_elem(Disp::Index(j), Ptr::Index(pos));
                    self.added(fb + j, true);
                    self.pop_elem();
                    pos += 1;
                }
            }
        }
    }

    /// Aligns `A[a0..a1]` with `B[b0..b1]` (relative indices).
    #[allow(clippy::too_many_arguments)]
    fn align(
        &mut self,
        fa: u32,
        mut a0: u32,
        mut a1: u32,
        fb: u32,
        mut b0: u32,
        mut b1: u32,
        ecx: Cx<'d>,
        anchors: bool,
    ) -> Vec<Edit> {
        // A lone pair is diffed directly: checking it for equality first would make
        // deeply nested single-element arrays quadratic.
        let lone = |a0: u32, a1: u32, b0: u32, b1: u32| a1 - a0 == 1 && b1 - b0 == 1;
        let mut head = Vec::new();
        while a0 < a1 && b0 < b1 && !lone(a0, a1, b0, b1) && self.eq(fa + a0, fb + b0, ecx) {
            head.push(Edit::Keep(a0, b0));
            a0 += 1;
            b0 += 1;
        }
        let mut tail = Vec::new();
        while a0 < a1 && b0 < b1 && !lone(a0, a1, b0, b1) && self.eq(fa + a1 - 1, fb + b1 - 1, ecx)
        {
            a1 -= 1;
            b1 -= 1;
            tail.push(Edit::Keep(a1, b1));
        }
        tail.reverse();
        let (n, m) = ((a1 - a0) as usize, (b1 - b0) as usize);
        let mid = if n == 1 && m == 1 {
            vec![Edit::Change(a0, b0)]
        } else if n == 0 || m == 0 {
            (a0..a1)
                .map(Edit::Del)
                .chain((b0..b1).map(Edit::Ins))
                .collect()
        } else {
            let max_d = (MYERS_BUDGET / (n + m)).clamp(8, 1000).min(n + m);
            match self.myers(fa, a0, n, fb, b0, m, ecx, max_d) {
                Some(e) => e,
                None if anchors => self.resyncing(fa, a0, a1, fb, b0, b1, ecx),
                None => {
                    // Positional: pair what lines up, delete or insert the rest.
                    let k = n.min(m) as u32;
                    let mut e: Vec<Edit> = (0..k).map(|t| Edit::Change(a0 + t, b0 + t)).collect();
                    e.extend((a0 + k..a1).map(Edit::Del));
                    e.extend((b0 + k..b1).map(Edit::Ins));
                    e
                }
            }
        };
        head.extend(mid);
        head.extend(tail);
        head
    }

    /// Myers' O((n+m)·D) greedy diff, giving up past `max_d` edits.
    #[allow(clippy::too_many_arguments)]
    fn myers(
        &mut self,
        fa: u32,
        a0: u32,
        n: usize,
        fb: u32,
        b0: u32,
        m: usize,
        ecx: Cx<'d>,
        max_d: usize,
    ) -> Option<Vec<Edit>> {
        let off = max_d as isize + 1;
        let mut v = vec![0isize; 2 * max_d + 3];
        let mut trace: Vec<isize> = Vec::new();
        let (n_i, m_i) = (n as isize, m as isize);
        for d in 0..=max_d as isize {
            let mut k = -d;
            while k <= d {
                let down =
                    k == -d || (k != d && v[(off + k - 1) as usize] < v[(off + k + 1) as usize]);
                let mut x = if down {
                    v[(off + k + 1) as usize]
                } else {
                    v[(off + k - 1) as usize] + 1
                };
                let mut y = x - k;
                while x < n_i && y < m_i && self.eq(fa + a0 + x as u32, fb + b0 + y as u32, ecx) {
                    x += 1;
                    y += 1;
                }
                v[(off + k) as usize] = x;
                if x >= n_i && y >= m_i {
                    trace.extend_from_slice(&v[(off - d) as usize..=(off + d) as usize]);
                    return Some(backtrack(&trace, d, n_i, m_i, a0, b0));
                }
                k += 2;
            }
            trace.extend_from_slice(&v[(off - d) as usize..=(off + d) as usize]);
        }
        None
    }

    /// Walks both arrays in step; at each mismatch a small Myers window finds where
    /// they agree again. Sparse edits in huge arrays cost one comparison per
    /// element this way. Where no window resynchronises, the rest is anchored.
    #[allow(clippy::too_many_arguments)]
    fn resyncing(
        &mut self,
        fa: u32,
        a0: u32,
        a1: u32,
        fb: u32,
        b0: u32,
        b1: u32,
        ecx: Cx<'d>,
    ) -> Vec<Edit> {
        let mut out = Vec::new();
        let (mut i, mut j) = (a0, b0);
        let mut windows = 0usize;
        let limit = ((a1 - a0) as usize / 16).max(4);
        'walk: while i < a1 && j < b1 {
            if self.eq(fa + i, fb + j, ecx) {
                out.push(Edit::Keep(i, j));
                i += 1;
                j += 1;
                continue;
            }
            windows += 1;
            if windows > limit {
                break;
            }
            for w in [32u32, 256] {
                let (wa, wb) = ((a1 - i).min(w), (b1 - j).min(w));
                let whole = i + wa == a1 && j + wb == b1;
                let (n, m) = (wa as usize, wb as usize);
                let Some(script) = self.myers(fa, i, n, fb, j, m, ecx, n + m) else {
                    continue;
                };
                if whole {
                    out.extend(script);
                    return out;
                }
                // Commit up to a kept pair followed by another (or the window's end).
                let sync = (0..script.len()).find(|&t| {
                    matches!(script[t], Edit::Keep(..))
                        && script
                            .get(t + 1)
                            .is_none_or(|e| matches!(e, Edit::Keep(..)))
                });
                if let Some(t) = sync {
                    out.extend_from_slice(&script[..t]);
                    if let Edit::Keep(x, y) = script[t] {
                        (i, j) = (x, y);
                    }
                    continue 'walk;
                }
            }
            break;
        }
        if i < a1 || j < b1 {
            out.extend(self.anchored(fa, i, a1, fb, j, b1, ecx));
        }
        out
    }

    /// Anchors on elements unique on both sides (patience style), then aligns the gaps.
    #[allow(clippy::too_many_arguments)]
    fn anchored(
        &mut self,
        fa: u32,
        a0: u32,
        a1: u32,
        fb: u32,
        b0: u32,
        b1: u32,
        ecx: Cx<'d>,
    ) -> Vec<Edit> {
        let mut pairs = self.unique_pairs(fa, a0, a1, fb, b0, b1, ecx, true);
        if pairs.is_empty() {
            pairs = self.unique_pairs(fa, a0, a1, fb, b0, b1, ecx, false);
        }
        let anchors = longest_increasing(&pairs);
        let mut out = Vec::new();
        let (mut ca, mut cb) = (a0, b0);
        for (i, j) in anchors {
            out.extend(self.align(fa, ca, i, fb, cb, j, ecx, false));
            out.push(if self.eq(fa + i, fb + j, ecx) {
                Edit::Keep(i, j)
            } else {
                Edit::Change(i, j)
            });
            (ca, cb) = (i + 1, j + 1);
        }
        out.extend(self.align(fa, ca, a1, fb, cb, b1, ecx, false));
        out
    }

    /// Pairs `(i, j)` of elements whose hash occurs once in A's range and once in B's.
    #[allow(clippy::too_many_arguments)]
    fn unique_pairs(
        &mut self,
        fa: u32,
        a0: u32,
        a1: u32,
        fb: u32,
        b0: u32,
        b1: u32,
        ecx: Cx<'d>,
        loose: bool,
    ) -> Vec<(u32, u32)> {
        // Sorting beats a hash map here: 10^6 random probes miss the cache.
        let mut ha: Vec<(u64, u32)> = (a0..a1)
            .map(|i| (self.hash(Side::A, fa + i, ecx, loose), i))
            .collect();
        let mut hb: Vec<(u64, u32)> = (b0..b1)
            .map(|j| (self.hash(Side::B, fb + j, ecx, loose), j))
            .collect();
        ha.sort_unstable();
        hb.sort_unstable();
        let run = |v: &[(u64, u32)], p: usize| v[p..].iter().take_while(|e| e.0 == v[p].0).count();
        let mut pairs = Vec::new();
        let (mut p, mut q) = (0, 0);
        while p < ha.len() && q < hb.len() {
            match ha[p].0.cmp(&hb[q].0) {
                std::cmp::Ordering::Less => p += run(&ha, p),
                std::cmp::Ordering::Greater => q += run(&hb, q),
                std::cmp::Ordering::Equal => {
                    let (ra, rb) = (run(&ha, p), run(&hb, q));
                    if ra == 1 && rb == 1 {
                        pairs.push((ha[p].1, hb[q].1));
                    }
                    p += ra;
                    q += rb;
                }
            }
        }
        pairs.sort_unstable();
        pairs
    }

    /// Turns each run of deletions and insertions between kept elements into
    /// changes where an old and a new element belong together: first those with
    /// the same shape and strings (a number-blind hash), in order, then position
    /// by position in the gaps between them.
    fn pair_hunks(&mut self, edits: Vec<Edit>, fa: u32, fb: u32, ecx: Cx<'d>) -> Vec<Edit> {
        let mut out = Vec::with_capacity(edits.len());
        let mut dels = Vec::new();
        let mut ins = Vec::new();
        for e in edits {
            match e {
                Edit::Del(i) => dels.push(i),
                Edit::Ins(j) => ins.push(j),
                other => {
                    self.pair_hunk(&dels, &ins, fa, fb, ecx, &mut out);
                    dels.clear();
                    ins.clear();
                    out.push(other);
                }
            }
        }
        self.pair_hunk(&dels, &ins, fa, fb, ecx, &mut out);
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn pair_hunk(
        &mut self,
        dels: &[u32],
        ins: &[u32],
        fa: u32,
        fb: u32,
        ecx: Cx<'d>,
        out: &mut Vec<Edit>,
    ) {
        let matches = if dels.len() < 2 && ins.len() < 2 {
            Vec::new()
        } else {
            let ha: Vec<u64> = dels
                .iter()
                .map(|&i| self.hash(Side::A, fa + i, ecx, true))
                .collect();
            let hb: Vec<u64> = ins
                .iter()
                .map(|&j| self.hash(Side::B, fb + j, ecx, true))
                .collect();
            monotone_matches(&ha, &hb)
        };
        let (mut p, mut q) = (0, 0);
        let end = (dels.len(), ins.len());
        for &(x, y) in matches.iter().chain(std::iter::once(&end)) {
            let k = (x - p).min(y - q);
            out.extend((0..k).map(|t| Edit::Change(dels[p + t], ins[q + t])));
            out.extend(dels[p + k..x].iter().map(|&i| Edit::Del(i)));
            out.extend(ins[q + k..y].iter().map(|&j| Edit::Ins(j)));
            if (x, y) != end {
                out.push(Edit::Change(dels[x], ins[y]));
            }
            (p, q) = (x + 1, y + 1);
        }
    }

    // ---- unordered ---------------------------------------------------------

    fn unordered(
        &mut self,
        fa: u32,
        na: u32,
        fb: u32,
        nb: u32,
        ecx: Cx<'d>,
        mode: &'d ArrayMode,
    ) -> Unmatched {
        match mode {
            ArrayMode::Set => self.set(fa, na, fb, nb, ecx),
            ArrayMode::Key(field) => self.keyed(fa, na, fb, nb, ecx, field),
            _ => {
                let (a, b) = self.multiset((0..na).collect(), (0..nb).collect(), fa, fb, ecx);
                Unmatched {
                    a,
                    b,
                    pairs: Vec::new(),
                }
            }
        }
    }

    /// Equality with the sides given in either order.
    fn eq_sides(&mut self, side: Side, x: u32, y: u32, ecx: Cx<'d>) -> bool {
        match side {
            Side::A => self.eq(x, y, ecx),
            Side::B => self.eq(y, x, ecx),
        }
    }

    /// Set comparison: the elements of each side with no equal element on the other.
    fn set(&mut self, fa: u32, na: u32, fb: u32, nb: u32, ecx: Cx<'d>) -> Unmatched {
        // One walk per element gives both hashes; the loose ones serve the
        // tolerant phase without walking everything again.
        let mut both = |side: Side, first: u32, n: u32| {
            let mut exact = Vec::with_capacity(n as usize);
            let mut loose = Vec::with_capacity(n as usize);
            for i in 0..n {
                let [e, l] = self.hashes(side, first + i, ecx);
                exact.push((e, i));
                loose.push(l);
            }
            exact.sort_unstable();
            (exact, loose)
        };
        let (ha, loose_a) = both(Side::A, fa, na);
        let (hb, loose_b) = both(Side::B, fb, nb);
        let mut left_a = Vec::new();
        let mut left_b = Vec::new();
        for_groups(&ha, &hb, |ga, gb| {
            if let ([(_, i)], [(_, j)]) = (ga, gb) {
                if !self.eq(fa + i, fb + j, ecx) {
                    left_a.push(*i);
                    left_b.push(*j);
                }
                return;
            }
            let mut seen_b = vec![false; gb.len()];
            for &(_, i) in ga {
                let mut hit = false;
                for (t, &(_, j)) in gb.iter().enumerate().take(WINDOW_CAP) {
                    if self.eq(fa + i, fb + j, ecx) {
                        hit = true;
                        seen_b[t] = true;
                    }
                }
                if !hit {
                    left_a.push(i);
                }
            }
            for (t, &(_, j)) in gb.iter().enumerate() {
                if !seen_b[t]
                    && !ga
                        .iter()
                        .take(WINDOW_CAP)
                        .any(|&(_, i)| self.eq(fa + i, fb + j, ecx))
                {
                    left_b.push(j);
                }
            }
        });
        left_a.sort_unstable();
        left_b.sort_unstable();
        if (left_a.is_empty() && left_b.is_empty()) || is_exact(ecx) {
            return Unmatched {
                a: left_a,
                b: left_b,
                pairs: Vec::new(),
            };
        }
        // Tolerant phase: a leftover may equal any element of the other side, but
        // only those sharing its number-blind hash need a signature.
        let a = self.set_tolerant(Side::A, fa, left_a, fb, &loose_b, ecx);
        let b = self.set_tolerant(Side::B, fb, left_b, fa, &loose_a, ecx);
        Unmatched {
            a,
            b,
            pairs: Vec::new(),
        }
    }

    /// The leftovers `left` of `side` that have no tolerant match in the other array.
    fn set_tolerant(
        &mut self,
        side: Side,
        fs: u32,
        mut left: Vec<u32>,
        fo: u32,
        loose_other: &[u64],
        ecx: Cx<'d>,
    ) -> Vec<u32> {
        if left.is_empty() || loose_other.is_empty() {
            return left;
        }
        let other = match side {
            Side::A => Side::B,
            Side::B => Side::A,
        };
        let keyed: Vec<(u64, f64, f64, u32)> = left
            .iter()
            .map(|&i| {
                let (lh, s, r) = self.tolerant_key(side, fs + i, ecx);
                (lh, s, r, i)
            })
            .collect();
        let wanted: Set<u64> = keyed.iter().map(|k| k.0).collect();
        let candidates: Vec<u32> = (0..loose_other.len() as u32)
            .filter(|&j| wanted.contains(&loose_other[j as usize]))
            .collect();
        let groups = self.tolerant_groups(other, fo, candidates, ecx);
        left.clear();
        for (lh, sum, reach, i) in keyed {
            let hit = groups.get(&lh).is_some_and(|g| {
                window(g, sum, reach)
                    .take(WINDOW_CAP)
                    .any(|&(_, j)| self.eq_sides(side, fs + i, fo + j, ecx))
            });
            if !hit {
                left.push(i);
            }
        }
        left.sort_unstable();
        left
    }

    /// `(exact hash, index)` of the elements `idx` of an array, sorted by hash.
    fn sorted_hashes(
        &mut self,
        side: Side,
        first: u32,
        idx: impl Iterator<Item = u32>,
        ecx: Cx<'d>,
    ) -> Vec<(u64, u32)> {
        let mut v: Vec<(u64, u32)> = idx
            .map(|i| (self.hash(side, first + i, ecx, false), i))
            .collect();
        v.sort_unstable();
        v
    }

    fn tolerant_key(&mut self, side: Side, id: u32, ecx: Cx<'d>) -> (u64, f64, f64) {
        let lh = self.hash(side, id, ecx, true);
        let (sum, reach) = self.signature(side, id, ecx);
        (lh, sum, reach)
    }

    /// Groups elements by loose hash, each group sorted by numeric signature.
    fn tolerant_groups(
        &mut self,
        side: Side,
        first: u32,
        idx: Vec<u32>,
        ecx: Cx<'d>,
    ) -> Map<u64, Vec<(f64, u32)>> {
        let mut groups: Map<u64, Vec<(f64, u32)>> = Map::default();
        for j in idx {
            let (lh, sum, _) = self.tolerant_key(side, first + j, ecx);
            groups.entry(lh).or_default().push((sum, j));
        }
        for g in groups.values_mut() {
            g.sort_unstable_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        }
        groups
    }

    /// Matches A's elements `ia` with B's `ib` one to one; returns the unmatched.
    fn multiset(
        &mut self,
        ia: Vec<u32>,
        ib: Vec<u32>,
        fa: u32,
        fb: u32,
        ecx: Cx<'d>,
    ) -> (Vec<u32>, Vec<u32>) {
        let ha = self.sorted_hashes(Side::A, fa, ia.into_iter(), ecx);
        let hb = self.sorted_hashes(Side::B, fb, ib.into_iter(), ecx);
        let mut left_a = Vec::new();
        let mut left_b = Vec::new();
        for_groups(&ha, &hb, |ga, gb| {
            if let ([(_, i)], [(_, j)]) = (ga, gb) {
                if !self.eq(fa + i, fb + j, ecx) {
                    left_a.push(*i);
                    left_b.push(*j);
                }
                return;
            }
            let mut used = vec![false; gb.len()];
            for &(_, i) in ga {
                let p = (0..gb.len())
                    .filter(|&p| !used[p])
                    .take(WINDOW_CAP)
                    .find(|&p| self.eq(fa + i, fb + gb[p].1, ecx));
                match p {
                    Some(p) => used[p] = true,
                    None => left_a.push(i),
                }
            }
            left_b.extend(gb.iter().zip(&used).filter(|(_, u)| !**u).map(|(e, _)| e.1));
        });
        left_a.sort_unstable();
        left_b.sort_unstable();
        if left_a.is_empty() || left_b.is_empty() || is_exact(ecx) {
            return (left_a, left_b);
        }
        // Tolerant phase over the leftovers.
        let groups = self.tolerant_groups(Side::B, fb, left_b, ecx);
        let mut taken: Set<u32> = Set::default();
        let mut keyed_a: Vec<(u64, f64, f64, u32)> = left_a
            .iter()
            .map(|&i| {
                let (lh, s, r) = self.tolerant_key(Side::A, fa + i, ecx);
                (lh, s, r, i)
            })
            .collect();
        // Ascending sums make the greedy choice of the lowest free partner optimal
        // for one number, and a sound heuristic for several.
        keyed_a.sort_unstable_by(|x, y| x.1.total_cmp(&y.1).then(x.3.cmp(&y.3)));
        let mut still_a = Vec::new();
        for (lh, sum, reach, i) in keyed_a {
            let hit = groups.get(&lh).and_then(|g| {
                window(g, sum, reach)
                    .filter(|(_, j)| !taken.contains(j))
                    .take(WINDOW_CAP)
                    .find(|&&(_, j)| self.eq(fa + i, fb + j, ecx))
                    .map(|&(_, j)| j)
            });
            match hit {
                Some(j) => {
                    taken.insert(j);
                }
                None => still_a.push(i),
            }
        }
        still_a.sort_unstable();
        let still_b = groups
            .into_values()
            .flatten()
            .map(|(_, j)| j)
            .filter(|j| !taken.contains(j))
            .collect::<Vec<_>>();
        let mut still_b = still_b;
        still_b.sort_unstable();
        (still_a, still_b)
    }

    /// The key member's node of an object element, if any.
    fn key_of(&self, side: Side, id: u32, field: &str) -> Option<u32> {
        let doc = self.doc(side);
        match doc.node(id) {
            Node::Obj(f, n) => Engine::find(doc, f, n, 0, field, None),
            _ => None,
        }
    }

    fn keyed(&mut self, fa: u32, na: u32, fb: u32, nb: u32, ecx: Cx<'d>, field: &str) -> Unmatched {
        let exact = Cx {
            st: State::DEAD,
            tol: &EXACT,
        };
        // (hash of the key value, element index, key node), sorted by hash.
        let mut keys = |side: Side, first: u32, n: u32, loose: &mut Vec<u32>| {
            let mut v: Vec<(u64, u32, u32)> = Vec::with_capacity(n as usize);
            for i in 0..n {
                match self.key_of(side, first + i, field) {
                    Some(k) => v.push((self.hash(side, k, exact, false), i, k)),
                    None => loose.push(i),
                }
            }
            v.sort_unstable();
            v
        };
        let mut loose_a = Vec::new();
        let mut loose_b = Vec::new();
        let ka = keys(Side::A, fa, na, &mut loose_a);
        let kb = keys(Side::B, fb, nb, &mut loose_b);
        let mut pairs = Vec::new();
        let mut gone_a = Vec::new();
        let mut new_b = Vec::new();
        let mut p = 0;
        let mut q = 0;
        while p < ka.len() || q < kb.len() {
            let h = match (ka.get(p), kb.get(q)) {
                (Some(x), Some(y)) => x.0.min(y.0),
                (Some(x), None) => x.0,
                (None, Some(y)) => y.0,
                (None, None) => break,
            };
            let ga_end = p + ka[p..].iter().take_while(|e| e.0 == h).count();
            let gb_end = q + kb[q..].iter().take_while(|e| e.0 == h).count();
            let (ga, gb) = (&ka[p..ga_end], &kb[q..gb_end]);
            if let ([(_, i, x)], [(_, j, y)]) = (ga, gb) {
                if self.eq(*x, *y, exact) {
                    pairs.push((*i, *j));
                } else {
                    gone_a.push(*i);
                    new_b.push(*j);
                }
            } else {
                let mut used = vec![false; gb.len()];
                for &(_, i, x) in ga {
                    let same_key: Vec<usize> = (0..gb.len())
                        .filter(|&t| !used[t] && self.eq(x, gb[t].2, exact))
                        .take(WINDOW_CAP)
                        .collect();
                    // With repeated keys, prefer a partner that is equal as a whole.
                    let pick = match same_key.as_slice() {
                        [] => None,
                        [t] => Some(*t),
                        many => Some(
                            many.iter()
                                .copied()
                                .find(|&t| self.eq(fa + i, fb + gb[t].1, ecx))
                                .unwrap_or(many[0]),
                        ),
                    };
                    match pick {
                        Some(t) => {
                            used[t] = true;
                            pairs.push((i, gb[t].1));
                        }
                        None => gone_a.push(i),
                    }
                }
                new_b.extend(gb.iter().zip(&used).filter(|(_, u)| !**u).map(|(e, _)| e.1));
            }
            (p, q) = (ga_end, gb_end);
        }
        pairs.sort_unstable();
        let (la, lb) = self.multiset(loose_a, loose_b, fa, fb, ecx);
        gone_a.extend(la);
        gone_a.sort_unstable();
        new_b.extend(lb);
        new_b.sort_unstable();
        Unmatched {
            a: gone_a,
            b: new_b,
            pairs,
        }
    }

    fn unordered_diff(&mut self, fa: u32, fb: u32, ecx: Cx<'d>, mode: &ArrayMode, u: Unmatched) {
        // Inner changes first, while every index of A is still where it was.
        for &(i, j) in &u.pairs {
            if self.stop {
                return;
            }
            let disp = match (mode, self.key_of(Side::A, fa + i, key_field(mode))) {
                (ArrayMode::Key(_), Some(k)) => Disp::Keyed(Side::A, k),
                _ => Disp::Index(i),
            };
            self.push_elem(disp, Ptr::Index(i));
            self.diff(fa + i, fb + j, ecx);
            self.pop_elem();
        }
        let keyed = matches!(mode, ArrayMode::Key(_));
        let disp = |e: &Self, side: Side, first: u32, i: u32| match e.key_of(
            side,
            first + i,
            key_field(mode),
        ) {
            Some(k) if keyed => Disp::Keyed(side, k),
            _ => Disp::Index(i),
        };
        for &i in &u.a {
            if self.stop {
                return;
            }
            let d = disp(self, Side::A, fa, i);
            self.push_elem(d, Ptr::Index(i));
            self.removed(fa + i, false);
            self.pop_elem();
        }
        // Removing from the back keeps the earlier indices valid.
        for &i in u.a.iter().rev() {
            self.push_elem(Disp::Index(i), Ptr::Index(i));
            self.op(Op::Remove, None);
            self.pop_elem();
        }
        for &j in &u.b {
            if self.stop {
                return;
            }
            let d = disp(self, Side::B, fb, j);
            self.push_elem(d, Ptr::End);
            self.added(fb + j, true);
            self.pop_elem();
        }
    }
}

/// Calls `f` with each group of equal hashes: A's part and B's part (either may
/// be empty). Both slices are sorted by hash.
fn for_groups(
    ha: &[(u64, u32)],
    hb: &[(u64, u32)],
    mut f: impl FnMut(&[(u64, u32)], &[(u64, u32)]),
) {
    let (mut p, mut q) = (0, 0);
    while p < ha.len() || q < hb.len() {
        let h = match (ha.get(p), hb.get(q)) {
            (Some(x), Some(y)) => x.0.min(y.0),
            (Some(x), None) => x.0,
            (None, Some(y)) => y.0,
            (None, None) => break,
        };
        let pe = p + ha[p..].iter().take_while(|e| e.0 == h).count();
        let qe = q + hb[q..].iter().take_while(|e| e.0 == h).count();
        f(&ha[p..pe], &hb[q..qe]);
        (p, q) = (pe, qe);
    }
}

fn key_field(mode: &ArrayMode) -> &str {
    match mode {
        ArrayMode::Key(f) => f,
        _ => "",
    }
}

fn is_exact(ecx: Cx<'_>) -> bool {
    // Path rules could set a tolerance deeper down, so only a dead state with an
    // exact tolerance proves that exact hashing already found every match.
    ecx.st.is_dead() && *ecx.tol == crate::number::Tolerance::EXACT
}

/// The entries of a sorted group whose sums lie within `reach` of `sum`.
fn window(g: &[(f64, u32)], sum: f64, reach: f64) -> impl Iterator<Item = &(f64, u32)> {
    let (lo, hi) = if reach.is_finite() {
        (sum - reach, sum + reach)
    } else {
        (f64::NEG_INFINITY, f64::INFINITY)
    };
    let start = g.partition_point(|e| e.0 < lo);
    g[start..].iter().take_while(move |e| e.0 <= hi)
}

fn backtrack(trace: &[isize], d_end: isize, n: isize, m: isize, a0: u32, b0: u32) -> Vec<Edit> {
    let mut out = Vec::new();
    let (mut x, mut y) = (n, m);
    let row = |d: isize| -> &[isize] {
        let s = (d * d) as usize;
        &trace[s..s + (2 * d + 1) as usize]
    };
    for d in (1..=d_end).rev() {
        let prev = row(d - 1);
        let at = |k: isize| prev[(k + d - 1) as usize];
        let k = x - y;
        let down = k == -d || (k != d && at(k - 1) < at(k + 1));
        let pk = if down { k + 1 } else { k - 1 };
        let px = at(pk);
        let py = px - pk;
        while x > px && y > py {
            x -= 1;
            y -= 1;
            out.push(Edit::Keep(a0 + x as u32, b0 + y as u32));
        }
        if down {
            out.push(Edit::Ins(b0 + py as u32));
        } else {
            out.push(Edit::Del(a0 + px as u32));
        }
        (x, y) = (px, py);
    }
    while x > 0 && y > 0 {
        x -= 1;
        y -= 1;
        out.push(Edit::Keep(a0 + x as u32, b0 + y as u32));
    }
    out.reverse();
    out
}

/// Pairs `(x, y)` with `ha[x] == hb[y]`, increasing in both: a longest common
/// subsequence for small hunks, a greedy in-order match with lookahead otherwise.
fn monotone_matches(ha: &[u64], hb: &[u64]) -> Vec<(usize, usize)> {
    let (n, m) = (ha.len(), hb.len());
    if n * m <= 250_000 {
        // lcs[x][y] = LCS length of ha[x..] and hb[y..]
        let w = m + 1;
        let mut lcs = vec![0u32; (n + 1) * w];
        for x in (0..n).rev() {
            for y in (0..m).rev() {
                lcs[x * w + y] = if ha[x] == hb[y] {
                    lcs[(x + 1) * w + y + 1] + 1
                } else {
                    lcs[(x + 1) * w + y].max(lcs[x * w + y + 1])
                };
            }
        }
        let (mut x, mut y, mut out) = (0, 0, Vec::new());
        while x < n && y < m {
            if ha[x] == hb[y] {
                out.push((x, y));
                x += 1;
                y += 1;
            } else if lcs[(x + 1) * w + y] >= lcs[x * w + y + 1] {
                x += 1;
            } else {
                y += 1;
            }
        }
        return out;
    }
    let mut out = Vec::new();
    let mut y0 = 0;
    for (x, h) in ha.iter().enumerate() {
        if let Some(d) = hb[y0.min(m)..].iter().take(64).position(|g| g == h) {
            out.push((x, y0 + d));
            y0 += d + 1;
        }
    }
    out
}

/// Longest chain of pairs increasing in both coordinates (pairs sorted by `i`).
fn longest_increasing(pairs: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut tails: Vec<usize> = Vec::new();
    let mut prev: Vec<usize> = vec![usize::MAX; pairs.len()];
    for (p, &(_, j)) in pairs.iter().enumerate() {
        let pos = tails.partition_point(|&t| pairs[t].1 < j);
        if pos > 0 {
            prev[p] = tails[pos - 1];
        }
        if pos == tails.len() {
            tails.push(p);
        } else {
            tails[pos] = p;
        }
    }
    let mut out = Vec::with_capacity(tails.len());
    let mut cur = tails.last().copied().unwrap_or(usize::MAX);
    while cur != usize::MAX {
        out.push(pairs[cur]);
        cur = prev[cur];
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lis_picks_a_longest_chain() {
        let p = [(0, 3), (1, 1), (2, 2), (3, 0), (4, 4)];
        assert_eq!(longest_increasing(&p), vec![(1, 1), (2, 2), (4, 4)]);
        assert!(longest_increasing(&[]).is_empty());
    }

    #[test]
    fn monotone_matches_follow_the_order() {
        assert_eq!(
            monotone_matches(&[1, 2, 3], &[9, 2, 3]),
            vec![(1, 1), (2, 2)]
        );
        assert_eq!(monotone_matches(&[5], &[7, 5]), vec![(0, 1)]);
        assert!(monotone_matches(&[1, 2], &[3, 4]).is_empty());
    }

    #[test]
    fn window_is_inclusive() {
        let g = [(1.0, 0), (2.0, 1), (3.0, 2)];
        let w: Vec<u32> = window(&g, 2.0, 1.0).map(|e| e.1).collect();
        assert_eq!(w, vec![0, 1, 2]);
        let w: Vec<u32> = window(&g, 2.0, 0.5).map(|e| e.1).collect();
        assert_eq!(w, vec![1]);
    }
}
