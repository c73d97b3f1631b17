//! Exact decimals: parsing one CSV cell and summing without rounding.
//!
//! A value is a signed integer mantissa and a decimal scale (digits after the
//! point). A column's sum keeps an `i128` mantissa at the largest scale seen so
//! far, so `0.1 + 0.2` is exactly `0.3`. About 38 significant digits fit; past
//! that the caller reports an overflow instead of rounding.

/// Largest scale (digits after the decimal point) that a value may carry.
pub(crate) const MAX_SCALE: u32 = 38;

/// Powers of ten that fit in an `i128` (10^0 ..= 10^38).
const POW10: [i128; 39] = {
    let mut t = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// A parsed cell value: `mantissa / 10^scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decimal {
    pub mantissa: i128,
    pub scale: u32,
}

/// Why a cell is not a number we can add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CellError {
    /// Not a number at all.
    Invalid,
    /// A number, but too many digits or too large an exponent to be exact.
    OutOfRange,
}

/// Strips spaces, tabs and carriage returns from both ends.
#[inline]
fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r'] = s {
        s = rest;
    }
    s
}

/// Parses one raw field (possibly quoted, possibly ending in `\r`).
///
/// Returns `Ok(None)` for an empty (or all-blank) cell, which counts as zero.
#[inline]
pub(crate) fn parse_cell(raw: &[u8]) -> Result<Option<Decimal>, CellError> {
    let mut s = trim(raw);
    if let [b'"', inner @ .., b'"'] = s {
        s = trim(inner);
    }
    if s.is_empty() {
        return Ok(None);
    }
    match parse_u64(s) {
        Some(d) => Ok(Some(d)),
        None => parse_wide(s).map(Some),
    }
}

/// Fastest path, for the cell `data[start..end]`: a plain
/// `[+-]digits[.digits]` of at most 8 characters after the sign, parsed with
/// word-wide arithmetic. Needs the 8 bytes ending at `end` to be in `data`
/// (bytes before the cell are masked out). `None` means "use [`parse_cell`]".
#[inline(always)]
pub(crate) fn parse_short(data: &[u8], start: usize, end: usize) -> Option<(i64, u32)> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    if end < 8 || end <= start || end > data.len() {
        return None;
    }
    let (mut start, mut end) = (start, end);
    if !data[end - 1].is_ascii_digit() {
        // Rare shapes: a trailing `\r` (CRLF line end) and the quotes of a
        // quoted number are trimmed, as in `parse_cell`.
        end -= usize::from(data[end - 1] == b'\r');
        if end >= start + 2 && data[start] == b'"' && data[end - 1] == b'"' {
            start += 1;
            end -= 1;
        }
        if end < 8 || end <= start {
            return None;
        }
    }
    let first = data[start];
    let neg = first == b'-';
    let start = start + usize::from(neg || first == b'+');
    let n = end - start;
    if n.wrapping_sub(1) >= 8 {
        return None; // empty after the sign, or longer than 8
    }
    let word = u64::from_le_bytes(*data[end - 8..].first_chunk::<8>()?);
    // The cell is the top `n` bytes; the bytes below become leading zeros.
    let keep = u64::MAX << (8 * (8 - n));
    let w = (word & keep) | (ZEROS & !keep);
    let x = w ^ ZEROS;
    // High bit of a byte set where the byte is not an ASCII digit.
    let non_digit =
        (((x & 0x7f7f_7f7f_7f7f_7f7f) + 0x7676_7676_7676_7676) | x) & 0x8080_8080_8080_8080;
    let (digits, scale) = if non_digit == 0 {
        (w, 0)
    } else {
        if non_digit & (non_digit - 1) != 0 || n == 1 {
            return None;
        }
        let k = non_digit.trailing_zeros() / 8;
        if (w >> (8 * k)) as u8 != b'.' {
            return None;
        }
        // Drop the point: shift the integer part up over it. For k == 7 the
        // shifted one falls off and `through_point` is all ones.
        let below = (1u64 << (8 * k)) - 1;
        let through_point = ((1u64 << (8 * k)) << 8).wrapping_sub(1);
        (((w & below) << 8) | (w & !through_point) | 0x30, 7 - k)
    };
    let mut v = digits - ZEROS;
    v = (v.wrapping_mul(10) + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_ffff_0000_ffff;
    v = (v.wrapping_mul(10_000) + (v >> 32)) & 0xffff_ffff;
    // Branch-free negation: (v ^ -1) + 1 == -v.
    let sign = -i64::from(neg);
    Some(((v as i64 ^ sign) - sign, scale))
}

