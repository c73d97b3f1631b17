//! Test helpers: a seeded random generator, a CSV writer with every feature
//! the engine must read, and a slow, obviously-correct reference summer.

use rubra_csvsum::{ColumnSum, SumOptions, Summary};

/// xorshift64*: deterministic and dependency-free.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// What a generated file may contain.
#[derive(Clone, Debug)]
pub struct Shape {
    pub rows: usize,
    pub columns: usize,
    pub options: SumOptions,
    pub crlf: bool,
    pub final_newline: bool,
    /// Percent of text cells that are quoted with tricky content.
    pub quoted_text: u64,
    /// Percent of rows that are shorter than `columns`.
    pub short_rows: u64,
    /// Percent of lines that are followed by a blank line.
    pub blank_lines: u64,
    /// Percent of numeric cells written in an unusual form (exponent, big, sign).
    pub odd_numbers: u64,
}

impl Shape {
    pub fn plain(rows: usize, columns: usize) -> Self {
        Self {
            rows,
            columns,
            options: SumOptions::default(),
            crlf: false,
            final_newline: true,
            quoted_text: 0,
            short_rows: 0,
            blank_lines: 0,
            odd_numbers: 0,
        }
    }

    pub fn random(rng: &mut Rng) -> Self {
        let delimiter = [b',', b';', b'\t', b'|'][rng.below(4) as usize];
        Self {
            rows: rng.below(60) as usize,
            columns: 1 + rng.below(25) as usize,
            options: SumOptions {
                step: 1 + rng.below(5) as usize,
                delimiter,
                header: rng.chance(50),
                skip_invalid: false,
            },
            crlf: rng.chance(50),
            final_newline: rng.chance(70),
            quoted_text: rng.below(60),
            short_rows: rng.below(30),
            blank_lines: rng.below(10),
            odd_numbers: rng.below(50),
        }
    }
}

fn number(rng: &mut Rng, odd: u64) -> String {
    if !rng.chance(odd) {
        let v = rng.below(2_000_000) as i64 - 1_000_000;
        return match rng.below(3) {
            0 => v.to_string(),
            1 => format!(
                "{}{}.{:02}",
                if v < 0 { "-" } else { "" },
                v.abs() / 100,
                v.abs() % 100
            ),
            _ => String::new(),
        };
    }
    match rng.below(9) {
        0 => format!("{}.{}e{}", rng.below(100), rng.below(1000), rng.below(6)),
        1 => format!("-{}E-{}", rng.below(100_000), rng.below(8)),
        2 => format!("+{}", rng.below(1_000)),
        3 => rng.next().to_string(),
        4 => format!(
            "-{}.{:09}",
            rng.next() % 1_000_000_000_000,
            rng.below(1_000_000_000)
        ),
        5 => format!("\"{}.5\"", rng.below(1000)),
        6 => format!(" {} ", rng.below(1000)),
        7 => ".25".to_owned(),
        _ => "\"\"".to_owned(),
    }
}

fn text(rng: &mut Rng, shape: &Shape) -> String {
    let d = shape.options.delimiter as char;
    if !rng.chance(shape.quoted_text) {
        return ["x", "abc", "", "hello world", "ç"][rng.below(5) as usize].to_owned();
    }
    let nl = if rng.chance(50) { "\r\n" } else { "\n" };
    let inner = match rng.below(6) {
        0 => format!("a{d}b"),
        1 => "say \"\"hi\"\"".to_owned(),
        2 => format!("line1{nl}line2"),
        3 => format!("{d}{nl}\"\"{d}"),
        4 => "\"\"".to_owned(),
        _ => nl.to_owned(),
    };
    format!("\"{inner}\"")
}

/// Writes a CSV with the given shape.
pub fn generate(rng: &mut Rng, shape: &Shape) -> Vec<u8> {
    let d = shape.options.delimiter as char;
    let eol = if shape.crlf { "\r\n" } else { "\n" };
    let step = shape.options.step;
    let mut lines: Vec<String> = Vec::new();
    if shape.options.header {
        let names: Vec<String> = (1..=shape.columns)
            .map(|i| match i % 3 {
                0 => format!("\"col \"\"{i}\"\"{d}x\""),
                _ => format!("h{i}"),
            })
            .collect();
        lines.push(names.join(&d.to_string()));
    }
    for _ in 0..shape.rows {
        let width = if rng.chance(shape.short_rows) {
            1 + rng.below(shape.columns as u64) as usize
        } else {
            shape.columns
        };
        let cells: Vec<String> = (1..=width)
            .map(|i| {
                if i % step == 0 {
                    number(rng, shape.odd_numbers)
                } else {
                    text(rng, shape)
                }
            })
            .collect();
        let line = cells.join(&d.to_string());
        // A one-cell row with an empty cell would read as a blank line.
        lines.push(if line.is_empty() {
            "0".to_owned()
        } else {
            line
        });
        if rng.chance(shape.blank_lines) {
            lines.push(String::new());
        }
    }
    let mut out = lines.join(eol);
    if shape.final_newline && !lines.is_empty() {
        out.push_str(eol);
    }
    out.into_bytes()
}

