//! Differential oracle: rubra-csvsum against the `csv` crate's reading of the same
//! bytes plus exact `bigdecimal` arithmetic, for every delimiter, quoting and
//! line-ending style, and in every way of cutting the input into chunks: the
//! streaming [`Summer`], [`sum_chunks`] and the parallel [`sum_bytes`] must all give
//! the whole-input answer, and that answer must be the reference's.
//!
//! The generator writes well-formed RFC 4180 files (a quote only opens a field and
//! closes it, `\r` only before `\n`), the dialect both readers agree on.

use std::str::FromStr;

use bigdecimal::BigDecimal;
use bigdecimal::num_bigint::BigInt;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use rubra_csvsum::{Control, CsvSumError, SumOptions, Summary, Summer, sum_bytes, sum_chunks};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One generated field: its value (as the `csv` crate will read it back) and
/// whether to quote it even when nothing forces quotes.
#[derive(Clone, Debug)]
struct Field {
    value: String,
    quote: bool,
}

/// A generated file: records (an empty record is a blank line), how each ends.
#[derive(Clone, Debug)]
struct File {
    delimiter: u8,
    step: usize,
    header: bool,
    skip_invalid: bool,
    bom: bool,
    trailing_newline: bool,
    records: Vec<(Vec<Field>, bool)>,
}

impl File {
    fn options(&self) -> SumOptions {
        SumOptions {
            step: self.step,
            delimiter: self.delimiter,
            header: self.header,
            skip_invalid: self.skip_invalid,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.bom {
            out.extend_from_slice(BOM);
        }
        let last = self.records.len().saturating_sub(1);
        for (i, (fields, crlf)) in self.records.iter().enumerate() {
            for (j, f) in fields.iter().enumerate() {
                if j > 0 {
                    out.push(self.delimiter);
                }
                let forced = f.value.bytes().any(|b| {
                    b == self.delimiter || matches!(b, b'"' | b'\n' | b'\r')
                        // Blanks around a header name would be trimmed unquoted.
                        || (i == 0 && self.header && matches!(b, b' ' | b'\t'))
                });
                // A header of one empty name would be a blank line.
                let blank = fields.len() == 1 && f.value.is_empty() && i == 0 && self.header;
                if f.quote || forced || blank {
                    out.push(b'"');
                    out.extend_from_slice(f.value.replace('"', "\"\"").as_bytes());
                    out.push(b'"');
                } else {
                    out.extend_from_slice(f.value.as_bytes());
                }
            }
            if i < last || self.trailing_newline {
                out.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
            }
        }
        out
    }
}

fn number() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just(""), Just("-"), Just("+")],
        "[0-9]{0,12}",
        prop::option::of("[0-9]{0,6}"),
        prop::option::of((
            prop_oneof![Just("e"), Just("E")],
            prop_oneof![Just(""), Just("+"), Just("-")],
            0u32..5,
        )),
    )
        .prop_map(|(sign, int, frac, exp)| {
            let mut s = String::from(sign);
            let no_digit = int.is_empty() && frac.as_deref().is_none_or(str::is_empty);
            s.push_str(if no_digit { "0" } else { &int });
            if let Some(f) = frac {
                s.push('.');
                s.push_str(&f);
            }
            if let Some((e, es, x)) = exp {
                s.push_str(e);
                s.push_str(es);
                s.push_str(&x.to_string());
            }
            s
        })
}

fn junk() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,4}",
        Just("1.2.3".to_owned()),
        Just("-".to_owned()),
        Just(".".to_owned()),
        Just("1e".to_owned()),
        Just("e5".to_owned()),
        Just("1e5x".to_owned()),
        Just("--1".to_owned()),
        Just("0x10".to_owned()),
        Just("1 2".to_owned()),
        "[0-9]{1,3}[,;|\t\"\n\r][0-9]{1,3}",
        "\"[0-9]{1,3}\"",
    ]
}

fn data_field() -> impl Strategy<Value = Field> {
    let value = prop_oneof![
        8 => (number(), "[ \t]{0,2}", "[ \t]{0,2}", "\r?")
            .prop_map(|(n, a, b, r)| format!("{a}{n}{b}{r}")),
        2 => "[ \t]{0,2}",
        1 => junk(),
    ];
    (value, any::<bool>()).prop_map(|(value, quote)| Field { value, quote })
}

fn name_field() -> impl Strategy<Value = Field> {
    ("[a-z_é]{0,3}|[a-z ,;|\t\"\n\r]{1,4}", any::<bool>())
        .prop_map(|(value, quote)| Field { value, quote })
}

