//! The skip over a baseline scan's MCUs before the first changed one, as two
//! decoding chains stepped in turn: the true one from the start of the scan and
//! a speculative one from the middle of the stretch. Alone, a chain is bound by
//! the latency of table lookup → shift → next lookup; two independent chains,
//! each kept in registers, let the CPU overlap them. Huffman codes
//! resynchronise by themselves, so the speculative chain soon decodes the true
//! symbols with the true MCU boundaries; the true chain checks that when it
//! gets there (the same bit position at an MCU boundary means the same decoding
//! from there on), and from that point on the speculative chain's DC sums,
//! offset by the true predictors, are exact. When the chains never meet, the
//! true chain simply decodes everything itself.
//!
//! On a CPU with AVX-512, long stretches go first to thirty-two such chains in
//! vector lanes (`lanes`, issue #24: the reference skip 2.3 → 1.5 ms); the two
//! scalar chains then go on from the last MCU the lanes know the truth of.

use super::Corrupt;
#[cfg(target_arch = "x86_64")]
use super::destuff::Destuffed;
use super::huffman::{BitReader, DecodeTable, SkipTable, has_ff};
#[cfg(target_arch = "x86_64")]
use super::lanes;

/// What a block of the MCU is coded with: its scan component and DC and AC tables.
pub(crate) type BlockCoding<'t> = (usize, &'t DecodeTable, &'t DecodeTable);

/// Stretches shorter than this many MCUs are skipped by one chain.
const MIN_PAIRED_MCUS: usize = 64;

/// The speculative chain gives up after this many decoding errors.
const MAX_RESTARTS: u32 = 16;

/// A decoding chain's registers, plain values so that both chains stay in CPU
/// registers (the rare slow paths take and return them by value).
#[derive(Clone, Copy)]
struct Chain {
    /// Next raw byte to load.
    pos: usize,
    /// Bit buffer, MSB first, and the bits in it: in the low 7 bits of `nbits` (0..=64);
    /// the bits above are junk, left by steps that subtract a whole skip-table
    /// entry (see [`Chain::ac_step_in`]).
    buf: u64,
    nbits: u32,
    /// Zero bits fed past the end of the segment.
    fake: u64,
    /// Block within the MCU, and coefficient within the block (0: DC next).
    blk: u32,
    k: u32,
    /// MCUs completed.
    mcus: usize,
}

impl Chain {
    fn at(rd: &BitReader, mcus: usize) -> Chain {
        let (pos, buf, nbits, fake) = rd.parts();
        Chain {
            pos,
            buf,
            nbits,
            fake,
            blk: 0,
            k: 0,
            mcus,
        }
    }

    /// A chain at raw position `(byte, bit)`, at an MCU boundary.
    fn at_bit(data: &[u8], (byte, bit): (usize, u32), mcus: usize) -> Chain {
        let mut rd = BitReader::new(data, byte);
        rd.bits(bit);
        Chain::at(&rd, mcus)
    }

