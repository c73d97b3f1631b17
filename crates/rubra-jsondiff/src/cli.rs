//! The `rubra diff` command line: arguments, reading files or standard input,
//! output formats and exit codes (0 equal, 1 different, 2 error).

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::{ArrayMode, Decimal, Document, Options, PathPattern, Tolerance};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per difference, for people.
    Text,
    /// A JSON array of {path, kind, old, new, delta}.
    Json,
    /// An RFC 6902 JSON Patch that turns A into B.
    JsonPatch,
}

/// When to colour text output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    /// When standard output is a terminal and NO_COLOR is unset.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Arguments of `rubra diff A B`.
#[derive(Clone, Debug, clap::Args)]
#[command(
    about = "Compare two JSON documents (floats equal to 5 decimal places)",
    after_help = "Numbers are compared as exact decimals (1 == 1.0 == 1e0). When at least one \
of two numbers has a fraction or an exponent, they are equal if |a-b| <= abs or |a-b| <= \
rel*max(|a|,|b|); two integers are compared exactly.\n\n\
Paths: .name, [\"any name\"], .* (any member), [*] (any element), ** (any depth), e.g. \
'**.timestamp', 'items[*].updated_at'.\n\n\
Exit status: 0 equal, 1 different, 2 error."
)]
pub struct DiffArgs {
    /// First document: a file, or - for standard input.
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// Second document: a file, or - for standard input.
    #[arg(value_name = "B")]
    pub b: PathBuf,

    /// Numbers are equal to N decimal places: |a-b| <= 0.5*10^-N [default: 5].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=30))]
    pub precision: Option<u32>,
    /// Absolute tolerance, e.g. 1e-6 (replaces --precision).
    #[arg(long, value_name = "X")]
    pub abs: Option<String>,
    /// Relative tolerance, e.g. 1e-9: |a-b| <= X*max(|a|,|b|) also counts as equal.
    #[arg(long, value_name = "X")]
    pub rel: Option<String>,
    /// No tolerance: numbers must be equal as exact decimals.
    #[arg(long, conflicts_with_all = ["precision", "abs", "rel"])]
    pub exact: bool,

    /// Compare all arrays as sets (order and repetitions ignored).
    #[arg(long, conflicts_with_all = ["multiset", "key"])]
    pub set: bool,
    /// Compare all arrays as multisets (order ignored, repetitions count).
    #[arg(long, conflicts_with = "key")]
    pub multiset: bool,
    /// Match the objects of all arrays by this member (e.g. id).
    #[arg(long, value_name = "FIELD")]
    pub key: Option<String>,
    /// Array mode for a path: PATH=ordered|set|multiset|key:FIELD, e.g. 'items[*]=key:id'. Repeatable.
    #[arg(long = "array", value_name = "PATH=MODE")]
    pub arrays: Vec<String>,
    /// Leave a path out of the comparison, e.g. '**.timestamp'. Repeatable.
    #[arg(long, value_name = "PATH")]
    pub ignore: Vec<String>,
    /// Policy file (TOML, or JSON if it ends in .json) with precision/abs/rel, array,
    /// ignore, [arrays] and [tolerance]; flags given on the command line win.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Print nothing and stop at the first difference; only the exit status tells.
    #[arg(short, long)]
    pub quiet: bool,
    /// Colour text output.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
}

/// Why a run failed (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A file could not be read.
    #[error("cannot read {name}: {source}")]
    Read {
        /// File name, or `-`.
        name: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A document is not valid JSON.
    #[error("{name}: {source}")]
    Parse {
        /// File name, or `-`.
        name: String,
        /// Where and what.
        source: crate::ParseError,
    },
    /// A flag or the policy file is invalid.
    #[error("{0}")]
    Usage(String),
}

fn decimal(flag: &str, s: &str) -> Result<Decimal, CliError> {
    Decimal::parse(s)
        .ok_or_else(|| CliError::Usage(format!("{flag}: {s:?} is not a non-negative number")))
}

fn pattern(flag: &str, s: &str) -> Result<PathPattern, CliError> {
    s.parse()
        .map_err(|e: crate::PatternError| CliError::Usage(format!("{flag}: {e}")))
}

