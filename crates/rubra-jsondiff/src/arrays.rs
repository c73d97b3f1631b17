//! Arrays: dispatch by mode, and unordered matching (set, multiset, keyed) that
//! keeps the number tolerance. Ordered alignment lives in `ordered.rs`.
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
pub(crate) struct PreHashed(u64);

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

/// Results of comparing element pairs of one set, by [`pair_key`].
type Known = Map<u64, bool>;

/// The key of the pair (A's element `i`, B's element `j`), relative indices.
fn pair_key(i: u32, j: u32) -> u64 {
    (i as u64) << 32 | j as u64
}

/// Most candidates one element may check in the tolerant phase.
pub(crate) const WINDOW_CAP: usize = 1_000;

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
        if na == 1 && nb == 1 && matches!(mode, ArrayMode::Set | ArrayMode::Multiset) {
            // One element each: no hashing, so nested singletons stay linear in depth.
            let (a, b) = if self.eq(fa, fb, ecx) {
                (Vec::new(), Vec::new())
            } else {
                (vec![0], vec![0])
            };
            return Unmatched {
                a,
                b,
                pairs: Vec::new(),
            };
        }
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
        let (all_a, all_b) = self.all_hashes(
            fa,
            &(0..na).collect::<Vec<_>>(),
            fb,
            &(0..nb).collect::<Vec<_>>(),
            ecx,
        );
        let both = |all: Vec<[u64; 2]>| {
            let mut exact = Vec::with_capacity(all.len());
            let mut loose = Vec::with_capacity(all.len());
            for (i, [e, l]) in all.into_iter().enumerate() {
                exact.push((e, i as u32));
                loose.push(l);
            }
            exact.sort_unstable();
            (exact, loose)
        };
        let (ha, loose_a) = both(all_a);
        let (hb, loose_b) = both(all_b);
        let mut left_a = Vec::new();
        let mut left_b = Vec::new();
        // Every pair is compared at most once, here and in the tolerant phase: a
        // pair compared twice at each level of nested sets doubles the work per
        // level (2^depth; a few hundred bytes of nesting took hours).
        let mut known = Known::default();
        // Lone pairs of a hash (nearly all of them) are checked afterwards, in bulk.
        let mut lone = Vec::new();
        for_groups(&ha, &hb, |ga, gb| {
            if let ([(_, i)], [(_, j)]) = (ga, gb) {
                lone.push((*i, *j));
                return;
            }
            let mut seen_b = vec![false; gb.len()];
            for &(_, i) in ga {
                let mut hit = false;
                for (t, &(_, j)) in gb.iter().enumerate().take(WINDOW_CAP) {
                    let eq = self.eq(fa + i, fb + j, ecx);
                    known.insert(pair_key(i, j), eq);
                    if eq {
                        hit = true;
                        seen_b[t] = true;
                    }
                }
                if !hit {
                    left_a.push(i);
                }
            }
            // Below the cap every pair was compared above.
            for (t, &(_, j)) in gb.iter().enumerate() {
                if !seen_b[t]
                    && (t < WINDOW_CAP
                        || !ga
                            .iter()
                            .take(WINDOW_CAP)
                            .any(|&(_, i)| self.eq(fa + i, fb + j, ecx)))
                {
                    left_b.push(j);
                }
            }
        });
        lone.sort_unstable();
        for (i, j) in self.unequal(&lone, fa, fb, ecx) {
            known.insert(pair_key(i, j), false);
            left_a.push(i);
            left_b.push(j);
        }
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
        let a = self.set_tolerant(Side::A, fa, left_a, fb, &loose_b, ecx, &mut known);
        let b = self.set_tolerant(Side::B, fb, left_b, fa, &loose_a, ecx, &mut known);
        Unmatched {
            a,
            b,
            pairs: Vec::new(),
        }
    }

    /// The leftovers `left` of `side` that have no tolerant match in the other array;
    /// `known` holds the pairs already compared (and gets those compared here).
    #[allow(clippy::too_many_arguments)]
    fn set_tolerant(
        &mut self,
        side: Side,
        fs: u32,
        mut left: Vec<u32>,
        fo: u32,
        loose_other: &[u64],
        ecx: Cx<'d>,
        known: &mut Known,
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
                window(g, sum, reach).take(WINDOW_CAP).any(|&(_, j)| {
                    let key = match side {
                        Side::A => pair_key(i, j),
                        Side::B => pair_key(j, i),
                    };
                    *known
                        .entry(key)
                        .or_insert_with(|| self.eq_sides(side, fs + i, fo + j, ecx))
                })
            });
            if !hit {
                left.push(i);
            }
        }
        left.sort_unstable();
        left
    }

    /// `[exact, loose]` hashes of A's elements `ia` and B's elements `ib`
    /// (relative indices), in the order given; large arrays use every thread.
    fn all_hashes(
        &mut self,
        fa: u32,
        ia: &[u32],
        fb: u32,
        ib: &[u32],
        ecx: Cx<'d>,
    ) -> (Vec<[u64; 2]>, Vec<[u64; 2]>) {
        let na = ia.len();
        if !self.splits(na + ib.len()) {
            let a = ia
                .iter()
                .map(|&i| self.hashes(Side::A, fa + i, ecx))
                .collect();
            let b = ib
                .iter()
                .map(|&j| self.hashes(Side::B, fb + j, ecx))
                .collect();
            return (a, b);
        }
        let chunks = self.split(na + ib.len(), |e, r| {
            r.map(|k| match k.checked_sub(na) {
                None => e.hashes(Side::A, fa + ia[k], ecx),
                Some(k) => e.hashes(Side::B, fb + ib[k], ecx),
            })
            .collect::<Vec<_>>()
        });
        let mut a = flat(chunks);
        let b = a.split_off(na);
        (a, b)
    }

    /// The pairs `(i, j)` whose elements `A[i]` and `B[j]` differ (relative
    /// indices); large lists use every thread.
    /// `pairs` are sorted by `i`, so A is read in order and B's elements are
    /// prefetched a few pairs ahead.
    fn unequal(&mut self, pairs: &[(u32, u32)], fa: u32, fb: u32, ecx: Cx<'d>) -> Vec<(u32, u32)> {
        let b = self.b;
        let check = |e: &mut Engine<'d>, pairs: &[(u32, u32)]| {
            let mut out = Vec::new();
            for (k, &(i, j)) in pairs.iter().enumerate() {
                b.warm_ahead(k, pairs.len(), |t| fb + pairs[t].1);
                if !e.eq(fa + i, fb + j, ecx) {
                    out.push((i, j));
                }
            }
            out
        };
        if !self.splits(pairs.len()) {
            return check(self, pairs);
        }
        flat(self.split(pairs.len(), |e, r| check(e, &pairs[r])))
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
        if let ([i], [j]) = (ia.as_slice(), ib.as_slice()) {
            // One element each: no hashing, so nested singletons stay linear in depth.
            return if self.eq(fa + i, fb + j, ecx) {
                (Vec::new(), Vec::new())
            } else {
                (ia, ib)
            };
        }
        let (xa, xb) = self.all_hashes(fa, &ia, fb, &ib, ecx);
        let sorted = |idx: Vec<u32>, h: Vec<[u64; 2]>| {
            let mut v: Vec<(u64, u32)> = h.into_iter().map(|e| e[0]).zip(idx).collect();
            v.sort_unstable();
            v
        };
        let (ha, hb) = (sorted(ia, xa), sorted(ib, xb));
        let mut left_a = Vec::new();
        let mut left_b = Vec::new();
        // Lone pairs of a hash (nearly all of them) are checked afterwards, in bulk.
        let mut lone = Vec::new();
        for_groups(&ha, &hb, |ga, gb| {
            if let ([(_, i)], [(_, j)]) = (ga, gb) {
                lone.push((*i, *j));
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
        lone.sort_unstable();
        for (i, j) in self.unequal(&lone, fa, fb, ecx) {
            left_a.push(i);
            left_b.push(j);
        }
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

    /// The key member's node of an object element, if it has one with a scalar
    /// value (containers as keys would be hashed again at every nesting level).
    fn key_of(&self, side: Side, id: u32, field: &str) -> Option<u32> {
        let doc = self.doc(side);
        let Node::Obj(f, n) = doc.node(id) else {
            return None;
        };
        let k = Engine::find(doc, f, n, 0, field, None)?;
        match doc.node(k) {
            Node::Arr(..) | Node::Obj(..) => None,
            _ => Some(k),
        }
    }

    fn keyed(&mut self, fa: u32, na: u32, fb: u32, nb: u32, ecx: Cx<'d>, field: &str) -> Unmatched {
        let exact = Cx {
            st: State::DEAD,
            tol: &EXACT,
        };
        // The key node of every element and the hash of its value, on every thread.
        let na_ = na as usize;
        let key = |e: &mut Engine<'d>, side: Side, id: u32| {
            e.key_of(side, id, field)
                .map(|k| (e.hash(side, k, exact, false), k))
        };
        let (found, found_b) = if !self.splits(na_ + nb as usize) {
            let a: Vec<_> = (0..na).map(|i| key(self, Side::A, fa + i)).collect();
            let b: Vec<_> = (0..nb).map(|j| key(self, Side::B, fb + j)).collect();
            (a, b)
        } else {
            let mut found = flat(self.split(na_ + nb as usize, |e, r| {
                r.map(|t| {
                    let (side, id) = match t.checked_sub(na_) {
                        None => (Side::A, fa + t as u32),
                        Some(t) => (Side::B, fb + t as u32),
                    };
                    key(e, side, id)
                })
                .collect::<Vec<_>>()
            }));
            let found_b = found.split_off(na_);
            (found, found_b)
        };
        // (hash of the key value, element index, key node), sorted by hash.
        let keys = |found: Vec<Option<(u64, u32)>>, loose: &mut Vec<u32>| {
            let mut v: Vec<(u64, u32, u32)> = Vec::with_capacity(found.len());
            for (i, f) in found.into_iter().enumerate() {
                match f {
                    Some((h, k)) => v.push((h, i as u32, k)),
                    None => loose.push(i as u32),
                }
            }
            v.sort_unstable();
            v
        };
        let mut loose_a = Vec::new();
        let mut loose_b = Vec::new();
        let ka = keys(found, &mut loose_a);
        let kb = keys(found_b, &mut loose_b);
        // Lone pairs of a hash (nearly all of them): (i, j, key in A, key in B),
        // checked afterwards in bulk.
        let mut lone: Vec<(u32, u32, u32, u32)> = Vec::new();
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
                lone.push((*i, *j, *x, *y));
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
        // In A's order, so that at least one side is read sequentially.
        lone.sort_unstable();
        let b = self.b;
        let check = |e: &mut Engine<'d>, lone: &[(u32, u32, u32, u32)]| {
            let mut same = Vec::with_capacity(lone.len());
            for (k, &(_, _, x, y)) in lone.iter().enumerate() {
                b.warm_ahead(k, lone.len(), |t| lone[t].3);
                same.push(e.eq(x, y, exact));
            }
            same
        };
        let same: Vec<bool> = if !self.splits(lone.len()) {
            check(self, &lone)
        } else {
            flat(self.split(lone.len(), |e, r| check(e, &lone[r])))
        };
        for (&(i, j, _, _), same) in lone.iter().zip(same) {
            if same {
                pairs.push((i, j));
            } else {
                gone_a.push(i);
                new_b.push(j);
            }
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
        // Large lists of pairs are diffed on every thread, findings kept in order.
        let pairs = &u.pairs;
        let b = self.b;
        self.split(pairs.len(), |e, r| {
            let pairs = &pairs[r];
            for (k, &(i, j)) in pairs.iter().enumerate() {
                if e.stop {
                    return;
                }
                b.warm_ahead(k, pairs.len(), |t| fb + pairs[t].1);
                let disp = match (mode, e.key_of(Side::A, fa + i, key_field(mode))) {
                    (ArrayMode::Key(_), Some(k)) => Disp::Keyed(Side::A, k, i),
                    _ => Disp::Index(i),
                };
                e.push_elem(disp, Ptr::Index(i), j);
                e.diff(fa + i, fb + j, ecx);
                e.pop_elem();
            }
        });
        if self.stop {
            return;
        }
        let keyed = matches!(mode, ArrayMode::Key(_));
        let disp = |e: &Self, side: Side, first: u32, i: u32| match e.key_of(
            side,
            first + i,
            key_field(mode),
        ) {
            Some(k) if keyed => Disp::Keyed(side, k, i),
            _ => Disp::Index(i),
        };
        for &i in &u.a {
            if self.stop {
                return;
            }
            let d = disp(self, Side::A, fa, i);
            self.push_elem(d, Ptr::Index(i), i);
            self.removed(fa + i, false);
            self.pop_elem();
        }
        // Removing from the back keeps the earlier indices valid.
        for &i in u.a.iter().rev() {
            self.push_elem(Disp::Index(i), Ptr::Index(i), i);
            self.op(Op::Remove, None);
            self.pop_elem();
        }
        for &j in &u.b {
            if self.stop {
                return;
            }
            let d = disp(self, Side::B, fb, j);
            self.push_elem(d, Ptr::End, j);
            self.added(fb + j, true);
            self.pop_elem();
        }
    }
}

/// The chunks' results of [`Engine::split`] as one list (no copy for one chunk).
fn flat<T: Clone>(mut chunks: Vec<Vec<T>>) -> Vec<T> {
    match chunks.len() {
        1 => chunks.pop().unwrap_or_default(),
        _ => chunks.concat(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_inclusive() {
        let g = [(1.0, 0), (2.0, 1), (3.0, 2)];
        let w: Vec<u32> = window(&g, 2.0, 1.0).map(|e| e.1).collect();
        assert_eq!(w, vec![0, 1, 2]);
        let w: Vec<u32> = window(&g, 2.0, 0.5).map(|e| e.1).collect();
        assert_eq!(w, vec![1]);
    }
}
