//! rubra-watermark's JPEG parser, Huffman and arithmetic decoders and Huffman
//! encoder: `jpeg_to_baseline` keeps the DCT coefficients, so when zune-jpeg
//! decodes the input, it decodes the output to exactly the same pixels.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

fn decode(bytes: &[u8]) -> Option<(usize, usize, Vec<u8>)> {
    let options = DecoderOptions::default()
        .set_max_width(1 << 20)
        .set_max_height(1 << 20);
    let mut d = JpegDecoder::new_with_options(zune_core::bytestream::ZCursor::new(bytes), options);
    let pixels = d.decode().ok()?;
    let (w, h) = d.dimensions()?;
    Some((w, h, pixels))
}

fuzz_target!(|input: &[u8]| {
    let Ok(out) = rubra_watermark::jpeg_to_baseline(input, 1 << 20) else {
        return;
    };
    let after = decode(&out).expect("the baseline output decodes");
    if let Some(before) = decode(input) {
        assert!(before == after, "pixels changed");
    }
});
