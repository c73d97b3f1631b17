//! The histogram blobs and the bins against plain computations, as the fuzz target
//! `stats_hist` checks them, on generated blobs and values; and the regression tests of what
//! that target found.

mod oracle;
mod regressions;
