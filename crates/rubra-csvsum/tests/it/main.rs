//! Integration tests of rubra-csvsum against a slow reference implementation.

mod helpers;
mod prop_oracle;

use std::sync::atomic::AtomicBool;

use helpers::{Rng, Shape, generate, reference};
use rubra_csvsum::{
    Control, CsvSumError, SumOptions, Summary, Summer, sum_bytes, sum_chunks, sum_reader,
};

fn whole(data: &[u8], options: &SumOptions) -> Result<Summary, CsvSumError> {
    let mut s = Summer::new(options.clone())?;
    s.feed(data)?;
    s.finish()
}

fn in_pieces(data: &[u8], options: &SumOptions, cuts: &[usize]) -> Result<Summary, CsvSumError> {
    let mut s = Summer::new(options.clone())?;
    let mut at = 0;
    for &c in cuts {
        s.feed(&data[at..c])?;
        at = c;
    }
    s.feed(&data[at..])?;
    s.finish()
}

/// Parallel with many tiny regions, so cuts land everywhere (inside quotes too).
fn parallel(data: &[u8], options: &SumOptions, threads: usize) -> Result<Summary, CsvSumError> {
    let control = Control {
        threads,
        min_region: 1,
        ..Control::default()
    };
    sum_bytes(data, options, &control)
}

#[test]
fn random_files_match_the_reference_in_every_mode() {
    let mut rng = Rng::new(7);
    for case in 0..400 {
        let shape = Shape::random(&mut rng);
        let data = generate(&mut rng, &shape);
        let want = reference(&data, &shape.options);
        let ctx = || format!("case {case} {shape:?}\n{}", String::from_utf8_lossy(&data));
        assert_eq!(
            whole(&data, &shape.options).expect("whole"),
            want,
            "{}",
            ctx()
        );
        let mut cuts: Vec<usize> = (0..rng.below(6))
            .map(|_| rng.below(data.len() as u64 + 1) as usize)
            .collect();
        cuts.sort_unstable();
        assert_eq!(
            in_pieces(&data, &shape.options, &cuts).expect("pieces"),
            want,
            "{}",
            ctx()
        );
        for threads in [2, 7] {
            assert_eq!(
                parallel(&data, &shape.options, threads).expect("par"),
                want,
                "{}",
                ctx()
            );
        }
    }
}

#[test]
fn byte_by_byte_and_every_single_split_give_the_same_result() {
    let mut rng = Rng::new(11);
    for _ in 0..30 {
        let mut shape = Shape::random(&mut rng);
        shape.rows = shape.rows.min(12);
        shape.quoted_text = 60;
        let data = generate(&mut rng, &shape);
        let want = reference(&data, &shape.options);
        let all: Vec<usize> = (1..data.len()).collect();
        assert_eq!(
            in_pieces(&data, &shape.options, &all).expect("bytewise"),
            want
        );
        for cut in 0..=data.len() {
            assert_eq!(
                in_pieces(&data, &shape.options, &[cut]).expect("split"),
                want
            );
        }
    }
}

#[test]
fn a_large_file_with_embedded_newlines_sums_the_same_in_parallel() {
    let mut rng = Rng::new(3);
    let mut shape = Shape::plain(20_000, 23);
    shape.options.step = 5;
    shape.quoted_text = 30;
    shape.crlf = true;
    shape.short_rows = 5;
    shape.odd_numbers = 20;
    let data = generate(&mut rng, &shape);
    let want = reference(&data, &shape.options);
    assert_eq!(whole(&data, &shape.options).expect("whole"), want);
    for threads in [2, 3, 16] {
        assert_eq!(parallel(&data, &shape.options, threads).expect("par"), want);
    }
    let control = Control::default();
    assert_eq!(
        sum_reader(&data[..], &shape.options, &control).expect("reader"),
        want
    );
}

#[test]
fn sum_file_reads_a_real_file() {
    let mut rng = Rng::new(5);
    let shape = Shape::plain(5_000, 40);
    let data = generate(&mut rng, &shape);
    let path = std::env::temp_dir().join(format!("rubra-csvsum-{}.csv", std::process::id()));
    std::fs::write(&path, &data).expect("write");
    let control = Control {
        min_region: 4096,
        ..Control::default()
    };
    let got = rubra_csvsum::sum_file(&path, &shape.options, &control);
    std::fs::remove_file(&path).ok();
    assert_eq!(got.expect("sum_file"), reference(&data, &shape.options));
}

