//! Arithmetic-coded scans (SOF9 sequential, SOF10 progressive): the QM coder of
//! T.81 Annex D with the models of F.1.4.4 and G.1.3.3, decoded into the same
//! coefficients a Huffman scan gives, so such a JPEG is edited and written back
//! with Huffman coding like any other. It follows libjpeg's `jdarith.c` step for
//! step, so the coefficients are exactly the ones libjpeg-turbo decodes.

use super::Corrupt;
use super::coefs::{BlockDecoder, Plane, walk_scan};
use super::huffman::{after_restart_marker, find_marker};
use super::parse::{ArithConditioning, Frame, Scan, Tables};

/// One row of T.81 Table D.2 packed as libjpeg packs it: `Qe << 16`, the next
/// state after an MPS `<< 8`, the MPS switch `<< 7` and the next state after an LPS.
const fn state(qe: u32, next_lps: u32, next_mps: u32, switch: u32) -> u32 {
    (qe << 16) | (next_mps << 8) | (switch << 7) | next_lps
}

/// The probability estimation state machine (Table D.2); the last row (113) is
/// the fixed estimate of 0.5 used for signs and refinement bits.
static QE_TABLE: [u32; 114] = [
    state(0x5a1d, 1, 1, 1),
    state(0x2586, 14, 2, 0),
    state(0x1114, 16, 3, 0),
    state(0x080b, 18, 4, 0),
    state(0x03d8, 20, 5, 0),
    state(0x01da, 23, 6, 0),
    state(0x00e5, 25, 7, 0),
    state(0x006f, 28, 8, 0),
    state(0x0036, 30, 9, 0),
    state(0x001a, 33, 10, 0),
    state(0x000d, 35, 11, 0),
    state(0x0006, 9, 12, 0),
    state(0x0003, 10, 13, 0),
    state(0x0001, 12, 13, 0),
    state(0x5a7f, 15, 15, 1),
    state(0x3f25, 36, 16, 0),
    state(0x2cf2, 38, 17, 0),
    state(0x207c, 39, 18, 0),
    state(0x17b9, 40, 19, 0),
    state(0x1182, 42, 20, 0),
    state(0x0cef, 43, 21, 0),
    state(0x09a1, 45, 22, 0),
    state(0x072f, 46, 23, 0),
    state(0x055c, 48, 24, 0),
    state(0x0406, 49, 25, 0),
    state(0x0303, 51, 26, 0),
    state(0x0240, 52, 27, 0),
    state(0x01b1, 54, 28, 0),
    state(0x0144, 56, 29, 0),
    state(0x00f5, 57, 30, 0),
    state(0x00b7, 59, 31, 0),
    state(0x008a, 60, 32, 0),
    state(0x0068, 62, 33, 0),
    state(0x004e, 63, 34, 0),
    state(0x003b, 32, 35, 0),
    state(0x002c, 33, 9, 0),
    state(0x5ae1, 37, 37, 1),
    state(0x484c, 64, 38, 0),
    state(0x3a0d, 65, 39, 0),
    state(0x2ef1, 67, 40, 0),
    state(0x261f, 68, 41, 0),
    state(0x1f33, 69, 42, 0),
    state(0x19a8, 70, 43, 0),
    state(0x1518, 72, 44, 0),
    state(0x1177, 73, 45, 0),
    state(0x0e74, 74, 46, 0),
    state(0x0bfb, 75, 47, 0),
    state(0x09f8, 77, 48, 0),
    state(0x0861, 78, 49, 0),
    state(0x0706, 79, 50, 0),
    state(0x05cd, 48, 51, 0),
    state(0x04de, 50, 52, 0),
    state(0x040f, 50, 53, 0),
    state(0x0363, 51, 54, 0),
    state(0x02d4, 52, 55, 0),
    state(0x025c, 53, 56, 0),
    state(0x01f8, 54, 57, 0),
    state(0x01a4, 55, 58, 0),
    state(0x0160, 56, 59, 0),
    state(0x0125, 57, 60, 0),
    state(0x00f6, 58, 61, 0),
    state(0x00cb, 59, 62, 0),
    state(0x00ab, 61, 63, 0),
    state(0x008f, 61, 32, 0),
    state(0x5b12, 65, 65, 1),
    state(0x4d04, 80, 66, 0),
    state(0x412c, 81, 67, 0),
    state(0x37d8, 82, 68, 0),
    state(0x2fe8, 83, 69, 0),
    state(0x293c, 84, 70, 0),
    state(0x2379, 86, 71, 0),
    state(0x1edf, 87, 72, 0),
    state(0x1aa9, 87, 73, 0),
    state(0x174e, 72, 74, 0),
    state(0x1424, 72, 75, 0),
    state(0x119c, 74, 76, 0),
    state(0x0f6b, 74, 77, 0),
    state(0x0d51, 75, 78, 0),
    state(0x0bb6, 77, 79, 0),
    state(0x0a40, 77, 48, 0),
    state(0x5832, 80, 81, 1),
    state(0x4d1c, 88, 82, 0),
    state(0x438e, 89, 83, 0),
    state(0x3bdd, 90, 84, 0),
    state(0x34ee, 91, 85, 0),
    state(0x2eae, 92, 86, 0),
    state(0x299a, 93, 87, 0),
    state(0x2516, 86, 71, 0),
    state(0x5570, 88, 89, 1),
    state(0x4ca9, 95, 90, 0),
    state(0x44d9, 96, 91, 0),
    state(0x3e22, 97, 92, 0),
    state(0x3824, 99, 93, 0),
    state(0x32b4, 99, 94, 0),
    state(0x2e17, 93, 86, 0),
    state(0x56a8, 95, 96, 1),
    state(0x4f46, 101, 97, 0),
    state(0x47e5, 102, 98, 0),
    state(0x41cf, 103, 99, 0),
    state(0x3c3d, 104, 100, 0),
    state(0x375e, 99, 93, 0),
    state(0x5231, 105, 102, 0),
    state(0x4c0f, 106, 103, 0),
    state(0x4639, 107, 104, 0),
    state(0x415e, 103, 99, 0),
    state(0x5627, 105, 106, 1),
    state(0x50e7, 108, 107, 0),
    state(0x4b85, 109, 103, 0),
    state(0x5597, 110, 109, 0),
    state(0x504f, 111, 107, 0),
    state(0x5a10, 110, 111, 1),
    state(0x5522, 112, 109, 0),
    state(0x59eb, 112, 111, 1),
    state(0x5a1d, 113, 113, 0),
];

