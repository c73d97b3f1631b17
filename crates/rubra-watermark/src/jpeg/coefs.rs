//! The whole-image coefficient path, for progressive and multi-scan JPEGs and for
//! baseline files whose Huffman tables lack a symbol a changed block needs: decode
//! every scan into DCT coefficients, edit the covered MCUs, and write one baseline
//! scan with optimal Huffman tables. Coefficients outside the edit are untouched,
//! so the decoded pixels there are too.

use super::Corrupt;
use super::edit::McuEditor;
use super::huffman::{
    BitReader, BitWriter, DecodeTable, EncodeTable, HuffSpec, check_dc_table, count_block,
    find_marker, optimal_table,
};
use super::parse::{Frame, Header, Scan, Tables, apply_table_segment, parse_scan};

/// A callback over blocks in MCU order: (component, block).
type Visit<'v> = dyn FnMut(usize, &[i16; 64]) -> Result<(), Corrupt> + 'v;

/// Progressive files with more scans than this are refused (scan bombs).
const MAX_SCANS: usize = 1000;

/// All coefficients of one component, in padded MCU layout.
pub(super) struct Plane {
    bw: usize,
    blocks: Vec<[i16; 64]>,
}

/// Decode tables, built lazily per scan.
fn table(spec: &Option<HuffSpec>) -> Result<DecodeTable, Corrupt> {
    DecodeTable::new(
        spec.as_ref().ok_or(Corrupt("missing huffman table"))?,
        false,
    )
}

/// Decodes the blocks of one scan, one at a time, in the order [`walk_scan`]
/// visits them; the entropy coding (Huffman or arithmetic) is the implementor's.
pub(super) trait BlockDecoder {
    /// Moves past the restart marker RSTn, `n` = `number` (0..=7), and resets the
    /// coder's state.
    fn restart(&mut self, number: u8) -> Result<(), Corrupt>;
    /// Decodes (or refines) the next block, of the scan's `k`-th component.
    fn block(&mut self, k: usize, blk: &mut [i16; 64]) -> Result<(), Corrupt>;
}

/// Checks the spectral selection and successive approximation of a progressive scan.
pub(super) fn check_progressive_scan(scan: &Scan) -> Result<(), Corrupt> {
    let (ss, se, al) = (scan.ss, scan.se, scan.al);
    // A refinement scan (Ah > 0) adds exactly one bit: Al = Ah - 1 (T.81 G.1.1.1.2;
    // libjpeg: "Invalid progressive parameters").
    if se > 63 || ss > se || (ss == 0 && se != 0) || al > 13 || (scan.ah != 0 && al + 1 != scan.ah)
    {
        return Err(Corrupt("bad progressive scan parameters"));
    }
    if ss > 0 && scan.comps.len() != 1 {
        return Err(Corrupt("interleaved AC scan"));
    }
    Ok(())
}

