//! Integration tests of the RED meter: every format with known red fractions,
//! JPEG against libjpeg-turbo, decompression bombs, and hostile input.

#![allow(clippy::unwrap_used)]

#[path = "../../benches/reference.rs"]
mod reference;

mod formats;
mod fuzz_findings;
mod helpers;
mod hostile;
mod huffman;
mod jpeg;
mod props;