/// Splits a CSV into records of unescaped fields, the slow and simple way
/// (RFC 4180; blank lines skipped; `\r` before `\n` dropped).
pub fn records(data: &[u8], delimiter: u8) -> Vec<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut record: Vec<Vec<u8>> = Vec::new();
    let mut field: Vec<u8> = Vec::new();
    let mut quoted = false;
    // Raw bytes of the current line, to tell a blank line from `""`.
    let mut raw: Vec<u8> = Vec::new();
    let mut i = 0;
    let mut end_record = |record: &mut Vec<Vec<u8>>, field: &mut Vec<u8>, raw: &mut Vec<u8>| {
        if field.last() == Some(&b'\r') {
            field.pop();
        }
        record.push(std::mem::take(field));
        let r = std::mem::take(record);
        let blank = raw.is_empty() || raw == b"\r";
        raw.clear();
        if !blank {
            out.push(r);
        }
    };
    while i < data.len() {
        let b = data[i];
        if b != b'\n' || quoted {
            raw.push(b);
        }
        if quoted {
            if b == b'"' {
                if data.get(i + 1) == Some(&b'"') {
                    field.push(b'"');
                    raw.push(b'"');
                    i += 1;
                } else {
                    quoted = false;
                }
            } else {
                field.push(b);
            }
        } else if b == b'"' {
            quoted = true;
        } else if b == delimiter {
            record.push(std::mem::take(&mut field));
        } else if b == b'\n' {
            end_record(&mut record, &mut field, &mut raw);
        } else {
            field.push(b);
        }
        i += 1;
    }
    if !raw.is_empty() {
        end_record(&mut record, &mut field, &mut raw);
    }
    out
}

/// A decimal as (mantissa, scale), parsed by string surgery.
fn reference_number(s: &str) -> Option<(i128, u32)> {
    let s = s.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
    if s.is_empty() {
        return Some((0, 0));
    }
    let (mant, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('+');
    if digits.is_empty() || digits == "-" {
        return None;
    }
    let m: i128 = digits.parse().ok()?;
    let scale = frac.len() as i32 - exp;
    if scale < 0 {
        Some((m * 10i128.pow((-scale) as u32), 0))
    } else {
        Some((m, scale as u32))
    }
}

fn render(m: i128, scale: u32) -> String {
    let neg = m < 0;
    let mut digits = m.unsigned_abs().to_string();
    if scale > 0 {
        while digits.len() <= scale as usize {
            digits.insert(0, '0');
        }
        digits.insert(digits.len() - scale as usize, '.');
    }
    if neg { format!("-{digits}") } else { digits }
}

/// The expected summary, computed from [`records`].
pub fn reference(data: &[u8], options: &SumOptions) -> Summary {
    let mut recs = records(data, options.delimiter);
    let header = if options.header && !recs.is_empty() {
        Some(recs.remove(0))
    } else {
        None
    };
    let step = options.step;
    let widest = recs
        .iter()
        .map(Vec::len)
        .chain(header.as_ref().map(Vec::len))
        .max()
        .unwrap_or(0);
    let columns = (1..=widest / step)
        .map(|j| {
            let idx = j * step;
            let mut sum: i128 = 0;
            let mut scale: u32 = 0;
            for r in &recs {
                let cell = r
                    .get(idx - 1)
                    .map(|c| String::from_utf8_lossy(c).into_owned());
                let (m, s) = reference_number(cell.as_deref().unwrap_or("")).expect("number");
                if cell.is_some_and(|c| !c.trim().is_empty()) {
                    if s > scale {
                        sum *= 10i128.pow(s - scale);
                        scale = s;
                    }
                    sum += m * 10i128.pow(scale - s);
                }
            }
            let name = header
                .as_ref()
                .and_then(|h| h.get(idx - 1))
                .map(|n| String::from_utf8_lossy(n).trim().to_owned())
                .unwrap_or_else(|| format!("c{idx}"));
            ColumnSum {
                index: idx,
                name,
                sum: render(sum, scale),
                skipped: 0,
            }
        })
        .collect();
    Summary {
        rows: recs.len() as u64,
        columns,
    }
}
