//! The jsondiff parser against serde_json: the same texts are accepted, and an
//! accepted text reads back (through jsondiff's own compact rewrite) as the value
//! serde_json reads. Known, documented differences are skipped: a leading byte
//! order mark (skipped by jsondiff), lone surrogates (left open by RFC 8259),
//! numbers past float64 and nesting past serde_json's limit of 128.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rubra_jsondiff::{Document, Options, Tolerance, apply, diff};
use serde_json::Value;

fn allowed(e: &serde_json::Error) -> bool {
    let m = e.to_string();
    [
        "surrogate",
        "unexpected end of hex escape",
        "number out of range",
        "recursion limit",
    ]
    .iter()
    .any(|k| m.contains(k))
}

fuzz_target!(|input: &[u8]| {
    let ours = Document::parse_bytes(input.to_vec());
    let text = std::str::from_utf8(input).unwrap_or("\u{0}");
    let theirs = serde_json::from_str::<Value>(text.strip_prefix('\u{feff}').unwrap_or(text));
    match (ours, theirs) {
        (Ok(d), Ok(v)) => {
            let rewritten = apply(&d, &[]).expect("an empty patch applies");
            let back: Value = serde_json::from_str(&rewritten).expect("our rewrite is JSON");
            assert_eq!(back, v, "rewritten as {rewritten}");
            let again = Document::parse(rewritten).expect("our rewrite parses");
            let exact = Options {
                tolerance: Tolerance::EXACT,
                ..Options::default()
            };
            assert!(diff(&d, &again, &exact).is_equal());
        }
        (Err(_), Err(_)) => {}
        (Ok(_), Err(e)) if allowed(&e) => {}
        (ours, theirs) => panic!("ours {:?}, serde_json {theirs:?}", ours.map(|_| ())),
    }
});