/// Visits the blocks of a scan in coding order (interleaved MCUs, or the
/// component's own block grid for a one-component scan), restarting every `ri`
/// MCUs.
pub(super) fn walk_scan(
    frame: &Frame,
    scan: &Scan,
    planes: &mut [Plane],
    ri: usize,
    dec: &mut impl BlockDecoder,
) -> Result<(), Corrupt> {
    let (hm, vm) = frame.max_sampling();
    if scan.comps.len() == 1 {
        let ci = scan.comps[0].comp;
        let (h, v) = frame.sampling(ci);
        let cw = (frame.width * h).div_ceil(hm).div_ceil(8);
        let ch = (frame.height * v).div_ceil(vm).div_ceil(8);
        let bw = planes[ci].bw;
        for n in 0..cw * ch {
            if ri > 0 && n > 0 && n % ri == 0 {
                dec.restart(((n / ri - 1) % 8) as u8)?;
            }
            let blk = &mut planes[ci].blocks[(n / cw) * bw + n % cw];
            dec.block(0, blk)?;
        }
    } else {
        let (mx_n, my_n) = frame.mcus();
        for m in 0..mx_n * my_n {
            if ri > 0 && m > 0 && m % ri == 0 {
                dec.restart(((m / ri - 1) % 8) as u8)?;
            }
            let (mx, my) = (m % mx_n, m / mx_n);
            for (k, sc) in scan.comps.iter().enumerate() {
                let (h, v) = frame.sampling(sc.comp);
                let bw = planes[sc.comp].bw;
                for by in 0..v {
                    for bx in 0..h {
                        let blk = &mut planes[sc.comp].blocks[(my * v + by) * bw + mx * h + bx];
                        dec.block(k, blk)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// A Huffman-coded scan being decoded.
struct HuffmanScan<'a> {
    rd: BitReader<'a>,
    preds: [i32; 4],
    eobrun: u32,
    dcs: Vec<Option<DecodeTable>>,
    acs: Vec<Option<DecodeTable>>,
    progressive: bool,
    ss: usize,
    se: usize,
    ah: u32,
    al: u32,
}

impl BlockDecoder for HuffmanScan<'_> {
    fn restart(&mut self, number: u8) -> Result<(), Corrupt> {
        self.rd.restart(number)?;
        self.preds = [0; 4];
        self.eobrun = 0;
        Ok(())
    }

    fn block(&mut self, k: usize, blk: &mut [i16; 64]) -> Result<(), Corrupt> {
        let (ss, se, ah, al) = (self.ss, self.se, self.ah, self.al);
        let rd = &mut self.rd;
        if !self.progressive {
            let (Some(dc), Some(ac)) = (&self.dcs[k], &self.acs[k]) else {
                return Err(Corrupt("missing huffman table"));
            };
            return rd.decode_block(blk, &mut self.preds[k], dc, ac);
        }
        if ss == 0 {
            if ah == 0 {
                let dc = self.dcs[k]
                    .as_ref()
                    .ok_or(Corrupt("missing huffman table"))?;
                let s = rd.symbol(dc)? as u32;
                if s > 11 {
                    return Err(Corrupt("bad DC magnitude"));
                }
                self.preds[k] = self.preds[k].wrapping_add(rd.receive_extend(s));
                blk[0] = (self.preds[k] << al) as i16;
            } else if rd.bits(1) == 1 {
                blk[0] |= 1 << al;
            }
            return Ok(());
        }
        let ac = self.acs[k]
            .as_ref()
            .ok_or(Corrupt("missing huffman table"))?;
        if ah == 0 {
            if self.eobrun > 0 {
                self.eobrun -= 1;
                return Ok(());
            }
            let mut kk = ss;
            while kk <= se {
                let rs = rd.symbol(ac)?;
                let (r, s) = ((rs >> 4) as u32, (rs & 15) as u32);
                if s == 0 {
                    if r < 15 {
                        self.eobrun = (1 << r) - 1 + rd.bits(r);
                        break;
                    }
                    kk += 16;
                    continue;
                }
                kk += r as usize;
                if kk > 63 {
                    return Err(Corrupt("AC run past the end of a block"));
                }
                blk[kk] = (rd.receive_extend(s) << al) as i16;
                kk += 1;
            }
            return Ok(());
        }
        // AC refinement (libjpeg's decode_mcu_AC_refine).
        let p1: i16 = 1 << al;
        let m1: i16 = -1 << al;
        let mut kk = ss;
        if self.eobrun == 0 {
            while kk <= se {
                let rs = rd.symbol(ac)?;
                let mut r = (rs >> 4) as i32;
                let s = rs & 15;
                let mut val = 0i16;
                if s != 0 {
                    val = if rd.bits(1) == 1 { p1 } else { m1 };
                } else if r != 15 {
                    self.eobrun = (1 << r) + rd.bits(r as u32);
                    break;
                }
                while kk <= se {
                    let c = &mut blk[kk];
                    if *c != 0 {
                        if rd.bits(1) == 1 && (*c & p1) == 0 {
                            *c = c.wrapping_add(if *c >= 0 { p1 } else { m1 });
                        }
                    } else {
                        r -= 1;
                        if r < 0 {
                            break;
                        }
                    }
                    kk += 1;
                }
                if val != 0 {
                    if kk > 63 {
                        return Err(Corrupt("AC run past the end of a block"));
                    }
                    blk[kk] = val;
                }
                kk += 1;
            }
        }
        if self.eobrun > 0 {
            while kk <= se {
                let c = &mut blk[kk];
                if *c != 0 && rd.bits(1) == 1 && (*c & p1) == 0 {
                    *c = c.wrapping_add(if *c >= 0 { p1 } else { m1 });
                }
                kk += 1;
            }
            self.eobrun -= 1;
        }
        Ok(())
    }
}

/// Decodes one scan into `planes`; returns where the data after it starts.
fn decode_scan(
    input: &[u8],
    pos: usize,
    frame: &Frame,
    tables: &Tables,
    scan: &Scan,
    planes: &mut [Plane],
) -> Result<usize, Corrupt> {
    let progressive = frame.process.is_progressive();
    if progressive {
        check_progressive_scan(scan)?;
    }
    if frame.process.is_arithmetic() {
        return super::arith::decode_scan(input, pos, frame, tables, scan, planes);
    }
    let (ss, se, ah, al) = (
        scan.ss as usize,
        scan.se as usize,
        scan.ah as u32,
        scan.al as u32,
    );
    let need_dc = !progressive || (ss == 0 && ah == 0);
    let need_ac = !progressive || ss > 0;
    let mut dcs = Vec::new();
    let mut acs = Vec::new();
    for sc in &scan.comps {
        dcs.push(if need_dc {
            if let Some(spec) = &tables.dc[sc.td] {
                check_dc_table(spec)?;
            }
            Some(table(&tables.dc[sc.td])?)
        } else {
            None
        });
        acs.push(if need_ac {
            Some(table(&tables.ac[sc.ta])?)
        } else {
            None
        });
    }
    let mut dec = HuffmanScan {
        rd: BitReader::new(input, pos),
        preds: [0; 4],
        eobrun: 0,
        dcs,
        acs,
        progressive,
        ss,
        se,
        ah,
        al,
    };
    walk_scan(frame, scan, planes, tables.restart_interval, &mut dec)?;
    if dec.rd.overrun() {
        return Err(Corrupt("truncated entropy-coded data"));
    }
    Ok(find_marker(input, dec.rd.pos).unwrap_or(input.len()))
}

fn be16(d: &[u8], i: usize) -> Option<usize> {
    Some(((*d.get(i)? as usize) << 8) | *d.get(i + 1)? as usize)
}

/// Decode every scan, edit (when there is an editor), and re-encode as a single
/// baseline scan.
pub(crate) fn run(input: &[u8], hdr: &Header, ed: Option<&McuEditor>) -> Result<Vec<u8>, Corrupt> {
    let f = &hdr.frame;
    let (mcus_x, mcus_y) = f.mcus();
    let mut planes: Vec<Plane> = (0..f.comps.len())
        .map(|i| {
            let (h, v) = f.sampling(i);
            Plane {
                bw: mcus_x * h,
                blocks: vec![[0i16; 64]; mcus_x * h * mcus_y * v],
            }
        })
        .collect();
    // The output carries the header's DQT segments only, so each component's
    // table must be defined there and be the one in force when the component's
    // first scan starts (decoders latch it then, as libjpeg does: a DQT between
    // scans changes nothing for components already scanned).
    if f.comps.iter().any(|c| hdr.tables.qt[c.tq].is_none()) {
        return Err(Corrupt("a component's quantisation table is not defined"));
    }
    let mut scanned = vec![false; f.comps.len()];
    let mut tables = hdr.tables.clone();
    let mut scan = hdr.scan.clone();
    let mut pos = hdr.data_start;
    let mut scans = 0;
    // Each scan is a pass over its components' blocks, about one step per coefficient of its
    // band; a progressive file may repeat a scan (libjpeg only warns), so a few hundred bytes
    // of repeated refinement scans over a 50 MP frame cost seconds. Ordinary encoders spend
    // 1–3 passes over the coefficients; at most 6 are allowed (never less than a 1 MP
    // image's worth), as in rubra-image's decoder.
    let coefficients: u64 = planes.iter().map(|p| p.blocks.len() as u64 * 64).sum();
    let budget = coefficients.max(3 << 20) * 6;
    let mut work = 0u64;
    loop {
        scans += 1;
        if scans > MAX_SCANS {
            return Err(Corrupt("too many scans"));
        }
        let band = if f.process.is_progressive() {
            u64::from(scan.se.saturating_sub(scan.ss)) + 1
        } else {
            64
        };
        for sc in &scan.comps {
            work += planes[sc.comp].blocks.len() as u64 * band;
        }
        if work > budget {
            return Err(Corrupt("more scans than an image of this size needs"));
        }
        for sc in &scan.comps {
            let tq = f.comps[sc.comp].tq;
            let first = !std::mem::replace(&mut scanned[sc.comp], true);
            // T.81 B.2.3: in sequential mode each component is in exactly one scan
            // (libjpeg: "Didn't expect more than one scan"; decoders disagree on
            // which scan's coefficients count).
            if !first && !f.process.is_progressive() {
                return Err(Corrupt("a component in two scans of a sequential JPEG"));
            }
            if first && tables.qt[tq] != hdr.tables.qt[tq] {
                return Err(Corrupt(
                    "a quantisation table is redefined before its component's first scan",
                ));
            }
        }
        pos = decode_scan(input, pos, f, &tables, &scan, &mut planes)?;
        // Markers between scans.
        let next = loop {
            if input.get(pos) != Some(&0xFF) {
                match find_marker(input, pos) {
                    Some(m) => pos = m,
                    None => break None,
                }
            }
            if pos + 1 >= input.len() {
                break None;
            }
            let marker = input[pos + 1];
            match marker {
                0xD9 => break None,
                0xD0..=0xD7 | 0x01 | 0xFF => pos += if marker == 0xFF { 1 } else { 2 },
                0xD8 => return Err(Corrupt("a second SOI marker")),
                // What libjpeg reads between scans: DHT, DAC, SOS, DQT, DNL, DRI,
                // APPn, COM. It refuses any other marker ("Unsupported marker type"),
                // where zune-jpeg reads on and sees other pixels.
                m if !matches!(m, 0xC4 | 0xCC | 0xDA..=0xDD | 0xE0..=0xEF | 0xFE) => {
                    return Err(Corrupt("a marker decoders do not know, between scans"));
                }
                _ => {
                    let len = be16(input, pos + 2).ok_or(Corrupt("truncated segment"))?;
                    let body = input
                        .get(pos + 4..pos + 2 + len)
                        .ok_or(Corrupt("truncated segment"))?;
                    if marker == 0xDA {
                        let s = parse_scan(f, body)?;
                        pos += 2 + len;
                        break Some(s);
                    }
                    apply_table_segment(&mut tables, marker, body)?;
                    pos += 2 + len;
                }
            }
        };
        match next {
            Some(s) => scan = s,
            None => break,
        }
    }

    if let Some(ed) = ed {
        edit(f, ed, &mut planes);
    }
    write_baseline(input, hdr, &planes)
}

/// Applies `ed` to the MCUs it covers.
fn edit(f: &Frame, ed: &McuEditor, planes: &mut [Plane]) {
    let (c0, r0, c1, r1) = ed.mcu_range();
    let mut buf = [[0i16; 64]; 10];
    for my in r0..=r1 {
        for mx in c0..=c1 {
            let mut n = 0;
            for (ci, p) in planes.iter().enumerate() {
                let (h, v) = f.sampling(ci);
                for by in 0..v {
                    for bx in 0..h {
                        buf[n] = p.blocks[(my * v + by) * p.bw + mx * h + bx];
                        n += 1;
                    }
                }
            }
            ed.edit(mx, my, &mut buf[..n]);
            n = 0;
            for (ci, p) in planes.iter_mut().enumerate() {
                let (h, v) = f.sampling(ci);
                for by in 0..v {
                    for bx in 0..h {
                        p.blocks[(my * v + by) * p.bw + mx * h + bx] = buf[n];
                        n += 1;
                    }
                }
            }
        }
    }
}

/// Writes the coefficients as one baseline scan with optimal Huffman tables,
/// keeping the original's APPn, COM and DQT segments.
fn write_baseline(input: &[u8], hdr: &Header, planes: &[Plane]) -> Result<Vec<u8>, Corrupt> {
    let f = &hdr.frame;
    let (mcus_x, mcus_y) = f.mcus();
    // Optimal tables: luma uses set 0, chroma set 1.
    let mut freq = [[[0u32; 257]; 2]; 2]; // [set][dc/ac]
    let walk = |visit: &mut Visit| -> Result<(), Corrupt> {
        for my in 0..mcus_y {
            for mx in 0..mcus_x {
                for (ci, p) in planes.iter().enumerate() {
                    let (h, v) = f.sampling(ci);
                    for by in 0..v {
                        for bx in 0..h {
                            visit(ci, &p.blocks[(my * v + by) * p.bw + mx * h + bx])?;
                        }
                    }
                }
            }
        }
        Ok(())
    };
    let mut preds = [0i32; 4];
    walk(&mut |ci, blk| {
        let set = (ci > 0) as usize;
        let [dc, ac] = &mut freq[set];
        count_block(blk, &mut preds[ci], dc, ac)
    })?;
    let nsets = if f.comps.len() == 1 { 1 } else { 2 };
    let specs: Vec<[HuffSpec; 2]> = (0..nsets)
        .map(|s| [optimal_table(&freq[s][0]), optimal_table(&freq[s][1])])
        .collect();
    let enc: Vec<[EncodeTable; 2]> = specs
        .iter()
        .map(|[d, a]| Ok([EncodeTable::new(d)?, EncodeTable::new(a)?]))
        .collect::<Result<_, Corrupt>>()?;

    // Header: SOI, APPn/COM/DQT from the original, then SOF0, DHT, SOS.
    let mut out = Vec::with_capacity(input.len());
    out.extend_from_slice(&[0xFF, 0xD8]);
    for seg in &hdr.segments {
        if matches!(seg.marker, 0xE0..=0xEF | 0xFE | 0xDB) {
            out.extend_from_slice(&input[seg.start..seg.end]);
        }
    }
    let nf = f.comps.len();
    let sof_len = 8 + 3 * nf;
    out.extend_from_slice(&[0xFF, 0xC0, (sof_len >> 8) as u8, sof_len as u8, 8]);
    out.extend_from_slice(&(f.height as u16).to_be_bytes());
    out.extend_from_slice(&(f.width as u16).to_be_bytes());
    out.push(nf as u8);
    for c in &f.comps {
        out.extend_from_slice(&[c.id, ((c.h << 4) | c.v) as u8, c.tq as u8]);
    }
    for (s, [d, a]) in specs.iter().enumerate() {
        for (class, spec) in [(0u8, d), (1u8, a)] {
            let len = 2 + 1 + 16 + spec.symbols.len();
            out.extend_from_slice(&[
                0xFF,
                0xC4,
                (len >> 8) as u8,
                len as u8,
                (class << 4) | s as u8,
            ]);
            out.extend_from_slice(&spec.counts);
            out.extend_from_slice(&spec.symbols);
        }
    }
    let sos_len = 6 + 2 * nf;
    out.extend_from_slice(&[0xFF, 0xDA, (sos_len >> 8) as u8, sos_len as u8, nf as u8]);
    for (ci, c) in f.comps.iter().enumerate() {
        let s = (ci > 0) as u8;
        out.extend_from_slice(&[c.id, (s << 4) | s]);
    }
    out.extend_from_slice(&[0, 63, 0]);

    let mut wr = BitWriter::new(out);
    let mut preds = [0i32; 4];
    walk(&mut |ci, blk| {
        let [d, a] = &enc[(ci > 0) as usize];
        wr.encode_block(blk, &mut preds[ci], d, a)
            .map_err(|_| Corrupt("internal: optimal table lacks a symbol"))
    })?;
    wr.pad();
    let mut out = wr.out;
    out.extend_from_slice(&[0xFF, 0xD9]);
    Ok(out)
}
