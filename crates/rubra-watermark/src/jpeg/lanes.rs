//! The skip over a baseline scan's MCUs (see `skip`) with many decoding chains
//! in the 32-bit lanes of AVX-512 vectors, over a de-stuffed copy of the data.
//!
//! One scalar chain is bound by its instruction count and branch
//! mispredictions, not by the table's latency: two chains ran only 1.2× one,
//! a third gained nothing (issue #24). In vector lanes a step is a few
//! instructions for sixteen chains at once, and its branches become masks.
//! The step's cost is its instruction count (two vectors of 16 lanes side by
//! side beat one and three; prefetching the chains' next bytes gained
//! nothing), so a step takes two skip entries where it can.
//! Chain 0 starts at the scan's start, chain `c` at `c/CHAINS` of the stretch
//! to skip, as if at an MCU boundary. Huffman codes resynchronise by
//! themselves, so a speculative chain soon walks the true MCU boundaries.
//! Chains log their state at the MCU boundaries where two of them may meet
//! (bit position, MCUs done, DC sums). Two chains that stand at the same bit
//! position at an MCU boundary decode identically from there on, so the logs
//! are stitched: where the truth (chain 0's log) meets a checkpoint of the
//! next chain, that chain's later checkpoints become true too, shifted by the
//! MCU count and the DC sums at the meeting. Where the chains never meet, or a
//! step is unusual, scalar code takes over, so the result is always the plain
//! decoder's.

#![allow(unsafe_code)]

use super::Corrupt;
use super::destuff::Destuffed;
use super::huffman::{DecodeTable, LOOK, SKIP_LOOK};
use super::skip::BlockCoding;
use std::arch::x86_64::*;

#[cfg(test)]
thread_local! {
    /// Lane steps on this thread: all, and those the vectors left to
    /// `State::slow_step` (tests only).
    pub(crate) static STEPS: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
}

/// Chains in a vector.
const LANES: usize = 16;
/// Vectors stepped side by side, so that one's gathers overlap the other's work.
const GROUPS: usize = 2;
/// All chains.
const CHAINS: usize = LANES * GROUPS;

/// A chain runs this many bytes past the start of the next one, for the two
/// to meet (speculative chains fall in step within a few hundred bytes; where
/// they do not, the scalar chains go on from the last true checkpoint). The
/// 32 overlaps are work done twice: 1 KiB instead of 2 took 3.7 % off a
/// watermark of the reference image, 512 bytes 6 % (BENCHMARKS, session 16).
pub(crate) const MARGIN: usize = 1024;

/// The speculative chains start again at most this many times.
const MAX_RESTARTS: u32 = 16;

/// Where a chain stood at an MCU boundary: de-stuffed bit position, MCUs done
/// since its start, and the DC sums of each component since its start.
#[derive(Clone, Copy, Debug)]
struct Checkpoint {
    bit: u64,
    mcus: u64,
    preds: [i32; 4],
}

/// Whether this CPU has what the lanes need.
fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
}

/// Which of a `DecodeTable`'s tables.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The fast table (a DC table's).
    Fast,
    /// The AC skip table.
    Skip,
    /// The AC one-symbol table.
    One,
}

/// The AC skip tables and DC fast tables of an MCU's blocks in one array,
/// with each block's offsets into it.
struct Tables {
    all: Vec<u16>,
    /// Per block of the MCU: scan component, and the offsets of its DC fast
    /// table, AC skip table and AC one-symbol table, and the one-symbol
    /// table's `long_base`.
    comp: [u32; 16],
    dc: [u32; 16],
    ac: [u32; 16],
    acf: [u32; 16],
    long_base: [u32; 16],
}

