//! Why a job failed, with a stable code per variant for the API and the queue.

use rubra_csvsum::CsvSumError;

use crate::SourceError;

/// Everything that can end a job without a result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The cancel flag was set.
    #[error("canceled")]
    Canceled,
    /// The CSV itself is wrong (a bad number names its row and column), or
    /// reading a local file failed. The message never quotes the file: a bad
    /// cell is named by row, column and column name, not by its content.
    #[error("{}", csv_message(.0))]
    Csv(CsvSumError),
    /// The local source is no longer valid (it was removed or replaced by a
    /// link leading out of the root since the job was submitted).
    #[error("{0}")]
    Source(#[from] SourceError),
    /// The S3 object does not exist (404).
    #[error("s3://{bucket}/{key} does not exist")]
    ObjectNotFound {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// The store refused the request (403/401): retrying would not help.
    #[error("access to s3://{bucket}/{key} was denied: {message}")]
    AccessDenied {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The store's message.
        message: String,
    },
    /// The download kept failing until the retries ran out; `cause` is the
    /// last failure, with the byte offset it happened at.
    #[error("download of s3://{bucket}/{key} failed after {attempts} attempts: {cause}")]
    DownloadFailed {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Attempts made (requests sent), the last one included.
        attempts: u32,
        /// The last failure.
        cause: String,
    },
    /// The S3 client could not be configured (bad endpoint, bucket name).
    #[error("cannot set up the S3 client: {0}")]
    S3Config(String),
    /// The blocking parser task panicked or was aborted.
    #[error("internal error: {0}")]
    Internal(String),
}

impl JobError {
    /// A stable, machine-readable code for API responses and logs. CSV
    /// errors keep the engine's codes (`csv_invalid_number`, …).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Canceled => "canceled",
            Self::Csv(e) => e.code(),
            Self::Source(e) => e.code(),
            Self::ObjectNotFound { .. } => "object_not_found",
            Self::AccessDenied { .. } => "object_access_denied",
            Self::DownloadFailed { .. } => "download_failed",
            Self::S3Config(_) => "s3_config",
            Self::Internal(_) => "internal",
        }
    }

    /// Whether running the job again later could succeed (the queue may
    /// re-queue it with backoff): only for download failures and internal
    /// errors. CSV errors, a missing object and cancellation are final.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::DownloadFailed { .. } | Self::Internal(_))
    }
}

impl From<CsvSumError> for JobError {
    fn from(e: CsvSumError) -> Self {
        match e {
            CsvSumError::Canceled => Self::Canceled,
            e => Self::Csv(e),
        }
    }
}

/// The message of a CSV error without the cell's content: a job's error is
/// shown to the client and stored, and the file is not the client's to read
/// beyond its header, sums and counts.
fn csv_message(e: &CsvSumError) -> String {
    match e {
        CsvSumError::InvalidNumber {
            row, column, name, ..
        } => format!("row {row}, column {column} ({name}): not a number"),
        CsvSumError::NumberOutOfRange {
            row, column, name, ..
        } => format!("row {row}, column {column} ({name}): number out of exact range"),
        e => e.to_string(),
    }
}