    fn reader<'a>(&self, data: &'a [u8]) -> BitReader<'a> {
        BitReader::from_parts(data, (self.pos, self.buf, self.nbits & 127, self.fake))
    }

    fn set_reader(&mut self, rd: &BitReader) {
        (self.pos, self.buf, self.nbits, self.fake) = rd.parts();
    }

    fn overrun(&self) -> bool {
        self.fake > u64::from(self.nbits & 127)
    }

    /// Fewer than 32 bits buffered (bits 5 and 6 of the count clear).
    #[inline(always)]
    fn low(&self) -> bool {
        self.nbits & 0x60 == 0
    }

    /// Drops `n` bits. Callers never take more than the buffer holds (a step
    /// reads at most 31 bits from at least 32), so the arithmetic is written
    /// `wrapping_*`: release builds check overflow, and the checks sat on the
    /// critical path of the chain.
    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.buf = self.buf.wrapping_shl(n);
        self.nbits = self.nbits.wrapping_sub(n);
    }

    /// Makes at least 56 bits available.
    ///
    /// The bits it leaves in the buffer past `nbits` are not cleared: they
    /// come from bytes without stuffing that follow, and the next refill,
    /// fast or slow, puts the very same bits there again.
    #[inline(always)]
    fn refill(&mut self, data: &[u8]) {
        // pos never exceeds data.len(), so pos + 8 cannot wrap.
        if let Some(chunk) = data.get(self.pos..self.pos.wrapping_add(8)) {
            let mut arr = [0u8; 8];
            arr.copy_from_slice(chunk);
            let w = u64::from_be_bytes(arr);
            if !has_ff(w) {
                // nbits < 32 here, so it ends within 56..=63.
                let nbits = self.nbits & 127;
                let k = 63u32.wrapping_sub(nbits) >> 3;
                self.buf |= w.wrapping_shr(nbits);
                self.nbits = nbits.wrapping_add(8 * k);
                self.pos = self.pos.wrapping_add(k as usize);
                return;
            }
        }
        *self = refill_slow(data, *self);
    }

    /// Decodes the DC difference of the current block into `preds` and moves
    /// to its first AC coefficient.
    #[inline(always)]
    fn dc(
        &mut self,
        data: &[u8],
        blocks: &[BlockCoding],
        preds: &mut [i32; 4],
    ) -> Result<(), Corrupt> {
        // A 16-bit code and 11 bits of value.
        if self.low() {
            self.refill(data);
        }
        let (comp, dc, _) = blocks[self.blk as usize];
        let e = BitReader::peek_fast(dc, self.buf);
        let s = if e != 0 {
            self.consume(u32::from(e >> 8));
            u32::from(e & 0xFF)
        } else {
            let (c, s) = slow_symbol(data, *self, dc)?;
            *self = c;
            u32::from(s)
        };
        if s > 11 {
            return Err(Corrupt("bad DC magnitude"));
        }
        if s > 0 {
            let v = (self.buf >> (64 - s)) as i32;
            self.consume(s);
            let v = if v < (1 << (s - 1)) {
                v - (1 << s) + 1
            } else {
                v
            };
            preds[comp] = preds[comp].wrapping_add(v);
        }
        self.k = 1;
        Ok(())
    }

    /// One AC step with table `ac`: as many whole symbols as the skip table
    /// holds for the next bits, or one symbol the slow way. `k` reaches 64 or
    /// more when the block ends.
    #[inline(always)]
    fn ac_step(&mut self, data: &[u8], ac: &DecodeTable) -> Result<(), Corrupt> {
        self.ac_step_in(data, ac, ac.skip_table())
    }

    /// [`Chain::ac_step`] with `ac`'s skip table `skip` already at hand.
    #[inline(always)]
    fn ac_step_in(
        &mut self,
        data: &[u8],
        ac: &DecodeTable,
        skip: &SkipTable,
    ) -> Result<(), Corrupt> {
        // At most 31 bits: a 16-bit code and 15 more.
        if self.low() {
            self.refill(data);
        }
        let e = BitReader::peek_skip_in(skip, self.buf);
        // k <= 63 and the table adds at most 127 + 128.
        let next = self.k.wrapping_add(e >> 9);
        if next <= 64 {
            // The whole entry as the shift and the count to subtract: a shift
            // takes its low 6 bits, which are the entry's bit count (bits 5
            // and 6 are always clear, the EOB flag is bit 7), and the
            // subtraction leaves the low 7 bits of `nbits` right (they hold
            // >= 32, the entry's bit count <= 29), its junk going above them.
            self.buf = self.buf.wrapping_shl(e);
            self.nbits = self.nbits.wrapping_sub(e);
            self.k = next.wrapping_add(e & 128);
            return Ok(());
        }
        let e = BitReader::peek_fast(ac, self.buf);
        let rs = if e != 0 {
            self.consume(u32::from(e >> 8));
            e as u8
        } else {
            let (c, rs) = slow_symbol(data, *self, ac)?;
            *self = c;
            rs
        };
        let (r, s) = (u32::from(rs >> 4), u32::from(rs & 15));
        if s == 0 {
            self.k += if r == 15 { 16 } else { 64 };
        } else {
            self.consume(s);
            self.k += r + 1;
        }
        Ok(())
    }

    /// After a block's last AC step: moves to the next block; true when that
    /// completed an MCU (the chain then stands at an MCU boundary).
    #[inline(always)]
    fn end_block(&mut self, blocks: usize) -> bool {
        self.blk += 1;
        if (self.blk as usize) < blocks {
            return false;
        }
        self.blk = 0;
        self.mcus += 1;
        true
    }

    /// Decodes alone, from an MCU boundary, until `count` MCUs are done.
    fn run_to(
        &mut self,
        data: &[u8],
        blocks: &[BlockCoding],
        preds: &mut [i32; 4],
        count: usize,
    ) -> Result<(), Corrupt> {
        while self.mcus < count {
            for &(_, _, ac) in blocks {
                self.dc(data, blocks, preds)?;
                while self.k < 64 {
                    self.ac_step(data, ac)?;
                }
                self.end_block(blocks.len());
            }
        }
        Ok(())
    }
}

