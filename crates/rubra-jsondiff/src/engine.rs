//! The comparison walk: equality, hashing and differences for scalars and
//! objects, path rules applied on the way down, and how findings are recorded.
//! Arrays are handled in `arrays.rs`.

use std::hash::Hasher;

use crate::number::{self, Canon, Tolerance};
use crate::parse::{Document, Node};
use crate::path::{Matcher, State, Step};
use crate::policy::{ArrayMode, Options};
use crate::report::{Difference, Kind, Op, PatchOp, Report, json_string};

/// What a path rule does when its pattern matches.
#[derive(Clone, Copy)]
enum Rule<'o> {
    Ignore,
    Array(&'o ArrayMode),
    Tol(&'o Tolerance),
}

/// Where the walk is: the rule state and the tolerance in force (inherited downwards).
#[derive(Clone, Copy)]
pub(crate) struct Cx<'o> {
    pub(crate) st: State,
    pub(crate) tol: &'o Tolerance,
}

/// Which document a node belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    A,
    B,
}

/// How an array element is shown in a readable path.
#[derive(Clone, Copy)]
pub(crate) enum Disp {
    Index(u32),
    /// `[field=value]`, the value being this node; then the element's own index
    /// in its document (for [`Difference::pointer`]).
    Keyed(Side, u32, u32),
}

/// Where an element is in the document being patched.
#[derive(Clone, Copy)]
pub(crate) enum Ptr {
    Index(u32),
    End,
}

#[derive(Clone, Copy)]
enum Seg {
    Key(Side, u32),
    /// An array element: how it is shown, where the patch finds it, and its index
    /// in the second document (for the pointers of added values).
    Elem(Disp, Ptr, u32),
}

pub(crate) static EXACT: Tolerance = Tolerance::EXACT;

