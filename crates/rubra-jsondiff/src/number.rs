//! Exact decimal comparison of JSON number literals, and the tolerance rule.
//!
//! A literal is read as `digits × 10^exp` without rounding, so `1`, `1.0`, `1e0`
//! and `10e-1` are one value and `12345678901234567890 ≠ 12345678901234567891`.
//! Differences are computed exactly in 128-bit decimal arithmetic when both
//! numbers have at most 38 significant digits and exponents that are not too far
//! apart; only beyond that does the tolerance test fall back to float64.

use std::hash::Hasher;

/// Canonical form of a literal: `sign · D × 10^exp` where `D` is the digit string
/// without leading or trailing zeros (empty for zero).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Canon<'a> {
    neg: bool,
    /// Significant digits, possibly split around the decimal point.
    a: &'a [u8],
    b: &'a [u8],
    exp: i64,
}

impl<'a> Canon<'a> {
    /// Reads a literal that the parser validated.
    pub(crate) fn new(lit: &'a str) -> Self {
        let s = lit.as_bytes();
        let (neg, s) = match s.first() {
            Some(b'-') => (true, &s[1..]),
            _ => (false, s),
        };
        let (mant, exp) = match s.iter().position(|&c| c == b'e' || c == b'E') {
            Some(p) => (&s[..p], parse_exp(&s[p + 1..])),
            None => (s, 0),
        };
        let (int, frac) = match mant.iter().position(|&c| c == b'.') {
            Some(p) => (&mant[..p], &mant[p + 1..]),
            None => (mant, &mant[mant.len()..]),
        };
        let mut exp = exp.saturating_sub(frac.len() as i64);
        // Strip leading zeros (through the point) and trailing zeros (through it too).
        let (mut a, mut b) = (int, frac);
        while let Some((&b'0', rest)) = a.split_first() {
            a = rest;
        }
        if a.is_empty() {
            while let Some((&b'0', rest)) = b.split_first() {
                b = rest;
            }
        }
        while let Some((&b'0', rest)) = b.split_last() {
            b = rest;
            exp = exp.saturating_add(1);
        }
        if b.is_empty() {
            while let Some((&b'0', rest)) = a.split_last() {
                a = rest;
                exp = exp.saturating_add(1);
            }
        }
        let zero = a.is_empty() && b.is_empty();
        Canon {
            neg: neg && !zero,
            a,
            b,
            exp: if zero { 0 } else { exp },
        }
    }

    fn digits(&self) -> impl Iterator<Item = u8> + '_ {
        self.a.iter().chain(self.b.iter()).map(|d| d - b'0')
    }

    fn ndigits(&self) -> usize {
        self.a.len() + self.b.len()
    }

    /// Feeds the value (not the spelling) into a hasher.
    pub(crate) fn hash(&self, h: &mut impl Hasher) {
        h.write_u8(self.neg as u8);
        for d in self.digits() {
            h.write_u8(d);
        }
        h.write_i64(self.exp);
    }

    /// `|mantissa|` as an integer when it fits in 38 digits.
    fn mantissa(&self) -> Option<u128> {
        if self.ndigits() > 38 {
            return None;
        }
        Some(self.digits().fold(0u128, |m, d| m * 10 + d as u128))
    }
}

impl PartialEq for Canon<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.neg == o.neg
            && self.exp == o.exp
            && self.ndigits() == o.ndigits()
            && self.digits().eq(o.digits())
    }
}

fn parse_exp(s: &[u8]) -> i64 {
    let (neg, s) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let v = s.iter().fold(0i64, |v, &d| {
        v.saturating_mul(10).saturating_add((d - b'0') as i64)
    });
    if neg { -v } else { v }
}

/// True when the literal is written as an integer (no fraction, no exponent).
pub(crate) fn is_int_literal(lit: &str) -> bool {
    !lit.bytes().any(|c| matches!(c, b'.' | b'e' | b'E'))
}

/// A non-negative decimal `m × 10^e`, kept exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decimal {
    m: u128,
    e: i64,
}

impl Decimal {
    /// Zero.
    pub const ZERO: Decimal = Decimal { m: 0, e: 0 };

    /// Parses a non-negative decimal such as `0.00001`, `1e-5` or `5`.
    pub fn parse(s: &str) -> Option<Decimal> {
        let s = s.trim();
        if s.starts_with('-') || !valid_json_number(s) {
            return None;
        }
        let c = Canon::new(s);
        Some(Decimal {
            m: c.mantissa()?,
            e: c.exp,
        })
    }

    /// `0.5 × 10^-places`: the tolerance that means "equal to `places` decimal places".
    pub fn half_unit(places: u32) -> Decimal {
        Decimal {
            m: 5,
            e: -(places as i64) - 1,
        }
    }

    /// The value as a float64 (for display and fallbacks).
    pub fn to_f64(self) -> f64 {
        format!("{}e{}", self.m, self.e)
            .parse()
            .unwrap_or(f64::INFINITY)
    }

