//! rubra-csvsum on any bytes: the streaming summer fed in chunks, the parallel
//! `sum_bytes` and the pipelined `sum_chunks` must all give the whole-input answer
//! (partial sums of regions may overflow elsewhere: an overflow on either side is
//! not compared). The first three bytes choose the options and the chunk size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rubra_csvsum::{Control, CsvSumError, SumOptions, Summary, Summer, sum_bytes, sum_chunks};

fn fed(data: &[u8], options: &SumOptions, chunk: usize) -> Result<Summary, CsvSumError> {
    let mut s = Summer::new(options.clone())?;
    for part in data.chunks(chunk) {
        s.feed(part)?;
    }
    s.finish()
}

fn overflowed(r: &Result<Summary, CsvSumError>) -> bool {
    matches!(r, Err(CsvSumError::SumOverflow { .. }))
}

fuzz_target!(|input: &[u8]| {
    let Some((&[a, b, c], data)) = input.split_first_chunk::<3>() else {
        return;
    };
    let options = SumOptions {
        step: usize::from(a % 12) + 1,
        delimiter: match b {
            b'"' | b'\n' | b'\r' => b',',
            d => d,
        },
        header: c & 1 != 0,
        skip_invalid: c & 2 != 0,
    };
    let chunk = usize::from(c >> 2) + 1;
    let whole = fed(data, &options, data.len().max(1));
    let shown = format!("{whole:?}");
    assert_eq!(
        format!("{:?}", fed(data, &options, chunk)),
        shown,
        "chunks of {chunk}"
    );
    let control = Control {
        threads: 2,
        min_region: chunk as u64,
        ..Control::default()
    };
    let parallel = sum_bytes(data, &options, &control);
    if !overflowed(&parallel) && !overflowed(&whole) {
        assert_eq!(format!("{parallel:?}"), shown, "sum_bytes");
    }
    let parts = data.chunks(chunk.max(1)).map(Ok::<_, std::io::Error>);
    let piped = sum_chunks(parts, &options, &control);
    if !overflowed(&piped) && !overflowed(&whole) {
        assert_eq!(format!("{piped:?}"), shown, "sum_chunks");
    }
});
