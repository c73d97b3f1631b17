//! Tests of the skip: the scalar chains, the vector lanes (against the scalar
//! chains and a full decode), clean, crafted and damaged scans.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::jpeg::parse::parse_header;

/// A noisy picture with smooth parts, like a photo, as a baseline JPEG.
fn photo_jpeg(w: u16, h: u16, quality: u8, sampling: jpeg_encoder::SamplingFactor) -> Vec<u8> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut rgb = Vec::with_capacity(usize::from(w) * usize::from(h) * 3);
    for y in 0..usize::from(h) {
        for x in 0..usize::from(w) {
            let n = (rng.next() >> 58) as usize;
            rgb.push(((x * 255 / usize::from(w)) ^ n) as u8);
            rgb.push(((y * 3 + x) % 256) as u8);
            rgb.push((((x / 9 + y / 7) % 2) * 200 + n) as u8);
        }
    }
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, quality);
    enc.set_sampling_factor(sampling);
    enc.encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

/// The skip with one chain and the plain reader (`decode`: decoding every
/// coefficient, with the fast table and the code-by-code path only, which
/// checks the skip tables themselves): the reference.
fn walk(
    data: &[u8],
    start: usize,
    count: usize,
    blocks: &[BlockCoding],
    decode: bool,
) -> Result<((usize, u32), [i32; 4]), Corrupt> {
    let mut rd = BitReader::new(data, start);
    let mut preds = [0; 4];
    let mut blk = [0i16; 64];
    for _ in 0..count {
        for &(k, dc, ac) in blocks {
            if decode {
                rd.decode_block(&mut blk, &mut preds[k], dc, ac)?;
            } else {
                rd.skip_block(&mut preds[k], dc, ac)?;
            }
        }
    }
    Ok((rd.raw_bit_position()?, preds))
}

fn one_chain(
    data: &[u8],
    start: usize,
    count: usize,
    blocks: &[BlockCoding],
) -> ((usize, u32), [i32; 4]) {
    walk(data, start, count, blocks, false).unwrap()
}

fn decoded(
    data: &[u8],
    start: usize,
    count: usize,
    blocks: &[BlockCoding],
) -> ((usize, u32), [i32; 4]) {
    walk(data, start, count, blocks, true).unwrap()
}

#[test]
fn two_chains_land_where_one_does_and_meet() {
    use jpeg_encoder::SamplingFactor as S;
    for (w, h, q, sampling) in [
        (640, 480, 90, S::F_2_2),
        (500, 333, 75, S::F_1_1),
        (333, 257, 95, S::F_2_1),
    ] {
        let data = photo_jpeg(w, h, q, sampling);
        let hdr = parse_header(&data).unwrap();
        let tables = scan_tables(&hdr).unwrap();
        let blocks = mcu_blocks(&hdr, &tables);
        let (mx, my) = hdr.frame.mcus();
        let before = MEETINGS.with(|m| m.get());
        let total = mx * my;
        for count in [0, 1, 63, 64, 65, total / 3, total / 2, total - 1, total] {
            let (rd, preds) = skip_mcus(&data, hdr.data_start, count, total, &blocks).unwrap();
            let got = (rd.raw_bit_position().unwrap(), preds);
            assert_eq!(
                got,
                one_chain(&data, hdr.data_start, count, &blocks),
                "{w}x{h} q{q} at MCU {count} of {total}"
            );
            assert_eq!(
                got,
                decoded(&data, hdr.data_start, count, &blocks),
                "{w}x{h} q{q} at MCU {count} of {total}, decoded"
            );
        }
        assert!(
            MEETINGS.with(|m| m.get()) > before,
            "{w}x{h}: the chains never met"
        );
    }
}

/// A skip step reads a code and up to 15 extra bits (a table may hold AC
/// size 15, whatever real coefficients need): `BitReader::ac_step` refilled
/// only below 26 bits, so a 12-bit code of size 15 (27 bits) at 26 buffered
/// bits took more bits than it held, and the bit count went below zero (a
/// panic with overflow checks).
#[test]
fn a_27_bit_ac_symbol_with_26_bits_buffered_is_read_after_a_refill() {
    use crate::jpeg::huffman::HuffSpec;
    // EOB is `0`; symbol 0x0F (run 0, size 15) is `1000 0000 0000`.
    let mut counts = [0u8; 16];
    counts[0] = 1;
    counts[11] = 1;
    let spec = HuffSpec {
        counts,
        symbols: vec![0x00, 0x0F],
    };
    let ac = DecodeTable::new(&spec, true).unwrap();
    // 30 bits of padding, then the 12-bit code (its 1 is bit 30) and 15 zero
    // bits, then EOBs.
    let mut data = vec![0u8; 16];
    data[3] = 0b0000_0010;
    let mut rd = BitReader::new(&data, 0);
    rd.bits(16);
    rd.bits(14);
    assert_eq!(rd.parts().2, 26, "bits buffered before the step");
    let mut k = 1;
    rd.ac_step(&ac, &mut k).unwrap();
    assert_eq!(k, 2);
    // 30 + 27 bits read: byte 7, bit 1.
    assert_eq!(rd.raw_bit_position().unwrap(), (7, 1));
    rd.ac_step(&ac, &mut k).unwrap();
    assert!(k >= 64, "the EOB ends the block");
}

