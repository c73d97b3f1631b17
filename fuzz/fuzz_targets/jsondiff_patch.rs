//! `rubra diff` on two documents (the input split at its first NUL byte): the
//! comparison never panics, and its patch applies to the first document and gives
//! one equal to the second under the same options. The first byte picks the
//! array mode and the tolerance.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rubra_jsondiff::{ArrayMode, Document, Options, Tolerance, apply, diff, equal};

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let Some(cut) = rest.iter().position(|&b| b == 0) else {
        return;
    };
    let (Ok(a), Ok(b)) = (
        Document::parse_bytes(rest[..cut].to_vec()),
        Document::parse_bytes(rest[cut + 1..].to_vec()),
    ) else {
        return;
    };
    let options = Options {
        array_mode: match mode % 4 {
            0 => ArrayMode::Ordered,
            1 => ArrayMode::Set,
            2 => ArrayMode::Multiset,
            _ => ArrayMode::Key("id".into()),
        },
        tolerance: if mode & 4 != 0 {
            Tolerance::EXACT
        } else {
            Tolerance::default()
        },
        patch: true,
        ..Options::default()
    };
    let report = diff(&a, &b, &options);
    let patched = apply(&a, &report.patch).expect("the patch of a diff applies");
    let patched = Document::parse(patched).expect("the patched document parses");
    assert!(equal(&patched, &b, &options), "{}", report.patch_json());
    assert_eq!(report.is_equal(), equal(&a, &b, &options));
});
