//! rubra-watch's JSON Pointer selection against serde_json's `Value::pointer`: the
//! input is a pointer, a NUL byte, then a document. When serde_json reads the
//! document, `select` finds a value exactly where serde_json does, and the same one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|input: &[u8]| {
    let Some(cut) = input.iter().position(|&b| b == 0) else {
        return;
    };
    let (Ok(pointer), Ok(doc)) = (
        std::str::from_utf8(&input[..cut]),
        std::str::from_utf8(&input[cut + 1..]),
    ) else {
        return;
    };
    let ours = rubra_watch::select(doc, pointer);
    let _ = rubra_watch::changes(
        doc,
        doc,
        &rubra_watch::Compare {
            pointer: Some(pointer.to_owned()),
            key: None,
        },
    );
    let Ok(v) = serde_json::from_str::<Value>(doc) else {
        return;
    };
    if rubra_watch::check_pointer(pointer).is_err() {
        assert!(ours.is_err());
        return;
    }
    match (ours, v.pointer(pointer)) {
        (Ok(text), Some(found)) => {
            let read: Value = serde_json::from_str(text).expect("a selection is JSON");
            assert_eq!(&read, found, "{pointer:?}");
        }
        (Err(_), None) => {}
        (ours, theirs) => panic!("{pointer:?}: ours {ours:?}, serde_json {theirs:?}"),
    }
});