#[test]
fn corrupted_entropy_data_is_an_error_or_the_plain_readers_result_never_a_panic() {
    let data = photo_jpeg(640, 480, 90, jpeg_encoder::SamplingFactor::F_2_2);
    let hdr = parse_header(&data).unwrap();
    let (mx, my) = hdr.frame.mcus();
    let dc = DecodeTable::new(hdr.tables.dc[0].as_ref().unwrap(), false).unwrap();
    let ac = DecodeTable::new(hdr.tables.ac[0].as_ref().unwrap(), true).unwrap();
    let dc1 = DecodeTable::new(hdr.tables.dc[1].as_ref().unwrap(), false).unwrap();
    let ac1 = DecodeTable::new(hdr.tables.ac[1].as_ref().unwrap(), true).unwrap();
    let blocks: Vec<BlockCoding> = vec![
        (0, &dc, &ac),
        (0, &dc, &ac),
        (0, &dc, &ac),
        (0, &dc, &ac),
        (1, &dc1, &ac1),
        (2, &dc1, &ac1),
    ];
    let mut rng = Rng(7);
    let mut seed = 0;
    for round in 0..300 {
        let mut bad = data.clone();
        for _ in 0..1 + round % 8 {
            seed = rng.next();
            let at = hdr.data_start + (seed as usize) % (bad.len() - hdr.data_start - 2);
            bad[at] = (seed >> 32) as u8;
        }
        if round % 50 == 0 {
            bad.truncate(hdr.data_start + (seed as usize) % (bad.len() - hdr.data_start));
        }
        let count = (seed as usize >> 8) % (mx * my + 1);
        let got = skip_mcus(&bad, hdr.data_start, count, mx * my, &blocks)
            .and_then(|(rd, preds)| Ok((rd.raw_bit_position()?, preds)));
        // Where the plain reader gets through too, both land on the same bit.
        for decode in [false, true] {
            if let (Ok(got), Ok(want)) = (&got, &walk(&bad, hdr.data_start, count, &blocks, decode))
            {
                assert_eq!(got, want, "round {round}, MCU {count}");
            }
        }
    }
}

/// Runs `f` with the decode tables and block layout of `data`'s scan.
fn with_blocks<R>(data: &[u8], f: impl FnOnce(usize, usize, &[BlockCoding]) -> R) -> R {
    let hdr = parse_header(data).unwrap();
    let tables = scan_tables(&hdr).unwrap();
    let blocks = mcu_blocks(&hdr, &tables);
    let (mx, my) = hdr.frame.mcus();
    f(hdr.data_start, mx * my, &blocks)
}

/// Skips the vector lanes have carried on this thread so far.
fn lane_skips() -> usize {
    LANE_SKIPS.with(|n| n.get())
}

/// Fails unless the lanes carried at least `at_least` of `what` since `before`
/// (a [`lane_skips`] count), on a CPU that has them.
fn assert_lanes_carried(before: usize, at_least: usize, what: &str) {
    if lanes_here() {
        let carried = lane_skips() - before;
        assert!(
            carried >= at_least,
            "the lanes carried {carried} of {what}, fewer than {at_least}"
        );
    }
}

/// Whether this machine runs the lanes; says so when it does not.
fn lanes_here() -> bool {
    let here = std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw");
    if !here {
        eprintln!("skipped: no AVX-512 on this CPU, the vector lanes were not run");
    }
    here
}

#[test]
fn vector_lanes_land_where_the_scalar_chains_and_a_full_decode_do() {
    use jpeg_encoder::SamplingFactor as S;
    let before = lane_skips();
    for (w, h, q, sampling) in [
        (1280, 960, 90, S::F_2_2),
        (1024, 768, 75, S::F_1_1),
        (1200, 800, 95, S::F_2_1),
        (800, 1200, 50, S::F_1_2),
    ] {
        let data = photo_jpeg(w, h, q, sampling);
        with_blocks(&data, |start, total, blocks| {
            for count in [
                1024,
                1500,
                total / 3,
                total / 2,
                total * 9 / 10,
                total - 1,
                total,
            ] {
                let [lanes, scalar] = both_ways(&data, start, count, total, blocks);
                let lanes = lanes.unwrap();
                assert_eq!(
                    lanes,
                    scalar.unwrap(),
                    "{w}x{h} q{q}, MCU {count} of {total}"
                );
                assert_eq!(
                    lanes,
                    decoded(&data, start, count, blocks),
                    "{w}x{h} q{q}, MCU {count} of {total}, decoded"
                );
            }
        });
    }
    // Grey: one block an MCU, one DC sum.
    let mut rng = Rng(3);
    let (w, h) = (1024u16, 640u16);
    let grey: Vec<u8> = (0..usize::from(w) * usize::from(h))
        .map(|i| {
            ((i % usize::from(w)) / 4 + (i / usize::from(w)) / 5 + (rng.next() >> 60) as usize)
                as u8
        })
        .collect();
    let mut data = Vec::new();
    jpeg_encoder::Encoder::new(&mut data, 85)
        .encode(&grey, w, h, jpeg_encoder::ColorType::Luma)
        .unwrap();
    with_blocks(&data, |start, total, blocks| {
        for count in [1024, total / 2, total - 1, total] {
            let [lanes, scalar] = both_ways(&data, start, count, total, blocks);
            let lanes = lanes.unwrap();
            assert_eq!(lanes, scalar.unwrap(), "grey, MCU {count} of {total}");
            assert_eq!(
                lanes,
                decoded(&data, start, count, blocks),
                "grey, MCU {count}"
            );
        }
    });
    assert_lanes_carried(before, 1, "the grey and colour skips");
}