#[cold]
#[inline(never)]
fn refill_slow(data: &[u8], mut c: Chain) -> Chain {
    let mut rd = c.reader(data);
    rd.refill();
    c.set_reader(&rd);
    c
}

/// A symbol whose code is longer than the fast lookup.
#[cold]
#[inline(never)]
fn slow_symbol(data: &[u8], mut c: Chain, t: &DecodeTable) -> Result<(Chain, u8), Corrupt> {
    let mut rd = c.reader(data);
    let s = rd.symbol(t)?;
    c.set_reader(&rd);
    Ok((c, s))
}

/// Where the speculative chain stood after one of its MCUs.
#[derive(Clone, Copy)]
struct Checkpoint {
    at: (usize, u32),
    preds: [i32; 4],
    mcus: usize,
}

/// Stretches of fewer MCUs than this go to the scalar chains alone: the
/// vector lanes' set-up (a de-stuffed copy, their tables) and the margins
/// where they overlap pay off only on long ones.
///
/// Fuzz builds hand every stretch to the lanes, so that the fuzzer's small
/// files reach them.
#[cfg(target_arch = "x86_64")]
const MIN_LANE_MCUS: usize = if cfg!(fuzzing) { 1 } else { 512 };

/// Nor do stretches estimated shorter than this many bytes: the lanes' fixed
/// costs (their tables, the copy, 32 overlaps of [`lanes::MARGIN`]) outweigh
/// what they save on short ones. Session 17 (two entries a step, 1 KiB
/// overlaps; `cpu_time … X,Y 300 parts`, a whole watermark, medians of 3):
/// the reference image with the overlay's top at y = 64 (587 MCUs, ~50 KB)
/// 1.46 ms either way, at y = 128 (1 083 MCUs) 1.44 against 1.53 for the
/// scalar chains, at y = 512 1.65 against 2.15; the reference image scaled
/// to 560×362, south-east (540 MCUs, ~45 KB), 0.62 against 0.66. (Before,
/// with one entry a step and 2 KiB overlaps, the lanes lost below ~330 KB.)
/// Tests and fuzz builds take the lanes for any length ([`min_lane_bytes`]).
#[cfg(target_arch = "x86_64")]
const MIN_LANE_BYTES: usize = 48 << 10;

/// Skips the first `count` MCUs of the scan whose data starts at `start`
/// (`total` MCUs, no restart markers); returns the reader at MCU `count` and
/// the DC predictors there.
///
/// Long stretches go to the vector lanes (`lanes`) where the CPU has them;
/// the scalar chains go on from the last MCU the lanes know the truth of (all
/// of the way on a CPU without them, or when the lanes could not stitch).
pub(crate) fn skip_mcus<'a>(
    data: &'a [u8],
    start: usize,
    count: usize,
    total: usize,
    blocks: &[BlockCoding],
) -> Result<(BitReader<'a>, [i32; 4]), Corrupt> {
    #[cfg(target_arch = "x86_64")]
    if let Some(from) = skip_in_lanes(data, start, count, total, blocks) {
        return skip_scalar(data, start, Some(from), count, total, blocks);
    }
    skip_scalar(data, start, None, count, total, blocks)
}

/// The vector lanes' part of [`skip_mcus`]: the last MCU, at or before MCU
/// `count`, whose position and DC predictors they know; `None` when they do not
/// run (a short stretch, a CPU without them) or know nothing of use.
#[cfg(target_arch = "x86_64")]
fn skip_in_lanes(
    data: &[u8],
    start: usize,
    count: usize,
    total: usize,
    blocks: &[BlockCoding],
) -> Option<Known> {
    // The stretch's estimated length, by its share of the MCUs (the bytes per
    // MCU vary).
    let scan = data.len().saturating_sub(start);
    let est = (scan as u128 * count as u128 / total.max(1) as u128).min(scan as u128) as usize;
    if count < MIN_LANE_MCUS || est < min_lane_bytes() || blocks.is_empty() || lanes_off() {
        return None;
    }
    // The copy goes an eighth past the estimate; the scalar chains beyond.
    let d = Destuffed::new(data, start, est + est / 8 + 4 * lanes::MARGIN);
    let (bit, mcus, preds) = lanes::skip(&d, est, count, blocks)?;
    if bit > d.len as u64 * 8 {
        return None;
    }
    #[cfg(test)]
    if mcus * 2 >= count {
        LANE_SKIPS.with(|n| n.set(n.get() + 1));
    }
    Some(Known {
        at: d.raw_position(bit),
        mcus,
        preds,
    })
}