impl DiffArgs {
    /// The comparison options these arguments describe (policy file first, flags over it).
    pub fn options(&self) -> Result<Options, CliError> {
        let mut o = Options::default();
        if let Some(p) = &self.policy {
            let text = std::fs::read_to_string(p).map_err(|source| CliError::Read {
                name: p.display().to_string(),
                source,
            })?;
            o.load_policy(&p.to_string_lossy(), &text)
                .map_err(|e| CliError::Usage(format!("{}: {e}", p.display())))?;
        }
        if self.exact {
            o.tolerance = Tolerance::EXACT;
        }
        if let Some(n) = self.precision {
            o.tolerance.abs = Decimal::half_unit(n);
        }
        if let Some(x) = &self.abs {
            o.tolerance.abs = decimal("--abs", x)?;
        }
        if let Some(x) = &self.rel {
            o.tolerance.rel = decimal("--rel", x)?;
        }
        if self.set {
            o.array_mode = ArrayMode::Set;
        } else if self.multiset {
            o.array_mode = ArrayMode::Multiset;
        } else if let Some(k) = &self.key {
            o.array_mode = ArrayMode::Key(k.clone());
        }
        for spec in &self.arrays {
            let (p, m) = spec
                .rsplit_once('=')
                .ok_or_else(|| CliError::Usage(format!("--array {spec:?}: expected PATH=MODE")))?;
            // `key=id` style modes contain '=' too: split before them.
            let (p, m) = match p.rsplit_once('=') {
                Some((p2, "key")) => (p2, format!("key:{m}")),
                _ => (p, m.to_owned()),
            };
            let mode: ArrayMode = m
                .parse()
                .map_err(|e| CliError::Usage(format!("--array {spec:?}: {e}")))?;
            o.arrays.push((pattern("--array", p)?, mode));
        }
        for p in &self.ignore {
            o.ignore.push(pattern("--ignore", p)?);
        }
        o.stop_at_first = self.quiet;
        o.patch = self.format == Format::JsonPatch && !self.quiet;
        Ok(o)
    }
}

fn read_stdin(stdin: &mut dyn Read) -> Result<Vec<u8>, CliError> {
    let mut buf = Vec::new();
    stdin
        .read_to_end(&mut buf)
        .map_err(|source| CliError::Read {
            name: "-".into(),
            source,
        })?;
    Ok(buf)
}

/// Reads and parses both inputs (in parallel) and compares them.
pub fn compare(args: &DiffArgs, stdin: &mut dyn Read) -> Result<crate::Report, CliError> {
    if args.a.as_os_str() == "-" && args.b.as_os_str() == "-" {
        return Err(CliError::Usage(
            "only one of A and B can be - (standard input)".into(),
        ));
    }
    let opts = args.options()?;
    let timing = std::env::var_os("RUBRA_JSONDIFF_TIMING").is_some();
    let t0 = std::time::Instant::now();
    // Standard input is read first, on this thread; files are read by the parsers.
    let stdin_bytes = if args.a.as_os_str() == "-" || args.b.as_os_str() == "-" {
        Some(read_stdin(stdin)?)
    } else {
        None
    };
    let load = |name: &PathBuf, given: Option<Vec<u8>>| -> Result<Document, CliError> {
        let parsed = match given {
            Some(bytes) => Document::parse_bytes(bytes),
            None => Document::read_file(name).map_err(|source| CliError::Read {
                name: name.display().to_string(),
                source,
            })?,
        };
        parsed.map_err(|source| CliError::Parse {
            name: name.display().to_string(),
            source,
        })
    };
    let (sa, sb) = if args.a.as_os_str() == "-" {
        (stdin_bytes, None)
    } else {
        (None, stdin_bytes)
    };
    let (da, db) = std::thread::scope(|s| {
        let ha = s.spawn(|| load(&args.a, sa));
        let db = load(&args.b, sb);
        (
            ha.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
            db,
        )
    });
    let (da, db) = (da?, db?);
    let t1 = std::time::Instant::now();
    let report = crate::diff(&da, &db, &opts);
    if timing {
        eprintln!(
            "read+parse {:.3}s, compare {:.3}s, {} + {} values",
            (t1 - t0).as_secs_f64(),
            t1.elapsed().as_secs_f64(),
            da.len(),
            db.len()
        );
    }
    // Freeing two large arenas takes a while and nobody waits for it.
    std::thread::spawn(move || drop((da, db)));
    Ok(report)
}

/// Runs `rubra diff` with explicit streams; returns the exit status (0, 1 or 2).
pub fn run_with(
    args: &DiffArgs,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    stdout_is_tty: bool,
) -> i32 {
    let report = match compare(args, stdin) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(stderr, "rubra diff: {e}");
            return 2;
        }
    };
    let code = if report.is_equal() { 0 } else { 1 };
    if args.quiet {
        return code;
    }
    let text = match args.format {
        Format::Text => {
            let color = match args.color {
                Color::Always => true,
                Color::Never => false,
                Color::Auto => stdout_is_tty && std::env::var_os("NO_COLOR").is_none(),
            };
            report.to_text(color)
        }
        Format::Json => report.to_json(),
        Format::JsonPatch => report.patch_json(),
    };
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => code,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
        Err(e) => {
            let _ = writeln!(stderr, "rubra diff: cannot write output: {e}");
            2
        }
    }
}

/// Runs `rubra diff` on the process's standard streams.
pub fn run(args: DiffArgs) -> ExitCode {
    let tty = std::io::stdout().is_terminal();
    let code = run_with(
        &args,
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
        tty,
    );
    ExitCode::from(code as u8)
}