impl Tables {
    fn new(blocks: &[BlockCoding]) -> Tables {
        let mut all: Vec<u16> = Vec::new();
        // Tables already placed: which, which kind, and where.
        let mut seen: Vec<(*const DecodeTable, Kind, u32)> = Vec::new();
        let mut place = |t: &DecodeTable, kind: Kind| -> u32 {
            let key: *const DecodeTable = t;
            if let Some(&(_, _, off)) = seen.iter().find(|s| s.0 == key && s.1 == kind) {
                return off;
            }
            let off = all.len() as u32;
            all.extend_from_slice(match kind {
                Kind::Fast => t.fast_table(),
                Kind::Skip => &t.skip_table()[..],
                Kind::One => t.one_symbol_table().0,
            });
            seen.push((key, kind, off));
            off
        };
        let (mut comp, mut dc, mut ac, mut acf) = ([0u32; 16], [0u32; 16], [0u32; 16], [0u32; 16]);
        let mut long_base = [1u32 << 16; 16];
        for (b, &(k, d, a)) in blocks.iter().enumerate() {
            comp[b] = k as u32;
            dc[b] = place(d, Kind::Fast);
            ac[b] = place(a, Kind::Skip);
            acf[b] = place(a, Kind::One);
            long_base[b] = a.one_symbol_table().1;
        }
        // A gather reads 4 bytes for a 2-byte entry.
        all.push(0);
        Tables {
            all,
            comp,
            dc,
            ac,
            acf,
            long_base,
        }
    }
}

/// Skips the first `count` MCUs of the de-stuffed scan `d` (see
/// `skip::skip_mcus`), whose stretch is estimated at `est` bytes, with the
/// vector lanes: the bit position, MCUs done and DC
/// predictors at MCU `count` when the chains' logs reach it, or at the last
/// true checkpoint short of it, for the scalar chain to go on from. `None`
/// when the CPU lacks AVX-512F or AVX-512BW, the data is too long for
/// 32-bit bit positions, or the MCU has no blocks or more than 16 (the
/// gathers' bounds hold for any `count` and `total`, and these).
pub(crate) fn skip(
    d: &Destuffed,
    est: usize,
    count: usize,
    blocks: &[BlockCoding],
) -> Option<(u64, usize, [i32; 4])> {
    if !available()
        || d.bytes.len() as u64 * 8 >= u64::from(u32::MAX)
        || blocks.is_empty()
        || blocks.len() > 16
    {
        return None;
    }
    // SAFETY: the CPU has the features `skip_avx512` is compiled for.
    Some(unsafe { skip_avx512(d, est, count, blocks) })
}

/// [`skip`] on a CPU with AVX-512F and AVX-512BW.
#[target_feature(enable = "avx512f,avx512bw")]
fn skip_avx512(
    d: &Destuffed,
    est: usize,
    count: usize,
    blocks: &[BlockCoding],
) -> (u64, usize, [i32; 4]) {
    let tables = Tables::new(blocks);
    // The chains start within the copy whatever the estimate says (a count
    // past the total once put them past it and its padding).
    let est = est.min(d.len);
    let plan = Plan::new(d, est);
    let log = run(d, &tables, blocks, &plan);
    stitch(&log, count, d.len as u64 * 8)
}

/// Where each chain starts, stops and logs, in de-stuffed bits.
struct Plan {
    start: [u32; CHAINS],
    /// A chain stops at the first MCU boundary past its limit.
    limit: [u32; CHAINS],
    /// It logs the MCU boundaries before `lo` (where the chain before it may
    /// meet it) and from `hi` on (where it may meet the next one); the last
    /// chain logs all, as MCU `count` lies in its stretch.
    lo: [u32; CHAINS],
    hi: [u32; CHAINS],
}

impl Plan {
    fn new(d: &Destuffed, est: usize) -> Plan {
        let bytes: [usize; CHAINS] = std::array::from_fn(|c| c * est / CHAINS);
        let next = |c: usize| if c + 1 < CHAINS { bytes[c + 1] } else { est };
        Plan {
            start: bytes.map(|b| (b * 8) as u32),
            limit: std::array::from_fn(|c| ((next(c) + MARGIN).min(d.len) * 8) as u32),
            lo: std::array::from_fn(|c| {
                if c + 1 < CHAINS {
                    ((bytes[c] + MARGIN) * 8) as u32
                } else {
                    u32::MAX
                }
            }),
            hi: std::array::from_fn(|c| (next(c) * 8) as u32),
        }
    }
}

