//! Measures the red level of image files:
//! `cargo run --release -p rubra-image --example measure -- FILE...`
//! prints `path format width height red red_pixels counted_pixels`, or the
//! error with the HTTP status the server would answer.

use rubra_image::{Limits, measure};

fn main() {
    let limits = Limits::default();
    let mut failed = false;
    for path in std::env::args().skip(1) {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{path}: {e}");
                failed = true;
                continue;
            }
        };
        match measure(&bytes, &limits) {
            Ok(r) => println!(
                "{path}\t{}\t{}\t{}\t{:.6}\t{}\t{}",
                r.format, r.width, r.height, r.red, r.red_pixels, r.counted_pixels
            ),
            Err(e) => {
                println!("{path}\terror {} {}: {e}", e.http_status(), e.code());
                failed = true;
            }
        }
    }
    std::process::exit(i32::from(failed));
}