#[test]
fn vector_lanes_on_damaged_data_agree_with_the_scalar_chains() {
    let data = photo_jpeg(1024, 768, 90, jpeg_encoder::SamplingFactor::F_2_2);
    with_blocks(&data, |start, total, blocks| {
        let mut rng = Rng(11);
        let mut seed = 0;
        let mut agreed_ok = 0;
        for round in 0..60 {
            let mut bad = data.clone();
            for _ in 0..1 + round % 4 {
                seed = rng.next();
                let at = start + (seed as usize) % (bad.len() - start - 2);
                bad[at] = (seed >> 32) as u8;
            }
            if round % 20 == 0 {
                bad.truncate(start + (seed as usize) % (bad.len() - start));
            }
            let count = 1024 + (seed as usize >> 8) % (total - 1023);
            let [lanes, scalar] = both_ways(&bad, start, count, total, blocks);
            match (&lanes, &scalar) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a, b, "round {round}, MCU {count}");
                    agreed_ok += 1;
                }
                (Err(_), Err(_)) => {}
                _ => panic!("round {round}, MCU {count}: lanes {lanes:?}, scalar {scalar:?}"),
            }
        }
        // Damage far from the skip's end leaves most skips whole.
        assert!(agreed_ok > 0, "no damaged file was skipped at all");
    });
}

// Adversarial tests of the vector lanes (review of the AVX-512 skip):
// synthetic scans with crafted tables, every layout, stuffing and fill
// bytes everywhere, cuts and damage; the lanes must land where the scalar
// chains do, or fail where they fail.

use crate::jpeg::huffman::{BitWriter, EncodeTable, HuffSpec};
use crate::jpeg::xorshift::Rng;

/// A Huffman spec giving each symbol the code length beside it, codes in
/// canonical order (by length, then as listed).
fn spec(lens: &[(u8, u8)]) -> HuffSpec {
    let mut sorted = lens.to_vec();
    sorted.sort_by_key(|&(_, l)| l);
    let mut counts = [0u8; 16];
    for &(_, l) in &sorted {
        counts[usize::from(l) - 1] += 1;
    }
    HuffSpec {
        counts,
        symbols: sorted.iter().map(|&(s, _)| s).collect(),
    }
}

/// Gives every AC symbol an 8-bit encoder may write (EOB, ZRL, run/size)
/// that `lens` lacks a length from `from` on, cycling over `spread` lengths.
fn with_all_ac(mut lens: Vec<(u8, u8)>, from: u8, spread: u8) -> Vec<(u8, u8)> {
    let mut all = vec![0x00, 0xF0];
    for r in 0..16u8 {
        all.extend((1..=10u8).map(|s| r << 4 | s));
    }
    let mut i = 0;
    for s in all {
        if lens.iter().all(|&(t, _)| t != s) {
            lens.push((s, from + i % spread));
            i += 1;
        }
    }
    lens
}

/// How a synthetic scan's blocks are coded, and what they hold.
#[derive(Clone)]
struct Coding {
    dc: HuffSpec,
    ac: HuffSpec,
    /// Largest DC difference category and AC size written.
    max_dc: u32,
    max_ac: u32,
    /// AC coefficients anywhere (runs, ZRLs), else ±1 from k = 1 on.
    runs: bool,
    /// Values of the largest category with all extra bits ones, AC
    /// coefficients from k = 1 on.
    ones: bool,
}

/// Codes of every length to 16 bits: short ones for small values, 10 to 16
/// bits for most AC symbols (past both lookups) and DC categories 7 to
/// 11. The code space is far from full: random bits often start no code,
/// so speculative chains fail and start again often, and give up.
fn long_codes() -> Coding {
    let dc = [
        (0, 2),
        (1, 3),
        (2, 3),
        (3, 3),
        (4, 4),
        (5, 5),
        (6, 6),
        (7, 11),
        (8, 12),
        (9, 13),
        (10, 14),
        (11, 16),
    ];
    let ac = vec![
        (0x00, 2),
        (0x01, 3),
        (0x02, 4),
        (0x03, 5),
        (0x11, 5),
        (0x04, 6),
        (0x21, 6),
        (0x12, 7),
        (0x05, 7),
    ];
    Coding {
        dc: spec(&dc),
        ac: spec(&with_all_ac(ac, 10, 7)),
        max_dc: 11,
        max_ac: 10,
        runs: true,
        ones: false,
    }
}

