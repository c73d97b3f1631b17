//! Baseline JPEG Huffman coding: a 64-bit bit reader with table-driven lookahead
//! (including a "skip" table that consumes a whole AC symbol plus its extra bits in
//! one step), a stuffing bit writer, and optimal-table generation (Annex K.2).

use super::Corrupt;

/// Lookahead width of the decode tables, in bits.
pub(crate) const LOOK: u32 = 10;

/// Lookahead width of the multi-symbol AC skip table, in bits: 14 bits of
/// 16-bit entries, 32 KiB a table (issue #24, A/B on the reference image: 12
/// bits of 32-bit entries as before 4.4–4.5 ms, 13 bits 4.2–4.3, 14 bits of
/// 32-bit entries no better than 13 — 64 KiB a table spills out of L1 — and
/// 15 bits of 16-bit entries slower than 14).
pub(crate) const SKIP_LOOK: u32 = 14;

/// A skip-table entry that no `k` may use (its symbol count is over 64).
const SKIP_NEVER: u16 = 127 << 9;

/// A Huffman table as stored in a DHT segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct HuffSpec {
    /// Number of codes of each length 1..=16.
    pub counts: [u8; 16],
    /// Symbols in code order.
    pub symbols: Vec<u8>,
}

/// Canonical codes `(code, length, symbol)` of a spec; `Err` if the table is invalid.
fn canonical(spec: &HuffSpec) -> Result<Vec<(u32, u32, u8)>, Corrupt> {
    let mut out = Vec::with_capacity(spec.symbols.len());
    let mut code: u32 = 0;
    let mut idx = 0;
    for len in 1..=16u32 {
        for _ in 0..spec.counts[len as usize - 1] {
            let sym = *spec
                .symbols
                .get(idx)
                .ok_or(Corrupt("huffman table too short"))?;
            out.push((code, len, sym));
            code += 1;
            idx += 1;
        }
        // T.81 C: no code is all ones, so the codes of each length leave one free
        // (libjpeg and zune-jpeg refuse a table that fills the code space).
        if code >= (1 << len) {
            return Err(Corrupt("invalid huffman table"));
        }
        code <<= 1;
    }
    Ok(out)
}

/// A DC symbol is a difference category: decoders (libjpeg, zune-jpeg) refuse a
/// DC table holding one past 15, so a file with one is corrupt, and so would be
/// an output that copies it.
pub(crate) fn check_dc_table(spec: &HuffSpec) -> Result<(), Corrupt> {
    if spec.symbols.iter().any(|&s| s > 15) {
        return Err(Corrupt("DC huffman table with a symbol over 15"));
    }
    Ok(())
}

/// Checks a table as decoders do when they read its DHT segment: codes that leave
/// the all-ones code free, and for a DC table symbols up to 15.
pub(crate) fn check_table(spec: &HuffSpec, dc: bool) -> Result<(), Corrupt> {
    canonical(spec)?;
    if dc {
        check_dc_table(spec)?;
    }
    Ok(())
}

/// The multi-symbol skip table of an AC table (see `DecodeTable::skip`).
pub(crate) type SkipTable = [u16; 1 << SKIP_LOOK];

/// Decoding tables for one Huffman table.
pub(crate) struct DecodeTable {
    /// `(len << 8) | symbol` for codes of length <= LOOK, indexed by the next LOOK bits; 0 = slow path.
    fast: Box<[u16; 1 << LOOK]>,
    /// For AC tables, indexed by the next [`SKIP_LOOK`] bits: as many whole
    /// symbols (code + extra bits) as fit, packed as `bits | eob << 7 | count << 9`.
    /// `count` is the sum of run+1 (16 for ZRL, 1 for an EOB) of the symbols;
    /// the entry may be used at coefficient index `k` when `k + count <= 64`
    /// ([`SKIP_NEVER`]: never, slow path); `eob` is set when the last symbol is
    /// an EOB, and the caller then adds 128 to `k` (the entry's `e & 128`) so
    /// the block loop ends. The fields sit where a step needs no mask for the
    /// count and no shift for the EOB, and bits 5 and 6 stay clear so that the
    /// skip's chains can shift by, and subtract, the whole entry (issue #24).
    skip: Box<[u16; 1 << SKIP_LOOK]>,
    /// For AC tables, indexed by the next LOOK bits: a whole coefficient whose
    /// code and extra bits fit in them and whose value fits in an i8, packed as
    /// `value << 8 | run << 4 | bits` (an i16); 0 = the symbol-by-symbol path.
    fast_ac: Box<[i16; 1 << LOOK]>,
    /// For AC tables, one symbol by up to 16 bits, `(len << 8) | symbol` (0:
    /// no code), for the vector lanes' steps that take one symbol: entries
    /// `..1 << LOOK` are `fast`, by the next LOOK bits; from there on come the
    /// codes longer than LOOK, by the next 16 bits less `long_base`. Without
    /// it a 15- or 16-bit code (a large coefficient at quality 90) sent the
    /// lane to the scalar path, in 7 % of the steps (issue #24).
    one: Vec<u16>,
    /// The first 16-bit window that starts a code longer than LOOK bits
    /// (`1 << 16` when there is none): codes being canonical, every window
    /// from it on starts such a code or none.
    long_base: u32,
    /// Largest code of each length (index 1..=16), -1 if none.
    maxcode: [i32; 17],
    /// `symbols[valptr[l] + code]` is the symbol of a code of length l.
    valptr: [i32; 17],
    symbols: Vec<u8>,
}

