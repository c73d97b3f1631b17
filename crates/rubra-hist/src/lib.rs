//! The value bins of the `red` statistics ([`bins`]) and the histogram blobs of the rollup
//! rows ([`hist`]): counts per band in a period row, per fine bin in a band row.
//!
//! The store writes these blobs and reads them back from the database, where anything may
//! have changed them; this crate has no dependency, so the fuzz target `stats_hist` builds it
//! without the store's sqlx and S3 clients.

#![deny(missing_docs)]

pub mod bins;
pub mod hist;
