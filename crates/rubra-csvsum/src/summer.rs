//! The streaming summer: feed the input in chunks of any size, get exact sums.
//!
//! The scanner classifies 64 bytes at a time into bit masks (see
//! [`classify`](crate::classify)), turns the quote mask into an "inside quotes"
//! mask with a prefix XOR (each `"` toggles the state, so a doubled `""` inside
//! a quoted field toggles twice and changes nothing), and then walks only the
//! separators it needs: `popcount` skips whole blocks of fields that are not
//! summed. Everything it needs to resume is a handful of integers plus the
//! bytes of the one summed cell that may straddle a chunk boundary, so memory
//! does not depend on the input size.

use crate::decimal::{CellError, Decimal, DecimalSum, parse_cell};
use crate::{ColumnSum, CsvSumError, SumOptions, Summary};

mod scan;

/// Longest cell kept across a chunk boundary; longer cells are not numbers.
const MAX_CELL: usize = 4096;
/// How much of a bad cell an error message quotes.
const MAX_QUOTED: usize = 64;
/// A UTF-8 byte order mark, ignored at the very start of the input.
const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];
/// [`Summer::bom`] of a summer that does not start at the input's first byte.
const NOT_AT_START: u8 = u8::MAX;

/// Why a summer stopped, before column names are attached.
#[derive(Clone, Debug)]
pub(crate) enum Failure {
    Cell {
        kind: CellError,
        row: u64,
        column: usize,
        value: String,
        offset: u64,
    },
    Overflow {
        row: u64,
        column: usize,
    },
}

impl Failure {
    fn shift_rows(mut self, by: u64) -> Self {
        match &mut self {
            Failure::Cell { row, .. } | Failure::Overflow { row, .. } => *row += by,
        }
        self
    }
}

/// A push-style summer: [`feed`](Summer::feed) it the input's bytes in order,
/// in chunks of any size, then call [`finish`](Summer::finish).
///
/// Memory stays bounded (a few KiB) whatever the input size. Chunk boundaries
/// may fall anywhere, even inside a quoted field or a `\r\n` pair: feeding a
/// file byte by byte gives the same result as feeding it whole.
///
/// To resume an interrupted download, keep the summer and request the source
/// again from [`bytes`](Summer::bytes).
///
/// ```
/// use rubra_csvsum::{SumOptions, Summer};
///
/// let mut s = Summer::new(SumOptions { step: 2, ..SumOptions::default() })?;
/// s.feed(b"a,b,c,d\n1,2.5,3,\"4\"\n")?;
/// s.feed(b"5,-0.5,7,")?;
/// let summary = s.finish()?;
/// assert_eq!(summary.rows, 2);
/// assert_eq!(summary.columns[0].name, "b");
/// assert_eq!(summary.columns[0].sum, "2.0");
/// assert_eq!(summary.columns[1].sum, "4");
/// # Ok::<(), rubra_csvsum::CsvSumError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Summer {
    step: usize,
    delimiter: u8,
    skip_invalid: bool,
    /// The next record is (or the current one is) the header.
    in_header: bool,

    /// All ones while the scanner is inside a quoted field at a block boundary.
    quote_carry: u64,
    /// 0-based index of the current field in the current record.
    field: usize,
    /// 0-based index of the next summed field in the current record.
    next_target: usize,
    /// Which summed column `next_target` is (0 for column `step`).
    target_no: usize,
    /// Input offset of the current field's first byte.
    field_start: u64,
    /// Input offset of the current record's first byte.
    record_start: u64,
    /// The current summed cell's bytes from earlier chunks (at most `MAX_CELL`).
    carry: Vec<u8>,
    /// The current summed cell was longer than `MAX_CELL`.
    carry_cut: bool,
    /// The last byte fed (to see a `\r` before a `\n` across chunks).
    last_byte: u8,
    /// Input offset of the next byte to be fed.
    bytes: u64,
    /// How many of the input's first bytes are a byte order mark, so far (3: the
    /// input starts with one; [`NOT_AT_START`] for a summer of a later part).
    bom: u8,

    rows: u64,
    sums: Vec<DecimalSum>,
    skipped: Vec<u64>,
    names: Vec<Option<String>>,
    failure: Option<Failure>,
}

