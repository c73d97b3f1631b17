//! Integers as JSON Schema counts them: `1000` and `1000.0` are the same integer (a number
//! whose fraction is zero is an integer in JSON Schema 2020-12), so a body the document allows
//! with `"type": "integer"` is read rather than refused as a float.

use serde::de::{self, Deserializer, Unexpected, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// The largest magnitude at which every float with a zero fraction is the integer it
/// spells (2^53); past it `1e300` only looks whole, and no integer field reaches it.
const EXACT: f64 = 9_007_199_254_740_992.0;

/// `f` as the integer it is, when its fraction is zero and it is at most 2^53 from zero.
pub(crate) fn whole(f: f64) -> Option<i64> {
    // Exact: `f` has no fraction and is within ±2^53, which i64 holds.
    #[allow(clippy::cast_possible_truncation)]
    (f.fract() == 0.0 && f.abs() <= EXACT).then_some(f as i64)
}

struct Integer<T>(PhantomData<T>);

impl<T: TryFrom<i64> + TryFrom<u64>> Visitor<'_> for Integer<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer in range")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        match whole(v) {
            Some(i) => self.visit_i64(i),
            None => Err(E::invalid_type(Unexpected::Float(v), &self)),
        }
    }
}

struct OptionalInteger<T>(PhantomData<T>);

impl<'de, T: TryFrom<i64> + TryFrom<u64>> Visitor<'de> for OptionalInteger<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer in range or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        d.deserialize_any(Integer(PhantomData)).map(Some)
    }
}

/// `deserialize_with` for an optional integer field (with `#[serde(default)]`): null is
/// `None`, `1000` and `1000.0` are `Some(1000)`, `1000.5` and values out of `T`'s range are
/// refused.
pub(crate) fn optional_integer<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    d.deserialize_option(OptionalInteger(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "optional_integer")]
        n: Option<u32>,
    }

    fn n(json: &str) -> Result<Option<u32>, String> {
        serde_json::from_str::<Body>(json)
            .map(|b| b.n)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_zero_fraction_is_an_integer_and_any_other_is_not() {
        assert_eq!(n(r#"{"n": 1000}"#), Ok(Some(1000)));
        assert_eq!(n(r#"{"n": 1000.0}"#), Ok(Some(1000)));
        assert_eq!(n(r#"{"n": 1e3}"#), Ok(Some(1000)));
        assert_eq!(n(r#"{"n": null}"#), Ok(None));
        assert_eq!(n("{}"), Ok(None));
        assert!(n(r#"{"n": 1000.5}"#).is_err());
        assert!(n(r#"{"n": -1}"#).is_err());
        assert!(n(r#"{"n": -1.0}"#).is_err());
        assert!(n(r#"{"n": 4294967296}"#).is_err());
        assert!(n(r#"{"n": "1"}"#).is_err());
        assert_eq!(whole(1e300), None);
    }
}