/// An optimal (complete) table for these symbol frequencies (the rest 0).
fn optimal(freqs: &[(u8, u32)]) -> HuffSpec {
    let mut freq = [0u32; 257];
    for &(s, f) in freqs {
        freq[usize::from(s)] = f;
    }
    crate::jpeg::huffman::optimal_table(&freq)
}

/// Every AC symbol at weight 1, those of `heavy` at theirs.
fn ac_weights(heavy: &[(u8, u32)]) -> Vec<(u8, u32)> {
    let mut ac: Vec<(u8, u32)> = with_all_ac(Vec::new(), 1, 1)
        .iter()
        .map(|&(s, _)| (s, 1))
        .collect();
    for &(s, f) in heavy {
        ac.iter_mut().find(|e| e.0 == s).unwrap().1 = f;
    }
    ac
}

/// Complete tables (as an optimising encoder writes them) with codes of
/// up to 16 bits for DC categories 7 to 11 and most AC symbols.
fn long_complete() -> Coding {
    let dc: Vec<(u8, u32)> = [5000, 3000, 2000, 1000, 500, 200, 50, 1, 1, 1, 1, 1]
        .iter()
        .enumerate()
        .map(|(s, &f)| (s as u8, f))
        .collect();
    let ac = ac_weights(&[
        (0x00, 100_000),
        (0x01, 30_000),
        (0x02, 10_000),
        (0x11, 3000),
    ]);
    Coding {
        dc: optimal(&dc),
        ac: optimal(&ac),
        ..long_codes()
    }
}

/// Zero bits mean what they must not: the all-zero DC code is category
/// 12 (bad DC magnitude), the all-zero AC code a ZRL (four of them run
/// past the block's end), and run 15 of size 10 has a short code.
fn zero_is_bad() -> Coding {
    let mut dc: Vec<(u8, u32)> = vec![(12, 1_000_000)];
    dc.extend((0..=11).map(|s| (s, 1000)));
    dc.extend((13..=15).map(|s| (s, 1)));
    let ac = ac_weights(&[
        (0xF0, 1_000_000),
        (0x00, 200_000),
        (0xFA, 200_000),
        (0x01, 50_000),
    ]);
    let c = Coding {
        dc: optimal(&dc),
        ac: optimal(&ac),
        ..long_codes()
    };
    assert_eq!((c.dc.counts[0], c.dc.symbols[0]), (1, 12));
    assert_eq!((c.ac.counts[0], c.ac.symbols[0]), (1, 0xF0));
    c
}

/// One code a table (DC difference 0, EOB): the data is all zero bits.
fn one_code() -> Coding {
    Coding {
        dc: spec(&[(0, 1)]),
        ac: spec(&[(0x00, 1)]),
        max_dc: 0,
        max_ac: 0,
        runs: false,
        ones: false,
    }
}

/// Two codes a table: DC differences 0 and ±1, EOB and ±1 of run 0.
fn two_codes() -> Coding {
    Coding {
        dc: spec(&[(0, 1), (1, 2)]),
        ac: spec(&[(0x00, 1), (0x01, 2)]),
        max_dc: 1,
        max_ac: 1,
        runs: false,
        ones: false,
    }
}

/// Stuffing everywhere: AC coefficients 1023 and DC differences of 2047
/// (11 one bits) whose codes are all ones but their last bit (categories
/// by a unary code, size 10 of run 0 `1111111110`).
fn all_ones() -> Coding {
    let mut dc: Vec<(u8, u8)> = (0..11).map(|s| (s, s + 1)).collect();
    dc.push((11, 12));
    let mut ac: Vec<(u8, u8)> = (0..9).map(|s| (s, s + 1)).collect();
    ac.extend([(0x0A, 10), (0x09, 11), (0xF0, 12)]);
    Coding {
        dc: spec(&dc),
        ac: spec(&ac),
        max_dc: 11,
        max_ac: 10,
        runs: false,
        ones: true,
    }
}

/// A value of category `s` (>= 1): all ones when `ones`, else random.
fn value(s: u32, ones: bool, rng: &mut Rng) -> i32 {
    if ones {
        return (1 << s) - 1;
    }
    let v = (1 << (s - 1)) + rng.below(1 << (s - 1)) as i32;
    if rng.next() & 1 == 0 { v } else { -v }
}

/// The coefficients (zigzag order) of a block coded with `c` after DC `pred`.
fn coefficients(c: &Coding, pred: i32, rng: &mut Rng) -> [i16; 64] {
    let mut blk = [0i16; 64];
    let s = if c.ones {
        c.max_dc
    } else {
        rng.below(c.max_dc as usize + 1) as u32
    };
    let mut diff = if s == 0 { 0 } else { value(s, c.ones, rng) };
    if (pred + diff).abs() > 16_000 {
        diff = -diff;
    }
    blk[0] = (pred + diff) as i16;
    if c.runs {
        let density = [1, 3, 12, 60][rng.below(4)];
        for b in blk.iter_mut().skip(1) {
            if rng.below(256) < density {
                let s = 1 + rng.below(c.max_ac as usize) as u32;
                *b = value(s, c.ones, rng) as i16;
            }
        }
    } else if c.ones {
        // Half the blocks without an EOB: they end on a one bit.
        let n = if rng.next() & 1 == 0 {
            63
        } else {
            1 + rng.below(63)
        };
        blk[1..=n].fill(value(c.max_ac, true, rng) as i16);
    } else if c.max_ac > 0 {
        let n = rng.below(64);
        for b in blk.iter_mut().skip(1).take(n) {
            *b = value(1, c.ones, rng) as i16;
        }
    }
    blk
}

