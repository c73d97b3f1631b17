//! Runs one CSV-sum job: from an S3 object or a file confined to a local
//! root, with exact sums from [`rubra_csvsum`], cancellation, live progress,
//! and downloads that survive unstable storage.
//!
//! This crate is the job *runner*; the queue (leases, heartbeats, the HTTP
//! API) lives elsewhere and calls it like this:
//!
//! ```no_run
//! use std::path::Path;
//! use std::sync::Arc;
//! use rubra_jobs::{JobSource, LocalRoot, RunControl, RunEnv, S3Allow, S3Config, run};
//!
//! # async fn worker() -> Result<(), Box<dyn std::error::Error>> {
//! // Once, at start-up (clients are cached per bucket inside). Nothing is
//! // readable until the operator allows it:
//! let mut env = RunEnv::new(S3Config {
//!     endpoint: Some("http://127.0.0.1:5000".into()),
//!     allow_http: true,
//!     region: None,
//! });
//! env.sources.local_root = Some(LocalRoot::open(Path::new("/srv/jobs"))?);
//! env.sources.s3_allow = S3Allow::parse(&["bench", "shared/csv/"])?;
//! let env = Arc::new(env);
//! // At submission (POST /jobs): 400/403/404 with `err.code()` on error.
//! let source = JobSource::parse("data/big.csv", &env.sources)?;
//! // In the worker's tokio task:
//! let control = RunControl::new(); // keep a clone: .cancel(), .progress.snapshot()
//! let summary = run(&source, &rubra_csvsum::SumOptions::default(), &env, &control).await?;
//! # Ok(()) }
//! ```
//!
//! [`run`] is an `async fn` that needs a Tokio runtime: parsing runs on
//! `spawn_blocking` threads (all cores), the S3 download on the calling task.
//!
//! # Unstable storage
//!
//! An S3 object is streamed and parsed while it downloads. When the body
//! breaks (connection reset, early end, an error status such as 503
//! SlowDown, a timeout, or a stall: no byte for [`RunEnv::stall_timeout`]),
//! the download resumes from the last byte received with a range request
//! and `If-Match` set to the ETag of the first response, after an
//! exponential backoff with jitter ([`RetryPolicy`]). If the object changed
//! (412, or a different ETag), the sum starts over from byte 0 with fresh
//! counters. The job fails with [`JobError::DownloadFailed`] (code
//! `download_failed`) once [`RetryPolicy::max_attempts`] requests have
//! failed; its message names the last cause and the byte it happened at.
//!
//! `object_store`'s internal retries are disabled (see [`RunEnv::s3_store`]):
//! its own streaming resume (since 0.12.2) would hide the offset and the
//! attempts from us, does not start over when the object changes (it just
//! fails), and its whole-request timeout would cut large downloads.
//!
//! # What a job may read
//!
//! Only what the operator allowed in [`RunEnv::sources`] ([`SourcePolicy`]):
//! files beneath one [`LocalRoot`], opened through a `cap-std` directory
//! handle so that no path, link or swapped directory leads out of it, and the
//! S3 buckets and prefixes of an [`S3Allow`] list. [`run`] checks the source
//! against the policy again before it reads a byte. A job reports column
//! names (the header), sums and row counts; an error names the row and column
//! of a bad cell but never quotes the cell.
//!
//! # Error codes
//!
//! [`SourceError::code`]: `bad_source`, `source_outside_root`,
//! `source_not_found`, `source_not_a_file`, `source_unreadable`,
//! `local_sources_disabled`, `source_not_allowed`.
//! [`JobError::code`]: `canceled`, `object_not_found`,
//! `object_access_denied`, `download_failed`, `s3_config`, `internal`, the
//! source codes above (a local file that vanished or now escapes the root),
//! and the CSV codes of [`rubra_csvsum::CsvSumError::code`]
//! (`csv_invalid_number`, … — the message names the row and column).
#![deny(missing_docs)]

mod allow;
mod control;
mod env;
mod error;
mod local;
mod root;
mod s3;
mod source;

pub use allow::{S3Allow, S3AllowError};
pub use root::LocalRoot;

pub use control::{JobProgress, ProgressSnapshot, RunControl};
pub use env::{RetryPolicy, RunEnv, S3Config};
pub use error::JobError;
pub use rubra_csvsum::{SumOptions, Summary};
pub use source::{JobSource, SourceError, SourcePolicy};

/// Runs one job to completion: sums `source` with `options`.
///
/// The source is checked against `env.sources` first (the policy may have
/// narrowed since it was parsed): nothing outside it is read.
///
/// Returns when the sum is done, the job failed, or `control.cancel` was set
/// ([`JobError::Canceled`], within a second). Progress is published in
/// `control.progress` as it goes. Must be called inside a Tokio runtime.
pub async fn run(
    source: &JobSource,
    options: &SumOptions,
    env: &RunEnv,
    control: &RunControl,
) -> Result<Summary, JobError> {
    source.check(&source.display(), &env.sources)?;
    match source {
        JobSource::S3 { bucket, key } => s3::run(bucket, key, options, env, control).await,
        JobSource::Local { path } => local::run(path, options, env, control).await,
    }
}
