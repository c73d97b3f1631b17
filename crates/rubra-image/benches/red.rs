//! RED benchmark on the reference image (1980×1280 JPEG q90, ~900 KB):
//! decode (libjpeg-turbo, counted row by row as it decodes), the red count
//! alone over the same picture's RGB, and the whole `measure`.
//!
//! `CARGO_TARGET_DIR=/work/target-image cargo bench -p rubra-image --bench red`

mod reference;

use std::sync::LazyLock;

use rubra_image::{Limits, decode, measure};

static JPEG: LazyLock<Vec<u8>> = LazyLock::new(reference::reference_jpeg);

fn main() {
    eprintln!("reference image: {} bytes", JPEG.len());
    divan::main();
}

/// libjpeg-turbo decode with the fused count (with the header probe and limit checks).
#[divan::bench(sample_count = 60)]
fn decode_jpeg() -> rubra_image::Decoded {
    decode(divan::black_box(&JPEG), &Limits::default()).expect("reference decodes")
}

/// The red count over the picture's RGB8 pixels alone.
#[divan::bench(sample_count = 200)]
fn count_red(bencher: divan::Bencher) {
    let rgb = reference::reference_rgb(1980, 1280, 0x5EED);
    bencher.bench(|| rubra_image::count_rgb8(divan::black_box(&rgb)));
}

/// Everything `POST /red` will do with the bytes: probe, decode, count.
#[divan::bench(sample_count = 60)]
fn measure_total() -> rubra_image::RedReport {
    measure(divan::black_box(&JPEG), &Limits::default()).expect("reference measures")
}

/// The same count with RGBA input (PNG/GIF/WebP with alpha), for comparison.
#[divan::bench(sample_count = 200)]
fn count_red_rgba(bencher: divan::Bencher) {
    let rgb = reference::reference_rgb(1980, 1280, 0x5EED);
    let rgba: Vec<u8> = rgb
        .chunks_exact(3)
        .flat_map(|p| [p[0], p[1], p[2], 200])
        .collect();
    bencher.bench(|| rubra_image::count_rgba8(divan::black_box(&rgba)));
}
