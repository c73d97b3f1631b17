//! Compiles `csrc/jpeg_rows.c` (the libjpeg error trap and row reader behind
//! `src/libjpeg.rs`) and `csrc/jpeg_huffman.c` (the faster baseline Huffman
//! decoder it installs), and links the system's libjpeg-turbo.
//!
//! Needs `jpeglib.h` and `libjpeg.so` from Debian's `libjpeg62-turbo-dev`
//! (`libjpeg-turbo8-dev` on Ubuntu); `.ci/run` and `scripts/test.sh` install it
//! when it is missing.

fn main() {
    for file in [
        "csrc/jpeg_rows.c",
        "csrc/jpeg_rows.h",
        "csrc/jpeg_huffman.c",
        "csrc/jpeg_huffman.h",
    ] {
        println!("cargo:rerun-if-changed={file}");
    }
    let header = ["/usr/include/jpeglib.h", "/usr/local/include/jpeglib.h"];
    if !header.iter().any(|h| std::path::Path::new(h).exists()) {
        println!(
            "cargo:warning=jpeglib.h not found: install libjpeg-turbo's development files \
             (Debian: apt-get install libjpeg62-turbo-dev)"
        );
    }
    cc::Build::new()
        .file("csrc/jpeg_rows.c")
        .file("csrc/jpeg_huffman.c")
        .opt_level(2)
        .warnings(true)
        .extra_warnings(true)
        .compile("rubra_jpeg_rows");
    println!("cargo:rustc-link-lib=jpeg");
}
