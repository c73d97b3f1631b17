//! Where a job's CSV comes from: an S3 object, or a file confined to a local root.

use std::path::{Component, Path, PathBuf};

/// The input of a job, validated.
///
/// Built with [`JobSource::parse`], so a local path always names an existing
/// regular file inside the local root (at the time of parsing; [`run`](crate::run)
/// checks again before opening it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobSource {
    /// An object in an S3-compatible store.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Object key (without a leading `/`).
        key: String,
    },
    /// A local file.
    Local {
        /// The canonical (absolute, symlink-free) path of the file.
        path: PathBuf,
        /// The canonical local root the path was checked against.
        root: PathBuf,
    },
}

/// Why a job's `source` string was refused.
///
/// Suggested HTTP statuses: [`SourceError::NotFound`] → 404 (or 422);
/// [`SourceError::RootUnavailable`] → 500 (a configuration error); every other
/// variant → 400.
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
    /// The configured local root itself cannot be resolved.
    #[error("the local root {root:?} cannot be resolved: {error}")]
    RootUnavailable {
        /// The configured root.
        root: PathBuf,
        /// The underlying error.
        error: std::io::Error,
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
            Self::RootUnavailable { .. } => "local_root_unavailable",
        }
    }
}

impl JobSource {
    /// Parses a job's `source` string.
    ///
    /// `s3://bucket/key` is an S3 object (bucket and key must be non-empty).
    /// Anything else is a path relative to `local_root`; it is refused if it
    /// is absolute or has a `..` component (before touching the file system,
    /// so nothing outside the root is probed), then both the root and the path
    /// are canonicalized and the file must lie inside the root (a symbolic
    /// link that leads out is refused), exist, and be a regular file.
    pub fn parse(source: &str, local_root: Option<&Path>) -> Result<Self, SourceError> {
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
            return Ok(Self::S3 {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            });
        }
        if source.contains("://") {
            return Err(bad(
                "only s3:// URLs and local relative paths are supported",
            ));
        }
        let relative = Path::new(source);
        for component in relative.components() {
            match component {
                Component::Normal(_) | Component::CurDir => {}
                Component::ParentDir => return Err(outside("`..` is not allowed")),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(outside("absolute paths are not allowed"));
                }
            }
        }
        let local_root = local_root.ok_or(SourceError::LocalDisabled)?;
        let root = local_root
            .canonicalize()
            .map_err(|error| SourceError::RootUnavailable {
                root: local_root.to_owned(),
                error,
            })?;
        let path = resolve_inside(&root, relative).map_err(|e| match e {
            Resolve::NotFound => SourceError::NotFound {
                source_str: source.to_owned(),
            },
            Resolve::Outside => outside("it resolves outside the root through a link"),
            Resolve::NotAFile => SourceError::NotAFile {
                source_str: source.to_owned(),
            },
        })?;
        Ok(Self::Local { path, root })
    }

    /// The source written back as a string (`s3://bucket/key` or the
    /// canonical local path).
    pub fn display(&self) -> String {
        match self {
            Self::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
            Self::Local { path, .. } => path.display().to_string(),
        }
    }
}

pub(crate) enum Resolve {
    NotFound,
    Outside,
    NotAFile,
}

/// Canonicalizes `root.join(relative)` and checks that it is a regular file
/// inside `root` (already canonical).
pub(crate) fn resolve_inside(root: &Path, relative: &Path) -> Result<PathBuf, Resolve> {
    let path = root
        .join(relative)
        .canonicalize()
        .map_err(|_| Resolve::NotFound)?;
    if !path.starts_with(root) {
        return Err(Resolve::Outside);
    }
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => Ok(path),
        Ok(_) => Err(Resolve::NotAFile),
        Err(_) => Err(Resolve::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_parse() {
        let root = Path::new("/nonexistent-root");
        assert_eq!(
            JobSource::parse("s3://b/dir/k.csv", root).ok(),
            Some(JobSource::S3 {
                bucket: "b".into(),
                key: "dir/k.csv".into()
            })
        );
        for bad in ["s3://", "s3://b", "s3://b/", "s3:///k", "http://x/y", ""] {
            let err = JobSource::parse(bad, root).err().map(|e| e.code());
            assert_eq!(err, Some("bad_source"), "{bad}");
        }
    }

    #[test]
    fn escapes_are_refused_before_touching_the_disk() {
        let root = Path::new("/nonexistent-root");
        for bad in ["../x.csv", "a/../../x.csv", "/etc/passwd", "a/.."] {
            let err = JobSource::parse(bad, root).err().map(|e| e.code());
            assert_eq!(err, Some("source_outside_root"), "{bad}");
        }
    }
}