/// One entry of the log: the chain, and its checkpoint (`mcus == u64::MAX`: the
/// chain started again, its earlier checkpoints are void).
type Entry = (usize, Checkpoint);

/// Loads 16 values of a chain array, group `g`'s.
#[target_feature(enable = "avx512f")]
fn lanes_of(a: &[u32; CHAINS], g: usize) -> __m512i {
    // SAFETY: `a[g * LANES..]` holds LANES values.
    unsafe { _mm512_loadu_si512(a[g * LANES..].as_ptr().cast()) }
}

/// One vector of chains: bit position, coefficient index k (0: the DC is
/// next), block in the MCU, MCUs done, DC sums of components 0..3, and which
/// lanes still run.
#[derive(Clone, Copy)]
struct Group {
    bit: __m512i,
    k: __m512i,
    blk: __m512i,
    mcus: __m512i,
    p: [__m512i; 4],
    active: __mmask16,
}

/// The vectors a step needs besides the chains'.
struct Consts {
    z: __m512i,
    one: __m512i,
    seven: __m512i,
    c11: __m512i,
    c15: __m512i,
    c16: __m512i,
    c31: __m512i,
    c32: __m512i,
    c64: __m512i,
    c128: __m512i,
    c255: __m512i,
    ffff: __m512i,
    sh_ac: __m512i,
    sh_dc: __m512i,
    bswap: __m512i,
    comp_t: __m512i,
    dc_t: __m512i,
    ac_t: __m512i,
    acf_t: __m512i,
    long_t: __m512i,
    look_n: __m512i,
    nbv: __m512i,
    max_bit: __m512i,
}

/// What a step left to do outside the vectors: lanes at an MCU boundary to
/// log, lanes whose step the vectors could not take, and lanes at an MCU
/// boundary (to stop those past their limit).
#[derive(Clone, Copy)]
struct Pending {
    rec: __mmask16,
    slow: __mmask16,
    wrap: __mmask16,
}

/// The next 32 bits of each active lane, MSB first (25 or more of them data).
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn window(g: &Group, c: &Consts, data: *const u8) -> __m512i {
    // SAFETY: every active lane's bit is below `max_bit`, so its 4 bytes lie
    // within the copy; inactive lanes are masked off.
    let raw = unsafe {
        _mm512_mask_i32gather_epi32::<1>(c.z, g.active, _mm512_srli_epi32::<3>(g.bit), data.cast())
    };
    _mm512_sllv_epi32(
        _mm512_shuffle_epi8(raw, c.bswap),
        _mm512_and_si512(g.bit, c.seven),
    )
}

/// Each lane's table entry for window `w`: a DC fast-table entry where k is
/// 0, else an AC skip-table entry.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn entry(g: &Group, c: &Consts, w: __m512i, tab: *const u16) -> __m512i {
    let is_dc = _mm512_cmpeq_epi32_mask(g.k, c.z);
    let off = _mm512_mask_blend_epi32(
        is_dc,
        _mm512_permutexvar_epi32(g.blk, c.ac_t),
        _mm512_permutexvar_epi32(g.blk, c.dc_t),
    );
    let sh = _mm512_mask_blend_epi32(is_dc, c.sh_ac, c.sh_dc);
    let idx = _mm512_add_epi32(_mm512_srlv_epi32(w, sh), off);
    // SAFETY: `idx` is an entry of one of the tables in `Tables::all`, whose
    // last entry is followed by one more.
    let e = unsafe { _mm512_mask_i32gather_epi32::<2>(c.z, g.active, idx, tab.cast()) };
    _mm512_and_si512(e, c.ffff)
}

