//! Timestamps (`rubra slowlog --since`): any text parses or is refused without a
//! panic, and a parsed time prints as text that parses back to the same time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rubra_slowlog::Timestamp;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    if let Ok(t) = text.parse::<Timestamp>() {
        let shown = t.to_string();
        let back: Timestamp = shown.parse().expect("a printed timestamp parses");
        assert_eq!(back.to_string(), shown);
    }
});