fn file() -> impl Strategy<Value = File> {
    (
        prop_oneof![Just(b','), Just(b';'), Just(b'\t'), Just(b'|'), Just(b' ')],
        1usize..=4,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(name_field(), 1..10),
        any::<bool>(),
        prop::collection::vec(
            (
                prop_oneof![
                    1 => Just(Vec::new()),
                    8 => prop::collection::vec(data_field(), 1..10),
                ],
                any::<bool>(),
            ),
            0..12,
        ),
    )
        .prop_map(
            |(delimiter, step, header, skip_invalid, bom, trailing_newline, names, crlf, rows)| {
                let mut records = Vec::new();
                if header {
                    records.push((names, crlf));
                }
                records.extend(rows);
                File {
                    delimiter,
                    step,
                    header,
                    skip_invalid,
                    bom,
                    trailing_newline,
                    records,
                }
            },
        )
}

/// What a sum must end with: a summary, or the (code, row, column) of its error.
type Want = Result<Summary, (&'static str, u64, usize)>;

fn got(result: Result<Summary, CsvSumError>) -> Want {
    result.map_err(|e| match e {
        CsvSumError::InvalidNumber { row, column, .. }
        | CsvSumError::NumberOutOfRange { row, column, .. }
        | CsvSumError::SumOverflow { row, column, .. } => (e.code(), row, column),
        CsvSumError::UnclosedQuote { row } => (e.code(), row, 0),
        other => panic!("unexpected error {other:?}"),
    })
}

/// A cell as the reference reads it.
enum Cell {
    Empty,
    Value { mantissa: BigInt, scale: u32 },
    Invalid,
    OutOfRange,
}

/// The documented cell grammar: `[+-]digits[.digits][(e|E)[+-]digits]`, at least
/// one digit in the mantissa, blanks (and `\r`) around it ignored. The value is
/// checked against `bigdecimal`'s own parse of the same text.
fn reference_cell(raw: &[u8]) -> Cell {
    let Ok(text) = std::str::from_utf8(raw) else {
        return Cell::Invalid;
    };
    let s = text.trim_matches([' ', '\t', '\r']);
    if s.is_empty() {
        return Cell::Empty;
    }
    let (neg, body) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (mant, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || !all_digits(frac) || int.len() + frac.len() == 0 {
        return Cell::Invalid;
    }
    let exp: i64 = match exp {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !all_digits(digits) {
                return Cell::Invalid;
            }
            let v: i64 = digits.parse().expect("small exponent");
            if e.starts_with('-') { -v } else { v }
        }
    };
    let digits = BigInt::from_str(&format!("{int}{frac}")).expect("digits");
    let mut scale = frac.len() as i64 - exp;
    let exact = BigDecimal::from_str(&format!(
        "{}{}.{}e{exp}",
        if neg { "-" } else { "" },
        if int.is_empty() { "0" } else { int },
        if frac.is_empty() { "0" } else { frac }
    ))
    .expect("bigdecimal parses the cell");
    if digits == BigInt::from(0) {
        return Cell::Value {
            mantissa: digits,
            scale: scale.clamp(0, 38) as u32,
        };
    }
    // Exact to 38 decimals and an i128 mantissa (the raw digits in a u128).
    if digits > BigInt::from(u128::MAX) || !(-38..=38).contains(&scale) {
        return Cell::OutOfRange;
    }
    let mut mantissa = digits;
    if scale < 0 {
        mantissa *= BigInt::from(10).pow((-scale) as u32);
        scale = 0;
    }
    if mantissa > BigInt::from(i128::MAX) {
        return Cell::OutOfRange;
    }
    if neg {
        mantissa = -mantissa;
    }
    assert_eq!(
        BigDecimal::new(mantissa.clone(), scale),
        exact,
        "the grammar and bigdecimal disagree on {s:?}"
    );
    Cell::Value {
        mantissa,
        scale: scale as u32,
    }
}

/// A column's exact running sum, failing as an `i128` mantissa at the largest
/// scale seen would.
#[derive(Clone, Default)]
struct RefSum {
    mantissa: BigInt,
    scale: u32,
    exact: BigDecimal,
}

impl RefSum {
    fn add(&mut self, mantissa: &BigInt, scale: u32) -> Result<(), ()> {
        let fits = |v: &BigInt| *v >= BigInt::from(i128::MIN) && *v <= BigInt::from(i128::MAX);
        let ten = |n: u32| BigInt::from(10).pow(n);
        let new_scale = self.scale.max(scale);
        let sum = &self.mantissa * ten(new_scale - self.scale);
        let value = mantissa * ten(new_scale - scale);
        let total = &sum + &value;
        if !fits(&sum) || !fits(&value) || !fits(&total) {
            return Err(());
        }
        self.mantissa = total;
        self.scale = new_scale;
        self.exact += BigDecimal::new(mantissa.clone(), i64::from(scale));
        Ok(())
    }

    fn render(&self) -> String {
        assert_eq!(
            BigDecimal::new(self.mantissa.clone(), i64::from(self.scale)),
            self.exact
        );
        let digits = self.mantissa.magnitude().to_string();
        let scale = self.scale as usize;
        let sign = if self.mantissa < BigInt::from(0) {
            "-"
        } else {
            ""
        };
        if scale == 0 {
            format!("{sign}{digits}")
        } else if digits.len() > scale {
            let (int, frac) = digits.split_at(digits.len() - scale);
            format!("{sign}{int}.{frac}")
        } else {
            format!("{sign}0.{}{digits}", "0".repeat(scale - digits.len()))
        }
    }
}

/// The answer from the `csv` crate's records and exact arithmetic.
fn reference(data: &[u8], options: &SumOptions) -> Want {
    let data = data.strip_prefix(BOM).unwrap_or(data);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(options.delimiter)
        .from_reader(data);
    let step = options.step;
    let mut names: Vec<String> = Vec::new();
    let mut sums: Vec<RefSum> = Vec::new();
    let mut skipped: Vec<u64> = Vec::new();
    let mut width = 0;
    let mut rows = 0u64;
    let mut in_header = options.header;
    for record in reader.byte_records() {
        let record = record.expect("the csv crate reads every generated file");
        let n = record.len() / step;
        width = width.max(n);
        if std::mem::take(&mut in_header) {
            names = (1..=n)
                .map(|j| String::from_utf8_lossy(&record[j * step - 1]).into_owned())
                .collect();
            continue;
        }
        rows += 1;
        if sums.len() < n {
            sums.resize(n, RefSum::default());
            skipped.resize(n, 0);
        }
        for j in 0..n {
            let column = (j + 1) * step;
            match reference_cell(&record[column - 1]) {
                Cell::Empty => {}
                Cell::Value { mantissa, scale } => {
                    if sums[j].add(&mantissa, scale).is_err() {
                        return Err(("csv_sum_overflow", rows, column));
                    }
                }
                Cell::Invalid if options.skip_invalid => skipped[j] += 1,
                Cell::Invalid => return Err(("csv_invalid_number", rows, column)),
                Cell::OutOfRange => return Err(("csv_number_out_of_range", rows, column)),
            }
        }
    }
    sums.resize(width, RefSum::default());
    skipped.resize(width, 0);
    let columns = (0..width)
        .map(|j| {
            let index = (j + 1) * step;
            rubra_csvsum::ColumnSum {
                index,
                name: names.get(j).cloned().unwrap_or_else(|| format!("c{index}")),
                sum: sums[j].render(),
                skipped: skipped[j],
            }
        })
        .collect();
    Ok(Summary { rows, columns })
}

fn fed(
    data: &[u8],
    options: &SumOptions,
    cuts: impl IntoIterator<Item = usize>,
) -> Result<Summary, CsvSumError> {
    let mut s = Summer::new(options.clone())?;
    let mut at = 0;
    for c in cuts {
        s.feed(&data[at..c])?;
        at = c;
    }
    s.feed(&data[at..])?;
    s.finish()
}

fn show(data: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(data))
}

