//! Writes the benchmark inputs (`reference.jpg`, `overlay.png`) into the directory
//! given as the first argument; used by bench/watermark/compare.sh.

#[path = "../benches/reference.rs"]
mod reference;

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let jpeg = reference::jpeg();
    std::fs::write(format!("{dir}/reference.jpg"), &jpeg)?;
    std::fs::write(format!("{dir}/overlay.png"), reference::overlay_png())?;
    println!(
        "wrote {dir}/reference.jpg ({} bytes, {}x{}) and {dir}/overlay.png ({}x{})",
        jpeg.len(),
        reference::W,
        reference::H,
        reference::OW,
        reference::OH
    );
    Ok(())
}
