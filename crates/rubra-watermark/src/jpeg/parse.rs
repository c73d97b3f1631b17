//! JPEG marker parsing: frame header, quantisation and Huffman tables, restart
//! interval and scan headers, with byte offsets so unchanged segments can be copied.

use super::Corrupt;
use super::huffman::{HuffSpec, check_table};

/// Coding process declared by the SOF marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Process {
    /// SOF0/SOF1: sequential DCT, Huffman.
    Sequential,
    /// SOF2: progressive DCT, Huffman.
    Progressive,
    /// SOF9: sequential DCT, arithmetic coding.
    SequentialArith,
    /// SOF10: progressive DCT, arithmetic coding.
    ProgressiveArith,
    /// Anything else (lossless, hierarchical).
    Other(u8),
}

impl Process {
    /// Progressive (Huffman or arithmetic).
    pub fn is_progressive(self) -> bool {
        matches!(self, Process::Progressive | Process::ProgressiveArith)
    }

    /// Arithmetic-coded (sequential or progressive).
    pub fn is_arithmetic(self) -> bool {
        matches!(self, Process::SequentialArith | Process::ProgressiveArith)
    }
}

/// One frame component.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Component {
    pub id: u8,
    pub h: usize,
    pub v: usize,
    pub tq: usize,
}

/// The SOF contents.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub process: Process,
    pub precision: u8,
    pub width: usize,
    pub height: usize,
    pub comps: Vec<Component>,
}

impl Frame {
    /// Largest horizontal and vertical sampling factors.
    pub fn max_sampling(&self) -> (usize, usize) {
        if self.comps.len() == 1 {
            return (1, 1);
        }
        let h = self.comps.iter().map(|c| c.h).max().unwrap_or(1);
        let v = self.comps.iter().map(|c| c.v).max().unwrap_or(1);
        (h, v)
    }

    /// Sampling factors of component `i` as used for block layout (1×1 for a
    /// single-component frame, whatever the header says).
    pub fn sampling(&self, i: usize) -> (usize, usize) {
        if self.comps.len() == 1 {
            (1, 1)
        } else {
            (self.comps[i].h, self.comps[i].v)
        }
    }

    /// MCUs per row and per column of an interleaved scan.
    pub fn mcus(&self) -> (usize, usize) {
        let (hm, vm) = self.max_sampling();
        (self.width.div_ceil(8 * hm), self.height.div_ceil(8 * vm))
    }
}

/// One component of a scan: frame component index and table selectors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScanComp {
    pub comp: usize,
    pub td: usize,
    pub ta: usize,
}

/// An SOS header.
#[derive(Debug, Clone)]
pub(crate) struct Scan {
    pub comps: Vec<ScanComp>,
    pub ss: u8,
    pub se: u8,
    pub ah: u8,
    pub al: u8,
}

/// Tables in force at some point of the file.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tables {
    pub qt: [Option<[u16; 64]>; 4],
    pub dc: [Option<HuffSpec>; 4],
    pub ac: [Option<HuffSpec>; 4],
    pub restart_interval: usize,
    pub arith: ArithConditioning,
}

/// Arithmetic-coding conditioning (DAC segments): the DC bounds `L`, `U` and
/// the AC split `Kx` of each of the four tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ArithConditioning {
    pub dc_l: [u8; 4],
    pub dc_u: [u8; 4],
    pub ac_k: [u8; 4],
}

impl Default for ArithConditioning {
    /// T.81's defaults when no DAC segment is given: L = 0, U = 1, Kx = 5.
    fn default() -> Self {
        ArithConditioning {
            dc_l: [0; 4],
            dc_u: [1; 4],
            ac_k: [5; 4],
        }
    }
}

/// A marker segment seen before the first scan.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment {
    pub marker: u8,
    /// Offset of the 0xFF of the marker.
    pub start: usize,
    /// Offset just past the segment.
    pub end: usize,
}

/// Everything up to and including the first SOS.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub frame: Frame,
    pub tables: Tables,
    pub segments: Vec<Segment>,
    pub scan: Scan,
    /// Offset of the first entropy-coded byte of the first scan.
    pub data_start: usize,
    /// APP14 "Adobe" colour transform flag, if present.
    pub adobe_transform: Option<u8>,
}

fn be16(d: &[u8], i: usize) -> Result<usize, Corrupt> {
    match d.get(i..i + 2) {
        Some(b) => Ok(((b[0] as usize) << 8) | b[1] as usize),
        None => Err(Corrupt("truncated header")),
    }
}