/// Where a synthetic scan's data starts (after three bytes of "header").
const SYNTH_START: usize = 3;

/// A synthetic scan of `mcus` MCUs whose blocks are `layout` (scan
/// component, coding), padded with ones, then EOI.
fn synthetic(layout: &[(usize, usize)], codings: &[Coding], mcus: usize, seed: u64) -> Vec<u8> {
    let enc: Vec<(EncodeTable, EncodeTable)> = codings
        .iter()
        .map(|c| {
            (
                EncodeTable::new(&c.dc).unwrap(),
                EncodeTable::new(&c.ac).unwrap(),
            )
        })
        .collect();
    let mut rng = Rng(seed);
    let mut wr = BitWriter::new(vec![0x12, 0x34, 0x56]);
    let mut preds = [0i32; 4];
    for _ in 0..mcus {
        for &(comp, t) in layout {
            let blk = coefficients(&codings[t], preds[comp], &mut rng);
            wr.encode_block(&blk, &mut preds[comp], &enc[t].0, &enc[t].1)
                .unwrap();
        }
    }
    wr.pad();
    let mut out = wr.out;
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

/// Runs `f` with the blocks of `layout` (scan component, coding).
fn with_codings<R>(
    layout: &[(usize, usize)],
    codings: &[Coding],
    f: impl FnOnce(&[BlockCoding]) -> R,
) -> R {
    let tables: Vec<(DecodeTable, DecodeTable)> = codings
        .iter()
        .map(|c| {
            (
                DecodeTable::new(&c.dc, false).unwrap(),
                DecodeTable::new(&c.ac, true).unwrap(),
            )
        })
        .collect();
    let blocks: Vec<BlockCoding> = layout
        .iter()
        .map(|&(k, t)| (k, &tables[t].0, &tables[t].1))
        .collect();
    f(&blocks)
}

/// Block layouts: gray, 4:4:4, 4:2:2, 4:2:0, CMYK, and 10 blocks of 4
/// components; coding 0 for component 0 and 3, coding 1 for 1 and 2.
const LAYOUTS: [&[(usize, usize)]; 6] = [
    &[(0, 0)],
    &[(0, 0), (1, 1), (2, 1)],
    &[(0, 0), (0, 0), (1, 1), (2, 1)],
    &[(0, 0), (0, 0), (0, 0), (0, 0), (1, 1), (2, 1)],
    &[(0, 0), (1, 1), (2, 1), (3, 0)],
    &[
        (0, 0),
        (0, 0),
        (0, 0),
        (0, 0),
        (1, 1),
        (1, 1),
        (2, 1),
        (2, 1),
        (3, 0),
        (3, 0),
    ],
];

/// A landing, comparable: the position and predictors, or that it failed
/// (the reasons may differ: the scalar pair reports a true chain past
/// the data's end where the one chain decodes on into the zeros fed
/// there and may meet a bad code first).
fn plain(l: &Landing) -> Result<((usize, u32), [i32; 4]), ()> {
    match l {
        Ok(x) => Ok(*x),
        Err(_) => Err(()),
    }
}

/// Checks that the lanes land where the scalar chains do, or fail where
/// they fail, and that the one-chain skip agrees; returns the landing.
fn agree(
    data: &[u8],
    start: usize,
    count: usize,
    total: usize,
    blocks: &[BlockCoding],
    what: &str,
) -> Option<((usize, u32), [i32; 4])> {
    let [lanes, scalar] = both_ways(data, start, count, total, blocks);
    let one = walk(data, start, count, blocks, false);
    let why = format!(
        "{what}, MCU {count} of {total}: lanes {lanes:?}, scalar {scalar:?}, one chain {one:?}"
    );
    assert_eq!(plain(&lanes), plain(&scalar), "{why}");
    assert_eq!(plain(&lanes), plain(&one), "{why}");
    plain(&lanes).ok()
}

/// The raw position of every MCU boundary of a clean scan, from the one-chain skip.
fn boundaries(data: &[u8], start: usize, mcus: usize, blocks: &[BlockCoding]) -> Vec<(usize, u32)> {
    let mut rd = BitReader::new(data, start);
    let mut preds = [0; 4];
    let mut out = vec![rd.raw_bit_position().unwrap()];
    for _ in 0..mcus {
        for &(k, dc, ac) in blocks {
            rd.skip_block(&mut preds[k], dc, ac).unwrap();
        }
        out.push(rd.raw_bit_position().unwrap());
    }
    out
}

/// The lanes spread their chains over `count / total` of the de-stuffed
/// copy: asked for more MCUs than the scan holds, or with `total` 0, the
/// chains started far past the copy and its padding and the first window
/// gather read out of bounds (a segfault here; `skip_mcus` never clamped
/// `count`, and `lanes::skip` trusted it).
#[test]
fn a_count_past_the_total_started_the_lane_chains_past_the_copy() {
    let codings = [long_codes(), long_codes()];
    let data = synthetic(LAYOUTS[0], &codings, 1100, 5);
    with_codings(LAYOUTS[0], &codings, |blocks| {
        for (count, total) in [(1100, 0), (1100, 1), (1100, 1099), (5000, 1100)] {
            agree(&data, SYNTH_START, count, total, blocks, "count past total");
        }
    });
}

/// A DC category over 11 deep in a scan whose chains all fall in step at
/// once (blocks of a 1-bit DC 0 and a 1-bit EOB): the true chain must stop
/// there in the lanes too, whether its code takes the vector step (2 bits)
/// or the slow one (12 bits), in chain 0's stretch or one stitched to it.
#[test]
fn a_dc_category_over_11_stops_the_lanes_where_the_scalar_skip_fails() {
    let before = lane_skips();
    let total = 40_000;
    for (code, len) in [(0b10u32, 2u32), (0b1000_0000_0000, 12)] {
        let dc = HuffSpec {
            counts: std::array::from_fn(|i| u8::from(i == 0 || i + 1 == len as usize)),
            symbols: vec![0, 12],
        };
        let ac = spec(&[(0x00, 1)]);
        let (dct, act) = (
            DecodeTable::new(&dc, false).unwrap(),
            DecodeTable::new(&ac, true).unwrap(),
        );
        let blocks: Vec<BlockCoding> = vec![(0, &dct, &act); 2];
        for bad in [3000, 30_000] {
            let mut wr = BitWriter::new(vec![0x12, 0x34, 0x56]);
            for m in 0..total {
                if m == bad {
                    // Category 12, its 12 bits, an EOB; then the second block.
                    wr.put(code, len);
                    wr.put(0x800, 12);
                    wr.put(0, 1);
                    wr.put(0, 2);
                } else {
                    wr.put(0, 4);
                }
            }
            wr.pad();
            let mut data = wr.out;
            data.extend_from_slice(&[0xFF, 0xD9]);
            let what = format!("category 12 in {len} bits at MCU {bad}");
            let at = agree(&data, SYNTH_START, bad, total, &blocks, &what);
            assert_eq!(at.unwrap().0, (SYNTH_START + bad / 2, 0), "{what}");
            for count in [bad + 1, total - 1000, total] {
                let got = agree(&data, SYNTH_START, count, total, &blocks, &what);
                assert!(got.is_none(), "{what}: skipped to MCU {count}");
            }
        }
    }
    assert_lanes_carried(before, 1, "the damaged skips");
}

#[test]
fn crafted_tables_in_every_layout_land_where_the_scalar_chains_and_a_decode_do() {
    let before = lane_skips();
    let sets: [(&str, [Coding; 2]); 6] = [
        ("long codes", [long_codes(), long_codes()]),
        ("long complete", [long_complete(), long_complete()]),
        ("zero is bad", [zero_is_bad(), long_codes()]),
        ("one code", [one_code(), one_code()]),
        ("two codes", [two_codes(), zero_is_bad()]),
        ("all ones", [all_ones(), two_codes()]),
    ];
    let mut runs = 0;
    for (name, codings) in &sets {
        for (li, layout) in LAYOUTS.iter().enumerate() {
            let total = 1030 + 40 * li;
            let data = synthetic(layout, codings, total, 77 + li as u64);
            with_codings(layout, codings, |blocks| {
                for count in [1024, total - 1, total] {
                    let what = format!("{name}, layout {li}");
                    let got = agree(&data, SYNTH_START, count, total, blocks, &what);
                    assert_eq!(
                        got.expect(&what),
                        decoded(&data, SYNTH_START, count, blocks),
                        "{what}, MCU {count}: decoded"
                    );
                    runs += 1;
                }
            });
        }
    }
    // Chains in step within the lanes' margin need data that falls in
    // step soon: the one-code scans do (18 skips: 6 layouts × 3 counts), the
    // others mostly not (see `long_codes`; with a margin of 2 KiB 24 of 108
    // were carried, with 1 KiB 22), and there the scalar chains do the rest.
    assert_lanes_carried(before, 18, &format!("{runs} skips"));
}

/// Stuffing everywhere, then fill bytes before the stuffed zeros
/// (`FF FF 00`, `FF FF FF 00`: one data byte 0xFF to every reader): the
/// same bits, other raw positions.
#[test]
fn stuffing_and_fill_bytes_everywhere_move_the_landing_the_same_way() {
    let codings = [all_ones(), all_ones()];
    let layout = LAYOUTS[3];
    let total = 1100;
    let data = synthetic(layout, &codings, total, 99);
    let ff = data.iter().filter(|&&b| b == 0xFF).count();
    assert!(
        ff * 5 > data.len(),
        "only {ff} of {} bytes are 0xFF",
        data.len()
    );
    let mut rng = Rng(3);
    let mut filled = Vec::with_capacity(data.len() * 2);
    filled.extend_from_slice(&data[..SYNTH_START]);
    for w in data[SYNTH_START..].windows(2) {
        filled.push(w[0]);
        if w == [0xFF, 0x00] {
            let n = rng.below(3);
            filled.extend(std::iter::repeat_n(0xFF, n));
        }
    }
    filled.push(*data.last().unwrap());
    assert!(filled.len() > data.len() + ff / 3);
    with_codings(layout, &codings, |blocks| {
        for count in [1024, 1050, total - 1, total] {
            let a = agree(&data, SYNTH_START, count, total, blocks, "stuffed").unwrap();
            let b = agree(&filled, SYNTH_START, count, total, blocks, "filled").unwrap();
            assert_eq!(a.1, b.1, "MCU {count}: the predictors");
            assert_eq!(b, decoded(&filled, SYNTH_START, count, blocks));
        }
    });
}

/// `Destuffed::raw_position` and `window` against the bit reader at every
/// bit of data full of 0xFF bytes, stuffed zeros and fill bytes, ending
/// at a marker, at fill bytes before one, at a lone 0xFF, at `FF FF`, at
/// a stuffed 0xFF, or at the end of the input.
#[test]
fn destuffed_positions_and_windows_match_the_bit_reader_at_every_bit() {
    let mut rng = Rng(0x5EED_1234);
    for round in 0..60 {
        let mut data = vec![0xAB, 0xCD];
        for _ in 0..rng.below(120) {
            match rng.below(6) {
                0 => data.extend([0xFF, 0x00]),
                1 => {
                    data.extend(std::iter::repeat_n(0xFF, 2 + rng.below(3)));
                    data.push(0x00);
                }
                2 => data.push(0x00),
                _ => data.push((rng.next() % 255) as u8),
            }
        }
        match round % 6 {
            0 => data.extend([0xFF, 0xD9]),
            1 => data.extend([0xFF, 0xFF, 0xFF, 0xD0, 0x11]),
            2 => data.push(0xFF),
            3 => data.extend([0xFF, 0xFF]),
            4 => data.extend([0xFF, 0x00]),
            _ => {}
        }
        let d = crate::jpeg::destuff::Destuffed::new(&data, 2, usize::MAX);
        let mut rd = BitReader::new(&data, 2);
        for bit in 0..=d.len as u64 * 8 {
            assert_eq!(
                rd.raw_bit_position().unwrap(),
                d.raw_position(bit),
                "round {round}, bit {bit}: {data:02X?}"
            );
            if rd.parts().2 < 32 {
                rd.refill();
            }
            assert_eq!(
                d.window(bit) >> 32,
                rd.parts().1 >> 32,
                "round {round}, bit {bit}: window"
            );
            rd.bits(1);
        }
    }
}

/// A noisy picture with smooth parts in another colour type (gray or
/// CMYK), sampling 2×2 where there is more than one component.
fn noisy_jpeg(w: u16, h: u16, color: jpeg_encoder::ColorType, channels: usize) -> Vec<u8> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut px = Vec::with_capacity(usize::from(w) * usize::from(h) * channels);
    for y in 0..usize::from(h) {
        for x in 0..usize::from(w) {
            let n = (rng.next() >> 58) as usize;
            for c in 0..channels {
                px.push((((x * (c + 1) + y / (c + 1)) % 256) ^ (n << c)) as u8);
            }
        }
    }
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 85);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    enc.encode(&px, w, h, color).unwrap();
    out
}

