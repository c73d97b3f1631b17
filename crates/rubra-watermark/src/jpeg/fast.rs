//! The baseline fast path: copy the entropy-coded bytes before the first changed
//! MCU verbatim (found by a decode-only skip that tracks just the DC predictors,
//! see `skip`, or by jumping to a restart marker), re-encode only the MCUs from there to just
//! past the last changed one with the image's own Huffman tables, and copy the
//! rest: verbatim where it keeps its bit position (after a restart marker, or once
//! [`realign`] has brought the writer there; the caller may then send it from the input),
//! else bit-shifted.

use super::edit::McuEditor;
use super::huffman::{
    BitReader, BitWriter, DecodeTable, EncodeTable, WriterMark, after_restart_marker,
    check_dc_table, find_marker, next_data_byte, stuffed_ff_end, zrl_room,
};
use super::parse::{Header, Tables, apply_table_segment};
use super::skip::{BlockCoding, skip_from, skip_mcus};
use super::{Corrupt, Made};

/// Why the fast path could not finish.
#[derive(Debug)]
pub(crate) enum FastError {
    /// The input is malformed.
    Corrupt(Corrupt),
    /// A changed block needs a symbol the image's Huffman tables lack.
    MissingSymbol,
}

impl From<Corrupt> for FastError {
    fn from(c: Corrupt) -> Self {
        FastError::Corrupt(c)
    }
}

/// Per-scan-component coding tables.
struct CompTables {
    dc: std::sync::Arc<DecodeTable>,
    ac: std::sync::Arc<DecodeTable>,
    edc: EncodeTable,
    eac: EncodeTable,
}

/// How many MCUs before the end of the re-encoded stretch may take ZRL codes to bring the
/// copied tail back to its bit position in the byte (see [`realign`]). With 8, a q90 4:4:4
/// photo found room in half of its placements only (its luma blocks full of coefficients).
const REALIGN_MCUS: usize = 64;

/// What one step of the re-encoded stretch's last [`REALIGN_MCUS`] MCUs wrote.
enum Step {
    /// An MCU re-encoded from the blocks at this index of [`Replay::blocks`] on.
    Mcu(usize),
    /// Unchanged MCUs copied from the input, raw position `from` to `to`.
    Copy((usize, u32), (usize, u32)),
}

/// A step kept to be written again: where the writer stood before it, the DC predictors
/// there, and what it wrote.
struct Kept {
    mark: WriterMark,
    preds: [i32; 4],
    step: Step,
}

/// The re-encoded stretch's last steps and the blocks of their MCUs.
#[derive(Default)]
struct Replay {
    steps: Vec<Kept>,
    blocks: Vec<[i16; 64]>,
}

/// Position just after the `n`-th (1-based) restart marker from `from`; the
/// markers must be RST0, RST1, … in sequence (see [`after_restart_marker`]).
fn after_nth_restart(data: &[u8], mut from: usize, n: usize) -> Result<usize, Corrupt> {
    for k in 0..n {
        from = after_restart_marker(data, from, (k % 8) as u8)?;
    }
    Ok(from)
}

/// Copy destuffed bits from raw byte `p`, bit `b`, up to the next marker, into `wr`.
/// Returns the marker's offset (or the end of the data).
fn copy_bits(wr: &mut BitWriter, data: &[u8], p: usize, b: u32) -> usize {
    let mut i = p;
    if b > 0 {
        let byte = data[i];
        wr.put((byte & (0xFF >> b)) as u32, 8 - b);
        i = next_data_byte(data, i);
    }
    loop {
        if let Some(chunk) = data.get(i..i + 4) {
            let w = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let v = !w;
            if (v.wrapping_sub(0x0101_0101) & !v & 0x8080_8080) == 0 {
                wr.put(w, 32);
                i += 4;
                continue;
            }
        }
        match data.get(i) {
            None => return i,
            // A data byte 0xFF, stuffed, perhaps after fill bytes (`stuffed_ff_end`),
            // or a marker: the scan's end.
            Some(0xFF) => match stuffed_ff_end(data, i) {
                Some(next) => {
                    wr.put(0xFF, 8);
                    i = next;
                }
                None => return i,
            },
            Some(&x) => {
                wr.put(x as u32, 8);
                i += 1;
            }
        }
    }
}