/// One step of every active lane of `g` with its window `w` and entry `e`:
/// a DC symbol or an AC entry (of the skip table, or one symbol of the
/// one-symbol table), then, where the block goes on, a second AC skip entry
/// from the same window (a third made the step slower: 2.63 ms a watermark
/// against 2.03).
/// The lanes the vectors cannot step, and the MCU boundaries to log, are
/// left to `aside`.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn step(
    g: &mut Group,
    c: &Consts,
    w: __m512i,
    e: __m512i,
    bounds: (__m512i, __m512i),
    tab: *const u16,
) -> Pending {
    let (lo, hi) = bounds;
    let act = g.active;
    let b = g.bit;
    let is_dc = _mm512_cmpeq_epi32_mask(g.k, c.z);
    // Bits of `w` that are data: 32 less the bit offset in the byte.
    let valid = _mm512_sub_epi32(c.c32, _mm512_and_si512(b, c.seven));
    // AC: a skip entry, usable while k + its count <= 64 and its bits are in `w`.
    let next = _mm512_add_epi32(g.k, _mm512_srli_epi32::<9>(e));
    let mut adv_ac = _mm512_and_si512(e, c.c31);
    let mut nk_ac = _mm512_add_epi32(next, _mm512_and_si512(e, c.c128));
    let mut fits = _mm512_cmple_epu32_mask(next, c.c64) & !is_dc;
    let over = act & !is_dc & !fits;
    if over != 0 {
        // Near the block's end the entry's symbols may run past it, and a
        // code longer than the skip table's lookup has none: one symbol from
        // the one-symbol table instead (a run past the end ends the block, as
        // in the scalar skip).
        let w16 = _mm512_srli_epi32::<16>(w);
        let base = _mm512_permutexvar_epi32(g.blk, c.long_t);
        let long = _mm512_cmpge_epu32_mask(w16, base);
        let idx = _mm512_mask_blend_epi32(
            long,
            _mm512_srli_epi32::<{ 32 - LOOK }>(w),
            _mm512_add_epi32(_mm512_sub_epi32(w16, base), c.look_n),
        );
        let idx = _mm512_add_epi32(idx, _mm512_permutexvar_epi32(g.blk, c.acf_t));
        // SAFETY: as in `entry`.
        let f = unsafe { _mm512_mask_i32gather_epi32::<2>(c.z, over, idx, tab.cast()) };
        let f = _mm512_and_si512(f, c.ffff);
        let r = _mm512_and_si512(_mm512_srli_epi32::<4>(f), c.c15);
        let size = _mm512_and_si512(f, c.c15);
        let no_size = _mm512_cmpeq_epi32_mask(size, c.z);
        let zrl = no_size & _mm512_cmpeq_epi32_mask(r, c.c15);
        let add = _mm512_mask_blend_epi32(
            no_size,
            _mm512_add_epi32(r, c.one),
            _mm512_mask_blend_epi32(zrl, c.c64, c.c16),
        );
        let one_symbol = over & _mm512_cmpneq_epi32_mask(f, c.z);
        adv_ac = _mm512_mask_mov_epi32(
            adv_ac,
            one_symbol,
            _mm512_add_epi32(_mm512_srli_epi32::<8>(f), size),
        );
        nk_ac = _mm512_mask_mov_epi32(nk_ac, one_symbol, _mm512_add_epi32(g.k, add));
        fits |= one_symbol;
    }
    let ok_ac = fits & _mm512_cmple_epu32_mask(adv_ac, valid);
    // DC: a code of up to LOOK bits, its category s <= 11 and s value bits (21
    // bits at most, always in `w`).
    let len = _mm512_srli_epi32::<8>(e);
    let s = _mm512_and_si512(e, c.c255);
    let ok_dc = is_dc & _mm512_cmpneq_epi32_mask(e, c.z) & _mm512_cmple_epu32_mask(s, c.c11);
    let v = _mm512_srlv_epi32(_mm512_sllv_epi32(w, len), _mm512_sub_epi32(c.c32, s));
    let pow = _mm512_sllv_epi32(c.one, s);
    let low = _mm512_cmplt_epu32_mask(v, _mm512_srli_epi32::<1>(pow));
    let v = _mm512_mask_sub_epi32(v, low, _mm512_add_epi32(v, c.one), pow);
    let ok = (ok_ac | ok_dc) & act;
    let adv = _mm512_mask_blend_epi32(is_dc, adv_ac, _mm512_add_epi32(len, s));
    let nk = _mm512_mask_blend_epi32(is_dc, nk_ac, c.one);
    let mut k = _mm512_mask_mov_epi32(g.k, ok, nk);
    let ended1 = ok & !is_dc & _mm512_cmpge_epu32_mask(nk, c.c64);
    // A second skip entry from the window's bits after the first, where the
    // block goes on (after a DC, its first AC entry): the step's fixed work
    // (the window, the DC sums, the block and MCU counts) is shared by two
    // entries. An entry that needs bits past the window waits for the next step.
    let more = ok & !ended1;
    let w2 = _mm512_sllv_epi32(w, adv);
    let valid2 = _mm512_sub_epi32(valid, adv);
    let idx2 = _mm512_add_epi32(
        _mm512_srli_epi32::<{ 32 - SKIP_LOOK }>(w2),
        _mm512_permutexvar_epi32(g.blk, c.ac_t),
    );
    // SAFETY: as in `entry`.
    let e2 = unsafe { _mm512_mask_i32gather_epi32::<2>(c.z, more, idx2, tab.cast()) };
    let e2 = _mm512_and_si512(e2, c.ffff);
    let next2 = _mm512_add_epi32(k, _mm512_srli_epi32::<9>(e2));
    let adv2 = _mm512_and_si512(e2, c.c31);
    let ok2 = more & _mm512_cmple_epu32_mask(next2, c.c64) & _mm512_cmple_epu32_mask(adv2, valid2);
    k = _mm512_mask_mov_epi32(
        k,
        ok2,
        _mm512_add_epi32(next2, _mm512_and_si512(e2, c.c128)),
    );
    let b = _mm512_mask_add_epi32(b, ok, b, adv);
    g.bit = _mm512_mask_add_epi32(b, ok2, b, adv2);
    let dc_ok = ok_dc & act;
    let comp = _mm512_permutexvar_epi32(g.blk, c.comp_t);
    for (i, pc) in g.p.iter_mut().enumerate() {
        let m = dc_ok & _mm512_cmpeq_epi32_mask(comp, _mm512_set1_epi32(i as i32));
        *pc = _mm512_mask_add_epi32(*pc, m, *pc, v);
    }
    // A block ended: the next one, and at the MCU's end an MCU more.
    let ended = ended1 | (ok2 & _mm512_cmpge_epu32_mask(k, c.c64));
    k = _mm512_mask_mov_epi32(k, ended, c.z);
    g.k = k;
    let nblk = _mm512_add_epi32(g.blk, c.one);
    let wrap = ended & _mm512_cmpeq_epi32_mask(nblk, c.nbv);
    g.blk = _mm512_mask_mov_epi32(_mm512_mask_mov_epi32(g.blk, ended, nblk), wrap, c.z);
    g.mcus = _mm512_mask_add_epi32(g.mcus, wrap, g.mcus, c.one);
    // Checkpoints only where chains may meet.
    let rec = wrap & (_mm512_cmplt_epu32_mask(g.bit, lo) | _mm512_cmpge_epu32_mask(g.bit, hi));
    Pending {
        rec,
        slow: act & !ok,
        wrap,
    }
}

