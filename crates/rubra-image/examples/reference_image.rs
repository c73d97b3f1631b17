//! Writes the RED benchmark's reference JPEG (1980×1280, q90, ~900 KB) to the
//! path given as the first argument, for the Pillow comparison and the HTTP load.

#[path = "../benches/reference.rs"]
mod reference;

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "reference.jpg".into());
    let bytes = reference::reference_jpeg();
    if let Err(e) = std::fs::write(&path, &bytes) {
        eprintln!("cannot write {path}: {e}");
        std::process::exit(1);
    }
    println!("{path}: {} bytes", bytes.len());
}
