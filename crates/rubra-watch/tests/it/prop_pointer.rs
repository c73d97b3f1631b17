//! Differential oracle: `select` (JSON Pointer on raw text) against `serde_json`'s
//! `Value::pointer` on generated documents with hostile member names, for pointers
//! built from real paths (RFC 6901 escaping) and for mangled ones (`-`, leading
//! zeros, signs, missing members, escapes cut short).

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use rubra_watch::select;
use serde_json::Value;

fn name() -> impl Strategy<Value = String> {
    "[a~/0-9 é\"\\\\]{0,3}"
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z~/]{0,3}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((name(), inner), 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A path into `v` (member names and indices), chosen by `picks`.
fn path(v: &Value, picks: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = v;
    for &p in picks {
        cur = match cur {
            Value::Array(a) if !a.is_empty() => {
                out.push((p % a.len()).to_string());
                &a[p % a.len()]
            }
            Value::Object(m) if !m.is_empty() => {
                let (k, next) = m.iter().nth(p % m.len()).expect("member");
                out.push(k.clone());
                next
            }
            _ => break,
        };
    }
    out
}

fn pointer(tokens: &[String]) -> String {
    tokens
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// Edits that make a pointer name nothing, or something else.
fn mangle(p: &str, how: u8) -> String {
    match how % 6 {
        0 => format!("{p}/-"),
        1 => format!("{p}/01"),
        2 => format!("{p}/+1"),
        3 => format!("{p}/~"),
        4 => format!("{p}/~2"),
        _ => format!("{p}/"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/prop_pointer.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn select_finds_what_serde_json_finds(
        v in value(),
        picks in prop::collection::vec(any::<usize>(), 0..5),
        how in prop::option::of(any::<u8>()),
        pretty in any::<bool>(),
    ) {
        let text = if pretty {
            serde_json::to_string_pretty(&v).expect("json")
        } else {
            serde_json::to_string(&v).expect("json")
        };
        let mut p = pointer(&path(&v, &picks));
        if let Some(how) = how {
            p = mangle(&p, how);
        }
        match (select(&text, &p), v.pointer(&p)) {
            (Ok(found), Some(want)) => {
                let found: Value = serde_json::from_str(found).expect("a selection is JSON");
                prop_assert_eq!(&found, want, "{}", p);
            }
            (Err(_), None) => {}
            (ours, theirs) => prop_assert!(false, "{:?}: select {:?}, serde_json {:?}", p, ours, theirs),
        }
    }
}