/// Run the fast path on a single-scan baseline JPEG whose scan lists the frame's
/// components in frame order. With `share` the input's unchanged head (the bytes before
/// the first changed MCU, often nearly all of it) and, where the rest of the scan is the
/// input's own bytes up to its end, its tail are left out of the bytes returned, for the
/// caller to send from the input itself; else `prefix` and `suffix` are 0.
pub(crate) fn run(
    input: &[u8],
    hdr: &Header,
    ed: &McuEditor,
    share: bool,
) -> Result<Made, FastError> {
    let f = &hdr.frame;
    let (mcus_x, mcus_y) = f.mcus();
    let total = mcus_x * mcus_y;
    let mut tables = Vec::new();
    for sc in &hdr.scan.comps {
        let dc = hdr.tables.dc[sc.td]
            .as_ref()
            .ok_or(Corrupt("missing DC table"))?;
        check_dc_table(dc)?;
        let ac = hdr.tables.ac[sc.ta]
            .as_ref()
            .ok_or(Corrupt("missing AC table"))?;
        tables.push(CompTables {
            dc: DecodeTable::cached(dc, false)?,
            ac: DecodeTable::cached(ac, true)?,
            edc: EncodeTable::new(dc)?,
            eac: EncodeTable::new(ac)?,
        });
    }
    // Scan-component index of each block of an MCU.
    let mut layout = Vec::new();
    for (k, sc) in hdr.scan.comps.iter().enumerate() {
        let (h, v) = f.sampling(sc.comp);
        layout.extend(std::iter::repeat_n(k, h * v));
    }
    let nb = layout.len();
    if nb > 10 {
        return Err(Corrupt("more than 10 blocks per MCU").into());
    }

    let codings: Vec<BlockCoding> = layout
        .iter()
        .map(|&k| (k, &*tables[k].dc, &*tables[k].ac))
        .collect();
    let (c0, r0, c1, r1) = ed.mcu_range();
    let m_first = r0 * mcus_x + c0;
    let m_last = r1 * mcus_x + c1;
    let ri = hdr.tables.restart_interval;
    let mut preds = [0i32; 4];
    let prefix;
    let m_start;
    let m_end;
    let mut rd;
    let mut wr;
    if let Some(j0) = m_first.checked_div(ri) {
        let start = if j0 == 0 {
            hdr.data_start
        } else {
            after_nth_restart(input, hdr.data_start, j0)?
        };
        prefix = if share { start } else { 0 };
        let mut out = Vec::with_capacity(input.len() - prefix + input.len() / 16 + 64);
        out.extend_from_slice(&input[prefix..start]);
        wr = BitWriter::new(out);
        rd = BitReader::new(input, start);
        m_start = j0 * ri;
        m_end = ((m_last / ri + 1) * ri).min(total);
    } else {
        (rd, preds) = skip_mcus(input, hdr.data_start, m_first, total, &codings)?;
        let (p, b) = rd.raw_bit_position()?;
        prefix = if share { p } else { 0 };
        let mut out = Vec::with_capacity(input.len() - prefix + input.len() / 16 + 64);
        out.extend_from_slice(&input[prefix..p]);
        wr = BitWriter::new(out);
        if b > 0 {
            wr.put((input[p] >> (8 - b)) as u32, b);
        }
        m_start = m_first;
        // One MCU past the last changed one, so the DC predictors are back in step.
        m_end = (m_last + 2).min(total);
    }

    // Without restart markers the rest of the scan is copied bit-shifted (see the tail
    // below): the last MCUs are kept to be written again should the shift need mending.
    let tail_copied = ri == 0 && m_end < total;
    let replay_from = if tail_copied {
        m_end.saturating_sub(REALIGN_MCUS)
    } else {
        usize::MAX
    };
    let mut replay = Replay::default();
    let mut enc_preds = preds;
    let mut blocks = [[0i16; 64]; 10];
    let is_dirty = |m: usize| {
        let (mx, my) = (m % mcus_x, m / mcus_x);
        (c0..=c1).contains(&mx) && (r0..=r1).contains(&my)
    };
    let mut m = m_start;
    while m < m_end {
        if ri > 0 && m > m_start && m % ri == 0 {
            rd.restart(((m / ri - 1) % 8) as u8)?;
            preds = [0; 4];
            enc_preds = [0; 4];
            wr.marker(0xD0 + ((m / ri - 1) % 8) as u8);
        }
        // The writer and the DC predictors before this step, for the steps kept.
        let before = (m >= replay_from).then(|| (wr.mark(), enc_preds));
        let dirty = is_dirty(m);
        if !dirty && preds == enc_preds {
            // Unchanged MCUs with the predictors in step: their bits are
            // identical, so the whole run up to the next changed MCU (or restart
            // marker) is skipped and copied in one go.
            let mut run_end = m + 1;
            while run_end < m_end && !is_dirty(run_end) && (ri == 0 || run_end % ri != 0) {
                run_end += 1;
            }
            let from = rd.raw_bit_position()?;
            (rd, preds) = skip_from(
                input,
                hdr.data_start,
                from,
                (m, preds),
                run_end,
                total,
                &codings,
            )?;
            enc_preds = preds;
            let to = rd.raw_bit_position()?;
            wr.copy_range(input, from, to);
            if let Some((mark, preds)) = before {
                replay.steps.push(Kept {
                    mark,
                    preds,
                    step: Step::Copy(from, to),
                });
            }
            m = run_end;
            continue;
        }
        for (bi, &k) in layout.iter().enumerate() {
            let t = &tables[k];
            rd.decode_block(&mut blocks[bi], &mut preds[k], &t.dc, &t.ac)?;
        }
        if dirty {
            ed.edit(m % mcus_x, m / mcus_x, &mut blocks[..nb]);
        }
        for (bi, &k) in layout.iter().enumerate() {
            let t = &tables[k];
            wr.encode_block(&blocks[bi], &mut enc_preds[k], &t.edc, &t.eac)
                .map_err(|_| FastError::MissingSymbol)?;
        }
        if let Some((mark, preds)) = before {
            replay.steps.push(Kept {
                mark,
                preds,
                step: Step::Mcu(replay.blocks.len()),
            });
            replay.blocks.extend_from_slice(&blocks[..nb]);
        }
        m += 1;
    }
    if rd.overrun() {
        return Err(Corrupt("truncated entropy-coded data").into());
    }
    // Where the input's own bytes take over, to the scan's end.
    let own = if tail_copied {
        let (p, b) = rd.raw_bit_position()?;
        // The tail is copied, not decoded, so the scan may end before its last MCU (a
        // short scan). A decoder then reads 0-bits for what is missing, and libjpeg leaves
        // every MCU after the one that ran out all zero. Copied at another bit position in
        // the byte, the tail ends at another place in its last byte, and the padding to the
        // byte boundary becomes data: it may complete the MCU that ran out, and the next one
        // is decoded from zeros instead of left blank (a fuzz finding). So the tail keeps
        // its position: ZRL codes in the last re-encoded blocks make up the difference, or,
        // where the tables or blocks leave no room for them, the tail is decoded to make
        // sure the scan is complete (a short one is refused, as the other routes refuse it).
        if wr.bit_offset() != b {
            let realigned = realign(&mut wr, input, &replay, &layout, &tables, b)?;
            if !realigned {
                let (tail, _) = skip_from(
                    input,
                    hdr.data_start,
                    (p, b),
                    (m_end, preds),
                    total,
                    total,
                    &codings,
                )?;
                if tail.overrun() {
                    return Err(Corrupt("truncated entropy-coded data").into());
                }
            }
        }
        if wr.bit_offset() == b {
            // In step with the input: after the byte the two share, the rest of the scan
            // is the input's own bytes (the reference load's north-west watermark copied
            // ~0.9 MB bit by bit before).
            if b > 0 {
                wr.put(u32::from(input[p] & (0xFF >> b)), 8 - b);
            }
            wr.pad_with(false);
            if b > 0 { next_data_byte(input, p) } else { p }
        } else {
            let rest = copy_bits(&mut wr, input, p, b);
            // 0-bits, not T.81's 1-bits: the same 0-bits a decoder reads past the end of a
            // short scan. Past a complete scan's last MCU the padding is read by no decoder.
            wr.pad_with(false);
            rest
        }
    } else {
        wr.pad();
        find_marker(input, rd.pos).unwrap_or(input.len())
    };
    let mut out = wr.out;
    let (scan_end, eoi) = scan_end_and_eoi(input, own)?;
    // From `own` on the output is the input's bytes to the scan's end, then from EOI on.
    if share && eoi == Some(scan_end) {
        return Ok(Made {
            prefix,
            out,
            suffix: input.len() - own,
        });
    }
    out.extend_from_slice(&input[own..scan_end]);
    match eoi {
        Some(eoi) => out.extend_from_slice(&input[eoi..]),
        None => out.extend_from_slice(&[0xFF, 0xD9]),
    }
    Ok(Made {
        prefix,
        out,
        suffix: 0,
    })
}