/// The fixed-probability (0.5) statistics bin.
const FIXED_BIN: u8 = 113;

/// The QM decoder's registers over one entropy-coded segment.
struct QmDecoder<'a> {
    data: &'a [u8],
    /// Next byte to read.
    pos: usize,
    /// Offset of the 0xFF of the marker that ended the segment, once met: from
    /// there on zeros are fed in, as T.81 (and libjpeg) prescribe.
    marker: Option<usize>,
    /// Code register: the interval base and the bits not yet shifted in.
    c: i64,
    /// Interval size.
    a: i64,
    /// Bits left in the buffer part of `c`; -16 before the first two bytes.
    ct: i32,
}

impl<'a> QmDecoder<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        QmDecoder {
            data,
            pos,
            marker: None,
            c: 0,
            a: 0,
            ct: -16,
        }
    }

    /// The next data byte with stuffing removed, or 0 at and past a marker.
    fn byte(&mut self) -> i64 {
        if self.marker.is_some() {
            return 0;
        }
        let Some(&b) = self.data.get(self.pos) else {
            self.marker = Some(self.data.len());
            return 0;
        };
        self.pos += 1;
        if b != 0xFF {
            return i64::from(b);
        }
        loop {
            match self.data.get(self.pos) {
                Some(0xFF) => self.pos += 1,
                Some(0) => {
                    self.pos += 1;
                    return 0xFF;
                }
                Some(_) => {
                    self.marker = Some(self.pos - 1);
                    return 0;
                }
                None => {
                    self.marker = Some(self.data.len());
                    return 0;
                }
            }
        }
    }

    /// Decodes one binary decision with the statistics bin `st` (its MPS in the
    /// top bit, its state index below), updating the bin.
    #[inline]
    fn decode(&mut self, st: &mut u8) -> bool {
        // Renormalisation and data input (D.2.6).
        while self.a < 0x8000 {
            self.ct -= 1;
            if self.ct < 0 {
                let data = self.byte();
                self.c = (self.c << 8) | data;
                self.ct += 8;
                if self.ct < 0 {
                    self.ct += 1;
                    if self.ct == 0 {
                        // The first two bytes are in: A becomes 0x10000 below.
                        self.a = 0x8000;
                    }
                }
            }
            self.a <<= 1;
        }
        let sv = *st;
        // Every state the table leads to is at most 113.
        let entry = QE_TABLE[usize::from(sv & 0x7F).min(113)];
        let qe = i64::from(entry >> 16);
        let next_lps = (entry & 0xFF) as u8;
        let next_mps = ((entry >> 8) & 0xFF) as u8;
        // Decoding and estimation (D.2.4, D.2.5).
        let mut bit = sv >> 7;
        self.a -= qe;
        // ct is 0..=7 once the first two bytes are in, which the loop above ensures.
        let temp = self.a << self.ct.clamp(0, 31);
        if self.c >= temp {
            self.c -= temp;
            // Conditional LPS exchange.
            if self.a < qe {
                *st = (sv & 0x80) ^ next_mps;
            } else {
                *st = (sv & 0x80) ^ next_lps;
                bit ^= 1;
            }
            self.a = qe;
        } else if self.a < 0x8000 {
            // Conditional MPS exchange.
            if self.a < qe {
                *st = (sv & 0x80) ^ next_lps;
                bit ^= 1;
            } else {
                *st = (sv & 0x80) ^ next_mps;
            }
        }
        bit == 1
    }
}