/// 256 cases (`PROPTEST_CASES=N` for more); failures saved beside the other regressions.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/prop_oracle.txt",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_way_of_reading_agrees_with_the_csv_crate_and_exact_sums(
        f in file(),
        sizes in prop::collection::vec(1usize..40, 1..8),
        threads in 1usize..4,
        min_region in 1u64..64,
    ) {
        let data = f.bytes();
        let options = f.options();
        let whole = format!("{:?}", fed(&data, &options, []));
        let want = reference(&data, &options);
        prop_assert_eq!(got(fed(&data, &options, [])), want, "{}", show(&data));

        // Every single cut, byte by byte, and the generated chunk sizes.
        for cut in 0..=data.len() {
            prop_assert_eq!(&format!("{:?}", fed(&data, &options, [cut])), &whole, "cut at {}", cut);
        }
        prop_assert_eq!(&format!("{:?}", fed(&data, &options, 0..data.len())), &whole);
        let mut chunks = Vec::new();
        let mut at = 0;
        for &n in sizes.iter().cycle() {
            if at >= data.len() {
                break;
            }
            let end = (at + n).min(data.len());
            chunks.push(&data[at..end]);
            at = end;
        }
        let cuts: Vec<usize> = chunks.iter().scan(0, |at, c| { *at += c.len(); Some(*at) }).collect();
        prop_assert_eq!(&format!("{:?}", fed(&data, &options, cuts)), &whole);

        // The parallel and pipelined drivers, with regions small enough to cut anywhere.
        let control = Control { threads, min_region, ..Control::default() };
        prop_assert_eq!(&format!("{:?}", sum_bytes(&data, &options, &control)), &whole, "sum_bytes");
        let parts = chunks.iter().map(|c| Ok::<_, std::io::Error>(*c));
        prop_assert_eq!(&format!("{:?}", sum_chunks(parts, &options, &control)), &whole, "sum_chunks");
    }
}