/// Fast path: a plain `[+-]digits[.digits]` with at most 18 digits.
#[inline]
fn parse_u64(s: &[u8]) -> Option<Decimal> {
    let (neg, s) = match s {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, s),
    };
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut m: u64 = 0;
    let mut digits = 0u32;
    let mut frac: Option<u32> = None;
    for (i, &b) in s.iter().enumerate() {
        let d = b.wrapping_sub(b'0');
        if d < 10 {
            m = m * 10 + u64::from(d);
            digits += 1;
        } else if b == b'.' && frac.is_none() {
            frac = Some(i as u32 + 1);
        } else {
            return None;
        }
    }
    if digits == 0 || digits > 18 {
        return None;
    }
    let scale = frac.map_or(0, |f| s.len() as u32 - f);
    let v = m as i128;
    Some(Decimal {
        mantissa: if neg { -v } else { v },
        scale,
    })
}

/// General path: long mantissas and exponents (`1.5e3`, `-2E-4`).
fn parse_wide(s: &[u8]) -> Result<Decimal, CellError> {
    let (neg, s) = match s {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, s),
    };
    let mut m: u128 = 0;
    let mut any_digit = false;
    let mut frac_digits: i64 = 0;
    let mut seen_point = false;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b.is_ascii_digit() {
            any_digit = true;
            let d = u128::from(b - b'0');
            m = m
                .checked_mul(10)
                .and_then(|m| m.checked_add(d))
                .ok_or(CellError::OutOfRange)?;
            if seen_point {
                frac_digits += 1;
            }
        } else if b == b'.' && !seen_point {
            seen_point = true;
        } else {
            break;
        }
        i += 1;
    }
    if !any_digit {
        return Err(CellError::Invalid);
    }
    let mut exp: i64 = 0;
    if i < s.len() {
        if s[i] | 0x20 != b'e' {
            return Err(CellError::Invalid);
        }
        i += 1;
        let neg_exp = match s.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            // Saturate: anything this large is out of range anyway.
            exp = (exp * 10 + i64::from(s[i] - b'0')).min(1_000_000);
            i += 1;
        }
        if i == start || i != s.len() {
            return Err(CellError::Invalid);
        }
        if neg_exp {
            exp = -exp;
        }
    }
    let mut scale = frac_digits - exp;
    if m == 0 {
        // Zero is zero at any scale; do not let `0e-999` fail.
        return Ok(Decimal {
            mantissa: 0,
            scale: scale.clamp(0, i64::from(MAX_SCALE)) as u32,
        });
    }
    if scale < 0 {
        let up = usize::try_from(-scale).map_err(|_| CellError::OutOfRange)?;
        let f = *POW10.get(up).ok_or(CellError::OutOfRange)? as u128;
        m = m.checked_mul(f).ok_or(CellError::OutOfRange)?;
        scale = 0;
    }
    if scale > i64::from(MAX_SCALE) {
        return Err(CellError::OutOfRange);
    }
    let v = i128::try_from(m).map_err(|_| CellError::OutOfRange)?;
    Ok(Decimal {
        mantissa: if neg { -v } else { v },
        scale: scale as u32,
    })
}

/// An exact running sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DecimalSum {
    mantissa: i128,
    scale: u32,
}

/// The sum no longer fits in an `i128` mantissa.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Overflow;

impl DecimalSum {
    /// Adds `value`, raising the sum's scale if the value has more decimals.
    #[inline]
    pub(crate) fn add(&mut self, value: Decimal) -> Result<(), Overflow> {
        if value.scale == self.scale {
            self.mantissa = self.mantissa.checked_add(value.mantissa).ok_or(Overflow)?;
        } else if value.scale < self.scale {
            let f = POW10[(self.scale - value.scale) as usize];
            let v = value.mantissa.checked_mul(f).ok_or(Overflow)?;
            self.mantissa = self.mantissa.checked_add(v).ok_or(Overflow)?;
        } else {
            let f = POW10[(value.scale - self.scale) as usize];
            self.mantissa = self.mantissa.checked_mul(f).ok_or(Overflow)?;
            self.scale = value.scale;
            self.mantissa = self.mantissa.checked_add(value.mantissa).ok_or(Overflow)?;
        }
        Ok(())
    }

    /// Adds `mantissa / 10^scale` from the word parser (the common case: the
    /// scale is the sum's scale already).
    #[inline(always)]
    pub(crate) fn add_short(&mut self, mantissa: i64, scale: u32) -> Result<(), Overflow> {
        if scale == self.scale {
            self.mantissa = self
                .mantissa
                .checked_add(i128::from(mantissa))
                .ok_or(Overflow)?;
            Ok(())
        } else {
            self.add(Decimal {
                mantissa: i128::from(mantissa),
                scale,
            })
        }
    }

    /// Adds another sum (used when merging the partial sums of chunks).
    pub(crate) fn merge(&mut self, other: &DecimalSum) -> Result<(), Overflow> {
        self.add(Decimal {
            mantissa: other.mantissa,
            scale: other.scale,
        })
    }

