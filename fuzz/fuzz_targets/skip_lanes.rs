//! rubra-watermark's skip over the first MCUs of a baseline JPEG (issue #24): the
//! AVX-512 vector lanes, which in fuzz builds take every stretch however short,
//! against the scalar chains alone. Both land on the same raw bit with the same DC
//! predictors, or both refuse. The first two bytes pick how far to skip (a share of
//! the MCUs, little-endian, of 65 536); the rest is the JPEG. On a CPU without
//! AVX-512 both ways are the scalar chains and the target only checks for panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((share, jpeg)) = data.split_first_chunk::<2>() else {
        return;
    };
    let share = u16::from_le_bytes(*share);
    if let Some([lanes, scalar]) = rubra_watermark::fuzzing::skip_both_ways(jpeg, share) {
        match (&lanes, &scalar) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "the lanes and the scalar chains land apart"),
            (Err(_), Err(_)) => {}
            _ => panic!("the lanes give {lanes:?}, the scalar chains {scalar:?}"),
        }
    }
});
