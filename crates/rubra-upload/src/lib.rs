//! `rubra upload`: every image under a folder to a Rubra server's `POST /images`.
//!
//! Images are found by their first bytes (JPEG, PNG, GIF, WebP), not their
//! names. Each one is hashed (SHA-256 = the server's image id) and skipped when
//! `HEAD /images/{id}` says the server already has it, so a re-run sends
//! nothing. The requests — a raw body, or a `multipart/form-data` form of
//! `batch` files — are built here, over one keep-alive HTTP/1.1 client (plain
//! HTTP only), by `concurrency` workers that each hold at most one batch in
//! memory (files over [`MEMORY_LIMIT`] are streamed from disk). Broken
//! connections, timeouts, 429 and 5xx are retried with backoff and jitter; other
//! 4xx are reported with the server's error code.
//!
//! The entry points are [`upload`] for programs and [`cli::run`] for the
//! `rubra upload` command.

#![deny(missing_docs)]

pub mod backoff;
pub mod body;
pub mod cli;
pub mod glob;
pub mod http;
mod pipeline;
pub mod progress;
pub mod report;
pub mod sniff;
pub mod walk;

pub use glob::Glob;
pub use pipeline::MEMORY_LIMIT;
pub use progress::ProgressMode;
pub use report::{Failure, FileResult, Outcome, Report, SkipReason};

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How to upload.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server's base URL, `http://host:port`.
    pub server: String,
    /// An API key (a client's; an admin key works too).
    pub key: String,
    /// Descend into sub-folders (default true).
    pub recursive: bool,
    /// Requests in flight at once (default 8).
    pub concurrency: usize,
    /// Files per request: 1 sends raw bodies, more sends multipart forms.
    pub batch: usize,
    /// Retries per request after the first attempt (default 5).
    pub retries: u32,
    /// The first retry's delay; it doubles each time (default 200 ms).
    pub backoff_base: Duration,
    /// Time limit for one request, connect to last byte (default 60 s).
    pub timeout: Duration,
    /// If not empty, only files matching one of these.
    pub include: Vec<Glob>,
    /// Files matching one of these are left out.
    pub exclude: Vec<Glob>,
    /// Files larger than this many bytes are left out.
    pub max_size: Option<u64>,
    /// Hash and ask the server, but post nothing.
    pub dry_run: bool,
    /// Ask `HEAD /images/{id}` before posting (default true).
    pub skip_existing: bool,
    /// Progress display on stderr.
    pub progress: ProgressMode,
}

impl Options {
    /// Defaults for `server` and `key`.
    pub fn new(server: impl Into<String>, key: impl Into<String>) -> Options {
        Options {
            server: server.into(),
            key: key.into(),
            recursive: true,
            concurrency: 8,
            batch: 1,
            retries: 5,
            backoff_base: Duration::from_millis(200),
            timeout: Duration::from_secs(60),
            include: Vec::new(),
            exclude: Vec::new(),
            max_size: None,
            dry_run: false,
            skip_existing: true,
            progress: ProgressMode::Quiet,
        }
    }
}

/// Why a run could not start or had to stop before doing anything.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The folder cannot be read.
    #[error("cannot read {path}: {source}")]
    Dir {
        /// The folder given.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A setting is out of range or malformed.
    #[error("{0}")]
    Usage(String),
    /// The server did not answer (after the retries).
    #[error("server unreachable at {server}: {reason}")]
    Unreachable {
        /// The base URL.
        server: String,
        /// The last error.
        reason: String,
    },
    /// The server refused the key.
    #[error("the server rejected the API key ({status}): {message}")]
    BadKey {
        /// 401 or 403.
        status: u16,
        /// The server's message.
        message: String,
    },
}

/// Uploads every image under `dir` as `opts` says and reports what happened.
///
/// Per-file problems (unreadable files, 4xx answers, retries run out) are in
/// the [`Report`]; `Err` means nothing could be done: a bad folder or setting,
/// an unreachable server, a rejected key.
pub async fn upload(dir: &Path, opts: &Options) -> Result<Report, UploadError> {
    pipeline::run(dir, opts).await
}
