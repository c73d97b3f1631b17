//! The hot loop of [`Summer`]: walks the separators of 64-byte blocks and
//! hands summed cells to the parser.

use std::hint::select_unpredictable;

use super::Summer;
use crate::decimal::parse_short;
use crate::sys::classify::{BlockScan, Classifier};

impl BlockScan for Summer {
    /// The hot loop. Works on local copies of the scanner state so that they
    /// live in registers.
    #[inline(always)]
    fn scan_blocks<C: Classifier>(&mut self, data: &[u8]) {
        let base = self.bytes;
        let len = data.len();
        let step = self.step;
        let mut field = self.field;
        let mut next_target = self.next_target;
        let mut target_no = self.target_no;
        let mut field_start = self.field_start;
        let mut quote_carry = self.quote_carry;
        let delimiter = self.delimiter;
        let mut pos = 0usize;

        while pos < len {
            let mut m = match data[pos..].first_chunk::<64>() {
                Some(block) => C::classify(block, delimiter),
                None => {
                    let mut tail = [0u8; 64];
                    let n = len - pos;
                    tail[..n].copy_from_slice(&data[pos..]);
                    let mut m = C::classify(&tail, delimiter);
                    let valid = (1u64 << n) - 1;
                    m.delim &= valid;
                    m.newline &= valid;
                    m.quote &= valid;
                    m
                }
            };
            if (m.quote | quote_carry) != 0 {
                let inside = prefix_xor(m.quote) ^ quote_carry;
                quote_carry = 0u64.wrapping_sub(inside >> 63);
                m.delim &= !inside;
                m.newline &= !inside;
            }
            let nl = m.newline;
            let mut sep = m.delim | nl;
            while sep != 0 {
                if field < next_target {
                    // Skip the fields before the next summed one.
                    let need = next_target - field;
                    let nls = nl & sep;
                    let cnt = sep.count_ones() as usize;
                    if cnt < need && nls == 0 {
                        field += cnt;
                        field_start = base + (pos + 64 - sep.leading_zeros() as usize) as u64;
                        break;
                    }
                    let first_nl = if nls != 0 { nls.trailing_zeros() } else { 64 };
                    let tb = if cnt >= need {
                        C::select(sep, (need - 1) as u32)
                    } else {
                        64
                    };
                    if first_nl <= tb {
                        // The record ends before its next summed field.
                        let before = sep & ((1u64 << first_nl) - 1);
                        field += before.count_ones() as usize;
                        if before != 0 {
                            field_start =
                                base + (pos + 64 - before.leading_zeros() as usize) as u64;
                        }
                        let p = pos + first_nl as usize;
                        self.end_record(field, field_start, base + p as u64, data, p);
                        field = 0;
                        next_target = step - 1;
                        target_no = 0;
                        field_start = base + p as u64 + 1;
                        sep &= !through(first_nl);
                    } else {
                        field = next_target;
                        field_start = base + (pos + tb as usize + 1) as u64;
                        sep &= !through(tb);
                    }
                } else {
                    // The current field is summed: it ends at the next separator.
                    let b = sep.trailing_zeros();
                    let p = pos + b as usize;
                    let end = base + p as u64;
                    let is_nl = (nl >> b) & 1 != 0;
                    sep &= sep - 1;
                    if is_nl && field == 0 && self.is_blank(field_start, end, data, p) {
                        self.carry.clear();
                        self.record_start = end + 1;
                    } else {
                        let fast = if field_start >= base && !self.in_header {
                            parse_short(data, (field_start - base) as usize, p)
                        } else {
                            None
                        };
                        match fast {
                            Some((m, scale)) => self.add_short(target_no, m, scale),
                            None => {
                                let cell: &[u8] = if field_start >= base {
                                    &data[(field_start - base) as usize..p]
                                } else {
                                    &data[..p]
                                };
                                self.take(target_no, field_start, cell);
                            }
                        }
                        if self.failure.is_some() {
                            self.bytes = base + len as u64;
                            return;
                        }
                        // Branch-free record end: whether this cell ends its
                        // record is too irregular for the branch predictor.
                        if self.in_header {
                            self.in_header &= !is_nl;
                        } else {
                            self.rows += u64::from(is_nl);
                        }
                        self.record_start = select_unpredictable(is_nl, end + 1, self.record_start);
                    }
                    field = select_unpredictable(is_nl, 0, field + 1);
                    next_target = select_unpredictable(is_nl, step - 1, next_target + step);
                    target_no = select_unpredictable(is_nl, 0, target_no + 1);
                    field_start = end + 1;
                }
            }
            pos += 64;
        }

        // The current field goes on in the next chunk: keep it if it is summed.
        let end = base + len as u64;
        if field == next_target && field_start < end {
            let from = field_start.saturating_sub(base) as usize;
            self.keep(&data[from..]);
        }
        self.field = field;
        self.next_target = next_target;
        self.target_no = target_no;
        self.field_start = field_start;
        self.quote_carry = quote_carry;
        self.last_byte = data[len - 1];
        self.bytes = end;
    }
}

/// Bit `i` of the result is the XOR of bits `0..=i` of `x`.
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// Mask of bits `0..=b`.
#[inline(always)]
fn through(b: u32) -> u64 {
    u64::MAX >> (63 - b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_xor_marks_quoted_spans() {
        // quotes at 1 and 4: bits 1..=3 inside
        assert_eq!(prefix_xor(0b1_0010), 0b0_1110);
    }
}
