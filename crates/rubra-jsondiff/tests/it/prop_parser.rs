//! Differential oracle: the jsondiff parser against `serde_json` on hostile text
//! (accept/reject, and the values read), JSON Pointers in reports against
//! `serde_json`'s own pointer lookup, and patches from a diff applied by an
//! independent RFC 6902 applier over `serde_json` values.

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use rubra_jsondiff::{Decimal, Document, Kind, Options, Tolerance, apply, diff};
use serde_json::Value;

/// A string literal's inside: plain characters, every escape, raw controls,
/// and `\u` escapes that may be lone surrogates.
fn string_body() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            6 => "[a-z ~/é😀]",
            1 => prop_oneof![
                Just("\\\"".to_owned()),
                Just("\\\\".to_owned()),
                Just("\\/".to_owned()),
                Just("\\b".to_owned()),
                Just("\\f".to_owned()),
                Just("\\n".to_owned()),
                Just("\\r".to_owned()),
                Just("\\t".to_owned()),
                Just("\\ud83d\\ude00".to_owned()),
                Just("\\u00e9".to_owned()),
                Just("\\u0000".to_owned()),
            ],
            1 => "\\\\u[0-9a-fA-F]{4}",
            1 => "\\\\u[dD][89abAB][0-9a-fA-F]{2}",
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat())
}

fn number() -> impl Strategy<Value = String> {
    "-?(0|[1-9][0-9]{0,24})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,2})?"
}

fn ws() -> impl Strategy<Value = String> {
    prop_oneof![4 => Just(String::new()), 1 => "[ \t\n\r]{1,2}"]
}

/// Valid JSON text (up to lone surrogates, which RFC 8259 leaves open).
fn json() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        number(),
        string_body().prop_map(|s| format!("\"{s}\"")),
    ];
    leaf.prop_recursive(5, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec((ws(), inner.clone(), ws()), 0..5).prop_map(|items| {
                let items: Vec<String> = items
                    .into_iter()
                    .map(|(a, v, b)| format!("{a}{v}{b}"))
                    .collect();
                format!("[{}]", items.join(","))
            }),
            prop::collection::vec(
                (prop_oneof![2 => "[a-c]", 1 => string_body()], ws(), inner),
                0..5
            )
            .prop_map(|members| {
                let members: Vec<String> = members
                    .into_iter()
                    .map(|(k, s, v)| format!("\"{k}\"{s}:{s}{v}"))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// Edits that mostly break the text: delete, insert or replace one character,
/// with the insertions drawn from JSON's own tokens.
fn mutated() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        "[\\[\\]{}:,\"\\\\ 0-9.eE+\\-a-z\u{1}\u{7f}]",
        Just("tru".to_owned()),
        Just("nul".to_owned()),
        Just("\\u".to_owned()),
        Just("\\x".to_owned()),
        Just("01".to_owned()),
        Just("1.".to_owned()),
        Just(".5".to_owned()),
        Just("1e".to_owned()),
        Just("Infinity".to_owned()),
        Just("NaN".to_owned()),
        Just("\u{feff}".to_owned()),
    ];
    (
        json(),
        prop::collection::vec((0u8..3, any::<prop::sample::Index>(), token), 0..3),
    )
        .prop_map(|(text, edits)| {
            let mut chars: Vec<char> = text.chars().collect();
            for (kind, at, token) in edits {
                let i = at.index(chars.len() + 1);
                match kind {
                    0 if i < chars.len() => {
                        chars.remove(i);
                    }
                    1 if i < chars.len() => {
                        chars.splice(i..=i, token.chars());
                    }
                    _ => {
                        chars.splice(i..i, token.chars());
                    }
                }
            }
            chars.into_iter().collect()
        })
}

fn doc(text: &str) -> Document {
    Document::parse(text.to_owned()).expect("valid")
}

/// Every number as a float64, so `1`, `1.0` and `1e0` compare equal.
fn floats(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::from(n.as_f64().expect("finite")),
        Value::Array(a) => Value::Array(a.iter().map(floats).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), floats(v))).collect()),
        other => other.clone(),
    }
}

/// Numbers as exact decimals, or equal as float64 to about one rounding.
/// Equal to one rounding to f64: relative 1e-15 for normal numbers, and for what
/// underflows (serde_json reads `1E-401` as 0.0) the smallest subnormal, absolute.
fn near_f64() -> Options {
    Options {
        tolerance: Tolerance {
            abs: Decimal::parse("5e-324").expect("decimal"),
            rel: Decimal::parse("1e-15").expect("decimal"),
        },
        ..Options::default()
    }
}

fn exact() -> Options {
    Options {
        tolerance: Tolerance::EXACT,
        ..Options::default()
    }
}