/// The rare scalar work of a step of group `gi`: log checkpoints, take the
/// steps the vectors could not.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline(never)]
#[cold]
fn aside(
    g: &mut Group,
    gi: usize,
    pend: Pending,
    d: &Destuffed,
    blocks: &[BlockCoding],
    log: &mut Vec<Entry>,
    restarts: &mut [u32; CHAINS],
) {
    let mut st = State::store(g.bit, g.k, g.blk, g.mcus, &g.p);
    let mut lanes = pend.rec | pend.slow;
    while lanes != 0 {
        let l = lanes.trailing_zeros() as usize;
        lanes &= lanes - 1;
        let c = gi * LANES + l;
        if pend.rec & (1 << l) != 0 {
            log.push((c, st.checkpoint(l)));
        }
        if pend.slow & (1 << l) != 0 {
            match st.slow_step(l, d, blocks) {
                Ok(true) => log.push((c, st.checkpoint(l))),
                Ok(false) => {}
                // Chain 0 holds the truth: it stops there, and the scalar
                // chain meets the damage and says so.
                Err(_) if c == 0 => g.active &= !1,
                Err(_) => {
                    // Not in step yet (or damage): start again at the next
                    // byte, as at an MCU boundary.
                    restarts[c] += 1;
                    log.push((c, st.restart(l)));
                    if restarts[c] > MAX_RESTARTS {
                        g.active &= !(1 << l);
                    }
                }
            }
        }
    }
    (g.bit, g.k, g.blk, g.mcus) = st.load(&mut g.p);
}

