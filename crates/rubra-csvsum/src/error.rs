//! The one error type of the crate, with a stable machine-readable code per variant.

/// Everything that can stop a sum.
///
/// Rows are counted as **data records**, 1-based: the header (when
/// [`SumOptions::header`](crate::SumOptions::header) is set) and blank lines are
/// not counted, and a record whose quoted fields span several lines counts once.
/// Columns are 1-based. `offset` is the byte offset of the cell's first byte
/// from the start of the input, which locates it even in files whose quoted
/// fields contain newlines.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsvSumError {
    /// The options cannot describe a CSV file (see [`SumOptions::validate`](crate::SumOptions::validate)).
    #[error("invalid options: {0}")]
    InvalidOptions(&'static str),
    /// A cell is neither empty nor a number.
    #[error("row {row}, column {column} ({name}): not a number: {value:?}")]
    InvalidNumber {
        /// 1-based data row.
        row: u64,
        /// 1-based column index.
        column: usize,
        /// Column name (from the header, else `c<column>`).
        name: String,
        /// The cell as written (at most 64 bytes, lossy UTF-8).
        value: String,
        /// Byte offset of the cell in the input.
        offset: u64,
    },
    /// A cell is a number that cannot be represented exactly (more than about 38
    /// significant digits, or more than 38 decimals).
    #[error("row {row}, column {column} ({name}): number out of exact range: {value:?}")]
    NumberOutOfRange {
        /// 1-based data row.
        row: u64,
        /// 1-based column index.
        column: usize,
        /// Column name.
        name: String,
        /// The cell as written (at most 64 bytes, lossy UTF-8).
        value: String,
        /// Byte offset of the cell in the input.
        offset: u64,
    },
    /// A column's sum grew past the exact range (an `i128` mantissa, about 38
    /// significant digits including the decimals).
    #[error("column {column} ({name}): the sum overflows the exact range at row {row}")]
    SumOverflow {
        /// 1-based data row whose value made the sum overflow (or the first row
        /// of a chunk whose partial sum did, when chunks were merged).
        row: u64,
        /// 1-based column index.
        column: usize,
        /// Column name.
        name: String,
    },
    /// The input ends inside a quoted field.
    #[error("row {row}: a quoted field is not closed before the end of the input")]
    UnclosedQuote {
        /// 1-based data row holding the open quote.
        row: u64,
    },
    /// Reading the input failed.
    #[error("reading the input failed: {0}")]
    Io(#[from] std::io::Error),
    /// The caller's cancel flag was set.
    #[error("canceled")]
    Canceled,
}

impl CsvSumError {
    /// A stable, machine-readable code for API responses and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidOptions(_) => "csv_invalid_options",
            Self::InvalidNumber { .. } => "csv_invalid_number",
            Self::NumberOutOfRange { .. } => "csv_number_out_of_range",
            Self::SumOverflow { .. } => "csv_sum_overflow",
            Self::UnclosedQuote { .. } => "csv_unclosed_quote",
            Self::Io(_) => "csv_read_failed",
            Self::Canceled => "canceled",
        }
    }
}