/// RFC 6901: `~` as `~0`, `/` as `~1`.
fn encode(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// A small RFC 6902 applier (add, remove, replace) over `serde_json` values that
/// resolves every pointer with `serde_json`'s `Value::pointer_mut`.
fn apply_independently(doc: &mut Value, patch: &Value) -> Result<(), String> {
    for op in patch.as_array().ok_or("the patch is an array")? {
        let kind = op["op"].as_str().ok_or("op")?;
        let path = op["path"].as_str().ok_or("path")?;
        let value = op.get("value").cloned();
        if path.is_empty() {
            match (kind, value) {
                ("add" | "replace", Some(v)) => *doc = v,
                _ => return Err(format!("bad root operation {op}")),
            }
            continue;
        }
        let cut = path.rfind('/').ok_or("a pointer starts with '/'")?;
        let last = path[cut + 1..].replace("~1", "/").replace("~0", "~");
        let parent = doc
            .pointer_mut(&path[..cut])
            .ok_or_else(|| format!("no parent for {path}"))?;
        match (parent, kind) {
            (Value::Object(m), "add") => {
                m.insert(last, value.ok_or("value")?);
            }
            (Value::Object(m), "replace") if m.contains_key(&last) => {
                m.insert(last, value.ok_or("value")?);
            }
            (Value::Object(m), "remove") if m.contains_key(&last) => {
                m.remove(&last);
            }
            (Value::Array(a), kind) => {
                let i = if last == "-" {
                    a.len()
                } else {
                    last.parse().map_err(|_| format!("index {last}"))?
                };
                match kind {
                    "add" if i <= a.len() => a.insert(i, value.ok_or("value")?),
                    "replace" if i < a.len() => a[i] = value.ok_or("value")?,
                    "remove" if i < a.len() => {
                        a.remove(i);
                    }
                    _ => return Err(format!("{kind} at {path} out of range")),
                }
            }
            _ => return Err(format!("cannot {kind} at {path}")),
        }
    }
    Ok(())
}

proptest! {
    // 512 cases (`PROPTEST_CASES=N` for more).
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/prop_parser.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_parser_accepts_what_serde_json_accepts_and_reads_the_same_values(text in mutated()) {
        let ours = Document::parse(text.clone());
        // A leading byte order mark is skipped (documented); serde_json refuses it.
        let theirs = serde_json::from_str::<Value>(text.strip_prefix('\u{feff}').unwrap_or(&text));
        match (&ours, &theirs) {
            (Ok(d), Ok(v)) => {
                // Strings and structure: our compact rewrite reads back as the same value.
                let rewritten = apply(d, &[]).expect("an empty patch applies");
                let back: Value = serde_json::from_str(&rewritten).expect("our output is JSON");
                prop_assert_eq!(&back, v, "rewritten as {}", rewritten);
                // Numbers exactly as written: the rewrite is the same document.
                prop_assert!(diff(d, &doc(&rewritten), &exact()).is_equal(), "{}", rewritten);
                // Numbers as float64: serde_json's reading equals ours to one rounding.
                let theirs_text = serde_json::to_string(v).expect("serialize");
                let report = diff(d, &doc(&theirs_text), &near_f64());
                prop_assert!(report.is_equal(), "{}\n{}", theirs_text, report.to_text(false));
            }
            (Err(_), Err(_)) => {}
            // RFC 8259 leaves lone surrogates to the parser: serde_json refuses a
            // lone leading one as "lone leading surrogate" or "unexpected end of
            // hex escape" (when no `\u` follows).
            (Ok(_), Err(e))
                if e.to_string().contains("surrogate")
                    || e.to_string().contains("unexpected end of hex escape") => {}
            // serde_json refuses numbers past float64's range; they are valid JSON.
            (Ok(_), Err(e)) if e.to_string().contains("number out of range") => {}
            _ => prop_assert!(false, "{:?}: ours {:?}, serde_json {:?}", text, ours.map(|_| ()), theirs),
        }
    }

    #[test]
    fn pointers_in_reports_find_the_value_with_serde_json(a in json(), b in json(), key in string_body()) {
        if serde_json::from_str::<Value>(&a).is_err() || serde_json::from_str::<Value>(&b).is_err() {
            return Ok(()); // lone surrogates
        }
        let Ok(name) = serde_json::from_str::<String>(&format!("\"{key}\"")) else {
            return Ok(());
        };
        // Put both values under a hostile member name, one level down.
        let wrap = |v: &str| format!("{{\"{key}\":[{v}],\"~/\":0}}");
        let (da, db) = (doc(&wrap(&a)), doc(&wrap(&b)));
        let ja: Value = serde_json::from_str(&wrap(&a)).expect("json");
        let jb: Value = serde_json::from_str(&wrap(&b)).expect("json");
        for d in diff(&da, &db, &exact()).differences {
            prop_assert!(d.pointer.is_empty() || d.pointer.starts_with(&format!("/{}/0", encode(&name))), "{}", d.pointer);
            let (side, text) = match d.kind {
                Kind::Added => (&jb, d.new.as_deref()),
                Kind::Removed | Kind::Changed => (&ja, d.old.as_deref()),
            };
            let found = side.pointer(&d.pointer);
            prop_assert!(found.is_some(), "serde_json finds nothing at {:?}", d.pointer);
            let want: Value = serde_json::from_str(text.expect("a value")).expect("json");
            prop_assert_eq!(floats(found.expect("found")), floats(&want));
        }
    }

    #[test]
    fn a_patch_from_diff_turns_a_into_b_by_an_independent_applier(a in json(), b in json()) {
        let (Ok(va), Ok(vb)) = (serde_json::from_str::<Value>(&a), serde_json::from_str::<Value>(&b)) else {
            return Ok(());
        };
        let options = Options { patch: true, ..exact() };
        let report = diff(&doc(&a), &doc(&b), &options);
        // Ours applies and gives B exactly.
        let patched = apply(&doc(&a), &report.patch).expect("our patch applies");
        prop_assert!(diff(&doc(&patched), &doc(&b), &exact()).is_equal(), "{}", patched);
        // The JSON text of the patch, applied by serde_json pointers, gives B too.
        let patch: Value = serde_json::from_str(&report.patch_json()).expect("the patch is JSON");
        let mut v = va;
        if let Err(e) = apply_independently(&mut v, &patch) {
            prop_assert!(false, "{}: {}", e, report.patch_json());
        }
        prop_assert_eq!(floats(&v), floats(&vb), "{}", report.patch_json());
    }
}