/// An arithmetic-coded scan being decoded: the coder, its statistics bins and
/// the DC prediction state of each scan component.
struct ArithScan<'a> {
    qm: QmDecoder<'a>,
    dc_stats: [[u8; 64]; 4],
    ac_stats: [[u8; 256]; 4],
    fixed: u8,
    last_dc: [i32; 4],
    dc_context: [usize; 4],
    /// DC and AC conditioning table of each scan component.
    td: [usize; 4],
    ta: [usize; 4],
    ncomps: usize,
    cond: ArithConditioning,
    progressive: bool,
    ss: usize,
    se: usize,
    ah: u8,
    al: u8,
}

/// The decoded value was too large or ran past the end of the block.
const BAD_CODE: Corrupt = Corrupt("bad arithmetic code");

impl ArithScan<'_> {
    /// Whether this scan codes DC values (and so resets DC statistics).
    fn codes_dc(&self) -> bool {
        !self.progressive || (self.ss == 0 && self.ah == 0)
    }

    /// Whether this scan codes AC values.
    fn codes_ac(&self) -> bool {
        !self.progressive || self.ss > 0
    }

    /// Zeroes the statistics and predictions the scan uses (at its start and at
    /// each restart).
    fn reset_statistics(&mut self) {
        for k in 0..self.ncomps {
            if self.codes_dc() {
                self.dc_stats[self.td[k]] = [0; 64];
                self.last_dc[k] = 0;
                self.dc_context[k] = 0;
            }
            if self.codes_ac() {
                self.ac_stats[self.ta[k]] = [0; 256];
            }
        }
    }

    /// The magnitude category bits and value bits of a nonzero value (F.23,
    /// F.24), starting at AC bin `st` (`ac`) or DC bin `st`; returns |v| - 1.
    fn magnitude(
        &mut self,
        ac: Option<(usize, usize)>,
        t: usize,
        mut st: usize,
    ) -> Result<i32, Corrupt> {
        let stats: &mut [u8] = match ac {
            Some(_) => &mut self.ac_stats[t],
            None => &mut self.dc_stats[t],
        };
        let mut m: i32 = 0;
        if self.qm.decode(&mut stats[st]) {
            m = 1;
            let more = match ac {
                // AC: a second decision on the same bin before the X bins.
                Some(_) => self.qm.decode(&mut stats[st]),
                None => true,
            };
            if more {
                st = match ac {
                    Some((k, kx)) => {
                        m = 2;
                        if k <= kx { 189 } else { 217 }
                    }
                    None => 20,
                };
                while self.qm.decode(&mut stats[st]) {
                    m <<= 1;
                    if m == 0x8000 {
                        return Err(BAD_CODE);
                    }
                    st += 1;
                }
            }
        }
        let mut v = m;
        st += 14;
        let mut bit = m >> 1;
        while bit != 0 {
            if self.qm.decode(&mut stats[st]) {
                v |= bit;
            }
            bit >>= 1;
        }
        Ok(v)
    }

    /// DC difference of scan component `k` (F.19), updating its prediction.
    fn dc(&mut self, k: usize) -> Result<i32, Corrupt> {
        let t = self.td[k];
        let s0 = self.dc_context[k];
        if !self.qm.decode(&mut self.dc_stats[t][s0]) {
            self.dc_context[k] = 0;
            return Ok(self.last_dc[k]);
        }
        let sign = self.qm.decode(&mut self.dc_stats[t][s0 + 1]);
        let st = s0 + 2 + usize::from(sign);
        // The category decides the next block's context (F.1.4.4.1.2); it is
        // read inside `magnitude`, so recompute it from the value's bit length.
        let v = self.magnitude(None, t, st)?;
        let m = if v == 0 {
            0
        } else {
            1 << (31 - v.leading_zeros())
        };
        let (l, u) = (self.cond.dc_l[t], self.cond.dc_u[t]);
        self.dc_context[k] = if m < (1i32 << l) >> 1 {
            0
        } else if m > (1i32 << u) >> 1 {
            12 + 4 * usize::from(sign)
        } else {
            4 + 4 * usize::from(sign)
        };
        let v = v + 1;
        self.last_dc[k] = self.last_dc[k].wrapping_add(if sign { -v } else { v });
        Ok(self.last_dc[k])
    }

    /// AC coefficients `ss..=se` not coded before (F.20, G.1.3.3 first scans).
    fn ac_first(&mut self, k: usize, blk: &mut [i16; 64]) -> Result<(), Corrupt> {
        let t = self.ta[k];
        let kx = usize::from(self.cond.ac_k[t]);
        let mut i = self.ss;
        while i <= self.se {
            let mut st = 3 * (i - 1);
            if self.qm.decode(&mut self.ac_stats[t][st]) {
                break; // end of block
            }
            while !self.qm.decode(&mut self.ac_stats[t][st + 1]) {
                st += 3;
                i += 1;
                if i > self.se {
                    return Err(BAD_CODE);
                }
            }
            let sign = self.qm.decode(&mut self.fixed);
            let v = self.magnitude(Some((i, kx)), t, st + 2)? + 1;
            let v = if sign { -v } else { v };
            blk[i] = (v << self.al) as i16;
            i += 1;
        }
        Ok(())
    }

    /// One more bit of AC coefficients `ss..=se` (G.1.3.3 refinement).
    fn ac_refine(&mut self, k: usize, blk: &mut [i16; 64]) -> Result<(), Corrupt> {
        let t = self.ta[k];
        let p1: i16 = 1 << self.al;
        let m1: i16 = -1 << self.al;
        // The end of block of the previous stage.
        let mut kex = self.se;
        while kex > 0 && blk[kex] == 0 {
            kex -= 1;
        }
        let mut i = self.ss;
        while i <= self.se {
            let mut st = 3 * (i - 1);
            if i > kex && self.qm.decode(&mut self.ac_stats[t][st]) {
                break;
            }
            loop {
                if blk[i] != 0 {
                    if self.qm.decode(&mut self.ac_stats[t][st + 2]) {
                        blk[i] = blk[i].wrapping_add(if blk[i] < 0 { m1 } else { p1 });
                    }
                    break;
                }
                if self.qm.decode(&mut self.ac_stats[t][st + 1]) {
                    blk[i] = if self.qm.decode(&mut self.fixed) {
                        m1
                    } else {
                        p1
                    };
                    break;
                }
                st += 3;
                i += 1;
                if i > self.se {
                    return Err(BAD_CODE);
                }
            }
            i += 1;
        }
        Ok(())
    }
}