/// Fx-style hasher: fast, good enough to bucket values; every hit is verified.
#[derive(Default)]
pub(crate) struct FxHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.write_u64(w);
        }
        let mut tail = 0u64;
        for (i, &b) in chunks.remainder().iter().enumerate() {
            tail |= (b as u64) << (8 * i);
        }
        self.write_u64(tail ^ (bytes.len() as u64) << 56);
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(K);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A well-mixed 64-bit value for commutative (order-free) combination.
pub(crate) fn mix(x: u64) -> u64 {
    let x = (x ^ (x >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    let x = (x ^ (x >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The comparison of one pair of documents.
pub(crate) struct Engine<'d> {
    pub(crate) a: &'d Document,
    pub(crate) b: &'d Document,
    pub(crate) opts: &'d Options,
    matcher: Matcher,
    rules: Vec<Rule<'d>>,
    has_ignores: bool,
    stack: Vec<u64>,
    path: Vec<Seg>,
    pub(crate) out: Report,
    pub(crate) stop: bool,
    /// Work lists at least this long are split across threads (`usize::MAX`: never).
    par_min: usize,
    /// Threads a split uses.
    threads: usize,
}

/// Element counts from which unordered matching and keyed diffs use threads.
const PAR_MIN: usize = 4096;

impl<'d> Engine<'d> {
    pub(crate) fn new(a: &'d Document, b: &'d Document, opts: &'d Options) -> Self {
        let mut pats = Vec::new();
        let mut rules = Vec::new();
        for p in &opts.ignore {
            pats.push(p.clone());
            rules.push(Rule::Ignore);
        }
        for (p, m) in &opts.arrays {
            pats.push(p.clone().without_trailing_index());
            rules.push(Rule::Array(m));
        }
        for (p, t) in &opts.tolerances {
            pats.push(p.clone());
            rules.push(Rule::Tol(t));
        }
        Engine {
            a,
            b,
            opts,
            matcher: Matcher::new(pats),
            has_ignores: !opts.ignore.is_empty(),
            rules,
            stack: Vec::new(),
            path: Vec::new(),
            out: Report::default(),
            stop: false,
            par_min: usize::MAX,
            threads: 1,
        }
    }

    /// Lets large work lists run on up to `threads` threads from `par_min`
    /// elements on. Forks never split again, and `--quiet` (stop at the first
    /// difference) stays sequential.
    pub(crate) fn parallel(mut self, threads: usize, par_min: usize) -> Self {
        if threads > 1 && !self.opts.stop_at_first {
            self.threads = threads;
            self.par_min = par_min.max(1);
        }
        self
    }

    /// Splits large work across `RUBRA_JSONDIFF_THREADS` threads (at most 8;
    /// `0`: one per core). Unset, the comparison stays on one thread: on the
    /// shared, saturated benchmark machine the split cost 5–15 % more CPU and
    /// bought no wall time (see bench/jsondiff/RESULTS.md).
    pub(crate) fn parallel_default(self) -> Self {
        let threads = match std::env::var("RUBRA_JSONDIFF_THREADS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            Some(0) => std::thread::available_parallelism().map_or(1, |n| n.get()),
            Some(n) => n,
            None => 1,
        }
        .clamp(1, 8);
        self.parallel(threads, PAR_MIN)
    }

    /// A copy of this engine at the same place of the walk (rule state and
    /// path), with an empty report, that never splits work itself.
    fn fork(&self) -> Engine<'d> {
        Engine {
            a: self.a,
            b: self.b,
            opts: self.opts,
            matcher: self.matcher.clone(),
            rules: self.rules.clone(),
            has_ignores: self.has_ignores,
            stack: self.stack.clone(),
            path: self.path.clone(),
            out: Report::default(),
            stop: false,
            par_min: usize::MAX,
            threads: 1,
        }
    }

    /// Runs `f` over `0..n`, split into one contiguous chunk per thread when `n`
    /// is large, each chunk on a [`fork`](Engine::fork). Returns the chunks'
    /// results in order and appends their findings to this report in chunk order,
    /// so the report is the same as one sequential run over `0..n` gives.
    /// Whether [`Engine::split`] would use threads for `n` items; callers take a
    /// direct path otherwise (small arrays, nested ones, need no extra lists).
    pub(crate) fn splits(&self, n: usize) -> bool {
        n >= self.par_min && self.threads > 1 && !self.stop
    }

    pub(crate) fn split<T: Send>(
        &mut self,
        n: usize,
        f: impl Fn(&mut Engine<'d>, std::ops::Range<usize>) -> T + Sync,
    ) -> Vec<T> {
        if !self.splits(n) {
            return vec![f(self, 0..n)];
        }
        let threads = self.threads.min(n);
        let chunk = n.div_ceil(threads);
        let parent: &Engine<'d> = self;
        let f = &f;
        let job = move |t: usize| {
            move || {
                let mut e = parent.fork();
                let v = f(&mut e, t * chunk..((t + 1) * chunk).min(n));
                (v, e.out)
            }
        };
        // Sized like the deep-nesting thread of `crate::diff` (forks only exist
        // for documents within `crate::INLINE_DEPTH`).
        let stack = crate::stack_size(crate::INLINE_DEPTH);
        let done: Vec<(T, Report)> = std::thread::scope(|s| {
            let running: Vec<_> = (1..threads)
                .map(|t| {
                    std::thread::Builder::new()
                        .name("rubra-jsondiff".into())
                        .stack_size(stack)
                        .spawn_scoped(s, job(t))
                        .map_err(|_| t)
                })
                .collect();
            let mut done = vec![job(0)()];
            for r in running {
                done.push(match r {
                    Ok(h) => h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
                    Err(t) => job(t)(),
                });
            }
            done
        });
        let mut out = Vec::with_capacity(done.len());
        for (v, r) in done {
            self.out.differences.extend(r.differences);
            self.out.patch.extend(r.patch);
            out.push(v);
        }
        out
    }

    pub(crate) fn doc(&self, side: Side) -> &'d Document {
        match side {
            Side::A => self.a,
            Side::B => self.b,
        }
    }

    /// Runs the whole comparison.
    pub(crate) fn run(mut self) -> Report {
        let st = self.matcher.root(&mut self.stack);
        let mut cx = Cx {
            st,
            tol: &self.opts.tolerance,
        };
        let mut ignored = false;
        for r in self.matcher.matches(&self.stack, st) {
            match self.rules[r] {
                Rule::Ignore => ignored = true,
                Rule::Tol(t) => cx.tol = t,
                Rule::Array(_) => {}
            }
        }
        if !ignored {
            self.diff(self.a.root, self.b.root, cx);
        }
        debug_assert!(self.matcher.len() == 0 || self.stack.len() == self.matcher.len());
        self.out
    }

    // ---- rules -------------------------------------------------------------

    /// Steps into a child; `None` when the child is ignored. The caller truncates
    /// `self.stack` to its previous length when done with the child.
    pub(crate) fn child(&mut self, cx: Cx<'d>, step: Step<'_>) -> Option<Cx<'d>> {
        if cx.st.is_dead() {
            return Some(cx);
        }
        let st = self.matcher.step(&mut self.stack, cx.st, step);
        let mut out = Cx { st, tol: cx.tol };
        for r in self.matcher.matches(&self.stack, st) {
            match self.rules[r] {
                Rule::Ignore => return None,
                Rule::Tol(t) => out.tol = t,
                Rule::Array(_) => {}
            }
        }
        Some(out)
    }

    pub(crate) fn mark(&self) -> usize {
        self.stack.len()
    }

    pub(crate) fn reset(&mut self, mark: usize) {
        self.stack.truncate(mark);
    }

    /// The array mode for the array at `cx`.
    pub(crate) fn mode(&self, cx: Cx<'d>) -> &'d ArrayMode {
        let mut mode = &self.opts.array_mode;
        for r in self.matcher.matches(&self.stack, cx.st) {
            if let Rule::Array(m) = self.rules[r] {
                mode = m;
            }
        }
        mode
    }

    fn ignores_possible(&self, cx: Cx<'d>) -> bool {
        self.has_ignores && !cx.st.is_dead()
    }

    // ---- equality ----------------------------------------------------------

    pub(crate) fn str_eq(&self, x: crate::parse::Span, y: crate::parse::Span) -> bool {
        let (ra, rb) = (self.a.raw(x), self.b.raw(y));
        crate::parse::bytes_eq(ra.as_bytes(), rb.as_bytes())
            || ((x.escaped() || y.escaped()) && self.a.text(x) == self.b.text(y))
    }

    /// Whether node `x` of A equals node `y` of B under the rules at `cx`.
    pub(crate) fn eq(&mut self, x: u32, y: u32, cx: Cx<'d>) -> bool {
        match (self.a.node(x), self.b.node(y)) {
            (Node::Null, Node::Null) => true,
            (Node::Bool(p), Node::Bool(q)) => p == q,
            (Node::Num(p), Node::Num(q)) => number::num_eq(self.a.raw(p), self.b.raw(q), cx.tol),
            (Node::Str(p), Node::Str(q)) => self.str_eq(p, q),
            (Node::Arr(fa, na), Node::Arr(fb, nb)) => self.arr_eq(fa, na, fb, nb, cx),
            (Node::Obj(fa, na), Node::Obj(fb, nb)) => self.obj_eq(fa, na, fb, nb, cx),
            _ => false,
        }
    }

    /// Finds the member of `doc`'s object `first..first+len` named `name`; `hint`
    /// is tried first because objects usually list members in the same order.
    pub(crate) fn find(
        doc: &Document,
        first: u32,
        len: u32,
        hint: u32,
        name: &str,
        index: Option<&std::collections::HashMap<std::borrow::Cow<'_, str>, u32>>,
    ) -> Option<u32> {
        let is = |j: u32| {
            let k = doc.keys[(first + j) as usize];
            if k.escaped() {
                doc.text(k) == name
            } else {
                doc.raw(k) == name
            }
        };
        if hint < len && is(hint) {
            return Some(first + hint);
        }
        if let Some(ix) = index {
            return ix.get(name).copied();
        }
        (0..len).find(|&j| is(j)).map(|j| first + j)
    }

    /// Finds in `doc`'s object `first..first+len` the member named like member
    /// `x` of `from`, trying position `hint` first.
    #[inline]
    pub(crate) fn find_member(
        from: &Document,
        x: u32,
        doc: &Document,
        first: u32,
        len: u32,
        hint: u32,
    ) -> Option<u32> {
        if hint < len && from.same_key(x, doc, first + hint) {
            return Some(first + hint);
        }
        (first..first + len).find(|&y| from.same_key(x, doc, y))
    }

    fn key_index(
        doc: &Document,
        first: u32,
        len: u32,
    ) -> Option<std::collections::HashMap<std::borrow::Cow<'_, str>, u32>> {
        (len > 24).then(|| (first..first + len).map(|i| (doc.key(i), i)).collect())
    }

    fn obj_eq(&mut self, fa: u32, na: u32, fb: u32, nb: u32, cx: Cx<'d>) -> bool {
        let ignores = self.ignores_possible(cx);
        if !ignores && na != nb {
            return false;
        }
        let (a, b) = (self.a, self.b);
        let index = Self::key_index(b, fb, nb);
        let mut matched = 0;
        for i in 0..na {
            let mark = self.mark();
            let ccx = if cx.st.is_dead() {
                Some(cx)
            } else {
                self.child(cx, Step::Key(&a.key(fa + i)))
            };
            let Some(ccx) = ccx else {
                self.reset(mark);
                continue;
            };
            let found = match &index {
                Some(ix) => ix.get(&*a.key(fa + i)).copied(),
                None => Self::find_member(a, fa + i, b, fb, nb, i),
            };
            let ok = match found {
                Some(y) => self.eq(fa + i, y, ccx),
                None => false,
            };
            self.reset(mark);
            if !ok {
                return false;
            }
            matched += 1;
        }
        if !ignores {
            return true;
        }
        let mut live = 0;
        for j in 0..nb {
            let mark = self.mark();
            live += self.child(cx, Step::Key(&b.key(fb + j))).is_some() as u32;
            self.reset(mark);
        }
        live == matched
    }

    // ---- hashing -----------------------------------------------------------

    /// A hash consistent with [`Engine::eq`] at `cx` when `loose` (numbers all hash
    /// alike), and with exact equality otherwise.
    pub(crate) fn hash(&mut self, side: Side, id: u32, cx: Cx<'d>, loose: bool) -> u64 {
        self.hashes(side, id, cx)[loose as usize]
    }

    /// Both hashes in one walk: `[exact, loose]`.
    pub(crate) fn hashes(&mut self, side: Side, id: u32, cx: Cx<'d>) -> [u64; 2] {
        let doc = self.doc(side);
        let mut h = [FxHasher::default(), FxHasher::default()];
        let both = |h: &mut [FxHasher; 2], x: u64| {
            h[0].write_u64(x);
            h[1].write_u64(x);
        };
        match doc.node(id) {
            Node::Null => both(&mut h, 1),
            Node::Bool(v) => both(&mut h, 2 + v as u64),
            Node::Num(s) => {
                both(&mut h, 4);
                Canon::new(doc.raw(s)).hash(&mut h[0]);
            }
            Node::Str(s) => {
                let mut sh = FxHasher::default();
                sh.write(doc.text(s).as_bytes());
                both(&mut h, 5);
                both(&mut h, sh.finish());
            }
            Node::Arr(f, n) => {
                both(&mut h, 6);
                let mark = self.mark();
                if let Some(ecx) = self.child(cx, Step::Index) {
                    match self.mode(cx) {
                        ArrayMode::Ordered => {
                            for i in f..f + n {
                                let e = self.hashes(side, i, ecx);
                                h[0].write_u64(e[0]);
                                h[1].write_u64(e[1]);
                            }
                        }
                        ArrayMode::Set => {
                            let es: Vec<[u64; 2]> =
                                (f..f + n).map(|i| self.hashes(side, i, ecx)).collect();
                            for k in 0..2 {
                                let mut v: Vec<u64> = es.iter().map(|e| e[k]).collect();
                                v.sort_unstable();
                                v.dedup();
                                for e in v {
                                    h[k].write_u64(e);
                                }
                            }
                        }
                        ArrayMode::Multiset | ArrayMode::Key(_) => {
                            let mut sum = [0u64; 2];
                            for i in f..f + n {
                                let e = self.hashes(side, i, ecx);
                                sum[0] = sum[0].wrapping_add(mix(e[0]));
                                sum[1] = sum[1].wrapping_add(mix(e[1]));
                            }
                            h[0].write_u64(sum[0]);
                            h[1].write_u64(sum[1]);
                        }
                    }
                }
                self.reset(mark);
            }
            Node::Obj(f, n) => {
                both(&mut h, 7);
                let mut sum = [0u64; 2];
                for i in f..f + n {
                    let mark = self.mark();
                    let ccx = if cx.st.is_dead() {
                        Some(cx)
                    } else {
                        self.child(cx, Step::Key(&doc.key(i)))
                    };
                    if let Some(ccx) = ccx {
                        let mut kh = FxHasher::default();
                        doc.hash_key(i, &mut kh);
                        let k = kh.finish();
                        let v = self.hashes(side, i, ccx);
                        sum[0] = sum[0].wrapping_add(mix(k ^ v[0].rotate_left(17)));
                        sum[1] = sum[1].wrapping_add(mix(k ^ v[1].rotate_left(17)));
                    }
                    self.reset(mark);
                }
                h[0].write_u64(sum[0]);
                h[1].write_u64(sum[1]);
            }
        }
        [h[0].finish(), h[1].finish()]
    }

    /// Numeric signature for tolerant matching: the sum of the numbers a value
    /// holds, and how far that sum can move while the value stays equal.
    pub(crate) fn signature(&mut self, side: Side, id: u32, cx: Cx<'d>) -> (f64, f64) {
        let mut sum = 0.0;
        let mut reach = 0.0;
        let mut mag = 0.0;
        self.sig_walk(side, id, cx, &mut sum, &mut reach, &mut mag);
        if !sum.is_finite() || !reach.is_finite() {
            return (0.0, f64::INFINITY);
        }
        // Slack for the rounding of the float sums themselves.
        (sum, reach * (1.0 + 1e-9) + mag * 1e-12 + f64::MIN_POSITIVE)
    }

    fn sig_walk(
        &mut self,
        side: Side,
        id: u32,
        cx: Cx<'d>,
        sum: &mut f64,
        reach: &mut f64,
        mag: &mut f64,
    ) {
        let doc = self.doc(side);
        match doc.node(id) {
            Node::Num(s) => {
                let x: f64 = doc.raw(s).parse().unwrap_or(f64::INFINITY);
                *sum += x;
                *mag += x.abs();
                *reach += cx.tol.reach(x);
            }
            Node::Arr(f, n) => {
                let mark = self.mark();
                // A set may drop repeated elements, so its numbers cannot be summed.
                if let Some(ecx) = self.child(cx, Step::Index)
                    && *self.mode(cx) != ArrayMode::Set
                {
                    for i in f..f + n {
                        self.sig_walk(side, i, ecx, sum, reach, mag);
                    }
                }
                self.reset(mark);
            }
            Node::Obj(f, n) => {
                for i in f..f + n {
                    let mark = self.mark();
                    if let Some(ccx) = self.child(cx, Step::Key(&doc.key(i))) {
                        self.sig_walk(side, i, ccx, sum, reach, mag);
                    }
                    self.reset(mark);
                }
            }
            _ => {}
        }
    }

    // ---- differences -------------------------------------------------------

    /// Records the differences between node `x` of A and node `y` of B.
    pub(crate) fn diff(&mut self, x: u32, y: u32, cx: Cx<'d>) {
        if self.stop {
            return;
        }
        match (self.a.node(x), self.b.node(y)) {
            (Node::Obj(fa, na), Node::Obj(fb, nb)) => self.obj_diff(fa, na, fb, nb, cx),
            (Node::Arr(fa, na), Node::Arr(fb, nb)) => self.arr_diff(fa, na, fb, nb, cx),
            (Node::Num(p), Node::Num(q)) => {
                let (ra, rb) = (self.a.raw(p), self.b.raw(q));
                if !number::num_eq(ra, rb, cx.tol) {
                    self.changed(x, y, number::delta(ra, rb));
                }
            }
            _ => {
                if !self.eq(x, y, cx) {
                    self.changed(x, y, None);
                }
            }
        }
    }

    fn obj_diff(&mut self, fa: u32, na: u32, fb: u32, nb: u32, cx: Cx<'d>) {
        let (a, b) = (self.a, self.b);
        let b_index = Self::key_index(b, fb, nb);
        let mut found = 0;
        for i in 0..na {
            if self.stop {
                return;
            }
            let mark = self.mark();
            let ccx = if cx.st.is_dead() {
                Some(cx)
            } else {
                self.child(cx, Step::Key(&a.key(fa + i)))
            };
            let partner = match &b_index {
                Some(ix) => ix.get(&*a.key(fa + i)).copied(),
                None => Self::find_member(a, fa + i, b, fb, nb, i),
            };
            if let Some(ccx) = ccx {
                self.path.push(Seg::Key(Side::A, fa + i));
                match partner {
                    Some(y) => {
                        found += 1;
                        self.diff(fa + i, y, ccx);
                    }
                    None => self.removed(fa + i, true),
                }
                self.path.pop();
            } else if partner.is_some() {
                found += 1;
            }
            self.reset(mark);
        }
        if found == nb {
            return;
        }
        let a_index = Self::key_index(a, fa, na);
        for j in 0..nb {
            if self.stop {
                return;
            }
            let name = b.key(fb + j);
            if Self::find(a, fa, na, j, &name, a_index.as_ref()).is_some() {
                continue;
            }
            let mark = self.mark();
            if self.child(cx, Step::Key(&name)).is_some() {
                self.path.push(Seg::Key(Side::B, fb + j));
                self.added(fb + j, true);
                self.path.pop();
            }
            self.reset(mark);
        }
    }

    // ---- recording ---------------------------------------------------------

    /// Enters an array element; `in_b` is its index in the second document (any
    /// index for an element only the first document has).
    pub(crate) fn push_elem(&mut self, disp: Disp, ptr: Ptr, in_b: u32) {
        self.path.push(Seg::Elem(disp, ptr, in_b));
    }

    pub(crate) fn pop_elem(&mut self) {
        self.path.pop();
    }

    fn note(&mut self, kind: Kind, old: Option<String>, new: Option<String>, delta: Option<f64>) {
        let path = self.display_path();
        let pointer = self.doc_pointer(kind == Kind::Added);
        self.out.differences.push(Difference {
            path,
            pointer,
            kind,
            old,
            new,
            delta,
        });
        if self.opts.stop_at_first {
            self.stop = true;
        }
    }

    pub(crate) fn op(&mut self, op: Op, value: Option<u32>) {
        if !self.opts.patch {
            return;
        }
        let path = self.pointer();
        let value = value.map(|y| self.b.json(y));
        self.out.patch.push(PatchOp { op, path, value });
    }

    /// A changed value at the current path.
    pub(crate) fn changed(&mut self, x: u32, y: u32, delta: Option<f64>) {
        self.note(
            Kind::Changed,
            Some(self.a.json(x)),
            Some(self.b.json(y)),
            delta,
        );
        self.op(Op::Replace, Some(y));
    }

    /// A value of A absent from B, at the current path; `with_op` also patches.
    pub(crate) fn removed(&mut self, x: u32, with_op: bool) {
        self.note(Kind::Removed, Some(self.a.json(x)), None, None);
        if with_op {
            self.op(Op::Remove, None);
        }
    }

    /// A value of B absent from A, at the current path; `with_op` also patches.
    pub(crate) fn added(&mut self, y: u32, with_op: bool) {
        self.note(Kind::Added, None, Some(self.b.json(y)), None);
        if with_op {
            self.op(Op::Add, Some(y));
        }
    }

    fn display_path(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            match *seg {
                Seg::Key(side, id) => {
                    let name = self.doc(side).key(id);
                    let plain = !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '$');
                    if plain {
                        out.push('.');
                        out.push_str(&name);
                    } else {
                        out.push('[');
                        json_string(&mut out, &name);
                        out.push(']');
                    }
                }
                Seg::Elem(Disp::Index(i), ..) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
                Seg::Elem(Disp::Keyed(side, key, _), ..) => {
                    out.push('[');
                    // The field name is not stored in the segment; the key node's
                    // own member name is the field.
                    let doc = self.doc(side);
                    out.push_str(&doc.key(key));
                    out.push('=');
                    doc.write_json(key, &mut out);
                    out.push(']');
                }
            }
        }
        if out.is_empty() {
            out.push('.');
        }
        out
    }

    /// The current path as a JSON Pointer into the document the value is in: array
    /// positions are those of the second document for an added value (`in_b`), else
    /// of the first (unlike [`Engine::pointer`], which follows the patch as it runs).
    fn doc_pointer(&self, in_b: bool) -> String {
        let mut out = String::new();
        for seg in &self.path {
            out.push('/');
            match *seg {
                Seg::Key(side, id) => {
                    let name = self.doc(side).key(id);
                    out.push_str(&name.replace('~', "~0").replace('/', "~1"));
                }
                Seg::Elem(_, _, j) if in_b => out.push_str(&j.to_string()),
                Seg::Elem(Disp::Index(i) | Disp::Keyed(_, _, i), ..) => {
                    out.push_str(&i.to_string());
                }
            }
        }
        out
    }

    fn pointer(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            out.push('/');
            match *seg {
                Seg::Key(side, id) => {
                    let name = self.doc(side).key(id);
                    out.push_str(&name.replace('~', "~0").replace('/', "~1"));
                }
                Seg::Elem(_, Ptr::Index(i), _) => out.push_str(&i.to_string()),
                Seg::Elem(_, Ptr::End, _) => out.push('-'),
            }
        }
        out
    }
}
