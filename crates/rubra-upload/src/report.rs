//! What an upload run did: counts, per-file outcomes, failures with reasons.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Why a file under the folder was not considered for upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Its first bytes are not JPEG, PNG, GIF or WebP.
    NotImage,
    /// Left out by `--include`/`--exclude`.
    Excluded,
    /// Larger than `--max-size`.
    TooLarge,
    /// A FIFO, socket or device: never opened (opening a FIFO could block).
    NotRegularFile,
    /// A symbolic link to a folder: not followed, so links cannot loop.
    SymlinkedDir,
    /// A folder reached a second time (bind mounts, hard-linked folders).
    AlreadyVisited,
}

impl SkipReason {
    /// The stable snake_case name used in the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NotImage => "not_image",
            SkipReason::Excluded => "excluded",
            SkipReason::TooLarge => "too_large",
            SkipReason::NotRegularFile => "not_regular_file",
            SkipReason::SymlinkedDir => "symlinked_dir",
            SkipReason::AlreadyVisited => "already_visited",
        }
    }
}

/// What happened to one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Sent, and the server stored it as new (`201`).
    Uploaded,
    /// The server already had these bytes (`HEAD` said 200, or `POST` said 200).
    AlreadyThere,
    /// `--dry-run`: would have been sent.
    WouldUpload,
    /// Not stored; see [`Report::failed`].
    Failed,
}

/// One image found under the folder and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct FileResult {
    /// Path relative to the upload root, `/`-separated.
    pub path: String,
    /// Lowercase hex SHA-256 of the bytes (the server's image id), once read.
    pub id: Option<String>,
    /// Size in bytes.
    pub bytes: u64,
    /// What happened.
    pub outcome: Outcome,
}

/// A file (or folder) that could not be read or was refused by the server.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Failure {
    /// Path relative to the upload root, `/`-separated.
    pub path: String,
    /// HTTP status of the last answer, if the server answered.
    pub status: Option<u16>,
    /// The server's error `code` (`unsupported_image`, …), or a local one
    /// (`unreadable`, `network`, `changed_while_uploading`).
    pub code: String,
    /// Human-readable reason.
    pub message: String,
}

/// The result of [`crate::upload`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Whether this was a `--dry-run` (nothing was posted).
    pub dry_run: bool,
    /// Images the server stored as new.
    pub uploaded: u64,
    /// Bytes of the images posted successfully (new or not).
    pub uploaded_bytes: u64,
    /// Request body bytes sent in `POST`s, retries included.
    pub sent_bytes: u64,
    /// Images the server already had.
    pub already_there: u64,
    /// Images a dry run would have posted.
    pub would_upload: u64,
    /// Files that were not images or were filtered out.
    pub skipped: u64,
    /// `skipped` by reason.
    pub skipped_by_reason: BTreeMap<SkipReason, u64>,
    /// Everything that failed, with its reason.
    pub failed: Vec<Failure>,
    /// Every image found, with its outcome, sorted by path.
    pub files: Vec<FileResult>,
    /// `POST` attempts that were retried (5xx, 429, timeouts, broken connections).
    pub retries: u64,
    /// Wall time of the whole run, in milliseconds.
    pub elapsed_ms: u64,
    /// Set when the run stopped early (the server rejected the key).
    pub aborted: Option<String>,
}

impl Report {
    /// Counts a skipped file.
    pub(crate) fn skip(&mut self, reason: SkipReason) {
        self.skipped += 1;
        *self.skipped_by_reason.entry(reason).or_default() += 1;
    }

    /// The process exit code this report calls for: 0 all done, 1 some failed,
    /// 2 the run was aborted (bad key, server gone).
    pub fn exit_code(&self) -> u8 {
        if self.aborted.is_some() {
            2
        } else if self.failed.is_empty() {
            0
        } else {
            1
        }
    }

    /// A human-readable summary, several lines, ending in a newline.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let secs = self.elapsed_ms as f64 / 1000.0;
        let rate = if secs > 0.0 {
            self.uploaded_bytes as f64 / secs
        } else {
            0.0
        };
        if self.dry_run {
            let _ = writeln!(s, "dry run: nothing was posted");
            let _ = writeln!(s, "would upload:  {}", self.would_upload);
        } else {
            let _ = writeln!(
                s,
                "uploaded:      {} ({}, {}/s)",
                self.uploaded,
                human_bytes(self.uploaded_bytes),
                human_bytes(rate as u64)
            );
        }
        let _ = writeln!(s, "already there: {}", self.already_there);
        let reasons: Vec<String> = self
            .skipped_by_reason
            .iter()
            .map(|(r, n)| format!("{} {n}", r.as_str()))
            .collect();
        if reasons.is_empty() {
            let _ = writeln!(s, "skipped:       {}", self.skipped);
        } else {
            let _ = writeln!(
                s,
                "skipped:       {} ({})",
                self.skipped,
                reasons.join(", ")
            );
        }
        let _ = writeln!(s, "failed:        {}", self.failed.len());
        for f in &self.failed {
            let status = f.status.map(|c| format!(" {c}")).unwrap_or_default();
            let _ = writeln!(s, "  {}:{status} {}: {}", f.path, f.code, f.message);
        }
        if self.retries > 0 {
            let _ = writeln!(s, "retried:       {} requests", self.retries);
        }
        if let Some(why) = &self.aborted {
            let _ = writeln!(s, "aborted:       {why}");
        }
        let _ = writeln!(s, "time:          {secs:.2} s");
        s
    }
}

/// `1.5 MB`-style sizes (decimal units, like most transfer tools).
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        let mut r = Report::default();
        assert_eq!(r.exit_code(), 0);
        r.failed.push(Failure {
            path: "a".into(),
            status: Some(400),
            code: "corrupt_image".into(),
            message: "bad".into(),
        });
        assert_eq!(r.exit_code(), 1);
        r.aborted = Some("bad key".into());
        assert_eq!(r.exit_code(), 2);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1500), "1.5 kB");
        assert_eq!(human_bytes(204_800_000), "204.8 MB");
    }
}