/// Apply a DQT, DHT, DAC or DRI segment body to `t`.
pub(crate) fn apply_table_segment(t: &mut Tables, marker: u8, body: &[u8]) -> Result<(), Corrupt> {
    match marker {
        0xDB => {
            let mut i = 0;
            while i < body.len() {
                let (pq, tq) = (body[i] >> 4, (body[i] & 15) as usize);
                if tq > 3 || pq > 1 {
                    return Err(Corrupt("bad DQT"));
                }
                i += 1;
                let mut q = [0u16; 64];
                for v in q.iter_mut() {
                    *v = if pq == 0 {
                        let b = *body.get(i).ok_or(Corrupt("truncated DQT"))?;
                        i += 1;
                        b as u16
                    } else {
                        let v = be16(body, i)? as u16;
                        i += 2;
                        v
                    };
                    if *v == 0 {
                        return Err(Corrupt("zero quantiser"));
                    }
                }
                t.qt[tq] = Some(q);
            }
        }
        0xC4 => {
            let mut i = 0;
            while i < body.len() {
                let (tc, th) = (body[i] >> 4, (body[i] & 15) as usize);
                if tc > 1 || th > 3 {
                    return Err(Corrupt("bad DHT"));
                }
                let counts: [u8; 16] = body
                    .get(i + 1..i + 17)
                    .ok_or(Corrupt("truncated DHT"))?
                    .try_into()
                    .map_err(|_| Corrupt("truncated DHT"))?;
                let n: usize = counts.iter().map(|&c| c as usize).sum();
                if n > 256 {
                    return Err(Corrupt("bad DHT"));
                }
                let symbols = body
                    .get(i + 17..i + 17 + n)
                    .ok_or(Corrupt("truncated DHT"))?
                    .to_vec();
                i += 17 + n;
                let spec = HuffSpec { counts, symbols };
                // Every table a DHT defines must be valid, even one redefined before
                // any scan uses it: zune-jpeg checks each as it reads it (and refused
                // an output whose header kept such a table, a fuzz finding).
                check_table(&spec, tc == 0)?;
                if tc == 0 {
                    t.dc[th] = Some(spec);
                } else {
                    t.ac[th] = Some(spec);
                }
            }
        }
        // libjpeg refuses a DRI of any other length (JERR_BAD_LENGTH).
        0xDD if body.len() != 2 => return Err(Corrupt("DRI segment of the wrong length")),
        0xDD => t.restart_interval = be16(body, 0)?,
        0xCC => {
            for pair in body.chunks(2) {
                let &[tc_tb, cs] = pair else {
                    return Err(Corrupt("truncated DAC"));
                };
                let (tc, tb) = (tc_tb >> 4, usize::from(tc_tb & 15));
                if tb > 3 || tc > 1 {
                    return Err(Corrupt("bad DAC"));
                }
                if tc == 0 {
                    let (l, u) = (cs & 15, cs >> 4);
                    if l > u {
                        return Err(Corrupt("bad DAC"));
                    }
                    t.arith.dc_l[tb] = l;
                    t.arith.dc_u[tb] = u;
                } else {
                    if !(1..=63).contains(&cs) {
                        return Err(Corrupt("bad DAC"));
                    }
                    t.arith.ac_k[tb] = cs;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Parse an SOS body.
pub(crate) fn parse_scan(frame: &Frame, body: &[u8]) -> Result<Scan, Corrupt> {
    let ns = *body.first().ok_or(Corrupt("bad SOS"))? as usize;
    // T.81 B.2.3: Ls = 6 + 2·Ns exactly (libjpeg and zune-jpeg refuse any other).
    if ns == 0 || ns > 4 || body.len() != 1 + 2 * ns + 3 {
        return Err(Corrupt("bad SOS"));
    }
    let mut comps = Vec::with_capacity(ns);
    for k in 0..ns {
        let id = body[1 + 2 * k];
        let comp = frame
            .comps
            .iter()
            .position(|c| c.id == id)
            .ok_or(Corrupt("scan names an unknown component"))?;
        let t = body[2 + 2 * k];
        comps.push(ScanComp {
            comp,
            td: (t >> 4).min(3) as usize,
            ta: (t & 15).min(3) as usize,
        });
    }
    let j = 1 + 2 * ns;
    Ok(Scan {
        comps,
        ss: body[j],
        se: body[j + 1],
        ah: body[j + 2] >> 4,
        al: body[j + 2] & 15,
    })
}

fn parse_frame(marker: u8, body: &[u8]) -> Result<Frame, Corrupt> {
    if body.len() < 6 {
        return Err(Corrupt("bad SOF"));
    }
    let process = match marker {
        0xC0 | 0xC1 => Process::Sequential,
        0xC2 => Process::Progressive,
        0xC9 => Process::SequentialArith,
        0xCA => Process::ProgressiveArith,
        m => Process::Other(m),
    };
    let nf = body[5] as usize;
    // T.81 B.2.2: Lf = 8 + 3·Nf exactly.
    if nf == 0 || body.len() != 6 + 3 * nf {
        return Err(Corrupt("bad SOF"));
    }
    let mut comps = Vec::with_capacity(nf);
    for k in 0..nf {
        let c = &body[6 + 3 * k..9 + 3 * k];
        let (h, v) = ((c[1] >> 4) as usize, (c[1] & 15) as usize);
        if !(1..=4).contains(&h) || !(1..=4).contains(&v) || c[2] > 3 {
            return Err(Corrupt("bad sampling factors"));
        }
        comps.push(Component {
            id: c[0],
            h,
            v,
            tq: c[2] as usize,
        });
    }
    let frame = Frame {
        process,
        precision: body[0],
        height: be16(body, 1)?,
        width: be16(body, 3)?,
        comps,
    };
    if frame.width == 0 || frame.height == 0 {
        return Err(Corrupt("zero image dimension (DNL is not supported)"));
    }
    Ok(frame)
}

/// Parse from SOI to the first SOS.
pub(crate) fn parse_header(d: &[u8]) -> Result<Header, Corrupt> {
    if d.get(0..2) != Some(&[0xFF, 0xD8]) {
        return Err(Corrupt("not a JPEG"));
    }
    let mut i = 2;
    let mut tables = Tables::default();
    let mut frame = None;
    let mut segments = Vec::new();
    let mut adobe = None;
    loop {
        // Skip fill bytes and any garbage up to the next marker.
        while d.get(i) == Some(&0xFF) && d.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        if d.get(i) != Some(&0xFF) {
            return Err(Corrupt("expected a marker"));
        }
        let marker = *d.get(i + 1).ok_or(Corrupt("truncated header"))?;
        if marker == 0xD8 {
            // libjpeg: "two SOI markers"; zune-jpeg refuses it too.
            return Err(Corrupt("a second SOI marker"));
        }
        if (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            i += 2;
            continue;
        }
        if marker == 0xD9 {
            return Err(Corrupt("no scan before EOI"));
        }
        // What libjpeg reads in a header: SOFn, DHT, DAC, SOS, DQT, DNL, DRI, APPn, COM. It
        // refuses any other marker ("Unsupported marker type"), where a reader that skipped
        // it as a segment would see another image than the reference decoder.
        if !matches!(marker, 0xC0..=0xCF | 0xDA..=0xDD | 0xE0..=0xEF | 0xFE) {
            return Err(Corrupt("a marker decoders do not know, in the header"));
        }
        let len = be16(d, i + 2)?;
        if len < 2 {
            return Err(Corrupt("bad segment length"));
        }
        let body = d
            .get(i + 4..i + 2 + len)
            .ok_or(Corrupt("truncated header"))?;
        let seg = Segment {
            marker,
            start: i,
            end: i + 2 + len,
        };
        segments.push(seg);
        match marker {
            0xC0..=0xCF if marker != 0xC4 && marker != 0xC8 && marker != 0xCC => {
                if frame.is_some() {
                    return Err(Corrupt("two frames"));
                }
                frame = Some(parse_frame(marker, body)?);
            }
            0xDB | 0xC4 | 0xDD | 0xCC => apply_table_segment(&mut tables, marker, body)?,
            0xEE if body.len() >= 12 && body.starts_with(b"Adobe") => {
                // T.872 defines transforms 0 (none), 1 (YCbCr) and 2 (YCCK); zune-jpeg
                // refuses any other, so an output keeping the segment would not decode.
                if body[11] > 2 {
                    return Err(Corrupt("unknown Adobe colour transform"));
                }
                adobe = Some(body[11]);
            }
            0xDA => {
                let frame = frame.ok_or(Corrupt("SOS before SOF"))?;
                let scan = parse_scan(&frame, body)?;
                return Ok(Header {
                    frame,
                    tables,
                    segments,
                    scan,
                    data_start: seg.end,
                    adobe_transform: adobe,
                });
            }
            _ => {}
        }
        i = seg.end;
    }
}