#[test]
fn gray_and_cmyk_files_cut_near_the_end_or_near_the_landing_agree() {
    use jpeg_encoder::ColorType;
    let gray = noisy_jpeg(256, 288, ColorType::Luma, 1);
    let cmyk = noisy_jpeg(576, 512, ColorType::Cmyk, 4);
    for (name, data) in [("gray", gray), ("cmyk", cmyk)] {
        with_blocks(&data, |start, total, blocks| {
            assert!(total >= 1100, "{name}: {total} MCUs");
            let end = data.len() - 2;
            let mid = total / 2 + 300;
            let landing = one_chain(&data, start, mid, blocks).0.0;
            let cuts = (end - 12..end).map(|c| (c, [total - 1, total]));
            let cuts = cuts.chain((landing - 6..landing + 6).map(|c| (c, [mid, mid + 1])));
            for (cut, counts) in cuts {
                for eoi in [false, true] {
                    let mut bad = data[..cut].to_vec();
                    if eoi {
                        bad.extend_from_slice(&[0xFF, 0xD9]);
                    }
                    for count in counts {
                        let what = format!("{name} cut at {cut} of {end}, EOI {eoi}");
                        agree(&bad, start, count, total, blocks, &what);
                    }
                }
            }
        });
    }
}

/// An MCU boundary on the last bit of the data (the lanes' landing at
/// exactly `len * 8`), with a marker right after, also where the last
/// data byte is a stuffed 0xFF; and the same cut one byte short (a lone
/// 0xFF at the very end).
#[test]
fn a_landing_on_the_last_bit_of_the_data_before_a_marker() {
    let codings = [zero_is_bad(), all_ones()];
    let layout = LAYOUTS[1];
    let total = 1400;
    let data = synthetic(layout, &codings, total, 2024);
    with_codings(layout, &codings, |blocks| {
        let at = boundaries(&data, SYNTH_START, total, blocks);
        let (mut aligned, mut after_ff) = (0, 0);
        for (m, &(p, b)) in at.iter().enumerate().skip(1024) {
            if b != 0 {
                continue;
            }
            let stuffed = data[p - 2..p] == [0xFF, 0x00];
            if aligned >= 12 || (!stuffed && aligned >= 6) {
                continue;
            }
            aligned += 1;
            after_ff += usize::from(stuffed);
            for cut in [p, p - 1] {
                let mut bad = data[..cut].to_vec();
                bad.extend_from_slice(&[0xFF, 0xD9]);
                let what = format!("cut at {cut}, MCU {m} ends at {p}, stuffed {stuffed}");
                let got = agree(&bad, SYNTH_START, m, m, blocks, &what);
                if cut == p {
                    assert_eq!(got.unwrap().0, (p, 0), "{what}");
                }
            }
        }
        assert!(
            aligned >= 6 && after_ff >= 1,
            "{aligned} aligned, {after_ff} after 0xFF"
        );
    });
}