/// Writes the last of `replay`'s steps again with ZRL codes before some blocks' EOBs (the
/// same coefficients to every decoder), so that the writer ends at bit `b` of its byte: where
/// the copied tail starts in the input. Picks the fewest ZRLs that get there, in the blocks
/// nearest the end, and writes again from the first step that takes one. `false` when no
/// choice gets there (the tables have no ZRL code, or of an even length where an odd count of
/// bits is missing, or the blocks' zeros leave no room); the writer is then as it was.
fn realign(
    wr: &mut BitWriter,
    input: &[u8],
    replay: &Replay,
    layout: &[usize],
    tables: &[CompTables],
    b: u32,
) -> Result<bool, FastError> {
    let need = ((b + 8 - wr.bit_offset()) % 8) as usize;
    // Blocks that can take ZRLs, the last first: (step, block, room, ZRL code length mod 8).
    let mut cands = Vec::new();
    for (si, kept) in replay.steps.iter().enumerate().rev() {
        if let Step::Mcu(first) = kept.step {
            for (bi, &k) in layout.iter().enumerate().rev() {
                let z = usize::from(tables[k].eac.code_len(0xF0)) % 8;
                let room = zrl_room(&replay.blocks[first + bi]) as usize;
                if z != 0 && room > 0 {
                    cands.push((si, bi, room, z));
                }
            }
        }
    }
    // Fewest ZRLs reaching each residue of the added bits mod 8, block by block (on a tie
    // the blocks nearer the end keep it), and the count each block took to get there.
    let mut cost = [usize::MAX; 8];
    cost[0] = 0;
    let mut picks: Vec<[u8; 8]> = Vec::with_capacity(cands.len());
    for &(_, _, room, z) in &cands {
        let mut next = [usize::MAX; 8];
        let mut pick = [0u8; 8];
        for (r, &c) in cost.iter().enumerate() {
            if c == usize::MAX {
                continue;
            }
            for n in 0..=room {
                let to = (r + n * z) % 8;
                if c + n < next[to] {
                    next[to] = c + n;
                    pick[to] = n as u8;
                }
            }
        }
        cost = next;
        picks.push(pick);
        if cost[need] == 0 {
            break;
        }
    }
    if cost[need] == usize::MAX {
        return Ok(false);
    }
    // (step, block) -> ZRLs, back from the last candidate the DP saw.
    let mut zrls = Vec::new();
    let mut r = need;
    for (i, pick) in picks.iter().enumerate().rev() {
        let n = usize::from(pick[r]);
        let (si, bi, _, z) = cands[i];
        if n > 0 {
            zrls.push((si, bi, n as u32));
        }
        r = (r + 8 - (n * z) % 8) % 8;
    }
    let Some(from) = zrls.iter().map(|&(si, ..)| si).min() else {
        return Ok(false);
    };
    wr.rewind(replay.steps[from].mark);
    for (si, kept) in replay.steps.iter().enumerate().skip(from) {
        match kept.step {
            Step::Copy(at, to) => wr.copy_range(input, at, to),
            Step::Mcu(first) => {
                let mut preds = kept.preds;
                for (bi, &k) in layout.iter().enumerate() {
                    let n = zrls
                        .iter()
                        .find(|&&(s, blk, _)| (s, blk) == (si, bi))
                        .map_or(0, |&(.., n)| n);
                    let t = &tables[k];
                    wr.encode_block_with_zrls(
                        &replay.blocks[first + bi],
                        &mut preds[k],
                        &t.edc,
                        &t.eac,
                        n,
                    )
                    .map_err(|_| FastError::MissingSymbol)?;
                }
            }
        }
    }
    // Checked in release builds too: a misaligned tail is what this exists to prevent, and
    // the caller then decodes the tail instead.
    debug_assert_eq!(wr.bit_offset(), b, "realigned");
    Ok(wr.bit_offset() == b)
}