#[test]
fn the_design_example_shape() {
    let csv = "c1,c2,c3,c4,c5,c6,c7,c8,c9,c10\n1,2,3,4,5,6,7,8,9,897571.04\n,,,,,,,,,0.5\r\n";
    let s = whole(csv.as_bytes(), &SumOptions::default()).expect("sum");
    assert_eq!(s.rows, 2);
    assert_eq!(s.columns.len(), 1);
    let c = &s.columns[0];
    assert_eq!(
        (c.index, c.name.as_str(), c.sum.as_str()),
        (10, "c10", "897571.54")
    );
}

#[test]
fn missing_cells_count_as_empty_and_names_default_without_header() {
    let csv = b"1,2,3,4\n5\n6,7\n\n8,9,10\r\n";
    let options = SumOptions {
        step: 2,
        header: false,
        ..SumOptions::default()
    };
    let s = whole(csv, &options).expect("sum");
    assert_eq!(s.rows, 4);
    let got: Vec<(usize, &str, &str)> = s
        .columns
        .iter()
        .map(|c| (c.index, c.name.as_str(), c.sum.as_str()))
        .collect();
    assert_eq!(got, [(2, "c2", "18"), (4, "c4", "4")]);
}

#[test]
fn quoted_fields_with_delimiters_quotes_and_newlines() {
    let csv = b"a;\"b;\"\"x\"\"\"\n\"1;\n2\";\" 3.5\"\n\"\"\"\";-1e1\n";
    let options = SumOptions {
        step: 2,
        delimiter: b';',
        ..SumOptions::default()
    };
    let s = whole(csv, &options).expect("sum");
    assert_eq!(s.rows, 2);
    assert_eq!(s.columns[0].name, "b;\"x\"");
    assert_eq!(s.columns[0].sum, "-6.5");
}