/// Steps all chains until each has passed its limit; returns their log.
#[target_feature(enable = "avx512f,avx512bw")]
fn run(d: &Destuffed, t: &Tables, blocks: &[BlockCoding], plan: &Plan) -> Vec<Entry> {
    let mut log: Vec<Entry> = Vec::with_capacity(4096);
    let z = _mm512_setzero_si512();
    let lim: [__m512i; GROUPS] = std::array::from_fn(|g| lanes_of(&plan.limit, g));
    let lo: [__m512i; GROUPS] = std::array::from_fn(|g| lanes_of(&plan.lo, g));
    let hi: [__m512i; GROUPS] = std::array::from_fn(|g| lanes_of(&plan.hi, g));
    let mut groups: [Group; GROUPS] = std::array::from_fn(|g| Group {
        bit: lanes_of(&plan.start, g),
        k: z,
        blk: z,
        mcus: z,
        p: [z; 4],
        active: 0xFFFF,
    });
    // SAFETY: each array holds 16 values.
    let load16 = |a: &[u32; 16]| unsafe { _mm512_loadu_si512(a.as_ptr().cast()) };
    let c = Consts {
        z,
        one: _mm512_set1_epi32(1),
        seven: _mm512_set1_epi32(7),
        c11: _mm512_set1_epi32(11),
        c15: _mm512_set1_epi32(15),
        c16: _mm512_set1_epi32(16),
        c31: _mm512_set1_epi32(31),
        c32: _mm512_set1_epi32(32),
        c64: _mm512_set1_epi32(64),
        c128: _mm512_set1_epi32(128),
        c255: _mm512_set1_epi32(255),
        ffff: _mm512_set1_epi32(0xFFFF),
        sh_ac: _mm512_set1_epi32((32 - SKIP_LOOK) as i32),
        sh_dc: _mm512_set1_epi32((32 - LOOK) as i32),
        // Bytes of each 32-bit lane reversed: a big-endian load.
        bswap: _mm512_set_epi8(
            12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11, 4,
            5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14,
            15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3,
        ),
        comp_t: load16(&t.comp),
        dc_t: load16(&t.dc),
        ac_t: load16(&t.ac),
        acf_t: load16(&t.acf),
        long_t: load16(&t.long_base),
        look_n: _mm512_set1_epi32(1 << LOOK),
        nbv: _mm512_set1_epi32(blocks.len() as i32),
        // No lane may load past the copy: a step reads 8 bytes (the scalar
        // step) at most 31 bits on.
        max_bit: _mm512_set1_epi32(((d.bytes.len() - 16) * 8) as i32),
    };
    let data = d.bytes.as_ptr();
    let tab = t.all.as_ptr();
    let mut restarts = [0u32; CHAINS];
    while groups.iter().fold(0, |a, g| a | g.active) != 0 {
        // The groups side by side, phase by phase, so that their gathers are
        // in flight together.
        let w: [__m512i; GROUPS] = std::array::from_fn(|g| window(&groups[g], &c, data));
        let e: [__m512i; GROUPS] = std::array::from_fn(|g| entry(&groups[g], &c, w[g], tab));
        let pend: [Pending; GROUPS] =
            std::array::from_fn(|g| step(&mut groups[g], &c, w[g], e[g], (lo[g], hi[g]), tab));
        // An index loop: zipping `pend` in moved it through a stack copy
        // that a wider load read back before the store reached it (a
        // store-forwarding stall, 8 % of this function's samples).
        for gi in 0..GROUPS {
            let (g, pend) = (&mut groups[gi], pend[gi]);
            #[cfg(test)]
            STEPS.with(|n| {
                let (all, slow) = n.get();
                n.set((
                    all + g.active.count_ones() as usize,
                    slow + pend.slow.count_ones() as usize,
                ));
            });
            if pend.rec | pend.slow != 0 {
                let mut tmp = *g;
                aside(&mut tmp, gi, pend, d, blocks, &mut log, &mut restarts);
                *g = tmp;
            }
            // Chains stop at an MCU boundary past their limit, and anywhere
            // before they could read past the copy.
            let past = (pend.wrap & _mm512_cmpge_epu32_mask(g.bit, lim[gi]))
                | _mm512_cmpge_epu32_mask(g.bit, c.max_bit);
            g.active &= !past;
        }
    }
    log
}