/// A cell of a one-column file near the edges of the exact range.
fn wide_number() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        "[1-9][0-9]{0,40}",
        0usize..42,
        prop::option::of(-45i32..45),
    )
        .prop_map(|(neg, digits, point, exp)| {
            let point = point.min(digits.len());
            let mut s = String::from(if neg { "-" } else { "" });
            s.push_str(&digits[..digits.len() - point]);
            if point > 0 {
                s.push('.');
                s.push_str(&digits[digits.len() - point..]);
            }
            if let Some(e) = exp {
                s.push_str(&format!("e{e}"));
            }
            s
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn out_of_range_cells_and_overflowing_sums_are_reported_where_the_reference_says(
        cells in prop::collection::vec(wide_number(), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let data = cells.join("\n").into_bytes();
        let options = SumOptions { step: 1, header: false, ..SumOptions::default() };
        let want = reference(&data, &options);
        prop_assert_eq!(got(fed(&data, &options, [])), want.clone(), "{}", show(&data));
        let at = cut.index(data.len() + 1);
        prop_assert_eq!(got(fed(&data, &options, [at])), want.clone(), "cut at {}", at);
        // Partial sums of regions overflow at other places than one pass does
        // (sooner or not at all); short of an overflow, the answer is the same.
        let control = Control { threads: 2, min_region: 1, ..Control::default() };
        match (got(sum_bytes(&data, &options, &control)), &want) {
            (Err(("csv_sum_overflow", _, _)), _) | (_, Err(("csv_sum_overflow", _, _))) => {}
            (other, _) => prop_assert_eq!(other, want),
        }
    }
}

/// Any bytes from CSV's alphabet: stray quotes, lone `\r`, byte order marks anywhere.
fn hostile() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => prop::sample::select(b"0123456789.,;\"\r\n e-+a\t".to_vec()).prop_map(|b| vec![b]),
        1 => Just(BOM.to_vec()),
        1 => Just(b"\"\"".to_vec()),
        1 => Just(b"\r\n".to_vec()),
        1 => Just(b"1e38".to_vec()),
        1 => Just(b"99999999999999999999".to_vec()),
    ];
    prop::collection::vec(piece, 0..80).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn hostile_bytes_give_the_whole_input_answer_in_every_chunking(
        data in hostile(),
        step in 1usize..4,
        delimiter in prop::sample::select(b",; \t".to_vec()),
        header in any::<bool>(),
        skip_invalid in any::<bool>(),
        threads in 1usize..4,
        min_region in 1u64..32,
    ) {
        let options = SumOptions { step, delimiter, header, skip_invalid };
        let whole = format!("{:?}", fed(&data, &options, []));
        for cut in 0..=data.len() {
            prop_assert_eq!(&format!("{:?}", fed(&data, &options, [cut])), &whole, "cut at {} of {}", cut, show(&data));
        }
        prop_assert_eq!(&format!("{:?}", fed(&data, &options, 0..data.len())), &whole, "byte by byte");
        let control = Control { threads, min_region, ..Control::default() };
        let parallel = sum_bytes(&data, &options, &control);
        if !matches!(parallel, Err(CsvSumError::SumOverflow { .. })) && !whole.contains("SumOverflow") {
            prop_assert_eq!(&format!("{parallel:?}"), &whole, "sum_bytes {}", show(&data));
        }
    }
}
