//! Compiles `csrc/jpeg_rows.c` (the libjpeg error trap and row reader behind
//! `src/libjpeg.rs`) and links the system's libjpeg-turbo.
//!
//! Needs `jpeglib.h` and `libjpeg.so` from Debian's `libjpeg62-turbo-dev`
//! (`libjpeg-turbo8-dev` on Ubuntu); `.ci/run` and `scripts/test.sh` install it
//! when it is missing.

fn main() {
    println!("cargo:rerun-if-changed=csrc/jpeg_rows.c");
    let header = ["/usr/include/jpeglib.h", "/usr/local/include/jpeglib.h"];
    if !header.iter().any(|h| std::path::Path::new(h).exists()) {
        println!(
            "cargo:warning=jpeglib.h not found: install libjpeg-turbo's development files \
             (Debian: apt-get install libjpeg62-turbo-dev)"
        );
    }
    cc::Build::new()
        .file("csrc/jpeg_rows.c")
        .warnings(true)
        .extra_warnings(true)
        .compile("rubra_jpeg_rows");
    println!("cargo:rustc-link-lib=jpeg");
}