/// [`MIN_LANE_BYTES`], or 0 in tests and fuzz builds, which take the lanes for
/// any length, for their correctness.
#[cfg(target_arch = "x86_64")]
fn min_lane_bytes() -> usize {
    if cfg!(any(test, fuzzing)) {
        0
    } else {
        MIN_LANE_BYTES
    }
}

/// Whether a test or the fuzz target turned the lanes off, to compare with the
/// scalar chains alone.
#[cfg(target_arch = "x86_64")]
fn lanes_off() -> bool {
    #[cfg(any(test, fuzzing))]
    return NO_LANES.with(|n| n.get());
    #[cfg(not(any(test, fuzzing)))]
    false
}

/// Skips from raw byte and bit `at`, the boundary of MCU `mcus` with DC
/// predictors `preds`, to MCU `count` (of `total` in the scan whose data starts
/// at `start`, no restart markers) with the scalar chains: the reader there and
/// the DC predictors. For the unchanged MCUs between changed ones, which the
/// block-by-block reader skipped more slowly (issue #24: a watermark of the
/// reference image took 2.12 ms with it, 2.00 with this).
pub(crate) fn skip_from<'a>(
    data: &'a [u8],
    start: usize,
    at: (usize, u32),
    (mcus, preds): (usize, [i32; 4]),
    count: usize,
    total: usize,
    blocks: &[BlockCoding],
) -> Result<(BitReader<'a>, [i32; 4]), Corrupt> {
    let from = Known { at, mcus, preds };
    skip_scalar(data, start, Some(from), count, total, blocks)
}

/// A true state of the skip: raw byte and bit, at an MCU boundary, the MCUs
/// before it and the DC predictors there.
struct Known {
    at: (usize, u32),
    mcus: usize,
    preds: [i32; 4],
}

/// [`skip_mcus`] with the two scalar chains, from the scan's start or from a
/// state `from` the lanes found.
fn skip_scalar<'a>(
    data: &'a [u8],
    start: usize,
    from: Option<Known>,
    count: usize,
    total: usize,
    blocks: &[BlockCoding],
) -> Result<(BitReader<'a>, [i32; 4]), Corrupt> {
    let (mut a, mut pa) = match from {
        Some(k) => (Chain::at_bit(data, k.at, k.mcus), k.preds),
        None => (Chain::at(&BitReader::new(data, start), 0), [0i32; 4]),
    };
    if count.saturating_sub(a.mcus) < MIN_PAIRED_MCUS || total == 0 || blocks.is_empty() {
        a.run_to(data, blocks, &mut pa, count)?;
        return Ok((a.reader(data), pa));
    }
    // The speculative chain starts half-way through what is left of the
    // stretch, by the share of MCUs (the bytes per MCU vary, so this is an
    // estimate).
    let left = (data.len() - start) as u64 * (count - a.mcus) as u64 / total as u64;
    let mut split = (a.pos + (left / 2) as usize).min(data.len());
    if data[split - 1] == 0xFF {
        split += 1; // not on a stuffed zero
    }
    let mut b = Chain::at(&BitReader::new(data, split), 0);
    let mut pb = [0i32; 4];
    let mut restarts = 0;
    let mut checkpoints: Vec<Checkpoint> = Vec::with_capacity(count / 2 + 64);
    // First checkpoint the true chain has not yet passed.
    let mut next = 0;
    let n = blocks.len();
    a.dc(data, blocks, &mut pa)?;
    let mut b_ok = b.dc(data, blocks, &mut pb).is_ok();
    loop {
        if b_ok {
            // Both chains inside a block: step them in turn until one ends it.
            let (ta, tb) = (blocks[a.blk as usize].2, blocks[b.blk as usize].2);
            let (sa, sb) = (ta.skip_table(), tb.skip_table());
            while a.k < 64 && b.k < 64 {
                a.ac_step_in(data, ta, sa)?;
                if b.ac_step_in(data, tb, sb).is_err() {
                    b_ok = false;
                    break;
                }
            }
        }
        if !b_ok {
            // An invalid code: the speculative chain is not in step yet; start it
            // again a little further on.
            restarts += 1;
            checkpoints.clear();
            next = 0;
            if restarts > MAX_RESTARTS {
                return finish_alone(data, blocks, a, pa, &[], 0, count);
            }
            b = Chain::at(&BitReader::new(data, b.pos), 0);
            pb = [0; 4];
            b_ok = b.dc(data, blocks, &mut pb).is_ok();
            continue;
        }
        if a.k >= 64 {
            if a.end_block(n) {
                if a.mcus >= count {
                    return Ok((a.reader(data), pa));
                }
                if let Some(met) = meeting(data, &a, &checkpoints, &mut next)? {
                    return finish(data, blocks, &a, pa, &checkpoints, met, count);
                }
            }
            a.dc(data, blocks, &mut pa)?;
        }
        if b.k >= 64 {
            if b.end_block(n) {
                if b.overrun() || b.mcus > count {
                    // Past the end of the data, or further than the stretch: the
                    // true chain goes on alone (and may still meet a checkpoint).
                    return finish_alone(data, blocks, a, pa, &checkpoints, next, count);
                }
                checkpoints.push(Checkpoint {
                    at: b.reader(data).raw_bit_position()?,
                    preds: pb,
                    mcus: b.mcus,
                });
            }
            b_ok = b.dc(data, blocks, &mut pb).is_ok();
        }
    }
}

