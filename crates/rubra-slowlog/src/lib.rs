//! `rubra slowlog`: ranks the slowest functions from Rubra's JSON logs.
//!
//! Every span close line (`"kind":"span_close"`, written by `rubra-telemetry`; or
//! tracing-subscriber's `FmtSpan::CLOSE` JSON as a fallback) becomes one sample of its
//! function (`target::name`). The report has one row per function: calls, total, mean, p50,
//! p95, p99, max, busy vs. wall and self time (wall time minus the wall time of direct child
//! spans). Input is streamed: memory is bounded by the number of functions and of spans open
//! at once, never by the size of the log. Percentiles come from a log-linear histogram and
//! are within ±0.4 % (see [`LogHistogram`]); counts, totals, means, min and max are exact.
//! Lines are parsed on worker threads ([`Options::threads`]) and applied in input order.
//! Malformed lines (not JSON, truncated, missing fields, over [`MAX_LINE_BYTES`]) are counted
//! in [`Report::malformed`], never fatal.
//!
//! Entry points: [`analyze`] (one reader), [`analyze_paths`] (files, `-` for stdin),
//! [`Analyzer`] (feed inputs yourself), [`compare`] (two reports), [`output`] (table, JSON,
//! CSV) and, with the default `cli` feature, [`cli::SlowlogArgs`] + [`cli::run`].
//!
//! ```
//! let log = br#"{"ts":"2026-01-01T00:00:00Z","kind":"span_close","name":"slow","target":"app","span_id":1,"busy_ns":5000000,"idle_ns":0,"wall_ns":5000000}
//! not json
//! "#;
//! let report = rubra_slowlog::analyze(&log[..], &rubra_slowlog::Options::default()).unwrap();
//! assert_eq!(report.functions[0].function, "app::slow");
//! assert_eq!(report.functions[0].calls, 1);
//! assert_eq!(report.malformed, 1);
//! ```
#![deny(missing_docs)]

#[cfg(feature = "cli")]
pub mod cli;
mod compare;
mod hist;
mod input;
pub mod output;
mod parallel;
mod parse;
mod report;
mod timefmt;

use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub use compare::{CompareRow, Comparison, Verdict, compare};
pub use hist::LogHistogram;
pub use input::{MAX_LINE_BYTES, decompressing, open};
pub use report::{
    Analyzer, Filter, FilterError, FunctionStats, MalformedLine, Options, Report, SortKey,
};
pub use timefmt::{ParseTimestampError, Timestamp, human_duration};

/// Analyzes one input (plain or gzip, detected by content). Read errors part way are
/// returned as errors here; use [`Analyzer`] to keep partial results.
pub fn analyze<R: Read>(reader: R, opts: &Options) -> io::Result<Report> {
    let mut analyzer = Analyzer::new(opts.clone());
    let mut r = decompressing(reader)?;
    analyzer.feed("input", &mut r)?;
    Ok(analyzer.finish())
}

/// Analyzes files in order (`-` is stdin; gzip detected by content). A file that cannot be
/// opened is an error naming it; a read error part way through a file is recorded in
/// [`Report::errors`] and the other files are still read.
pub fn analyze_paths(paths: &[PathBuf], opts: &Options) -> io::Result<Report> {
    let mut analyzer = Analyzer::new(opts.clone());
    for path in paths {
        let name = if path.as_path() == Path::new("-") {
            "<stdin>".to_owned()
        } else {
            path.display().to_string()
        };
        let mut r = open(path).map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))?;
        // The error is kept in the report; go on with the next file.
        let _ = analyzer.feed(&name, &mut r);
    }
    Ok(analyzer.finish())
}