    /// Renders the sum as a plain decimal string, e.g. `-12.50` or `897571.54`.
    ///
    /// The number of decimals is the largest scale among the added values.
    pub(crate) fn render(&self) -> String {
        let digits = self.mantissa.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let mut out = String::with_capacity(digits.len() + scale + 3);
        if self.mantissa < 0 {
            out.push('-');
        }
        if scale == 0 {
            out.push_str(&digits);
        } else if digits.len() > scale {
            let (int, frac) = digits.split_at(digits.len() - scale);
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', scale - digits.len()));
            out.push_str(&digits);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(cells: &[&str]) -> String {
        let mut s = DecimalSum::default();
        for c in cells {
            if let Some(d) = parse_cell(c.as_bytes()).expect("number") {
                s.add(d).expect("no overflow");
            }
        }
        s.render()
    }

    #[test]
    fn parses_the_supported_forms() {
        let d = |s: &str| parse_cell(s.as_bytes());
        let dec = |m: i128, s: u32| {
            Ok(Some(Decimal {
                mantissa: m,
                scale: s,
            }))
        };
        assert_eq!(d("12"), dec(12, 0));
        assert_eq!(d("-12.50"), dec(-1250, 2));
        assert_eq!(d("+.5"), dec(5, 1));
        assert_eq!(d("5."), dec(5, 0));
        assert_eq!(d(" 7 \r"), dec(7, 0));
        assert_eq!(d("\"3.25\""), dec(325, 2));
        assert_eq!(d("1.5e3"), dec(1500, 0));
        assert_eq!(d("-2E-4"), dec(-2, 4));
        assert_eq!(d("1.25e+1"), dec(125, 1));
        assert_eq!(d(""), Ok(None));
        assert_eq!(d("\"\""), Ok(None));
        assert_eq!(d("  "), Ok(None));
        assert_eq!(
            d("123456789012345678901234567890"),
            dec(123456789012345678901234567890, 0)
        );
    }

    #[test]
    fn rejects_what_is_not_a_number() {
        for s in [
            "abc", "-", ".", "1.2.3", "1e", "e5", "1e5x", "nan", "inf", "1,5", "--1", "0x10",
        ] {
            assert_eq!(parse_cell(s.as_bytes()), Err(CellError::Invalid), "{s}");
        }
        for s in ["1e39", "1e-39", "1234567890123456789012345678901234567890"] {
            assert_eq!(parse_cell(s.as_bytes()), Err(CellError::OutOfRange), "{s}");
        }
        assert_eq!(
            parse_cell(b"0e-999"),
            Ok(Some(Decimal {
                mantissa: 0,
                scale: 38
            }))
        );
    }

    #[test]
    fn the_word_parser_agrees_with_the_general_one() {
        let cases = [
            "0",
            "7",
            "42",
            "-42",
            "+42",
            "189.85",
            "8.70",
            "-0.05",
            ".5",
            "5.",
            "-.5",
            "99999999",
            "9999.999",
            "-1234567",
            "12345678",
            "1.2.3",
            "-",
            "+",
            ".",
            "-.",
            "1e5",
            " 12",
            "12 ",
            "\"12\"",
            "1,5",
            "1a",
            "a1",
            "123456789",
            "00000001",
            "0.0000001",
        ];
        for c in cases {
            let mut data = b"xxxxxxxxxxxx".to_vec();
            let start = data.len();
            data.extend_from_slice(c.as_bytes());
            let end = data.len();
            data.extend_from_slice(b",yyyyyyyy");
            let fast = parse_short(&data, start, end);
            if let Some((mantissa, scale)) = fast {
                let want = Decimal {
                    mantissa: i128::from(mantissa),
                    scale,
                };
                assert_eq!(parse_cell(c.as_bytes()), Ok(Some(want)), "{c}");
            } else {
                let c = c.trim_end_matches('\r');
                let c = c
                    .strip_prefix('"')
                    .and_then(|c| c.strip_suffix('"'))
                    .unwrap_or(c);
                let plain = c.trim_start_matches(['-', '+']);
                let simple = plain.len() <= 8
                    && !plain.is_empty()
                    && plain != "."
                    && plain.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                    && plain.bytes().filter(|&b| b == b'.').count() <= 1;
                assert!(!simple, "fast path refused {c}");
            }
        }
    }

    #[test]
    fn sums_exactly() {
        assert_eq!(sum(&["0.1", "0.2"]), "0.3");
        assert_eq!(sum(&["1", "2.50", "-0.25"]), "3.25");
        assert_eq!(sum(&["-0.05"]), "-0.05");
        assert_eq!(sum(&["1e-3"]), "0.001");
        assert_eq!(sum(&[]), "0");
        assert_eq!(sum(&["1.5e3", "0.5"]), "1500.5");
    }

    #[test]
    fn overflow_is_reported_not_rounded() {
        let mut s = DecimalSum::default();
        let big = Decimal {
            mantissa: i128::MAX / 2 + 1,
            scale: 0,
        };
        assert_eq!(s.add(big), Ok(()));
        assert_eq!(s.add(big), Err(Overflow));
    }
}