/// Built decode tables keyed by their spec: most images share a handful of
/// tables (the Annex K defaults, an encoder's fixed set), and the skip table
/// takes longer to build than a small image takes to skip.
static DECODE_CACHE: std::sync::LazyLock<std::sync::Mutex<TableMap>> =
    std::sync::LazyLock::new(Default::default);

/// Spec and "is AC" to built table.
type TableMap = std::collections::HashMap<(HuffSpec, bool), std::sync::Arc<DecodeTable>>;

/// Entries kept in [`DECODE_CACHE`] before it is cleared.
const DECODE_CACHE_MAX: usize = 64;

impl DecodeTable {
    /// A shared, cached table for `spec`.
    pub(crate) fn cached(spec: &HuffSpec, ac: bool) -> Result<std::sync::Arc<Self>, Corrupt> {
        let key = (spec.clone(), ac);
        if let Ok(cache) = DECODE_CACHE.lock()
            && let Some(t) = cache.get(&key)
        {
            return Ok(t.clone());
        }
        let t = std::sync::Arc::new(DecodeTable::new(spec, ac)?);
        if let Ok(mut cache) = DECODE_CACHE.lock() {
            if cache.len() >= DECODE_CACHE_MAX {
                cache.clear();
            }
            cache.insert(key, t.clone());
        }
        Ok(t)
    }

    /// Tables for a DC spec (`ac == false`) or an AC spec (which also gets the skip table).
    pub(crate) fn new(spec: &HuffSpec, ac: bool) -> Result<Self, Corrupt> {
        let codes = canonical(spec)?;
        let mut fast = Box::new([0u16; 1 << LOOK]);
        let mut maxcode = [-1i32; 17];
        let mut valptr = [0i32; 17];
        for (i, &(code, len, sym)) in codes.iter().enumerate() {
            if maxcode[len as usize] < 0 {
                valptr[len as usize] = i as i32 - code as i32;
            }
            maxcode[len as usize] = code as i32;
            if len <= LOOK {
                let shift = LOOK - len;
                let base = (code << shift) as usize;
                let entry = ((len as u16) << 8) | sym as u16;
                fast[base..base + (1 << shift)].fill(entry);
            }
        }
        let mut t = DecodeTable {
            fast,
            skip: Box::new([SKIP_NEVER; 1 << SKIP_LOOK]),
            fast_ac: Box::new([0; 1 << LOOK]),
            one: Vec::new(),
            long_base: 1 << 16,
            maxcode,
            valptr,
            symbols: codes.iter().map(|c| c.2).collect(),
        };
        if ac {
            t.skip = t.build_skip();
            t.build_fast_ac();
            t.long_base = codes
                .iter()
                .find(|c| c.1 > LOOK)
                .map_or(1 << 16, |&(code, len, _)| code << (16 - len));
            let long = (t.long_base..1 << 16).map(|w| {
                t.long_code(u64::from(w) << 48, 16)
                    .map_or(0, |(l, sym)| ((l as u16) << 8) | u16::from(sym))
            });
            t.one = t.fast.iter().copied().chain(long).collect();
        }
        Ok(t)
    }

    /// The skip table itself, for a loop that keeps its address in a register.
    #[inline(always)]
    pub(crate) fn skip_table(&self) -> &SkipTable {
        &self.skip
    }

    /// An AC table's one-symbol table and its `long_base` (see
    /// [`DecodeTable::one`]): the entry for a 16-bit window `w` is at `w >> (16
    /// - LOOK)` when `w < long_base`, else at `(1 << LOOK) + w - long_base`.
    pub(crate) fn one_symbol_table(&self) -> (&[u16], u32) {
        (&self.one, self.long_base)
    }

    /// The fast table: `(len << 8) | symbol` by the next [`LOOK`] bits, 0 for longer codes.
    pub(crate) fn fast_table(&self) -> &[u16] {
        &self.fast[..]
    }

    /// The code at the top of `w` (MSB first, 16 or more meaningful bits):
    /// its length and symbol, or `None` for bits that start no code.
    pub(crate) fn decode_top(&self, w: u64) -> Option<(u32, u8)> {
        let e = self.fast[(w >> (64 - LOOK)) as usize];
        if e != 0 {
            return Some((u32::from(e >> 8), e as u8));
        }
        self.long_code(w, 16)
    }

    /// The code of more than [`LOOK`] and at most `max` bits at the top of `w`
    /// (MSB first), for bits whose fast entry is empty: no code of up to LOOK
    /// bits starts them, so, codes being canonical, no shorter length can
    /// match below. `None` when none of those lengths does.
    fn long_code(&self, w: u64, max: u32) -> Option<(u32, u8)> {
        for l in LOOK + 1..=max.min(16) {
            let code = (w >> (64 - l)) as i32;
            if code <= self.maxcode[l as usize] {
                return self
                    .symbols
                    .get((self.valptr[l as usize] + code) as usize)
                    .map(|&s| (l, s));
            }
        }
        None
    }

    /// Fills [`DecodeTable::fast_ac`] from the fast table.
    fn build_fast_ac(&mut self) {
        for (idx, e) in self.fast_ac.iter_mut().enumerate() {
            let f = self.fast[idx];
            if f == 0 {
                continue;
            }
            let (l, rs) = (u32::from(f >> 8), f as u8);
            let (r, s) = (i16::from(rs >> 4), u32::from(rs & 15));
            // Sizes up to 7 give values within an i8; size 0 is an EOB or a ZRL.
            if s == 0 || s > 7 || l + s > LOOK {
                continue;
            }
            let v = ((idx as u32) >> (LOOK - l - s)) & ((1 << s) - 1);
            let v = if v < (1 << (s - 1)) {
                v as i16 - (1 << s) + 1
            } else {
                v as i16
            };
            *e = (v << 8) | (r << 4) | (l + s) as i16;
        }
    }