impl BlockDecoder for ArithScan<'_> {
    fn restart(&mut self, number: u8) -> Result<(), Corrupt> {
        let data = self.qm.data;
        let from = self.qm.marker.unwrap_or(self.qm.pos);
        let next = after_restart_marker(data, from, number)?;
        self.qm = QmDecoder::new(data, next);
        self.reset_statistics();
        Ok(())
    }

    fn block(&mut self, k: usize, blk: &mut [i16; 64]) -> Result<(), Corrupt> {
        if !self.progressive {
            blk[0] = self.dc(k)? as i16;
            return self.ac_first(k, blk);
        }
        match (self.ss, self.ah) {
            (0, 0) => blk[0] = (self.dc(k)? << self.al) as i16,
            (0, _) => {
                if self.qm.decode(&mut self.fixed) {
                    blk[0] |= 1 << self.al;
                }
            }
            (_, 0) => self.ac_first(k, blk)?,
            _ => self.ac_refine(k, blk)?,
        }
        Ok(())
    }
}

/// Decodes one arithmetic-coded scan into `planes`; returns where the data
/// after it starts (its ending marker).
pub(super) fn decode_scan(
    input: &[u8],
    pos: usize,
    frame: &Frame,
    tables: &Tables,
    scan: &Scan,
    planes: &mut [Plane],
) -> Result<usize, Corrupt> {
    let progressive = frame.process.is_progressive();
    if progressive && scan.ah != 0 && scan.ah != scan.al + 1 {
        return Err(Corrupt("bad progressive scan parameters"));
    }
    let mut td = [0; 4];
    let mut ta = [0; 4];
    for (k, sc) in scan.comps.iter().enumerate() {
        td[k] = sc.td;
        ta[k] = sc.ta;
    }
    let mut dec = ArithScan {
        qm: QmDecoder::new(input, pos),
        dc_stats: [[0; 64]; 4],
        ac_stats: [[0; 256]; 4],
        fixed: FIXED_BIN,
        last_dc: [0; 4],
        dc_context: [0; 4],
        td,
        ta,
        ncomps: scan.comps.len(),
        cond: tables.arith,
        progressive,
        // Sequential scans code all 64 coefficients whatever the header says.
        ss: if progressive { usize::from(scan.ss) } else { 1 },
        se: if progressive {
            usize::from(scan.se)
        } else {
            63
        },
        ah: if progressive { scan.ah } else { 0 },
        al: if progressive { scan.al } else { 0 },
    };
    walk_scan(frame, scan, planes, tables.restart_interval, &mut dec)?;
    Ok(match dec.qm.marker {
        Some(m) => m,
        None => find_marker(input, dec.qm.pos).unwrap_or(input.len()),
    })
}