    /// True for zero.
    pub fn is_zero(self) -> bool {
        self.m == 0
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_f64())
    }
}

fn valid_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - s
    };
    if digits(&mut i) == 0 {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// How close two numbers must be to count as equal.
///
/// Two numbers `a`, `b` are equal when they are the same value exactly, or when
/// at least one of them is written with a fraction or an exponent and
/// `|a − b| ≤ abs` or `|a − b| ≤ rel · max(|a|, |b|)`. Two integer literals are
/// always compared exactly. The default is `abs = 0.5·10⁻⁵` (equal to 5 decimal
/// places), `rel = 0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tolerance {
    /// Absolute tolerance.
    pub abs: Decimal,
    /// Relative tolerance (a fraction of the larger magnitude).
    pub rel: Decimal,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance::places(5)
    }
}

impl Tolerance {
    /// No tolerance: numbers must be equal as exact decimals.
    pub const EXACT: Tolerance = Tolerance {
        abs: Decimal::ZERO,
        rel: Decimal::ZERO,
    };

    /// Equal to `places` decimal places: `abs = 0.5·10^-places`.
    pub fn places(places: u32) -> Tolerance {
        Tolerance {
            abs: Decimal::half_unit(places),
            rel: Decimal::ZERO,
        }
    }

    fn is_exact(&self) -> bool {
        self.abs.is_zero() && self.rel.is_zero()
    }

    /// An upper bound (float64) of `|a − b|` for any `b` equal to `a`.
    pub(crate) fn reach(&self, a: f64) -> f64 {
        let rel = self.rel.to_f64();
        let r = if rel >= 1.0 {
            f64::INFINITY
        } else {
            rel * a.abs() / (1.0 - rel)
        };
        self.abs.to_f64().max(r)
    }
}

/// Whether `x · 10^ex ≤ y · 10^ey` for non-negative integers.
fn le_scaled(x: u128, ex: i64, y: u128, ey: i64) -> bool {
    if x == 0 {
        return true;
    }
    if y == 0 {
        return false;
    }
    // Exponents saturate near the ends of i64, so their difference may not fit: then one
    // side is astronomically larger than the other.
    let Some(k) = ex.checked_sub(ey) else {
        return ex < ey;
    };
    if k >= 0 {
        // x·10^k ≤ y; x ≥ 1 so a huge k is always larger than any u128.
        u32::try_from(k)
            .ok()
            .and_then(|k| 10u128.checked_pow(k))
            .and_then(|p| x.checked_mul(p))
            .is_some_and(|l| l <= y)
    } else {
        let k = -k;
        match u32::try_from(k)
            .ok()
            .and_then(|k| 10u128.checked_pow(k))
            .and_then(|p| y.checked_mul(p))
        {
            Some(r) => x <= r,
            None => true,
        }
    }
}