    /// Decode a code at the top of a `avail`-bit window `w` (MSB-aligned in a u32 of
    /// `avail` bits): `(len, symbol)` if a whole code fits.
    fn code_in_window(&self, w: u32, avail: u32) -> Option<(u32, u8)> {
        // Codes up to LOOK bits through the fast table (the skip table makes
        // this call for each symbol of each of its 16 Ki entries): its entry for
        // the window, padded with zeros, is the one code that starts the window
        // if any code of up to LOOK bits does.
        let idx = if avail >= LOOK {
            w >> (avail - LOOK)
        } else {
            w << (LOOK - avail)
        };
        let e = self.fast[idx as usize];
        if e != 0 {
            let l = u32::from(e >> 8);
            return (l <= avail).then_some((l, e as u8));
        }
        // `avail` >= 1: the window, MSB-aligned in 64 bits.
        self.long_code(u64::from(w) << (64 - avail), avail)
    }

    /// The multi-symbol skip table for AC coding (see [`SKIP_LOOK`]).
    fn build_skip(&self) -> Box<[u16; 1 << SKIP_LOOK]> {
        let mut skip = Box::new([SKIP_NEVER; 1 << SKIP_LOOK]);
        for (idx, e) in skip.iter_mut().enumerate() {
            let mut pos = 0u32;
            let mut c = 0u32;
            let mut eob = false;
            loop {
                let avail = SKIP_LOOK - pos;
                if avail == 0 {
                    break;
                }
                let w = (idx as u32) & ((1 << avail) - 1);
                let Some((l, sym)) = self.code_in_window(w, avail) else {
                    break;
                };
                let (r, sz) = ((sym >> 4) as u32, (sym & 15) as u32);
                if l + sz > avail {
                    if pos == 0 {
                        // One long symbol: the caller keeps >= 32 bits buffered.
                        pos = l + sz;
                        c = r + 1;
                    }
                    break;
                }
                let add = match (r, sz) {
                    (15, 0) => 16,
                    (_, 0) => 1,
                    _ => r + 1,
                };
                // k >= 1 at run time, so sums past 63 could never be used.
                if pos > 0 && c + add > 63 {
                    break;
                }
                pos += l + sz;
                c += add;
                if sz == 0 && r != 15 {
                    eob = true;
                    break;
                }
            }
            if pos > 0 && c <= 63 {
                // Without EOB the symbols must end by k = 63 (k + c <= 64); an EOB
                // must itself sit at k <= 63 (k + c - 1 <= 63, c counting the EOB).
                // A single symbol takes at most 14 + 15 bits.
                *e = (pos | (u32::from(eob) << 7) | (c << 9)) as u16;
            }
        }
        skip
    }
}

#[inline(always)]
pub(crate) fn has_ff(w: u64) -> bool {
    let v = !w;
    (v.wrapping_sub(0x0101_0101_0101_0101) & !v & 0x8080_8080_8080_8080) != 0
}

