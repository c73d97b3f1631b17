//! Ordered arrays: a real alignment with insertions and deletions. Common prefix
//! and suffix, Myers with a cost cap, a resynchronising walk for huge arrays with
//! sparse edits, unique-element anchors (patience), positional fallback.

use crate::engine::{Cx, Disp, Engine, Ptr, Side};

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

impl<'d> Engine<'d> {
    pub(crate) fn ordered_diff(&mut self, fa: u32, na: u32, fb: u32, nb: u32, ecx: Cx<'d>) {
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
                    self.push_elem(Disp::Index(i), Ptr::Index(pos), j);
                    self.diff(fa + i, fb + j, ecx);
                    self.pop_elem();
                    pos += 1;
                }
                Edit::Del(i) => {
                    self.push_elem(Disp::Index(i), Ptr::Index(pos), i);
                    self.removed(fa + i, true);
                    self.pop_elem();
                }
                Edit::Ins(j) => {
                    self.push_elem(Disp::Index(j), Ptr::Index(pos), j);
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
}