const POW10: [u128; 39] = {
    let mut t = [1u128; 39];
    let mut i = 1;
    while i < 39 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// Exact `|a − b|` as `(gap, max(|a|,|b|), e)` scaled by `10^e` when it fits
/// 128 bits, and whether `b > a`.
fn exact_gap(a: &Canon<'_>, b: &Canon<'_>) -> Option<(u128, u128, i64, bool)> {
    let (ma, mb) = (a.mantissa()?, b.mantissa()?);
    let e = a.exp.min(b.exp);
    let scale = |m: u128, ex: i64| -> Option<u128> {
        // Exponents saturate near the ends of i64, so their difference may not fit.
        let k = usize::try_from(ex.checked_sub(e)?).ok()?;
        if m == 0 {
            return Some(0);
        }
        m.checked_mul(*POW10.get(k)?)
    };
    let (sa, sb) = (scale(ma, a.exp)?, scale(mb, b.exp)?);
    let (gap, b_larger) = match (a.neg, b.neg) {
        (false, false) => (sa.abs_diff(sb), sb > sa),
        (true, true) => (sa.abs_diff(sb), sb < sa),
        (true, false) => (sa.checked_add(sb)?, true),
        (false, true) => (sa.checked_add(sb)?, false),
    };
    Some((gap, sa.max(sb), e, b_larger))
}

/// Compares two validated literals under `tol` (see [`Tolerance`]).
pub(crate) fn num_eq(a: &str, b: &str, tol: &Tolerance) -> bool {
    if crate::parse::bytes_eq(a.as_bytes(), b.as_bytes()) {
        return true;
    }
    let (ca, cb) = (Canon::new(a), Canon::new(b));
    if ca == cb {
        return true;
    }
    if tol.is_exact() || (is_int_literal(a) && is_int_literal(b)) {
        return false;
    }
    match exact_gap(&ca, &cb) {
        Some((gap, max, e, _)) => {
            if le_scaled(gap, e, tol.abs.m, tol.abs.e) {
                return true;
            }
            // gap·10^e ≤ rel·max·10^e  ⇔  gap ≤ rel.m·max·10^rel.e
            match tol.rel.m.checked_mul(max) {
                Some(r) => !tol.rel.is_zero() && le_scaled(gap, 0, r, tol.rel.e),
                None => float_within(a, b, tol),
            }
        }
        None => float_within(a, b, tol),
    }
}

fn float_within(a: &str, b: &str, tol: &Tolerance) -> bool {
    let (Ok(fa), Ok(fb)) = (a.parse::<f64>(), b.parse::<f64>()) else {
        return false;
    };
    if !fa.is_finite() || !fb.is_finite() {
        return false;
    }
    let d = (fa - fb).abs();
    d <= tol.abs.to_f64() || d <= tol.rel.to_f64() * fa.abs().max(fb.abs())
}

/// `b − a` as a float64, for display.
pub(crate) fn delta(a: &str, b: &str) -> Option<f64> {
    let (ca, cb) = (Canon::new(a), Canon::new(b));
    if let Some((gap, _, e, b_larger)) = exact_gap(&ca, &cb) {
        let g: f64 = format!("{gap}e{e}").parse().ok()?;
        return Some(if b_larger { g } else { -g });
    }
    let d = b.parse::<f64>().ok()? - a.parse::<f64>().ok()?;
    d.is_finite().then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eq(a: &str, b: &str) -> bool {
        num_eq(a, b, &Tolerance::default())
    }

    #[test]
    fn exponents_at_opposite_ends_of_i64_compare_without_overflow() {
        // Found by the jsondiff_patch fuzz target in CI: `x·10^ex ≤ y·10^ey` subtracted the
        // exponents, which overflowed for exponents near i64::MAX and i64::MIN.
        assert!(!le_scaled(1, i64::MAX, 1, i64::MIN));
        assert!(le_scaled(1, i64::MIN, 1, i64::MAX));
        let a = "14000001e4000000140037299090632256200";
        let b = "14005e00411072891090910915728415728";
        assert!(!eq(a, b));
        assert!(!eq(b, a));
        assert!(!eq(a, "-1e-9999999999999999999999999"));
    }

    #[test]
    fn exact_values_regardless_of_spelling() {
        assert!(eq("1", "1.0"));
        assert!(eq("1e2", "100"));
        assert!(eq("100", "1E+2"));
        assert!(eq("0.10", "1e-1"));
        assert!(eq("-0", "0.0"));
        assert!(eq("0e10", "0"));
        assert!(!eq("12345678901234567890", "12345678901234567891"));
        assert!(!eq("1", "2"));
        assert!(Canon::new("1.500") == Canon::new("15e-1"));
    }

    #[test]
    fn tolerance_is_inclusive_and_exact_at_the_boundary() {
        // |a−b| = 0.000005 exactly: equal (float64 subtraction would say 5.0000000001e-6).
        assert!(eq("1.00001", "1.000015"));
        assert!(!eq("1.00001", "1.0000150001"));
        assert!(eq("0.1", "0.100004999"));
        assert!(eq("-0.000002", "0.000003"));
        assert!(!eq("-0.000002", "0.0000031"));
        assert!(eq("1", "1.000001"));
        assert!(!eq("1.000012", "1.000031"));
        // Two integers are never tolerance-compared.
        let wide = Tolerance {
            abs: Decimal::parse("10").expect("valid"),
            rel: Decimal::ZERO,
        };
        assert!(!num_eq("1", "2", &wide));
        assert!(num_eq("1", "2.0", &wide));
    }

    #[test]
    fn relative_tolerance() {
        let tol = Tolerance {
            abs: Decimal::ZERO,
            rel: Decimal::parse("0.01").expect("valid"),
        };
        assert!(num_eq("100.0", "101", &tol));
        assert!(!num_eq("100.0", "101.1", &tol));
        assert!(num_eq("1e300", "1.005e300", &tol));
    }

    #[test]
    fn huge_and_tiny_fall_back_sensibly() {
        assert!(!eq("1e400", "2e400"));
        assert!(eq("1e-400", "2e-400"));
        assert!(eq("1.0000000000000000000000000000000000000000001", "1"));
    }

    #[test]
    fn deltas() {
        let d = delta("1.000012", "1.000031").expect("finite");
        assert!((d - 1.9e-5).abs() < 1e-12);
        assert_eq!(delta("3", "1"), Some(-2.0));
        assert_eq!(delta("-1", "1"), Some(2.0));
        assert_eq!(
            delta("12345678901234567890", "12345678901234567891"),
            Some(1.0)
        );
        assert_eq!(delta("-5", "-7"), Some(-2.0));
    }

    #[test]
    fn decimals_parse() {
        assert_eq!(Decimal::parse("0.00001"), Some(Decimal { m: 1, e: -5 }));
        assert_eq!(Decimal::parse("-1"), None);
        assert_eq!(Decimal::parse("abc"), None);
        assert_eq!(Decimal::half_unit(5).to_f64(), 0.000005);
    }
}