/// Whether the true chain `a`, at an MCU boundary, stands on a checkpoint;
/// `next` is the first checkpoint it has not passed.
fn meeting(
    data: &[u8],
    a: &Chain,
    checkpoints: &[Checkpoint],
    next: &mut usize,
) -> Result<Option<usize>, Corrupt> {
    // The reader holds up to 8 bytes beyond its bit position.
    match checkpoints.get(*next) {
        Some(cp) if a.pos + 8 >= cp.at.0 => {}
        _ => return Ok(None),
    }
    let here = a.reader(data).raw_bit_position()?;
    while checkpoints.get(*next).is_some_and(|cp| cp.at < here) {
        *next += 1;
    }
    Ok(checkpoints
        .get(*next)
        .is_some_and(|cp| cp.at == here)
        .then_some(*next))
}

/// The speculative chain stopped: the true chain goes on alone, meeting one of
/// the checkpoints kept if it can.
fn finish_alone<'a>(
    data: &'a [u8],
    blocks: &[BlockCoding],
    mut a: Chain,
    mut pa: [i32; 4],
    checkpoints: &[Checkpoint],
    mut next: usize,
    count: usize,
) -> Result<(BitReader<'a>, [i32; 4]), Corrupt> {
    // `a` may be inside a block: finish it first.
    if a.k > 0 {
        while a.k < 64 {
            a.ac_step(data, blocks[a.blk as usize].2)?;
        }
        if !a.end_block(blocks.len()) {
            loop {
                a.dc(data, blocks, &mut pa)?;
                while a.k < 64 {
                    a.ac_step(data, blocks[a.blk as usize].2)?;
                }
                if a.end_block(blocks.len()) {
                    break;
                }
            }
        }
        if a.mcus >= count {
            return Ok((a.reader(data), pa));
        }
        if let Some(met) = meeting(data, &a, checkpoints, &mut next)? {
            return finish(data, blocks, &a, pa, checkpoints, met, count);
        }
    }
    while a.mcus < count {
        a.run_to(data, blocks, &mut pa, a.mcus + 1)?;
        if a.mcus < count
            && let Some(met) = meeting(data, &a, checkpoints, &mut next)?
        {
            return finish(data, blocks, &a, pa, checkpoints, met, count);
        }
    }
    Ok((a.reader(data), pa))
}

/// The true chain `a` (predictors `pa`) stands exactly on checkpoint `met`:
/// continue from the checkpoint at MCU `count` if the speculative chain went
/// that far, else from its last checkpoint, with its DC sums offset to the truth.
fn finish<'a>(
    data: &'a [u8],
    blocks: &[BlockCoding],
    a: &Chain,
    pa: [i32; 4],
    checkpoints: &[Checkpoint],
    met: usize,
    count: usize,
) -> Result<(BitReader<'a>, [i32; 4]), Corrupt> {
    #[cfg(test)]
    MEETINGS.with(|m| m.set(m.get() + 1));
    let base = checkpoints[met];
    let offset = |p: [i32; 4]| -> [i32; 4] {
        std::array::from_fn(|i| pa[i].wrapping_add(p[i].wrapping_sub(base.preds[i])))
    };
    // Checkpoints are one MCU apart: checkpoint `met + j` is MCU `a.mcus + j`.
    let cp = checkpoints
        .get(met + (count - a.mcus))
        .or(checkpoints.last())
        .copied()
        .unwrap_or(base);
    let mut preds = offset(cp.preds);
    let mut lane = Chain::at_bit(data, cp.at, a.mcus + (cp.mcus - base.mcus));
    lane.run_to(data, blocks, &mut preds, count)?;
    Ok((lane.reader(data), preds))
}