/// Reads entropy-coded data MSB first, removing byte stuffing; stops at markers
/// (feeding zeros past them, counted so overruns can be detected).
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Next raw byte to load.
    pub(crate) pos: usize,
    buf: u64,
    nbits: u32,
    /// Zero bits fed past a marker or the end of the data.
    fake_bits: u64,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8], pos: usize) -> Self {
        BitReader {
            data,
            pos,
            buf: 0,
            nbits: 0,
            fake_bits: 0,
        }
    }

    /// Make at least 56 bits available.
    #[inline(always)]
    pub(crate) fn refill(&mut self) {
        if let Some(chunk) = self.data.get(self.pos..self.pos + 8) {
            let mut arr = [0u8; 8];
            arr.copy_from_slice(chunk);
            let w = u64::from_be_bytes(arr);
            if !has_ff(w) {
                let k = (63 - self.nbits) >> 3;
                let total = self.nbits + 8 * k;
                self.buf |= (w >> self.nbits) & !(u64::MAX >> total);
                self.nbits = total;
                self.pos += k as usize;
                return;
            }
        }
        self.refill_slow();
    }

    #[cold]
    fn refill_slow(&mut self) {
        while self.nbits <= 56 {
            let mut b = 0u8;
            match self.data.get(self.pos) {
                // Once zeros are fed, the reader stands at the marker for good: no need
                // to look at its fill bytes again (they may be many).
                Some(_) if self.fake_bits > 0 => self.fake_bits += 8,
                Some(&0xFF) => match stuffed_ff_end(self.data, self.pos) {
                    Some(next) => {
                        self.pos = next;
                        b = 0xFF;
                    }
                    None => self.fake_bits += 8,
                },
                Some(&x) => {
                    self.pos += 1;
                    b = x;
                }
                None => self.fake_bits += 8,
            }
            self.buf |= (b as u64) << (56 - self.nbits);
            self.nbits += 8;
        }
    }

    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.buf <<= n;
        self.nbits -= n;
    }

    /// True when bits past the end of the entropy-coded segment have been consumed.
    pub(crate) fn overrun(&self) -> bool {
        self.fake_bits > self.nbits as u64
    }

    /// Decode one symbol (refills as needed).
    #[inline(always)]
    pub(crate) fn symbol(&mut self, t: &DecodeTable) -> Result<u8, Corrupt> {
        if self.nbits < 16 {
            self.refill();
        }
        let e = t.fast[(self.buf >> (64 - LOOK)) as usize];
        if e != 0 {
            self.consume((e >> 8) as u32);
            return Ok(e as u8);
        }
        self.symbol_slow(t)
    }

    #[cold]
    fn symbol_slow(&mut self, t: &DecodeTable) -> Result<u8, Corrupt> {
        // The buffer's fast entry is empty.
        let (len, sym) = t
            .long_code(self.buf, 16)
            .ok_or(Corrupt("bad huffman code"))?;
        self.consume(len);
        Ok(sym)
    }

    /// Read `s` (<= 16) raw bits.
    #[inline(always)]
    pub(crate) fn bits(&mut self, s: u32) -> u32 {
        if s == 0 {
            return 0;
        }
        if self.nbits < s {
            self.refill();
        }
        let v = (self.buf >> (64 - s)) as u32;
        self.consume(s);
        v
    }

    /// Read `s` bits and sign-extend them as a JPEG magnitude category value.
    #[inline(always)]
    pub(crate) fn receive_extend(&mut self, s: u32) -> i32 {
        if s == 0 {
            return 0;
        }
        let v = self.bits(s) as i32;
        if v < (1 << (s - 1)) {
            v - (1 << s) + 1
        } else {
            v
        }
    }

    /// Skip one block's AC coefficients (k = 1..63) without storing them.
    #[inline(always)]
    #[cfg(test)]
    pub(crate) fn skip_ac(&mut self, t: &DecodeTable) -> Result<(), Corrupt> {
        let mut k = 1u32;
        while k < 64 {
            self.ac_step(t, &mut k)?;
        }
        Ok(())
    }

    /// One step of an AC skip at coefficient `k` (1..=63): as many whole symbols
    /// as the skip table holds for the next bits, or one symbol the slow way.
    /// Leaves `k` at 64 or more once the block has ended.
    #[inline(always)]
    #[cfg(test)]
    pub(crate) fn ac_step(&mut self, t: &DecodeTable, k: &mut u32) -> Result<(), Corrupt> {
        // A step consumes at most 29 bits (a 14-bit code and 15 extra bits).
        if self.nbits < 32 {
            self.refill();
        }
        let e = u32::from(t.skip[(self.buf >> (64 - SKIP_LOOK)) as usize]);
        let next = *k + (e >> 9);
        if next <= 64 {
            self.consume(e & 31);
            *k = next + (e & 128);
            return Ok(());
        }
        let rs = self.symbol(t)?;
        let (r, s) = ((rs >> 4) as u32, (rs & 15) as u32);
        if s == 0 {
            *k += if r == 15 { 16 } else { 64 };
        } else {
            self.bits(s);
            *k += r + 1;
        }
        Ok(())
    }

    /// Decode a DC difference and add it to the predictor `pred`.
    #[inline(always)]
    #[cfg(test)]
    pub(crate) fn skip_dc(&mut self, pred: &mut i32, dc: &DecodeTable) -> Result<(), Corrupt> {
        let s = self.symbol(dc)? as u32;
        if s > 11 {
            return Err(Corrupt("bad DC magnitude"));
        }
        *pred = pred.wrapping_add(self.receive_extend(s));
        Ok(())
    }

    /// Decode one sequential block into `blk` (zigzag order); `pred` is the DC predictor.
    #[inline(always)]
    pub(crate) fn decode_block(
        &mut self,
        blk: &mut [i16; 64],
        pred: &mut i32,
        dc: &DecodeTable,
        ac: &DecodeTable,
    ) -> Result<(), Corrupt> {
        *blk = [0; 64];
        let s = self.symbol(dc)? as u32;
        if s > 11 {
            return Err(Corrupt("bad DC magnitude"));
        }
        *pred = pred.wrapping_add(self.receive_extend(s));
        blk[0] = *pred as i16;
        let mut k = 1usize;
        while k < 64 {
            if self.nbits < 32 {
                self.refill();
            }
            // Most coefficients: code, extra bits and value in one lookup.
            let fa = ac.fast_ac[(self.buf >> (64 - LOOK)) as usize];
            if fa != 0 {
                self.consume((fa & 15) as u32);
                k += ((fa >> 4) & 15) as usize;
                if k > 63 {
                    return Err(Corrupt("AC run past the end of a block"));
                }
                blk[k] = fa >> 8;
                k += 1;
                continue;
            }
            let rs = self.symbol(ac)?;
            let (r, s) = ((rs >> 4) as usize, (rs & 15) as u32);
            if s == 0 {
                if r != 15 {
                    break;
                }
                k += 16;
            } else {
                k += r;
                let v = self.receive_extend(s);
                if k > 63 {
                    return Err(Corrupt("AC run past the end of a block"));
                }
                blk[k] = v as i16;
                k += 1;
            }
        }
        Ok(())
    }

    /// Skip one block, keeping only the DC predictor up to date: the tests' plain
    /// reference for the skip's chains and lanes.
    #[inline(always)]
    #[cfg(test)]
    pub(crate) fn skip_block(
        &mut self,
        pred: &mut i32,
        dc: &DecodeTable,
        ac: &DecodeTable,
    ) -> Result<(), Corrupt> {
        self.skip_dc(pred, dc)?;
        self.skip_ac(ac)
    }

    /// The reader's registers: next raw byte, bit buffer (MSB first), bits in
    /// it, and zero bits fed past the end of the segment.
    pub(crate) fn parts(&self) -> (usize, u64, u32, u64) {
        (self.pos, self.buf, self.nbits, self.fake_bits)
    }

    /// A reader with the given registers (see [`BitReader::parts`]).
    pub(crate) fn from_parts(data: &'a [u8], parts: (usize, u64, u32, u64)) -> Self {
        let (pos, buf, nbits, fake_bits) = parts;
        BitReader {
            data,
            pos,
            buf,
            nbits,
            fake_bits,
        }
    }

    /// The fast-lookup entry for the next bits: `(len << 8) | symbol`, or 0
    /// when the code is longer than the lookup width.
    #[inline(always)]
    pub(crate) fn peek_fast(t: &DecodeTable, buf: u64) -> u16 {
        t.fast[(buf >> (64 - LOOK)) as usize]
    }

    /// The skip-table entry for the next bits (see `DecodeTable::skip`), from a
    /// table taken with [`DecodeTable::skip_table`].
    #[inline(always)]
    pub(crate) fn peek_skip_in(skip: &SkipTable, buf: u64) -> u32 {
        u32::from(skip[(buf >> (64 - SKIP_LOOK)) as usize])
    }

    /// Byte and bit (0 = MSB) in the raw data where the next unread bit lives.
    pub(crate) fn raw_bit_position(&self) -> Result<(usize, u32), Corrupt> {
        if self.overrun() {
            return Err(Corrupt("truncated entropy-coded data"));
        }
        let mut back = self.nbits as u64 - self.fake_bits;
        let mut p = self.pos;
        while back > 0 {
            p -= 1;
            if self.data[p] == 0 && p > 0 && self.data[p - 1] == 0xFF {
                // A stuffed zero: the data byte 0xFF starts at the first of the
                // 0xFF bytes before it (fill bytes may come first, see
                // [`stuffed_ff_end`]).
                p -= 1;
                while p > 0 && self.data[p - 1] == 0xFF {
                    p -= 1;
                }
            }
            if back <= 8 {
                return Ok((p, 8 - back as u32));
            }
            back -= 8;
        }
        Ok((self.pos, 0))
    }

    /// Move past the next marker, which must be RSTn with `n` = `number` (0..=7),
    /// discarding the padding before it.
    pub(crate) fn restart(&mut self, number: u8) -> Result<(), Corrupt> {
        self.buf = 0;
        self.nbits = 0;
        self.fake_bits = 0;
        self.pos = after_restart_marker(self.data, self.pos, number)?;
        Ok(())
    }
}

