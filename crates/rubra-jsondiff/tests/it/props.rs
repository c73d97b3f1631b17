//! Property tests: a value equals itself, patches turn A into B, and numbers moved
//! by less than the tolerance stay equal in every array mode.

use proptest::prelude::*;
use rubra_jsondiff::{ArrayMode, Document, Options, Tolerance, apply, diff};

/// A generated JSON value; decimals are `m × 10^-7`, so perturbations are exact.
#[derive(Clone, Debug)]
enum J {
    Null,
    Bool(bool),
    Int(i64),
    Dec(i64),
    Big(u8),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

fn leaf() -> impl Strategy<Value = J> {
    prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        (-1000i64..1000).prop_map(J::Int),
        (-100_000_000i64..100_000_000).prop_map(J::Dec),
        (0u8..3).prop_map(J::Big),
        "[a-c\"\\\\é]{0,3}".prop_map(J::Str),
    ]
}

fn value() -> impl Strategy<Value = J> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(J::Arr),
            prop::collection::vec(("[a-d]{1,2}", inner), 0..5).prop_map(|members| {
                // Unique names: duplicates would make "last one wins" the subject.
                let mut seen = std::collections::HashSet::new();
                J::Obj(
                    members
                        .into_iter()
                        .filter(|(k, _)| seen.insert(k.clone()))
                        .collect(),
                )
            }),
        ]
    })
}

fn dec(m: i64) -> String {
    let sign = if m < 0 { "-" } else { "" };
    let a = m.unsigned_abs();
    format!("{sign}{}.{:07}", a / 10_000_000, a % 10_000_000)
}

/// Renders `v`; with `nudge`, every decimal moves by `nudge(i)` units of 10^-7
/// and integers are written as decimals moved the same way.
fn render(v: &J, nudge: &mut dyn FnMut() -> i64, out: &mut String) {
    match v {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Int(i) => match nudge() {
            0 => out.push_str(&i.to_string()),
            d => out.push_str(&dec(i * 10_000_000 + d)),
        },
        J::Dec(m) => out.push_str(&dec(m + nudge())),
        J::Big(k) => out.push_str(&format!("1234567890123456789{k}")),
        J::Str(s) => {
            out.push('"');
            out.push_str(&s.replace('\\', "\\\\").replace('"', "\\\""));
            out.push('"');
        }
        J::Arr(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                render(x, nudge, out);
            }
            out.push(']');
        }
        J::Obj(members) => {
            out.push('{');
            for (i, (k, x)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&format!("\"{k}\":"));
                if k == "a" {
                    // Keys of keyed arrays are compared exactly: keep them as they are.
                    render(x, &mut || 0, out);
                } else {
                    render(x, nudge, out);
                }
            }
            out.push('}');
        }
    }
}

fn text(v: &J) -> String {
    let mut s = String::new();
    render(v, &mut || 0, &mut s);
    s
}

fn doc(s: &str) -> Document {
    s.parse().expect("generated JSON is valid")
}

fn modes() -> Vec<ArrayMode> {
    vec![
        ArrayMode::Ordered,
        ArrayMode::Set,
        ArrayMode::Multiset,
        ArrayMode::Key("a".into()),
    ]
}

/// Reverses every array, recursively (an unordered mode must not care).
fn reversed(v: &J) -> J {
    match v {
        J::Arr(items) => J::Arr(items.iter().rev().map(reversed).collect()),
        J::Obj(m) => J::Obj(m.iter().map(|(k, x)| (k.clone(), reversed(x))).collect()),
        other => other.clone(),
    }
}

proptest! {
    // 96 cases by default; PROPTEST_CASES=N for a longer run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(96),
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_value_equals_itself(v in value()) {
        let d = doc(&text(&v));
        for mode in modes() {
            let o = Options { array_mode: mode, patch: true, ..Options::default() };
            let r = diff(&d, &d, &o);
            prop_assert!(r.is_equal() && r.patch.is_empty(), "{}", r.to_text(false));
        }
    }

    #[test]
    fn the_patch_turns_a_into_b(a in value(), b in value()) {
        let (da, db) = (doc(&text(&a)), doc(&text(&b)));
        for mode in modes() {
            for tol in [Tolerance::EXACT, Tolerance::default()] {
                let o = Options { array_mode: mode.clone(), tolerance: tol, patch: true, ..Options::default() };
                let r = diff(&da, &db, &o);
                let patched = doc(&apply(&da, &r.patch).map_err(|e| TestCaseError::fail(e.to_string()))?);
                let again = diff(&patched, &db, &o);
                prop_assert!(again.is_equal(), "mode {:?}\npatch {}\nleft {}", mode, r.patch_json(), again.to_text(false));
                prop_assert_eq!(r.is_equal(), r.patch.is_empty());
            }
        }
    }

    #[test]
    fn numbers_within_tolerance_are_equal_in_every_mode(v in value(), seed in any::<u64>()) {
        // Moves of at most 49·10^-7 < 0.5·10^-5, including across rounding boundaries.
        let mut s = seed | 1;
        let mut nudge = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 99) as i64 - 49
        };
        let a = doc(&text(&v));
        for mode in modes() {
            let shaken = if mode == ArrayMode::Ordered { v.clone() } else { reversed(&v) };
            let mut t = String::new();
            render(&shaken, &mut nudge, &mut t);
            let b = doc(&t);
            let o = Options { array_mode: mode.clone(), ..Options::default() };
            let r = diff(&a, &b, &o);
            prop_assert!(r.is_equal(), "mode {:?}\nA {}\nB {}\n{}", mode, text(&v), t, r.to_text(false));
            let exact = Options { tolerance: Tolerance::EXACT, ..o };
            if mode == ArrayMode::Ordered && t != text(&shaken) {
                prop_assert!(!diff(&a, &b, &exact).is_equal());
            }
        }
    }
}

#[test]
fn rounding_boundaries_do_not_split_matches() {
    // Each pair rounds to different 5-decimal values but is within 0.5·10^-5.
    let a = doc("[0.1234549, 0.1234551, 2.0000049, 7.9999951]");
    let b = doc("[7.9999949, 2.0000051, 0.1234551, 0.1234549]");
    for mode in [ArrayMode::Set, ArrayMode::Multiset] {
        let o = Options {
            array_mode: mode,
            ..Options::default()
        };
        assert!(diff(&a, &b, &o).is_equal());
    }
}
