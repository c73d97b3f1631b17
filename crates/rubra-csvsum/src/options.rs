//! What to sum and how to read the file.

use crate::CsvSumError;

/// How to read the CSV and which columns to sum.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SumOptions {
    /// Sum the columns whose 1-based index is a multiple of `step`
    /// (10 → columns 10, 20, 30, …). At least 1.
    pub step: usize,
    /// The single-byte field delimiter. Must not be `"`, `\n` or `\r`.
    pub delimiter: u8,
    /// Whether the first record is a header giving the column names.
    /// Without one, a column is named `c<index>` (`c10`).
    pub header: bool,
    /// Skip (and count) cells that are not numbers instead of failing.
    pub skip_invalid: bool,
}

impl Default for SumOptions {
    fn default() -> Self {
        Self {
            step: 10,
            delimiter: b',',
            header: true,
            skip_invalid: false,
        }
    }
}

impl SumOptions {
    /// Checks that the options can describe a CSV file.
    pub fn validate(&self) -> Result<(), CsvSumError> {
        if self.step == 0 {
            return Err(CsvSumError::InvalidOptions("step must be at least 1"));
        }
        if matches!(self.delimiter, b'"' | b'\n' | b'\r') {
            return Err(CsvSumError::InvalidOptions(
                "the delimiter cannot be a quote, a newline or a carriage return",
            ));
        }
        Ok(())
    }
}