/// Position just after the next marker at or after `from`, which must be the
/// restart marker RSTn with `n` = `number` (0..=7).
///
/// # Errors
/// Any other marker, or none, is corrupt. A restart marker out of sequence is
/// damage libjpeg repairs its own way (`jpeg_resync_to_restart`: it decodes an
/// interval from nothing when the marker is one or two ahead, and skips to the
/// next marker when it is behind), not by reading on as if it were the expected
/// one, which is what reading the next RSTn whatever its number would do.
pub(crate) fn after_restart_marker(data: &[u8], from: usize, number: u8) -> Result<usize, Corrupt> {
    let m = find_marker(data, from).ok_or(Corrupt("missing restart marker"))?;
    match data.get(m + 1) {
        Some(&x) if x == 0xD0 + (number & 7) => Ok(m + 2),
        Some(0xD0..=0xD7) => Err(Corrupt("restart marker out of sequence")),
        _ => Err(Corrupt("missing restart marker")),
    }
}

/// Where the data byte 0xFF whose first byte is `data[i]` (a 0xFF) ends: after the
/// stuffed 0x00 that follows it, past any further 0xFF bytes before that zero.
/// T.81 allows fill bytes 0xFF before markers only, but libjpeg and zune-jpeg read
/// `FF FF… FF 00` inside entropy-coded data as one data byte 0xFF and decode on, so
/// every reader of entropy-coded data here does too (a fuzz finding: the scan
/// ended at the first `FF FF`). `None` when a marker or the end of the data
/// follows the 0xFF bytes instead.
#[inline]
pub(crate) fn stuffed_ff_end(data: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while data.get(j) == Some(&0xFF) {
        j += 1;
    }
    (data.get(j) == Some(&0)).then_some(j + 1)
}

/// Index just past the entropy-coded data byte that starts at `data[i]`: the next
/// byte, or for a 0xFF the end of its stuffing (see [`stuffed_ff_end`]).
#[inline]
pub(crate) fn next_data_byte(data: &[u8], i: usize) -> usize {
    if data[i] == 0xFF {
        stuffed_ff_end(data, i).unwrap_or(i + 2)
    } else {
        i + 1
    }
}

/// Index of the next marker (0xFF followed by neither 0x00 nor 0xFF) at or after `from`;
/// `FF FF… FF 00` is data (see [`stuffed_ff_end`]), and of fill bytes before a
/// marker the last one is taken.
pub(crate) fn find_marker(data: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let i = from + memchr::memchr(0xFF, data.get(from..)?)?;
        match data.get(i + 1) {
            Some(0x00) => from = i + 2,
            Some(0xFF) => from = i + 1,
            Some(_) => return Some(i),
            None => return None,
        }
    }
}

/// Code and length for each symbol; length 0 = not in the table.
pub(crate) struct EncodeTable {
    code: [u16; 256],
    len: [u8; 256],
}

impl EncodeTable {
    /// The length in bits of `symbol`'s code, 0 when the table has none.
    pub(crate) fn code_len(&self, symbol: u8) -> u8 {
        self.len[usize::from(symbol)]
    }

