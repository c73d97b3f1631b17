//! The `rubra upload` command: flags, the run, the summary and the exit code.

use crate::{Glob, Options, ProgressMode, UploadError, upload};
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Upload every image under a folder to a Rubra server (`POST /images`).
///
/// Images are recognised by their first bytes (JPEG, PNG, GIF, WebP), whatever
/// their names; other files are counted as skipped. Files the server already
/// has (same SHA-256) are not sent again, so re-running after an interruption
/// only sends what is missing. Exit status: 0 all done, 1 some files failed,
/// 2 usage error, server unreachable or key rejected.
#[derive(Debug, Clone, Args)]
pub struct UploadArgs {
    /// Folder to upload (or a single file).
    pub dir: PathBuf,

    /// Server base URL (plain HTTP).
    #[arg(
        long,
        env = "RUBRA_SERVER",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    pub server: String,

    /// API key.
    #[arg(long, env = "RUBRA_KEY", hide_env_values = true, value_name = "KEY")]
    pub key: String,

    /// Only the folder itself, not its sub-folders.
    #[arg(long)]
    pub no_recursive: bool,

    /// Requests in flight at once [default: 8].
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: Option<u16>,

    /// Files per request: 1 sends each image as a raw body, more sends
    /// multipart/form-data forms of N files.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub batch: u16,

    /// Retries per request on broken connections, timeouts, 429 and 5xx
    /// (exponential backoff with jitter; Retry-After is honoured).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub retries: u32,

    /// Time limit for one request, in seconds.
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    pub timeout: f64,

    /// Only files matching this glob (repeatable). Without '/', matches the
    /// file name anywhere (`*.png`); with '/', the path under DIR (`raw/**/*.jpg`).
    #[arg(long, value_name = "GLOB", value_parser = parse_glob)]
    pub include: Vec<Glob>,

    /// Leave out files matching this glob (repeatable; same syntax as --include).
    #[arg(long, value_name = "GLOB", value_parser = parse_glob)]
    pub exclude: Vec<Glob>,

    /// Leave out files larger than this (bytes, or with k, M, G: 25M).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,

    /// Find, hash and ask the server, but post nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Post even what the server says it has (it deduplicates anyway).
    #[arg(long)]
    pub no_skip_existing: bool,

    /// Print the report as JSON on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,

    /// No progress output on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

impl UploadArgs {
    /// The library options these flags ask for.
    pub fn options(&self) -> Result<Options, UploadError> {
        if !(self.timeout.is_finite() && self.timeout > 0.0) {
            return Err(UploadError::Usage(format!(
                "--timeout must be a positive number, got {}",
                self.timeout
            )));
        }
        let progress = if self.quiet {
            ProgressMode::Quiet
        } else if std::io::stderr().is_terminal() {
            ProgressMode::Bar
        } else {
            ProgressMode::Lines
        };
        let mut o = Options::new(self.server.clone(), self.key.clone());
        o.recursive = !self.no_recursive;
        o.concurrency = self.concurrency.map_or(default_concurrency(), usize::from);
        o.batch = usize::from(self.batch);
        o.retries = self.retries;
        o.timeout = Duration::from_secs_f64(self.timeout);
        o.include = self.include.clone();
        o.exclude = self.exclude.clone();
        o.max_size = self.max_size;
        o.dry_run = self.dry_run;
        o.skip_existing = !self.no_skip_existing;
        o.progress = progress;
        Ok(o)
    }
}

/// 8 requests in flight: enough to keep a local server's cores busy while one
/// request is being read or hashed, and gentle on a remote one.
fn default_concurrency() -> usize {
    8
}

/// Runs `rubra upload` on a new Tokio runtime. Use [`run_async`] from inside
/// a runtime.
pub fn run(args: UploadArgs) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(run_async(args)),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs `rubra upload`: prints progress on stderr, the summary (or `--json`
/// report) on stdout, and returns the exit code.
pub async fn run_async(args: UploadArgs) -> ExitCode {
    let opts = match args.options() {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    match upload(&args.dir, &opts).await {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => eprintln!("error: cannot write the report: {e}"),
                }
            } else {
                print!("{}", report.summary());
            }
            ExitCode::from(report.exit_code())
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &UploadError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

fn parse_glob(s: &str) -> Result<Glob, String> {
    Glob::new(s).map_err(|e| e.to_string())
}

/// `123`, `100k`, `25M`, `1G` (binary multiples), case-insensitive, optional `B`/`iB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let lower = lower.trim_end_matches("ib").trim_end_matches('b');
    let (digits, mult) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1u64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        _ => (lower, 1),
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("not a size: {s:?} (try 25M)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("size too large: {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: UploadArgs,
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("100k"), Ok(102_400));
        assert_eq!(parse_size("25M"), Ok(25 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2mb"), Ok(2 << 20));
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn flags_map_to_options() {
        let cmd = Cmd::try_parse_from([
            "upload",
            "pics",
            "--server",
            "http://h:1",
            "--key",
            "k",
            "--no-recursive",
            "-j",
            "3",
            "--batch",
            "4",
            "--include",
            "*.png",
            "--max-size",
            "1M",
            "--dry-run",
            "--quiet",
        ])
        .expect("parses");
        let o = cmd.args.options().expect("options");
        assert_eq!((o.recursive, o.concurrency, o.batch), (false, 3, 4));
        assert_eq!(o.max_size, Some(1 << 20));
        assert!(o.dry_run && o.skip_existing);
        assert_eq!(o.include.len(), 1);
        assert_eq!(o.progress, ProgressMode::Quiet);
    }

    #[test]
    fn zero_concurrency_is_a_usage_error() {
        assert!(Cmd::try_parse_from(["upload", "d", "--key", "k", "-j", "0"]).is_err());
    }
}
