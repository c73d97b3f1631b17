//! Shared test helpers: run the CLI in-process, write temporary files, generate JSON.

use clap::Parser;
use rubra_jsondiff::cli::{DiffArgs, run_with};
use std::path::PathBuf;

/// The CLI as `rubra diff` will see it.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: DiffArgs,
}

/// Exit status, standard output and standard error of one run.
pub struct Outcome {
    pub code: i32,
    pub out: String,
    pub err: String,
}

/// Runs `rubra diff ARGS` with `stdin` as standard input (never a TTY).
pub fn run(args: &[&str], stdin: &str) -> Outcome {
    let cli = Cli::try_parse_from(std::iter::once("rubra-diff").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("bad test arguments {args:?}: {e}"));
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = run_with(&cli.args, &mut stdin.as_bytes(), &mut out, &mut err, false);
    Outcome {
        code,
        out: String::from_utf8(out).expect("utf-8 output"),
        err: String::from_utf8(err).expect("utf-8 errors"),
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("rubra-jsondiff-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// Writes `name` with `text` and returns its path as a string.
    pub fn file(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write temp file");
        p.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