/// The lanes of one vector group, in memory for the rare scalar work.
struct State {
    bit: [u32; LANES],
    k: [u32; LANES],
    blk: [u32; LANES],
    mcus: [u32; LANES],
    p: [[i32; LANES]; 4],
}

impl State {
    #[target_feature(enable = "avx512f")]
    fn store(bit: __m512i, k: __m512i, blk: __m512i, mcus: __m512i, p: &[__m512i; 4]) -> State {
        let out = |v: __m512i| {
            let mut a = [0u32; LANES];
            // SAFETY: `a` holds 64 bytes.
            unsafe { _mm512_storeu_si512(a.as_mut_ptr().cast(), v) };
            a
        };
        let outi = |v: __m512i| {
            let mut a = [0i32; LANES];
            // SAFETY: `a` holds 64 bytes.
            unsafe { _mm512_storeu_si512(a.as_mut_ptr().cast(), v) };
            a
        };
        State {
            bit: out(bit),
            k: out(k),
            blk: out(blk),
            mcus: out(mcus),
            p: [outi(p[0]), outi(p[1]), outi(p[2]), outi(p[3])],
        }
    }

    #[target_feature(enable = "avx512f")]
    fn load(&self, p: &mut [__m512i; 4]) -> (__m512i, __m512i, __m512i, __m512i) {
        // SAFETY: each array holds 64 bytes.
        let v = |a: &[u32; LANES]| unsafe { _mm512_loadu_si512(a.as_ptr().cast()) };
        for (c, pc) in p.iter_mut().enumerate() {
            // SAFETY: as above.
            *pc = unsafe { _mm512_loadu_si512(self.p[c].as_ptr().cast()) };
        }
        (v(&self.bit), v(&self.k), v(&self.blk), v(&self.mcus))
    }

    fn checkpoint(&self, l: usize) -> Checkpoint {
        Checkpoint {
            bit: u64::from(self.bit[l]),
            mcus: u64::from(self.mcus[l]),
            preds: [self.p[0][l], self.p[1][l], self.p[2][l], self.p[3][l]],
        }
    }

    /// Starts lane `l` again at the next byte boundary, MCU count and sums reset.
    fn restart(&mut self, l: usize) -> Checkpoint {
        self.bit[l] = (self.bit[l] + 8) & !7;
        self.k[l] = 0;
        self.blk[l] = 0;
        self.mcus[l] = 0;
        for c in 0..4 {
            self.p[c][l] = 0;
        }
        Checkpoint {
            bit: u64::from(self.bit[l]),
            mcus: u64::MAX,
            preds: [0; 4],
        }
    }

