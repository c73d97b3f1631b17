//! The `rubra slowlog` command line: flags ([`SlowlogArgs`], clap derive) and [`run`], which
//! prints the report on stdout and returns the exit code (0 ok, 2 error).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::report::{Filter, Options, SortKey};
use crate::timefmt::Timestamp;
use crate::{Report, analyze_paths, compare, output};

/// Rank the slowest functions from rubra's JSON logs (span close events).
///
/// Reads plain or gzip files, or `-` for stdin; malformed lines are counted, not fatal.
#[derive(Debug, Clone, clap::Args)]
#[command(about = "Rank the slowest functions from rubra's JSON logs")]
pub struct SlowlogArgs {
    /// Log files (plain or .gz); `-` reads stdin.
    #[arg(value_name = "FILE", required_unless_present = "compare")]
    pub files: Vec<PathBuf>,
    /// Rank by this column, largest first.
    #[arg(long, value_enum, default_value_t = SortKey::Total)]
    pub sort: SortKey,
    /// Show only the first N rows.
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// Count only spans closed at or after this time (RFC 3339, or a date).
    #[arg(long, value_name = "TIME")]
    pub since: Option<Timestamp>,
    /// Count only spans closed at or before this time (RFC 3339, or a date).
    #[arg(long, value_name = "TIME")]
    pub until: Option<Timestamp>,
    /// Keep only functions (`target::name`) matching this pattern (a substring or a regex).
    #[arg(long, value_name = "PATTERN")]
    pub filter: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV instead of a table.
    #[arg(long)]
    pub csv: bool,
    /// Compare two logs and show which functions got slower (by p50 and p95 ratios).
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"], conflicts_with = "files")]
    pub compare: Option<Vec<PathBuf>>,
    /// Parsing threads (0: CPUs less one, at most 4, when there are 4 CPUs or more; else 1).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub threads: usize,
    /// With --compare: the p50 or p95 ratio from which a function counts as slower.
    #[arg(long, default_value_t = 1.2, value_name = "RATIO")]
    pub threshold: f64,
}

/// Runs the command: 0 when the report was printed, 2 on a usage or read error (the report
/// is still printed when only some input failed part way).
#[must_use]
pub fn run(args: SlowlogArgs) -> ExitCode {
    match run_to(&args, &mut io::stdout().lock()) {
        Ok(code) => code,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rubra slowlog: {e}");
            ExitCode::from(2)
        }
    }
}

fn options(args: &SlowlogArgs, top: Option<usize>) -> io::Result<Options> {
    let filter = args
        .filter
        .as_deref()
        .map(Filter::new)
        .transpose()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    Ok(Options {
        sort: args.sort,
        top,
        since: args.since,
        until: args.until,
        filter,
        threads: args.threads,
    })
}

fn warn_about(report: &Report) {
    for m in &report.malformed_examples {
        eprintln!("rubra slowlog: {}:{}: {}", m.source, m.line, m.reason);
    }
    if report.malformed > report.malformed_examples.len() as u64 {
        eprintln!("rubra slowlog: {} malformed lines in all", report.malformed);
    }
    for e in &report.errors {
        eprintln!("rubra slowlog: {e}");
    }
}

/// Like [`run`], but writes to `out` and returns I/O errors (for tests and embedding).
pub fn run_to(args: &SlowlogArgs, out: &mut dyn Write) -> io::Result<ExitCode> {
    if !(args.threshold.is_finite() && args.threshold > 0.0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--threshold must be a positive number",
        ));
    }
    if let Some(pair) = &args.compare {
        let [old, new] = pair.as_slice() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--compare takes exactly two files: OLD NEW",
            ));
        };
        let opts = options(args, None)?;
        let old_r = read(std::slice::from_ref(old), &opts)?;
        let new_r = read(std::slice::from_ref(new), &opts)?;
        warn_about(&old_r);
        warn_about(&new_r);
        let cmp = compare::compare(&old_r, &new_r, args.threshold);
        if args.json || args.csv {
            // `slower` keeps counting every function; only the rows are cut.
            let mut cmp = cmp;
            if let Some(n) = args.top {
                cmp.rows.truncate(n);
            }
            if args.json {
                output::write_compare_json(out, &cmp)?;
            } else {
                output::write_compare_csv(out, &cmp)?;
            }
        } else {
            output::write_compare_table(out, &cmp, args.top)?;
        }
        out.flush()?;
        let failed = !old_r.errors.is_empty() || !new_r.errors.is_empty();
        return Ok(if failed {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        });
    }
    let opts = options(args, args.top)?;
    let report = read(&args.files, &opts)?;
    warn_about(&report);
    if args.json {
        output::write_json(out, &report)?;
    } else if args.csv {
        output::write_csv(out, &report)?;
    } else {
        output::write_table(out, &report)?;
    }
    out.flush()?;
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn read(paths: &[PathBuf], opts: &Options) -> io::Result<Report> {
    let stdin_twice = paths
        .iter()
        .filter(|p| p.as_path() == Path::new("-"))
        .count()
        > 1;
    if stdin_twice {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "`-` (stdin) given more than once",
        ));
    }
    analyze_paths(paths, opts)
}
