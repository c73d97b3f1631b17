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
