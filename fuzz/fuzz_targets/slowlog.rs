//! The slowlog line parser on any log: the report never panics, and parsing on
//! several threads gives the same report as on one (as documented).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rubra_slowlog::{Options, analyze};

fuzz_target!(|input: &[u8]| {
    let one = analyze(
        input,
        &Options {
            threads: 1,
            ..Options::default()
        },
    );
    let two = analyze(
        input,
        &Options {
            threads: 2,
            ..Options::default()
        },
    );
    match (one, two) {
        (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}")),
        (Err(a), Err(b)) => assert_eq!(a.kind(), b.kind()),
        (a, b) => panic!("one thread {a:?}, two {b:?}"),
    }
});