    pub(crate) fn new(spec: &HuffSpec) -> Result<Self, Corrupt> {
        let mut t = EncodeTable {
            code: [0; 256],
            len: [0; 256],
        };
        for (code, len, sym) in canonical(spec)? {
            t.code[sym as usize] = code as u16;
            t.len[sym as usize] = len as u8;
        }
        Ok(t)
    }
}

/// The encoder needed a symbol its Huffman table does not contain.
#[derive(Debug)]
pub(crate) struct MissingSymbol;

/// Writes bits MSB first with 0xFF byte stuffing.
pub(crate) struct BitWriter {
    pub(crate) out: Vec<u8>,
    acc: u64,
    n: u32,
}

/// A [`BitWriter`]'s position: the bytes written out and the bits still pending.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriterMark {
    len: usize,
    acc: u64,
    n: u32,
}

impl BitWriter {
    pub(crate) fn new(out: Vec<u8>) -> Self {
        BitWriter { out, acc: 0, n: 0 }
    }

    /// Append `len` (<= 32) bits.
    #[inline(always)]
    pub(crate) fn put(&mut self, bits: u32, len: u32) {
        if len == 0 {
            return;
        }
        self.acc = (self.acc << len) | (bits as u64 & ((1u64 << len) - 1));
        self.n += len;
        if self.n >= 32 {
            self.n -= 32;
            let w = (self.acc >> self.n) as u32;
            self.emit32(w);
        }
    }

    #[inline(always)]
    fn emit32(&mut self, w: u32) {
        let bytes = w.to_be_bytes();
        let v = !w;
        if (v.wrapping_sub(0x0101_0101) & !v & 0x8080_8080) == 0 {
            self.out.extend_from_slice(&bytes);
        } else {
            for b in bytes {
                self.out.push(b);
                if b == 0xFF {
                    self.out.push(0);
                }
            }
        }
    }

    /// Pad with 1-bits (T.81 B.1.1.5) to a byte boundary and flush.
    pub(crate) fn pad(&mut self) {
        self.pad_with(true);
    }

    /// Pad with 1-bits or 0-bits to a byte boundary and flush.
    pub(crate) fn pad_with(&mut self, ones: bool) {
        let fill = (8 - self.n % 8) % 8;
        self.put(if ones { (1 << fill) - 1 } else { 0 }, fill);
        while self.n >= 8 {
            self.n -= 8;
            let b = (self.acc >> self.n) as u8;
            self.out.push(b);
            if b == 0xFF {
                self.out.push(0);
            }
        }
    }

    /// Where the writer stands, to [`rewind`](Self::rewind) to.
    pub(crate) fn mark(&self) -> WriterMark {
        WriterMark {
            len: self.out.len(),
            acc: self.acc,
            n: self.n,
        }
    }

    /// Forgets every bit written since `mark` was taken.
    pub(crate) fn rewind(&mut self, mark: WriterMark) {
        self.out.truncate(mark.len);
        self.acc = mark.acc;
        self.n = mark.n;
    }

    /// Bits written into the byte not yet complete (0 on a byte boundary).
    pub(crate) fn bit_offset(&self) -> u32 {
        self.n % 8
    }

    /// Copy the destuffed bits of `data` from raw position `from` to `to`
    /// (byte, bit-within-byte pairs as given by [`BitReader::raw_bit_position`]).
    pub(crate) fn copy_range(&mut self, data: &[u8], from: (usize, u32), to: (usize, u32)) {
        let (mut i, b) = from;
        if i == to.0 {
            let byte = data[i] as u32;
            let len = to.1 - b;
            self.put((byte >> (8 - to.1)) & ((1 << len) - 1), len);
            return;
        }
        if b > 0 {
            let byte = data[i];
            self.put((byte & (0xFF >> b)) as u32, 8 - b);
            i = next_data_byte(data, i);
        }
        while i < to.0 {
            // Four bytes at a time where none of them is 0xFF (no stuffing).
            if i + 4 <= to.0 {
                let w = u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
                let v = !w;
                if (v.wrapping_sub(0x0101_0101) & !v & 0x8080_8080) == 0 {
                    self.put(w, 32);
                    i += 4;
                    continue;
                }
            }
            let byte = data[i];
            self.put(byte as u32, 8);
            i = next_data_byte(data, i);
        }
        if to.1 > 0 {
            self.put((data[i] >> (8 - to.1)) as u32, to.1);
        }
    }

    /// Write a marker (after padding).
    pub(crate) fn marker(&mut self, m: u8) {
        self.pad();
        self.out.extend_from_slice(&[0xFF, m]);
    }

    /// Encode one block (zigzag order) given the DC predictor.
    #[inline]
    pub(crate) fn encode_block(
        &mut self,
        blk: &[i16; 64],
        pred: &mut i32,
        dc: &EncodeTable,
        ac: &EncodeTable,
    ) -> Result<(), MissingSymbol> {
        self.encode_block_with_zrls(blk, pred, dc, ac, 0)
    }

