//! Where a job's CSV comes from: an S3 object the operator allowed, or a file
//! beneath the local root; and the policy that decides which are acceptable.

use std::path::{Component, Path, PathBuf};

use crate::root::Denied;
use crate::{LocalRoot, S3Allow};

/// What the operator lets jobs read: files beneath one local root (none
/// when `local_root` is `None`) and the S3 buckets and prefixes of
/// `s3_allow` (none when empty). The default allows nothing.
#[derive(Clone, Debug, Default)]
pub struct SourcePolicy {
    /// The folder local sources are confined to.
    pub local_root: Option<LocalRoot>,
    /// The S3 objects jobs may read.
    pub s3_allow: S3Allow,
}

/// The input of a job, validated against a [`SourcePolicy`].
///
/// Built with [`JobSource::parse`]; [`run`](crate::run) checks it again
/// against its environment's policy before reading anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobSource {
    /// An object in an S3-compatible store.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Object key (without a leading `/`).
        key: String,
    },
    /// A file beneath the local root.
    Local {
        /// The path relative to the root, without `.` components (never
        /// absolute, never with `..`).
        path: PathBuf,
    },
}

/// Why a job's `source` string was refused.
///
/// Suggested HTTP statuses: [`SourceError::NotFound`] → 404 (or 422);
/// [`SourceError::NotAllowed`] → 403; every other variant → 400.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The string is not a usable source (empty, a malformed `s3://` URL,
    /// a NUL byte).
    #[error("bad source {source_str:?}: {reason}")]
    Bad {
        /// The source as given.
        source_str: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A local path that is absolute, has a `..` component, or resolves
    /// (through symbolic links) outside the local root.
    #[error("source {source_str:?} is outside the local root: {reason}")]
    OutsideRoot {
        /// The source as given.
        source_str: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// The local file does not exist (or a link in its path is dangling).
    #[error("source {source_str:?} does not exist under the local root")]
    NotFound {
        /// The source as given.
        source_str: String,
    },
    /// The local path exists but is not a regular file (a directory, a device).
    #[error("source {source_str:?} is not a regular file")]
    NotAFile {
        /// The source as given.
        source_str: String,
    },
    /// A local path was given but the operator configured no local root.
    #[error("local job sources are disabled (the operator has set no jobs-local-root)")]
    LocalDisabled,
    /// The local file exists but the server may not read it (permissions).
    #[error("source {source_str:?} cannot be read by the server")]
    Unreadable {
        /// The source as given.
        source_str: String,
    },
    /// An S3 object outside the buckets and prefixes the operator allowed.
    #[error("source {source_str:?} is not in a bucket or prefix that jobs may read")]
    NotAllowed {
        /// The source as given.
        source_str: String,
    },
}

impl SourceError {
    /// A stable, machine-readable code for API responses and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Bad { .. } => "bad_source",
            Self::OutsideRoot { .. } => "source_outside_root",
            Self::NotFound { .. } => "source_not_found",
            Self::NotAFile { .. } => "source_not_a_file",
            Self::LocalDisabled => "local_sources_disabled",
            Self::Unreadable { .. } => "source_unreadable",
            Self::NotAllowed { .. } => "source_not_allowed",
        }
    }
}