/// Damages `data` between `from` and its last two bytes once: a byte
/// overwritten, a bit flipped, a stray 0xFF, a data 0xFF with a fill
/// byte, a restart marker, bytes taken out, or the data cut.
fn damage(data: &mut Vec<u8>, from: usize, rng: &mut Rng) {
    let end = data.len() - 2;
    if end <= from {
        return;
    }
    let at = from + rng.below(end - from);
    match rng.below(7) {
        0 => data[at] = rng.next() as u8,
        1 => data[at] ^= 1 << rng.below(8),
        2 => data.insert(at, 0xFF),
        3 => drop(data.splice(at..at, [0xFF, 0xFF, 0x00])),
        4 => drop(data.splice(at..at, [0xFF, 0xD0 + rng.below(8) as u8])),
        5 => drop(data.drain(at..(at + 1 + rng.below(16)).min(end))),
        _ => data.truncate(at),
    }
}

#[test]
fn random_damage_in_every_layout_and_table_set_agrees_with_the_scalar_chains() {
    let sets: [[Coding; 2]; 5] = [
        [long_codes(), zero_is_bad()],
        [long_complete(), long_complete()],
        [zero_is_bad(), long_codes()],
        [all_ones(), two_codes()],
        [two_codes(), all_ones()],
    ];
    let mut rng = Rng(0xDA3A_6E5D);
    let (mut ok, mut err) = (0, 0);
    for (si, codings) in sets.iter().enumerate() {
        for (li, layout) in LAYOUTS.iter().enumerate() {
            let total = 1100;
            let data = synthetic(layout, codings, total, rng.next());
            with_codings(layout, codings, |blocks| {
                for round in 0..6 {
                    let count = 1024 + rng.below(total - 1023);
                    // Every other round, damage only from a few bytes
                    // before the landing on: the lanes' last chains run
                    // into it, the skip must not.
                    let from = if round % 2 == 0 {
                        let p = one_chain(&data, SYNTH_START, count, blocks).0.0;
                        p.saturating_sub(rng.below(4)).max(SYNTH_START)
                    } else {
                        SYNTH_START
                    };
                    let mut bad = data.clone();
                    for _ in 0..1 + rng.below(3) {
                        damage(&mut bad, from, &mut rng);
                    }
                    let what = format!("set {si}, layout {li}, round {round}, from {from}");
                    match agree(&bad, SYNTH_START, count, total, blocks, &what) {
                        Some(_) => ok += 1,
                        None => err += 1,
                    }
                }
            });
        }
    }
    assert!(ok > 10 && err > 10, "{ok} landed, {err} failed");
}

/// Lane steps so far on this thread: all, and those left to the scalar path.
fn lane_steps() -> (usize, usize) {
    crate::jpeg::lanes::STEPS.with(|n| n.get())
}

#[test]
fn long_ac_codes_at_quality_90_and_95_are_stepped_in_the_vectors() {
    // The Annex K tables give large coefficients 15- and 16-bit codes, past
    // the skip table's 14-bit lookup: each sent its lane to the scalar path
    // (971 of 582 734 steps at q90, 2 120 of 771 822 at q95), and a group of
    // 16 lanes went aside for any one of them.
    if !lanes_here() {
        return;
    }
    for q in [90, 95] {
        let data = photo_jpeg(1280, 960, q, jpeg_encoder::SamplingFactor::F_2_2);
        let (all0, slow0) = lane_steps();
        with_blocks(&data, |start, total, blocks| {
            let [lanes, scalar] = both_ways(&data, start, total - 1, total, blocks);
            assert_eq!(lanes.unwrap(), scalar.unwrap(), "q{q}");
        });
        let (all, slow) = lane_steps();
        let (all, slow) = (all - all0, slow - slow0);
        assert!(
            slow * 10_000 < all,
            "q{q}: {slow} of {all} lane steps took the scalar path"
        );
    }
}
