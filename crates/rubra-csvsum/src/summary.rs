//! The result of a sum: the record count and one exact sum per summed column.

/// The result of summing a whole input.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Summary {
    /// Number of data records (header and blank lines excluded).
    pub rows: u64,
    /// The summed columns in index order: every `step`-th column up to the
    /// widest record (header included).
    pub columns: Vec<ColumnSum>,
}

/// The exact sum of one column.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ColumnSum {
    /// 1-based column index (10, 20, …).
    pub index: usize,
    /// The header's name for the column, else `c<index>`.
    pub name: String,
    /// The exact sum as a decimal string, with as many decimals as the
    /// most precise value added (`"897571.54"`, `"-3"`, `"0.001"`).
    pub sum: String,
    /// Cells that were not numbers and were skipped (only with
    /// [`SumOptions::skip_invalid`](crate::SumOptions::skip_invalid); otherwise 0).
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_zero"))]
    pub skipped: u64,
}

#[cfg(feature = "serde")]
fn is_zero(n: &u64) -> bool {
    *n == 0
}