#[test]
fn a_non_numeric_cell_names_row_and_column() {
    let csv = b"a,b\n1,2\n\n\"x\ny\",oops\n3,4\n";
    let options = SumOptions {
        step: 2,
        ..SumOptions::default()
    };
    let err = whole(csv, &options).expect_err("must fail");
    match &err {
        CsvSumError::InvalidNumber {
            row,
            column,
            name,
            value,
            offset,
        } => {
            assert_eq!(
                (*row, *column, name.as_str(), value.as_str()),
                (2, 2, "b", "oops")
            );
            assert_eq!(&csv[*offset as usize..*offset as usize + 4], b"oops");
        }
        other => panic!("wrong error {other:?}"),
    }
    assert_eq!(err.code(), "csv_invalid_number");
    assert_eq!(
        err.to_string(),
        "row 2, column 2 (b): not a number: \"oops\""
    );
    // The parallel path reports the same row, counted across regions.
    let mut big = b"a,b\n".to_vec();
    for i in 0..5000 {
        big.extend_from_slice(format!("{i},{i}\n").as_bytes());
    }
    big.extend_from_slice(b"1,bad\n2,2\n");
    let err = parallel(&big, &options, 4).expect_err("must fail");
    assert!(
        matches!(
            err,
            CsvSumError::InvalidNumber {
                row: 5001,
                column: 2,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn skip_invalid_counts_the_skipped_cells() {
    let csv = b"a,b\n1,2\n3,n/a\n4,-\n5,0.5\n";
    let options = SumOptions {
        step: 2,
        skip_invalid: true,
        ..SumOptions::default()
    };
    let s = whole(csv, &options).expect("sum");
    assert_eq!(
        (s.rows, s.columns[0].sum.as_str(), s.columns[0].skipped),
        (4, "2.5", 2)
    );
    assert_eq!(parallel(csv, &options, 2).expect("par"), s);
}

#[test]
fn out_of_range_and_overflow_are_errors_not_rounding() {
    let options = SumOptions {
        step: 1,
        header: false,
        ..SumOptions::default()
    };
    let huge = "99999999999999999999999999999999999999"; // 38 nines: fits once
    let err = whole(format!("{huge}\n{huge}\n{huge}\n").as_bytes(), &options).expect_err("sum");
    assert!(
        matches!(
            err,
            CsvSumError::SumOverflow {
                row: 2,
                column: 1,
                ..
            }
        ),
        "{err:?}"
    );
    let err = whole(b"1e40\n", &options).expect_err("range");
    assert!(
        matches!(err, CsvSumError::NumberOutOfRange { row: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn an_unclosed_quote_is_an_error() {
    let err = whole(b"a\n1\n\"2\n", &SumOptions::default()).expect_err("quote");
    assert!(
        matches!(err, CsvSumError::UnclosedQuote { row: 2 }),
        "{err:?}"
    );
}

#[test]
fn invalid_options_are_refused() {
    for options in [
        SumOptions {
            step: 0,
            ..SumOptions::default()
        },
        SumOptions {
            delimiter: b'"',
            ..SumOptions::default()
        },
    ] {
        assert!(matches!(
            Summer::new(options),
            Err(CsvSumError::InvalidOptions(_))
        ));
    }
}

#[test]
fn cancel_stops_a_run() {
    let data = generate(&mut Rng::new(1), &Shape::plain(2_000, 10));
    let cancel = AtomicBool::new(true);
    let control = Control {
        cancel: Some(&cancel),
        ..Control::default()
    };
    let err = sum_bytes(&data, &SumOptions::default(), &control).expect_err("canceled");
    assert!(matches!(err, CsvSumError::Canceled));
}

#[test]
fn progress_counts_bytes_and_rows() {
    let data = generate(&mut Rng::new(2), &Shape::plain(3_000, 20));
    let progress = rubra_csvsum::Progress::new();
    let control = Control {
        progress: Some(&progress),
        ..Control::default()
    };
    let s = sum_bytes(&data, &SumOptions::default(), &control).expect("sum");
    assert_eq!(progress.bytes(), data.len() as u64);
    assert_eq!(progress.rows(), s.rows);
}

#[test]
fn a_byte_order_mark_is_ignored() {
    let options = SumOptions {
        step: 1,
        header: false,
        ..SumOptions::default()
    };
    let s = whole(b"\xEF\xBB\xBF1.5\n2\n", &options).expect("sum");
    assert_eq!(s.columns[0].sum, "3.5");
    let with_header = SumOptions {
        step: 1,
        ..SumOptions::default()
    };
    let s = in_pieces(b"\xEF\xBB\xBFamount\n2\n", &with_header, &[1, 2]).expect("sum");
    assert_eq!(s.columns[0].name, "amount");
}

/// Found by the `csv` crate oracle (tests/it/prop_oracle.rs): a byte order mark
/// followed by a line end made a record of its own (the header, or a data row
/// of zeros), shifting the real header into the data.
#[test]
fn a_byte_order_mark_on_a_blank_first_line_is_a_blank_line() {
    let data = include_bytes!("../fixtures/bom_on_a_blank_first_line.csv");
    let options = SumOptions {
        step: 2,
        ..SumOptions::default()
    };
    let every_split = (0..=data.len()).map(|cut| in_pieces(data, &options, &[cut]));
    for s in std::iter::once(whole(data, &options)).chain(every_split) {
        let s = s.expect("sum");
        assert_eq!(s.rows, 2);
        assert_eq!(s.columns[0].name, "amount");
        assert_eq!(s.columns[0].sum, "1.5");
    }
    let alone = SumOptions {
        step: 1,
        header: false,
        ..SumOptions::default()
    };
    for bom_only in [&b"\xEF\xBB\xBF"[..], b"\xEF\xBB\xBF\n", b"\xEF\xBB\xBF\r\n"] {
        let s = whole(bom_only, &alone).expect("sum");
        assert_eq!((s.rows, s.columns.len()), (0, 0), "{bom_only:?}");
    }
}

/// A ranged source that returns short reads, like an object store's ranged GETs.
struct Ranged {
    data: Vec<u8>,
    fail_at: Option<u64>,
}

impl rubra_csvsum::ReadAt for Ranged {
    fn size(&self) -> std::io::Result<u64> {
        Ok(self.data.len() as u64)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        if self.fail_at.is_some_and(|f| offset >= f) {
            return Err(std::io::Error::other("connection reset"));
        }
        let from = (offset as usize).min(self.data.len());
        let n = buf.len().min(1000).min(self.data.len() - from);
        buf[..n].copy_from_slice(&self.data[from..from + n]);
        Ok(n)
    }
}

#[test]
fn sum_read_at_handles_short_reads_and_reports_read_errors() {
    let mut rng = Rng::new(9);
    let mut shape = Shape::plain(3_000, 12);
    shape.quoted_text = 20;
    let data = generate(&mut rng, &shape);
    let want = reference(&data, &shape.options);
    let control = Control {
        min_region: 10_000,
        ..Control::default()
    };
    let source = Ranged {
        data: data.clone(),
        fail_at: None,
    };
    let got = rubra_csvsum::sum_read_at(&source, &shape.options, &control).expect("sum");
    assert_eq!(got, want);
    let broken = Ranged {
        data,
        fail_at: Some(50_000),
    };
    let err = rubra_csvsum::sum_read_at(&broken, &shape.options, &control).expect_err("io");
    assert!(matches!(err, CsvSumError::Io(_)), "{err:?}");
    assert_eq!(err.code(), "csv_read_failed");
}

#[test]
fn sum_chunks_stops_on_a_read_error_and_on_cancel() {
    let data = generate(&mut Rng::new(4), &Shape::plain(2_000, 10));
    let control = Control {
        threads: 2,
        min_region: 1000,
        ..Control::default()
    };
    let broken = data.chunks(500).enumerate().map(|(i, c)| {
        if i == 20 {
            Err(std::io::Error::other("reset"))
        } else {
            Ok(c)
        }
    });
    let err = sum_chunks(broken, &SumOptions::default(), &control).expect_err("io");
    assert!(matches!(err, CsvSumError::Io(_)), "{err:?}");

    let cancel = AtomicBool::new(false);
    let control = Control {
        cancel: Some(&cancel),
        ..control
    };
    let chunks = data.chunks(500).enumerate().map(|(i, c)| {
        if i == 10 {
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok::<_, std::io::Error>(c)
    });
    let err = sum_chunks(chunks, &SumOptions::default(), &control).expect_err("cancel");
    assert!(matches!(err, CsvSumError::Canceled), "{err:?}");
}

#[test]
fn sum_chunks_reports_the_global_row_of_a_bad_cell() {
    let mut csv = b"a,b\n".to_vec();
    for i in 0..3000 {
        csv.extend_from_slice(format!("{i},\"{i}\"\n").as_bytes());
    }
    csv.extend_from_slice(b"1,x\n");
    let options = SumOptions {
        step: 2,
        ..SumOptions::default()
    };
    let control = Control {
        threads: 2,
        min_region: 777,
        ..Control::default()
    };
    let err = sum_chunks(
        csv.chunks(100).map(Ok::<_, std::io::Error>),
        &options,
        &control,
    )
    .expect_err("bad cell");
    assert!(
        matches!(
            err,
            CsvSumError::InvalidNumber {
                row: 3001,
                column: 2,
                ..
            }
        ),
        "{err:?}"
    );
}

/// Arbitrary bytes (malformed quotes included): every way in must agree, and
/// nothing may panic.
#[test]
fn garbage_gives_the_same_outcome_every_way() {
    let alphabet = b",;\"\n\r1.-e a9";
    let mut rng = Rng::new(21);
    for case in 0..3000 {
        let len = rng.below(120) as usize;
        let data: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
            .collect();
        let options = SumOptions {
            step: 1 + rng.below(4) as usize,
            delimiter: b',',
            header: rng.chance(50),
            skip_invalid: rng.chance(70),
        };
        let want = format!("{:?}", whole(&data, &options));
        let show = || {
            format!(
                "case {case} {options:?} {:?}",
                String::from_utf8_lossy(&data)
            )
        };
        let bytewise: Vec<usize> = (1..data.len()).collect();
        assert_eq!(
            format!("{:?}", in_pieces(&data, &options, &bytewise)),
            want,
            "{}",
            show()
        );
        assert_eq!(
            format!("{:?}", parallel(&data, &options, 3)),
            want,
            "{}",
            show()
        );
        let control = Control {
            threads: 2,
            min_region: 1 + rng.below(30),
            ..Control::default()
        };
        let chunks = data
            .chunks(1 + rng.below(20) as usize)
            .map(Ok::<_, std::io::Error>);
        assert_eq!(
            format!("{:?}", sum_chunks(chunks, &options, &control)),
            want,
            "{}",
            show()
        );
    }
}

/// The JSON shape DESIGN §6 gives for a job's `result` (with `--features serde`).
#[cfg(feature = "serde")]
#[test]
fn the_summary_serializes_to_the_design_shape() {
    let s = whole(
        b"c1,c2\n1,2.5\n3,x\n",
        &SumOptions {
            step: 2,
            skip_invalid: true,
            ..SumOptions::default()
        },
    )
    .expect("sum");
    let json = serde_json::to_value(&s).expect("json");
    assert_eq!(
        json,
        serde_json::json!({"rows": 2, "columns": [{"index": 2, "name": "c2", "sum": "2.5", "skipped": 1}]})
    );
    let plain = whole(
        b"c1,c2\n1,2.5\n",
        &SumOptions {
            step: 2,
            ..SumOptions::default()
        },
    )
    .expect("sum");
    assert_eq!(
        serde_json::to_value(&plain).expect("json"),
        serde_json::json!({"rows": 1, "columns": [{"index": 2, "name": "c2", "sum": "2.5"}]})
    );
}
