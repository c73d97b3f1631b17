//! A scan's entropy-coded bytes without their byte stuffing: the bit stream
//! itself, in which a bit's position is one integer, padded with zero bytes so
//! that a reader may load 8 bytes anywhere in it, and the way back from a
//! position in it to the raw bytes.

use super::huffman::stuffed_ff_end;

/// Zero bytes after the copied data: readers may run this far past its end.
pub(crate) const PADDING: usize = 8192;

/// The de-stuffed entropy-coded data of a scan, from its start to its first marker.
pub(crate) struct Destuffed {
    /// The data bytes, then [`PADDING`] zero bytes.
    pub(crate) bytes: Vec<u8>,
    /// Data bytes (without the padding).
    pub(crate) len: usize,
    /// Raw offset of the first data byte.
    start: usize,
    /// After each data byte 0xFF: the index of the next data byte here and in the raw data.
    jumps: Vec<(usize, usize)>,
}

impl Destuffed {
    /// Copies the data bytes of the scan starting at raw offset `start`, up to
    /// its first marker, the end of `data`, or `max_raw` raw bytes, whichever
    /// comes first. (Positions past the copy are not the scan's: readers must
    /// not trust what they decode there.)
    pub(crate) fn new(data: &[u8], start: usize, max_raw: usize) -> Destuffed {
        let raw = data.get(start..).unwrap_or(&[]);
        let raw = &raw[..raw.len().min(max_raw)];
        let mut bytes = Vec::with_capacity(raw.len() + PADDING);
        let mut jumps = Vec::new();
        let mut i = 0;
        loop {
            // The run up to the next 0xFF in one copy.
            i += append_until_ff(&raw[i..], &mut bytes);
            if i == raw.len() {
                break;
            }
            match stuffed_ff_end(raw, i) {
                Some(next) => {
                    bytes.push(0xFF);
                    jumps.push((bytes.len(), start + next));
                    i = next;
                }
                None => break,
            }
        }
        let len = bytes.len();
        bytes.resize(len + PADDING, 0);
        Destuffed {
            bytes,
            len,
            start,
            jumps,
        }
    }

    /// The raw byte and bit (0 = MSB) of bit `bit` of the de-stuffed data, which
    /// must lie within it.
    pub(crate) fn raw_position(&self, bit: u64) -> (usize, u32) {
        let byte = (bit >> 3) as usize;
        // The last jump at or before `byte`.
        let j = self.jumps.partition_point(|&(at, _)| at <= byte);
        let raw = match j.checked_sub(1) {
            Some(j) => self.jumps[j].1 + (byte - self.jumps[j].0),
            None => self.start + byte,
        };
        (raw, (bit & 7) as u32)
    }

    /// The 64 bits from bit `bit` on, MSB first (57 or more of them meaningful).
    #[inline(always)]
    pub(crate) fn window(&self, bit: u64) -> u64 {
        let at = (bit >> 3) as usize;
        let mut arr = [0u8; 8];
        arr.copy_from_slice(&self.bytes[at..at + 8]);
        u64::from_be_bytes(arr) << (bit & 7)
    }
}

#[cfg(target_arch = "x86_64")]
use super::simd::append_until_ff;

/// Appends `raw`'s bytes up to its first 0xFF (or all of them) to `out`; returns how many.
#[cfg(not(target_arch = "x86_64"))]
fn append_until_ff(raw: &[u8], out: &mut Vec<u8>) -> usize {
    let run = memchr::memchr(0xFF, raw).unwrap_or(raw.len());
    out.extend_from_slice(&raw[..run]);
    run
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stuffing_and_fill_bytes_are_removed_and_positions_map_back() {
        // start 2; data: 11 FF 00 22 FF FF 00 33 then a marker FF D9.
        let data = [
            0xAA, 0xBB, 0x11, 0xFF, 0x00, 0x22, 0xFF, 0xFF, 0x00, 0x33, 0xFF, 0xD9,
        ];
        let d = Destuffed::new(&data, 2, usize::MAX);
        assert_eq!(Destuffed::new(&data, 2, 4).len, 3, "11 FF 22: a cut copy");
        assert_eq!(&d.bytes[..d.len], &[0x11, 0xFF, 0x22, 0xFF, 0x33]);
        assert!(d.bytes[d.len..].iter().all(|&b| b == 0));
        assert_eq!(d.bytes.len(), d.len + PADDING);
        let raw: Vec<usize> = (0..5).map(|b| d.raw_position(b * 8).0).collect();
        assert_eq!(raw, [2, 3, 5, 6, 9]);
        assert_eq!(d.raw_position(8 * 3 + 5), (6, 5));
        assert_eq!(d.window(4) >> 56, 0x1F);
    }

    #[test]
    fn long_stretches_between_0xff_bytes_are_copied_whole() {
        // Random data bytes (some 0xFF, stuffed, some after fill bytes), then a marker:
        // the 16-byte copies must give the byte-by-byte result, at every length.
        let mut rng = crate::jpeg::xorshift::Rng(0x9E37_79B9);
        for len in [0, 1, 15, 16, 17, 31, 32, 33, 100, 1000, 5000] {
            for ff_rate in [0, 3, 60] {
                let (mut raw, mut want, mut at) = (vec![0xAB], Vec::new(), Vec::new());
                for _ in 0..len {
                    let b = if rng.below(256) < ff_rate {
                        0xFF
                    } else {
                        rng.below(255) as u8
                    };
                    at.push(raw.len());
                    want.push(b);
                    raw.push(b);
                    if b == 0xFF {
                        raw.extend(std::iter::repeat_n(0xFF, rng.below(2)));
                        raw.push(0);
                    }
                }
                raw.extend_from_slice(&[0xFF, 0xD9, 1, 2, 3]);
                let d = Destuffed::new(&raw, 1, usize::MAX);
                assert_eq!(&d.bytes[..d.len], &want[..], "{len} bytes, rate {ff_rate}");
                for (k, &raw_at) in at.iter().enumerate() {
                    assert_eq!(d.raw_position(8 * k as u64 + 3), (raw_at, 3));
                }
            }
        }
    }
}