    /// [`encode_block`](Self::encode_block), with `zrls` ZRL codes (16 zeros each) before
    /// the block's EOB: the same coefficients to every decoder, `zrls` ZRL codes longer.
    /// The caller keeps the zeros they stand for inside the block and leaves its EOB in
    /// place: `last_nonzero(blk) + 16 * zrls <= 62` (see [`zrl_room`]).
    #[inline(always)]
    pub(crate) fn encode_block_with_zrls(
        &mut self,
        blk: &[i16; 64],
        pred: &mut i32,
        dc: &EncodeTable,
        ac: &EncodeTable,
        zrls: u32,
    ) -> Result<(), MissingSymbol> {
        let diff = blk[0] as i32 - *pred;
        *pred = blk[0] as i32;
        let (s, v) = magnitude(diff);
        self.sym(dc, s as u8)?;
        self.put(v, s);
        #[cfg(target_arch = "x86_64")]
        let mut mask = super::simd::nonzero_mask(blk) & !1;
        #[cfg(not(target_arch = "x86_64"))]
        let mut mask = {
            let mut mask = 0u64;
            for (k, &c) in blk.iter().enumerate().skip(1) {
                mask |= ((c != 0) as u64) << k;
            }
            mask
        };
        let mut prev = 0u32;
        while mask != 0 {
            let k = mask.trailing_zeros();
            mask &= mask - 1;
            let mut run = k - prev - 1;
            prev = k;
            while run >= 16 {
                self.sym(ac, 0xF0)?;
                run -= 16;
            }
            let (s, v) = magnitude(blk[k as usize] as i32);
            let sym = ((run << 4) | s) as usize;
            let len = ac.len[sym] as u32;
            if len == 0 {
                return Err(MissingSymbol);
            }
            // Code and extra bits in one go: at most 16 + 10 bits.
            self.put(((ac.code[sym] as u32) << s) | v, len + s);
        }
        if prev < 63 {
            for _ in 0..zrls {
                self.sym(ac, 0xF0)?;
            }
            self.sym(ac, 0)?;
        }
        Ok(())
    }

    #[inline(always)]
    fn sym(&mut self, t: &EncodeTable, s: u8) -> Result<(), MissingSymbol> {
        let len = t.len[s as usize];
        if len == 0 {
            return Err(MissingSymbol);
        }
        self.put(t.code[s as usize] as u32, len as u32);
        Ok(())
    }
}

/// How many ZRL codes may stand before `blk`'s EOB without changing what it decodes to:
/// each one skips 16 zeros, and after them the EOB must still fall inside the block (at
/// index 63 at most: a block whose zeros the ZRLs filled exactly would end without its
/// EOB, which a decoder would then read as the next block's DC).
pub(crate) fn zrl_room(blk: &[i16; 64]) -> u32 {
    let last = (1..64).rev().find(|&k| blk[k] != 0).unwrap_or(0) as u32;
    62u32.saturating_sub(last) / 16
}

/// Magnitude category and the extra bits of a coefficient value.
#[inline(always)]
pub(crate) fn magnitude(v: i32) -> (u32, u32) {
    if v == 0 {
        return (0, 0);
    }
    let a = v.unsigned_abs();
    let s = 32 - a.leading_zeros();
    let bits = if v < 0 { (v - 1) as u32 } else { v as u32 };
    (s, bits & ((1 << s) - 1))
}

/// Largest DC difference category of 8-bit DCT coefficients (T.81 Table F.1);
/// libjpeg's encoder refuses larger ones ("DCT coefficient out of range").
const MAX_DC_BITS: u32 = 11;
/// Largest AC coefficient category of 8-bit DCT coefficients (T.81 Table F.2).
const MAX_AC_BITS: u32 = 10;

/// Count the symbols one block would emit (for optimal tables). Refuses
/// coefficients no 8-bit encoder can produce: arithmetic-coded or progressive
/// data decode to 16-bit values whose categories either are not valid DC
/// symbols (decoders reject a DC table holding a symbol over 15) or spill into
/// the run nibble of an AC symbol.
pub(crate) fn count_block(
    blk: &[i16; 64],
    pred: &mut i32,
    dc: &mut [u32; 257],
    ac: &mut [u32; 257],
) -> Result<(), Corrupt> {
    const OUT_OF_RANGE: Corrupt = Corrupt("DCT coefficient out of range for an 8-bit JPEG");
    let diff = blk[0] as i32 - *pred;
    *pred = blk[0] as i32;
    let s = magnitude(diff).0;
    if s > MAX_DC_BITS {
        return Err(OUT_OF_RANGE);
    }
    dc[s as usize] += 1;
    let mut run = 0u32;
    for &c in &blk[1..] {
        if c == 0 {
            run += 1;
            continue;
        }
        while run >= 16 {
            ac[0xF0] += 1;
            run -= 16;
        }
        let s = magnitude(c as i32).0;
        if s > MAX_AC_BITS {
            return Err(OUT_OF_RANGE);
        }
        ac[((run << 4) | s) as usize] += 1;
        run = 0;
    }
    if run > 0 {
        ac[0] += 1;
    }
    Ok(())
}

