//! Watermarking the reference 1980×1280 q90 JPEG with a 500×100 overlay:
//! the DCT fast path against the decode → blend → encode path.

use rubra_watermark::{Gravity, Options, Overlay, Placement, Strategy, watermark_with};
use std::sync::LazyLock;

#[path = "reference.rs"]
#[allow(dead_code)]
mod reference;

static INPUT: LazyLock<Vec<u8>> = LazyLock::new(|| {
    if let Ok(path) = std::env::var("WM_BENCH_JPEG") {
        return std::fs::read(path).expect("read WM_BENCH_JPEG");
    }
    reference::jpeg()
});
static OVERLAY: LazyLock<Overlay> =
    LazyLock::new(|| Overlay::from_png(&reference::overlay_png()).expect("overlay"));

fn main() {
    eprintln!("reference JPEG: {} bytes", INPUT.len());
    divan::main();
}

fn run(gravity: Gravity, strategy: Strategy) -> Vec<u8> {
    let opts = Options {
        strategy,
        ..Options::new(Placement::gravity(gravity, 20, 20))
    };
    watermark_with(divan::black_box(&INPUT), &OVERLAY, &opts)
        .expect("watermark")
        .bytes
}

/// The reference load: south-east corner, DCT fast path.
#[divan::bench]
fn jpeg_fast_southeast() -> Vec<u8> {
    run(Gravity::SouthEast, Strategy::Auto)
}

/// North-west corner: short prefix, long bit-shifted suffix copy.
#[divan::bench]
fn jpeg_fast_northwest() -> Vec<u8> {
    run(Gravity::NorthWest, Strategy::Auto)
}

/// Centre: half skipped, half shifted.
#[divan::bench]
fn jpeg_fast_center() -> Vec<u8> {
    run(Gravity::Center, Strategy::Auto)
}

/// Full decode → blend → encode (libjpeg-turbo through rubra-image + jpeg-encoder), for comparison.
#[divan::bench(sample_count = 10)]
fn jpeg_pixels_southeast() -> Vec<u8> {
    run(Gravity::SouthEast, Strategy::Pixels)
}