/// From `from` (inside the scan or at its end): where the scan's entropy-coded data
/// ends (the first marker that is not a restart marker), and the input's EOI, found
/// by walking the segments between the two, or `None` when there is none. Those
/// segments are dropped from the output: in a single-scan file they can only be
/// tables no scan uses, or damage, which decoders read differently once the
/// entropy-coded bytes before them have moved (zune-jpeg decoded one input with a
/// bad DHT there and refused the output).
///
/// # Errors
/// A second SOI, a frame header, a second scan or a marker T.81 does not define (or
/// libjpeg does not read) there is corrupt, as libjpeg says ("two SOI markers", "Unsupported
/// marker type"): the scan was cut short, and zune-jpeg, which reads on past such a
/// marker, would see other pixels in the input than in the output.
fn scan_end_and_eoi(input: &[u8], from: usize) -> Result<(usize, Option<usize>), Corrupt> {
    let mut pos = from;
    let scan_end = loop {
        match find_marker(input, pos) {
            Some(m) if (0xD0..=0xD7).contains(&input[m + 1]) => pos = m + 2,
            Some(m) => break m,
            None => return Ok((input.len(), None)),
        }
    };
    pos = scan_end;
    loop {
        let Some(m) = find_marker(input, pos) else {
            return Ok((scan_end, None));
        };
        match input[m + 1] {
            0xD9 => return Ok((scan_end, Some(m))),
            0x01 | 0xD0..=0xD7 => pos = m + 2,
            // DHT, DAC, DQT, DNL, DRI, APPn, COM: segments libjpeg reads there.
            0xC4 | 0xCC | 0xDB..=0xDD | 0xE0..=0xEF | 0xFE => match input.get(m + 2..m + 4) {
                Some(&[hi, lo]) => {
                    let end = m + 2 + ((usize::from(hi) << 8) | usize::from(lo));
                    // libjpeg reads the tables there as it looks for EOI, and refuses the
                    // whole file for a bad one ("Bogus Huffman table definition"); dropped
                    // from the output, it would leave a file that decodes (a fuzz finding).
                    // They are checked as the header's are, as the coefficient route checks
                    // them: a little stricter than libjpeg on tables no scan uses (a DHT's
                    // code space, a zero quantiser), which then are refused too.
                    if let (0xC4 | 0xCC | 0xDB | 0xDD, Some(body)) =
                        (input[m + 1], input.get(m + 4..end))
                    {
                        apply_table_segment(&mut Tables::default(), input[m + 1], body)?;
                    }
                    pos = end;
                }
                _ => return Ok((scan_end, None)),
            },
            0xD8 => return Err(Corrupt("a second SOI marker")),
            // The scan held every component, so a second one repeats one, which
            // libjpeg refuses ("Didn't expect more than one scan") and zune-jpeg
            // decodes over the first (the coefficient route refuses it too).
            0xDA => return Err(Corrupt("a component in two scans of a sequential JPEG")),
            0xC0..=0xCF => return Err(Corrupt("a second frame header")),
            _ => return Err(Corrupt("a marker decoders do not know, after the scan")),
        }
    }
}