impl JobSource {
    /// Parses a job's `source` string and checks it against `policy`.
    ///
    /// `s3://bucket/key` is an S3 object (bucket and key must be non-empty)
    /// that `policy.s3_allow` must allow; nothing is fetched. Anything else is
    /// a path relative to `policy.local_root` (refused when there is none);
    /// it is refused if it is absolute or has a `..` component before the file
    /// system is touched, then it must name a regular file beneath the root,
    /// resolved through the root's handle (a link may point elsewhere inside
    /// the root, never out of it). The file is not opened here.
    pub fn parse(source: &str, policy: &SourcePolicy) -> Result<Self, SourceError> {
        let bad = |reason| SourceError::Bad {
            source_str: source.to_owned(),
            reason,
        };
        let outside = |reason| SourceError::OutsideRoot {
            source_str: source.to_owned(),
            reason,
        };
        if source.is_empty() {
            return Err(bad("empty"));
        }
        if source.contains('\0') {
            return Err(bad("contains a NUL byte"));
        }
        if let Some(rest) = source.strip_prefix("s3://") {
            let (bucket, key) = rest
                .split_once('/')
                .ok_or_else(|| bad("expected s3://bucket/key"))?;
            if bucket.is_empty() || key.is_empty() {
                return Err(bad("expected s3://bucket/key"));
            }
            let parsed = Self::S3 {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            };
            parsed.check(source, policy)?;
            return Ok(parsed);
        }
        if source.contains("://") {
            return Err(bad(
                "only s3:// URLs and local relative paths are supported",
            ));
        }
        if policy.local_root.is_none() {
            return Err(SourceError::LocalDisabled);
        }
        let mut path = PathBuf::new();
        for component in Path::new(source).components() {
            match component {
                Component::Normal(c) => path.push(c),
                Component::CurDir => {}
                Component::ParentDir => return Err(outside("`..` is not allowed")),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(outside("absolute paths are not allowed"));
                }
            }
        }
        if path.as_os_str().is_empty() {
            return Err(SourceError::NotAFile {
                source_str: source.to_owned(),
            });
        }
        let parsed = Self::Local { path };
        parsed.check(source, policy)?;
        Ok(parsed)
    }

    /// Checks the source against `policy` (again): the S3 object is allowed,
    /// or the local file is a regular file beneath the root. `shown` is how
    /// errors name the source.
    pub(crate) fn check(&self, shown: &str, policy: &SourcePolicy) -> Result<(), SourceError> {
        match self {
            Self::S3 { bucket, key } => {
                if policy.s3_allow.allows(bucket, key) {
                    Ok(())
                } else {
                    Err(SourceError::NotAllowed {
                        source_str: shown.to_owned(),
                    })
                }
            }
            Self::Local { path } => {
                let root = policy
                    .local_root
                    .as_ref()
                    .ok_or(SourceError::LocalDisabled)?;
                root.check(path).map_err(|d| denied(d, shown))
            }
        }
    }

    /// The source written back as a string (`s3://bucket/key` or the path
    /// relative to the root; the root itself is not shown).
    pub fn display(&self) -> String {
        match self {
            Self::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
            Self::Local { path } => path.display().to_string(),
        }
    }
}

/// The error for a local source that `root` refused.
pub(crate) fn denied(d: Denied, shown: &str) -> SourceError {
    let source_str = shown.to_owned();
    match d {
        Denied::NotFound => SourceError::NotFound { source_str },
        Denied::NotAFile => SourceError::NotAFile { source_str },
        Denied::Unreadable => SourceError::Unreadable { source_str },
        Denied::Outside => SourceError::OutsideRoot {
            source_str,
            reason: "it leads outside the root through a link",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(entries: &[&str]) -> SourcePolicy {
        SourcePolicy {
            local_root: None,
            s3_allow: S3Allow::parse(entries).expect("allow-list"),
        }
    }

    #[test]
    fn s3_urls_parse() {
        let policy = allow(&["b"]);
        assert_eq!(
            JobSource::parse("s3://b/dir/k.csv", &policy).ok(),
            Some(JobSource::S3 {
                bucket: "b".into(),
                key: "dir/k.csv".into()
            })
        );
        for bad in ["s3://", "s3://b", "s3://b/", "s3:///k", "http://x/y", ""] {
            let err = JobSource::parse(bad, &policy).err().map(|e| e.code());
            assert_eq!(err, Some("bad_source"), "{bad}");
        }
    }

    #[test]
    fn any_bucket_is_refused_without_an_allow_list() {
        let err = JobSource::parse("s3://any-bucket/key", &SourcePolicy::default());
        assert_eq!(err.err().map(|e| e.code()), Some("source_not_allowed"));
    }

    #[test]
    fn a_prefix_outside_the_allowed_prefix_is_refused() {
        let policy = allow(&["data/pub/"]);
        assert!(JobSource::parse("s3://data/pub/a.csv", &policy).is_ok());
        for bad in [
            "s3://data/pub-x/a.csv",
            "s3://data/secret.csv",
            "s3://other/pub/a.csv",
        ] {
            let err = JobSource::parse(bad, &policy).err().map(|e| e.code());
            assert_eq!(err, Some("source_not_allowed"), "{bad}");
        }
    }

    #[test]
    fn the_admin_key_through_a_job_without_a_local_root_is_refused() {
        for local in ["rubra-data/admin.key", "./x.csv", "../x.csv", "/etc/passwd"] {
            let err = JobSource::parse(local, &allow(&["b"]))
                .err()
                .map(|e| e.code());
            assert_eq!(err, Some("local_sources_disabled"), "{local}");
        }
    }

    #[test]
    fn escapes_are_refused_before_touching_the_disk() {
        let dir = std::env::temp_dir();
        let policy = SourcePolicy {
            local_root: Some(LocalRoot::open(&dir).expect("root")),
            s3_allow: S3Allow::default(),
        };
        for bad in ["../x.csv", "a/../../x.csv", "/etc/passwd", "a/.."] {
            let err = JobSource::parse(bad, &policy).err().map(|e| e.code());
            assert_eq!(err, Some("source_outside_root"), "{bad}");
        }
    }
}
