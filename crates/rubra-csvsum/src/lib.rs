//! Exact sums of every `step`-th column of a CSV file, streaming and parallel.
//!
//! With the default [`SumOptions`] the 10th, 20th, 30th, … columns (1-based)
//! are summed. The reader follows RFC 4180: quoted fields, doubled quotes,
//! delimiters and newlines inside quotes; `\n` or `\r\n` line ends; blank
//! lines are skipped. Cells may be integers or decimals with a sign and an
//! exponent (`-1.5e3`); an empty cell counts as 0; sums are exact decimals
//! (an `i128` mantissa, never a float) rendered as strings. A record with
//! fewer fields than a summed column counts that cell as empty.
//!
//! Three ways in:
//! - [`Summer`]: push-style, feed chunks of any size, bounded memory: for a
//!   download that can break and resume from [`Summer::bytes`].
//! - [`sum_file`], [`sum_bytes`], [`sum_read_at`]: all cores, with a
//!   [`Control`] for cancellation, live [`Progress`] and the thread count.
//! - [`sum_chunks`]: a sequence of chunks (a download) on all cores: the
//!   calling thread pulls chunks, workers parse 4 MiB batches.
//! - [`sum_reader`]: a plain [`std::io::Read`] (a pipe), through `sum_chunks`.
//!
//! ```
//! use rubra_csvsum::{Control, SumOptions, sum_bytes};
//!
//! let csv = b"id,amount\n1,\"2.50\"\n2,-0.5\n";
//! let options = SumOptions { step: 2, ..SumOptions::default() };
//! let summary = sum_bytes(csv, &options, &Control::default())?;
//! assert_eq!(summary.rows, 2);
//! assert_eq!((summary.columns[0].index, summary.columns[0].name.as_str()), (2, "amount"));
//! assert_eq!(summary.columns[0].sum, "2.00");
//! # Ok::<(), rubra_csvsum::CsvSumError>(())
//! ```
//!
//! # From a job runner
//!
//! - **Local file**: `sum_file(path, &options, &Control { cancel: Some(&flag),
//!   progress: Some(&progress), ..Control::default() })` on a blocking thread
//!   (`tokio::task::spawn_blocking`). Poll [`Progress::bytes`] /
//!   [`Progress::rows`] for the job's progress; set the flag to cancel (the
//!   run stops within one 256 KiB chunk per thread, well under a second).
//! - **Object store, streaming**: keep one [`Summer`] per job and `feed` it
//!   each body chunk as it arrives. If the download breaks, request the
//!   object again from byte [`Summer::bytes`] (a range request) and keep
//!   feeding the same summer: chunk boundaries never matter. If the object
//!   changed (ETag), start over with a new summer. `feed` runs at over
//!   1 GB/s on one core, so it may be called inline between awaits, or on a
//!   blocking thread fed through a channel to overlap download and parsing.
//! - **Object store, streaming on all cores**: run [`sum_chunks`] on a
//!   blocking thread with an iterator that receives the body chunks from a
//!   channel (a resumed download simply continues the sequence).
//! - **Object store, all cores**: implement [`ReadAt`] with ranged GETs and call
//!   [`sum_read_at`]; each thread then downloads and parses its own regions.
//!
//! Errors: [`CsvSumError::code`] gives a stable code for the API response;
//! the message names the 1-based data row and column of a bad cell.
//!
//! # How it is fast
//!
//! Blocks of 64 bytes are classified with SIMD compares into bit masks
//! (delimiters, newlines, quotes); a prefix XOR of the quote mask marks the
//! bytes inside quotes; `popcount` skips whole blocks of unsummed fields, and
//! `pdep` (or a loop) finds the separator that starts a summed one. Cells of
//! up to 8 characters are parsed eight bytes at a time. Parallel runs cut the
//! input at newlines and verify each cut when merging (see [`sum_bytes`]).
#![deny(missing_docs)]

mod decimal;
mod error;
mod options;
mod parallel;
mod pipeline;
mod summary;
mod summer;
mod sys;

pub use error::CsvSumError;
pub use options::SumOptions;
pub use parallel::{Control, Progress, ReadAt, sum_bytes, sum_read_at, sum_reader};
#[cfg(unix)]
pub use parallel::{sum_file, sum_open_file};
pub use pipeline::sum_chunks;
pub use summary::{ColumnSum, Summary};
pub use summer::Summer;