/// Build an optimal Huffman table with codes of at most 16 bits (libjpeg's
/// `jpeg_gen_optimal_table`, Annex K.2).
#[allow(clippy::needless_range_loop)] // mirrors the reference algorithm
pub(crate) fn optimal_table(freq_in: &[u32; 257]) -> HuffSpec {
    let mut freq = [0i64; 257];
    for (f, &x) in freq.iter_mut().zip(freq_in.iter()) {
        *f = x as i64;
    }
    // Reserve one code point so no real code is all ones.
    freq[256] = 1;
    let mut codesize = [0usize; 257];
    let mut others = [-1i32; 257];
    loop {
        let mut c1: i32 = -1;
        let mut v = i64::MAX;
        for i in 0..=256 {
            if freq[i] != 0 && freq[i] <= v {
                v = freq[i];
                c1 = i as i32;
            }
        }
        let mut c2: i32 = -1;
        v = i64::MAX;
        for i in 0..=256 {
            if freq[i] != 0 && freq[i] <= v && i as i32 != c1 {
                v = freq[i];
                c2 = i as i32;
            }
        }
        if c2 < 0 {
            break;
        }
        let (c1u, c2u) = (c1 as usize, c2 as usize);
        freq[c1u] += freq[c2u];
        freq[c2u] = 0;
        let mut c = c1u;
        codesize[c] += 1;
        while others[c] >= 0 {
            c = others[c] as usize;
            codesize[c] += 1;
        }
        others[c] = c2;
        c = c2u;
        codesize[c] += 1;
        while others[c] >= 0 {
            c = others[c] as usize;
            codesize[c] += 1;
        }
    }
    let mut bits = [0i32; 33];
    for &cs in codesize.iter() {
        if cs > 0 {
            bits[cs.min(32)] += 1;
        }
    }
    let mut i = 32;
    while i > 16 {
        while bits[i] > 0 {
            let mut j = i - 2;
            while bits[j] == 0 {
                j -= 1;
            }
            bits[i] -= 2;
            bits[i - 1] += 1;
            bits[j + 1] += 2;
            bits[j] -= 1;
        }
        i -= 1;
    }
    while bits[i] == 0 {
        i -= 1;
    }
    bits[i] -= 1; // remove the reserved code point
    let mut counts = [0u8; 16];
    for l in 1..=16 {
        counts[l - 1] = bits[l] as u8;
    }
    let mut symbols = Vec::new();
    for l in 1..=32 {
        for (s, &cs) in codesize.iter().enumerate().take(256) {
            if cs == l {
                symbols.push(s as u8);
            }
        }
    }
    HuffSpec { counts, symbols }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-symbol table's entry for every 16-bit window is the code that
    /// starts it, as `decode_top` reads it, for tables whose longest codes
    /// are short, long, or fill the code space.
    #[test]
    fn one_symbol_entries_are_the_code_at_the_top_of_every_16_bit_window() {
        let mut skewed = [0u32; 257];
        for (i, f) in skewed.iter_mut().enumerate().take(256) {
            *f = 1 + (1 << (i % 17));
        }
        let short = HuffSpec {
            counts: [0, 2, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            symbols: vec![0x00, 0x01, 0x02, 0x11, 0x03, 0xF0],
        };
        for spec in [optimal_table(&skewed), short] {
            let t = DecodeTable::new(&spec, true).expect("table");
            let (one, base) = t.one_symbol_table();
            for w in 0..1u32 << 16 {
                let idx = if w < base {
                    (w >> (16 - LOOK)) as usize
                } else {
                    (1 << LOOK) + (w - base) as usize
                };
                let want = t
                    .decode_top(u64::from(w) << 48)
                    .map_or(0, |(l, s)| ((l as u16) << 8) | u16::from(s));
                assert_eq!(one[idx], want, "window {w:016b}, long_base {base}");
            }
            assert_eq!(one.len(), (1 << LOOK) + (1 << 16) - base as usize);
        }
    }

    /// Each entry of the one-lookup AC table says what decoding the symbol and
    /// then its extra bits says: bits used, run and value; and an entry is left
    /// empty only for what it cannot hold.
    #[test]
    fn fast_ac_entries_match_decoding_symbol_then_extra_bits() {
        // Skewed frequencies over every AC symbol, for code lengths from 2 to 16.
        let mut freq = [0u32; 257];
        let mut seed = 0x9E37_79B9u32;
        for r in 0..16u32 {
            for s in 1..=10u32 {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                freq[(r << 4 | s) as usize] = 1 + (seed >> 8) % (1 + (40_000 >> (r + s)));
            }
        }
        freq[0x00] = 30_000;
        freq[0xF0] = 50;
        // A short code for size 7, the largest value an entry holds.
        freq[0x07] = 60_000;
        let spec = optimal_table(&freq);
        let t = DecodeTable::new(&spec, true).expect("table");
        let (mut filled, mut empty) = (0, 0);
        for idx in 0..1usize << LOOK {
            // The window's bits, then zeros, as stuffed entropy-coded bytes.
            let bits = (idx as u64) << (64 - LOOK);
            let mut data = Vec::new();
            for b in bits.to_be_bytes() {
                data.push(b);
                if b == 0xFF {
                    data.push(0);
                }
            }
            let mut rd = BitReader::new(&data, 0);
            rd.refill();
            let before = rd.nbits;
            let decoded = rd.symbol(&t).map(|rs| {
                let v = rd.receive_extend(u32::from(rs & 15));
                (rs, v, before - rd.nbits)
            });
            let fa = t.fast_ac[idx];
            match decoded {
                Ok((rs, v, used)) if fa != 0 => {
                    filled += 1;
                    assert_eq!((fa & 15) as u32, used, "bits of {idx:010b}");
                    assert_eq!(((fa >> 4) & 15) as u8, rs >> 4, "run of {idx:010b}");
                    assert_eq!(i32::from(fa >> 8), v, "value of {idx:010b}");
                }
                Ok((rs, _, used)) => {
                    empty += 1;
                    let s = rs & 15;
                    assert!(
                        s == 0 || s > 7 || used > LOOK,
                        "{idx:010b} could be one lookup"
                    );
                }
                Err(_) => assert_eq!(fa, 0),
            }
        }
        assert!(
            filled > 100 && empty > 100,
            "{filled} filled, {empty} empty"
        );
    }
}