    /// One symbol of lane `l` the long way (a code longer than the fast
    /// lookup, an AC step the skip table cannot take, or bits past the lane's
    /// 32-bit window); true when it ended an MCU. The same decoding as
    /// `skip::Chain`'s slow paths.
    fn slow_step(
        &mut self,
        l: usize,
        d: &Destuffed,
        blocks: &[BlockCoding],
    ) -> Result<bool, Corrupt> {
        let (comp, dc, ac) = blocks[self.blk[l] as usize];
        let w = d.window(u64::from(self.bit[l]));
        if self.k[l] == 0 {
            let (len, s) = dc.decode_top(w).ok_or(Corrupt("bad huffman code"))?;
            let s = u32::from(s);
            if s > 11 {
                return Err(Corrupt("bad DC magnitude"));
            }
            let v = if s == 0 {
                0
            } else {
                let v = ((w << len) >> (64 - s)) as i32;
                if v < (1 << (s - 1)) {
                    v - (1 << s) + 1
                } else {
                    v
                }
            };
            self.p[comp][l] = self.p[comp][l].wrapping_add(v);
            self.bit[l] += len + s;
            self.k[l] = 1;
            return Ok(false);
        }
        let (len, rs) = ac.decode_top(w).ok_or(Corrupt("bad huffman code"))?;
        let (r, s) = (u32::from(rs >> 4), u32::from(rs & 15));
        self.bit[l] += len + s;
        self.k[l] += match (r, s) {
            (15, 0) => 16,
            (_, 0) => 64,
            _ => r + 1,
        };
        if self.k[l] < 64 {
            return Ok(false);
        }
        self.k[l] = 0;
        self.blk[l] += 1;
        if self.blk[l] as usize == blocks.len() {
            self.blk[l] = 0;
            self.mcus[l] += 1;
            return Ok(true);
        }
        Ok(false)
    }
}

/// Stitches the chains' logs from chain 0 on: the truth at MCU `count`, or the
/// last true checkpoint before it, within the copy's `bits`: `(bit, mcus,
/// preds)`.
fn stitch(log: &[Entry], count: usize, bits: u64) -> (u64, usize, [i32; 4]) {
    let mut per: Vec<Vec<Checkpoint>> = vec![Vec::new(); CHAINS];
    for &(c, cp) in log {
        if cp.mcus == u64::MAX {
            per[c].clear();
        } else {
            per[c].push(cp);
        }
    }
    let first = Checkpoint {
        bit: 0,
        mcus: 0,
        preds: [0; 4],
    };
    // The truth so far, in absolute terms.
    let mut truth: Vec<Checkpoint> = vec![first];
    truth.extend(per[0].iter().copied());
    for next in per.iter().skip(1) {
        // The first bit position both logs hold.
        let (mut i, mut j) = (0, 0);
        let mut met = None;
        while i < truth.len() && j < next.len() {
            match truth[i].bit.cmp(&next[j].bit) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    met = Some((i, j));
                    break;
                }
            }
        }
        let Some((i, j)) = met else { break };
        let (a, b) = (truth[i], next[j]);
        truth.truncate(i);
        truth.extend(next[j..].iter().map(|cp| Checkpoint {
            bit: cp.bit,
            mcus: a.mcus + (cp.mcus - b.mcus),
            preds: std::array::from_fn(|c| {
                a.preds[c].wrapping_add(cp.preds[c].wrapping_sub(b.preds[c]))
            }),
        }));
    }
    // The last true checkpoint at or before MCU `count` (chains log only
    // where they may meet, and the last chain all of its own).
    // Past the copy's end a chain decodes its zero padding: nothing there is true.
    let at = truth
        .iter()
        .take_while(|cp| cp.bit <= bits)
        .filter(|cp| cp.mcus <= count as u64)
        .last()
        .copied()
        .unwrap_or(first);
    (at.bit, at.mcus as usize, at.preds)
}