#[cfg(test)]
thread_local! {
    /// How many skips were finished by the speculative chain (tests only).
    static MEETINGS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// How many skips the vector lanes carried at least half of the way (tests only).
    static LANE_SKIPS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(any(test, fuzzing))]
thread_local! {
    /// Set by tests and the fuzz target that want the scalar chains alone.
    static NO_LANES: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Where a skip landed (raw byte and bit) and the DC predictors there.
#[cfg(any(test, fuzzing))]
type Landing = Result<((usize, u32), [i32; 4]), Corrupt>;

/// `skip_mcus` with the vector lanes (where the CPU has them) and with the
/// scalar chains alone.
#[cfg(any(test, fuzzing))]
fn both_ways(
    data: &[u8],
    start: usize,
    count: usize,
    total: usize,
    blocks: &[BlockCoding],
) -> [Landing; 2] {
    [false, true].map(|scalar| {
        NO_LANES.with(|n| n.set(scalar));
        let got = skip_mcus(data, start, count, total, blocks)
            .and_then(|(rd, preds)| Ok((rd.raw_bit_position()?, preds)));
        NO_LANES.with(|n| n.set(false));
        got
    })
}

/// The decode tables of each component of `hdr`'s scan, checked as decoders
/// check them; `None` when one is missing or invalid.
#[cfg(any(test, fuzzing))]
fn scan_tables(hdr: &super::parse::Header) -> Option<Vec<(DecodeTable, DecodeTable)>> {
    let mut tables = Vec::new();
    for sc in &hdr.scan.comps {
        let dc = hdr.tables.dc[sc.td].as_ref()?;
        super::huffman::check_dc_table(dc).ok()?;
        let ac = hdr.tables.ac[sc.ta].as_ref()?;
        tables.push((
            DecodeTable::new(dc, false).ok()?,
            DecodeTable::new(ac, true).ok()?,
        ));
    }
    Some(tables)
}

/// The blocks of an MCU of `hdr`'s scan, coded with `tables` ([`scan_tables`]).
#[cfg(any(test, fuzzing))]
fn mcu_blocks<'t>(
    hdr: &super::parse::Header,
    tables: &'t [(DecodeTable, DecodeTable)],
) -> Vec<BlockCoding<'t>> {
    let mut blocks = Vec::new();
    for (k, sc) in hdr.scan.comps.iter().enumerate() {
        let (h, v) = hdr.frame.sampling(sc.comp);
        for _ in 0..h * v {
            blocks.push((k, &tables[k].0, &tables[k].1));
        }
    }
    blocks
}

/// For the fuzz target `skip_lanes`: [`both_ways`] on a single-scan baseline
/// JPEG without restart markers, to MCU `share / 65 536` of its total. `None`
/// for any other file.
#[cfg(fuzzing)]
pub(crate) fn both_ways_for_fuzzing(jpeg: &[u8], share: u16) -> Option<[Landing; 2]> {
    let hdr = super::parse::parse_header(jpeg).ok()?;
    let (f, s) = (&hdr.frame, &hdr.scan);
    let baseline = f.process == super::parse::Process::Sequential
        && s.comps.len() == f.comps.len()
        && s.comps.iter().enumerate().all(|(i, c)| c.comp == i)
        && (s.ss, s.se, s.ah, s.al) == (0, 63, 0, 0)
        && hdr.tables.restart_interval == 0;
    if !baseline {
        return None;
    }
    let tables = scan_tables(&hdr)?;
    let blocks = mcu_blocks(&hdr, &tables);
    if blocks.len() > 10 {
        return None;
    }
    let (mx, my) = f.mcus();
    let total = mx * my;
    let count = (total as u64 * u64::from(share) / 65_536) as usize;
    Some(both_ways(jpeg, hdr.data_start, count, total, &blocks))
}

#[cfg(test)]
mod tests;