impl Summer {
    /// A summer for a whole input, starting at its first byte.
    pub fn new(options: SumOptions) -> Result<Self, CsvSumError> {
        options.validate()?;
        Ok(Self::at(&options, 0, options.header))
    }

    /// A summer for a part of an input that starts at `offset`, on a record
    /// boundary, past any header.
    pub(crate) fn at(options: &SumOptions, offset: u64, header: bool) -> Self {
        Self {
            step: options.step,
            delimiter: options.delimiter,
            skip_invalid: options.skip_invalid,
            in_header: header,
            quote_carry: 0,
            field: 0,
            next_target: options.step - 1,
            target_no: 0,
            field_start: offset,
            record_start: offset,
            carry: Vec::new(),
            carry_cut: false,
            last_byte: b'\n',
            bytes: offset,
            bom: if offset == 0 { 0 } else { NOT_AT_START },
            rows: 0,
            sums: Vec::new(),
            skipped: Vec::new(),
            names: Vec::new(),
            failure: None,
        }
    }

    /// Bytes consumed so far (the offset to resume a download from).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Data records completed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Feeds the next chunk of the input.
    ///
    /// After an error the summer is spent: later calls return the same error.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), CsvSumError> {
        self.feed_raw(chunk);
        match &self.failure {
            None => Ok(()),
            Some(f) => Err(self.to_error(f.clone())),
        }
    }

    /// Ends the input and returns the sums.
    pub fn finish(mut self) -> Result<Summary, CsvSumError> {
        self.finish_raw();
        if let Some(f) = self.failure.take() {
            return Err(self.to_error(f));
        }
        if self.quote_carry != 0 {
            return Err(CsvSumError::UnclosedQuote { row: self.rows + 1 });
        }
        Ok(self.summary())
    }

    /// Feeds without turning a failure into an error (the parallel driver
    /// resolves failures only for chunks it keeps).
    pub(crate) fn feed_raw(&mut self, chunk: &[u8]) {
        if self.failure.is_none() && !chunk.is_empty() {
            if u64::from(self.bom) == self.bytes && self.bytes < 3 {
                // Still matching a byte order mark: the first three bytes may
                // come in several chunks.
                let at = self.bytes as usize;
                let n = chunk
                    .iter()
                    .zip(&BOM[at..])
                    .take_while(|(a, b)| a == b)
                    .count();
                self.bom += n as u8;
            }
            crate::sys::classify::scan(self, chunk);
        }
    }

    pub(crate) fn failed(&self) -> bool {
        self.failure.is_some()
    }

    /// True when the bytes fed so far end exactly after a complete record, so
    /// a summer started at this offset would have seen the same records.
    pub(crate) fn at_record_start(&self) -> bool {
        self.failure.is_none()
            && self.quote_carry == 0
            && !self.in_header
            && self.record_start == self.bytes
    }

    /// Adds the results of `next`, a summer that started where this one stopped
    /// ([`at_record_start`](Self::at_record_start) must hold), and continues
    /// from where `next` stopped.
    pub(crate) fn absorb(&mut self, next: Summer) {
        debug_assert!(self.at_record_start() && next.bytes >= self.bytes);
        if let Some(f) = next.failure {
            self.failure = Some(f.shift_rows(self.rows));
            return;
        }
        if self.sums.len() < next.sums.len() {
            self.sums.resize(next.sums.len(), DecimalSum::default());
            self.skipped.resize(next.sums.len(), 0);
        }
        for (j, s) in next.sums.iter().enumerate() {
            if self.sums[j].merge(s).is_err() {
                self.failure = Some(Failure::Overflow {
                    row: self.rows + 1,
                    column: (j + 1) * self.step,
                });
                return;
            }
            self.skipped[j] += next.skipped[j];
        }
        self.rows += next.rows;
        self.quote_carry = next.quote_carry;
        self.field = next.field;
        self.next_target = next.next_target;
        self.target_no = next.target_no;
        self.field_start = next.field_start;
        self.record_start = next.record_start;
        self.carry = next.carry;
        self.carry_cut = next.carry_cut;
        self.last_byte = next.last_byte;
        self.bytes = next.bytes;
    }

    /// Appends part of a straddling summed cell to the carry buffer.
    fn keep(&mut self, part: &[u8]) {
        let room = MAX_CELL - self.carry.len();
        if part.len() > room {
            self.carry_cut = true;
        }
        self.carry.extend_from_slice(&part[..part.len().min(room)]);
    }

    /// Is the record that ends with the newline at `end` (chunk position `p`)
    /// and whose only field starts at `field_start` empty or just `\r`? A byte
    /// order mark that starts the input is not part of the record.
    #[inline]
    fn is_blank(&self, field_start: u64, end: u64, data: &[u8], p: usize) -> bool {
        let bom = if field_start == 0 && self.bom == 3 {
            3
        } else {
            0
        };
        match (end - field_start).saturating_sub(bom) {
            0 => true,
            1 => {
                let prev = if p > 0 { data[p - 1] } else { self.last_byte };
                prev == b'\r'
            }
            _ => false,
        }
    }

    /// A record ended at the newline at input offset `end`. `field` is the
    /// index of its last field (0 with `field_start` to check for a blank line).
    #[inline]
    fn end_record(&mut self, field: usize, field_start: u64, end: u64, data: &[u8], p: usize) {
        if field != 0 || !self.is_blank(field_start, end, data, p) {
            if self.in_header {
                self.in_header = false;
            } else {
                self.rows += 1;
            }
        }
        self.record_start = end + 1;
    }

    /// Adds one summed cell (or records a header name). `cell` is the part in
    /// the current chunk; earlier parts are in `self.carry`.
    #[inline]
    fn take(&mut self, target_no: usize, field_start: u64, cell: &[u8]) {
        let cell_owned;
        let cell = if self.carry.is_empty() && !self.carry_cut {
            cell
        } else {
            self.keep(cell);
            cell_owned = std::mem::take(&mut self.carry);
            &cell_owned[..]
        };
        let cut = std::mem::take(&mut self.carry_cut);
        // A UTF-8 byte order mark at the very start is not part of the cell.
        let cell = match cell {
            [0xEF, 0xBB, 0xBF, rest @ ..] if field_start == 0 => rest,
            _ => cell,
        };
        if self.in_header {
            if self.names.len() <= target_no {
                self.names.resize(target_no + 1, None);
            }
            self.names[target_no] = Some(header_name(cell));
            self.carry.clear();
            return;
        }
        if self.sums.len() <= target_no {
            self.sums.resize(target_no + 1, DecimalSum::default());
            self.skipped.resize(target_no + 1, 0);
        }
        let parsed = if cut {
            Err(CellError::Invalid)
        } else {
            parse_cell(cell)
        };
        match parsed {
            Ok(None) => {}
            Ok(Some(d)) => self.add(target_no, d),
            Err(CellError::Invalid) if self.skip_invalid => self.skipped[target_no] += 1,
            Err(kind) => {
                let shown = &cell[..cell.len().min(MAX_QUOTED)];
                self.failure = Some(Failure::Cell {
                    kind,
                    row: self.rows + 1,
                    column: (target_no + 1) * self.step,
                    value: String::from_utf8_lossy(shown).into_owned(),
                    offset: field_start,
                });
            }
        }
        self.carry.clear();
    }

    /// Adds a parsed value to a summed column.
    #[inline(always)]
    fn add(&mut self, target_no: usize, d: Decimal) {
        if self.sums.len() <= target_no {
            self.sums.resize(target_no + 1, DecimalSum::default());
            self.skipped.resize(target_no + 1, 0);
        }
        if self.sums[target_no].add(d).is_err() {
            self.failure = Some(Failure::Overflow {
                row: self.rows + 1,
                column: (target_no + 1) * self.step,
            });
        }
    }

    /// Adds a value from the word parser to a summed column.
    #[inline(always)]
    fn add_short(&mut self, target_no: usize, mantissa: i64, scale: u32) {
        match self.sums.get_mut(target_no) {
            Some(sum) => {
                if sum.add_short(mantissa, scale).is_err() {
                    self.failure = Some(Failure::Overflow {
                        row: self.rows + 1,
                        column: (target_no + 1) * self.step,
                    });
                }
            }
            None => self.add(
                target_no,
                Decimal {
                    mantissa: i128::from(mantissa),
                    scale,
                },
            ),
        }
    }

    /// Handles the end of the input as the end of the last record.
    pub(crate) fn finish_raw(&mut self) {
        if self.failure.is_some() || self.quote_carry != 0 || self.bytes == self.record_start {
            return;
        }
        let end = self.bytes;
        if self.field == self.next_target {
            let blank = self.field == 0 && self.is_blank(self.field_start, end, &[], 0);
            if !blank {
                self.take(self.target_no, self.field_start, &[]);
                if self.failure.is_some() {
                    return;
                }
                self.end_record(1, self.field_start, end, &[], 0);
            }
        } else {
            self.end_record(self.field, self.field_start, end, &[], 0);
        }
        self.carry.clear();
        self.record_start = end;
        self.field = 0;
        self.next_target = self.step - 1;
        self.target_no = 0;
        self.field_start = end;
    }

    fn column_name(&self, column: usize) -> String {
        let j = column / self.step - 1;
        match self.names.get(j) {
            Some(Some(n)) => n.clone(),
            _ => format!("c{column}"),
        }
    }

    pub(crate) fn to_error(&self, f: Failure) -> CsvSumError {
        match f {
            Failure::Cell {
                kind,
                row,
                column,
                value,
                offset,
            } => {
                let name = self.column_name(column);
                match kind {
                    CellError::Invalid => CsvSumError::InvalidNumber {
                        row,
                        column,
                        name,
                        value,
                        offset,
                    },
                    CellError::OutOfRange => CsvSumError::NumberOutOfRange {
                        row,
                        column,
                        name,
                        value,
                        offset,
                    },
                }
            }
            Failure::Overflow { row, column } => CsvSumError::SumOverflow {
                row,
                column,
                name: self.column_name(column),
            },
        }
    }

    fn summary(&self) -> Summary {
        let n = self.sums.len().max(self.names.len());
        let columns = (0..n)
            .map(|j| {
                let index = (j + 1) * self.step;
                ColumnSum {
                    index,
                    name: self.column_name(index),
                    sum: self.sums.get(j).copied().unwrap_or_default().render(),
                    skipped: self.skipped.get(j).copied().unwrap_or(0),
                }
            })
            .collect();
        Summary {
            rows: self.rows,
            columns,
        }
    }
}

/// A header cell as a name: unquoted, `""` unescaped, `\r` and blanks trimmed.
fn header_name(cell: &[u8]) -> String {
    let s = String::from_utf8_lossy(cell);
    let t = s.trim_matches(|c| c == '\r' || c == ' ' || c == '\t');
    match t.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => t.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::classify::{Baseline, BlockScan, Classifier};

    /// A CSV with every quoting feature, deterministic.
    fn tricky_csv() -> Vec<u8> {
        let mut out = b"a,b,c,d\r\n".to_vec();
        let cells: [&[u8]; 9] = [
            b"12",
            b"-3.25",
            b"\"4\"",
            b"\"x,\"\"y\"\"\n\"",
            b"",
            b"1.5e2",
            b"\"a\r\nb\"",
            b"+7",
            b"0.001",
        ];
        let mut x: u32 = 1;
        for _ in 0..3000 {
            let width = 1 + (x >> 7) as usize % 5;
            for c in 0..width {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let cell = cells[(x >> 13) as usize % cells.len()];
                out.extend_from_slice(cell);
                out.push(if c + 1 == width { b'\n' } else { b',' });
            }
        }
        out
    }

    fn run<C: Classifier>(data: &[u8], step: usize) -> Summary {
        let options = SumOptions {
            step,
            skip_invalid: true,
            ..SumOptions::default()
        };
        let mut s = Summer::new(options).expect("options");
        for chunk in data.chunks(777) {
            s.scan_blocks::<C>(chunk);
        }
        s.finish().expect("sum")
    }

    #[test]
    fn every_scanner_gives_the_same_sums() {
        let data = tricky_csv();
        for step in [1, 2, 3] {
            let base = run::<Baseline>(&data, step);
            assert!(base.rows > 2000);
            #[cfg(target_arch = "x86_64")]
            {
                use crate::sys::classify::{Avx2, Avx2Pdep, Best, best};
                if best() != Best::Baseline {
                    assert_eq!(run::<Avx2>(&data, step), base);
                }
                if best() == Best::Avx2Pdep {
                    assert_eq!(run::<Avx2Pdep>(&data, step), base);
                }
            }
        }
    }
}
