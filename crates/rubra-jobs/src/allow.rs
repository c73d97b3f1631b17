//! Which S3 buckets and prefixes jobs may read: the operator's allow-list.

use std::sync::Arc;

use object_store::path::Path as ObjectPath;

/// The S3 objects jobs may read, from entries such as `bucket` (every key of
/// the bucket) and `bucket/prefix/` (the keys that start with `prefix/`).
///
/// The rule is exact: a prefix entry must end with `/` and matches a key only
/// on whole path segments, so `logs/2024/` allows `logs/2024/a.csv` but not
/// `logs/2024-old/a.csv`; bucket names are compared exactly. Keys are compared
/// in the form that is requested from the store (`object_store`'s path
/// encoding), so what was checked is what is fetched. The default is empty:
/// no S3 source at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Allow {
    entries: Arc<[Entry]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    bucket: String,
    /// Empty for the whole bucket, else a prefix ending in `/`.
    prefix: String,
}

/// Why an allow-list entry was refused.
#[derive(Debug, thiserror::Error)]
#[error("{entry:?}: {reason}")]
pub struct S3AllowError {
    /// The entry as given.
    pub entry: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl S3Allow {
    /// Parses the entries (`bucket` or `bucket/prefix/`), refusing anything
    /// that could be read two ways.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, S3AllowError> {
        let entries = entries
            .iter()
            .map(|e| Entry::parse(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            entries: entries.into(),
        })
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether any key of `bucket` may be read (a cheap first check, before a
    /// client for the bucket is built).
    pub fn allows_bucket(&self, bucket: &str) -> bool {
        self.entries.iter().any(|e| e.bucket == bucket)
    }

    /// Whether `s3://bucket/key` may be read.
    pub fn allows(&self, bucket: &str, key: &str) -> bool {
        let requested = ObjectPath::from(key);
        let requested = requested.as_ref();
        self.entries
            .iter()
            .any(|e| e.bucket == bucket && requested.starts_with(&e.prefix))
    }

    /// The entries written back (`bucket` or `bucket/prefix/`).
    pub fn entries(&self) -> impl Iterator<Item = String> + '_ {
        self.entries.iter().map(|e| {
            if e.prefix.is_empty() {
                e.bucket.clone()
            } else {
                format!("{}/{}", e.bucket, e.prefix)
            }
        })
    }
}

impl Entry {
    fn parse(entry: &str) -> Result<Self, S3AllowError> {
        let bad = |reason| S3AllowError {
            entry: entry.to_owned(),
            reason,
        };
        if entry.contains("://") {
            return Err(bad(
                "write the bucket without a scheme: `bucket` or `bucket/prefix/`",
            ));
        }
        let (bucket, prefix) = match entry.split_once('/') {
            None => (entry, ""),
            Some((bucket, prefix)) => (bucket, prefix),
        };
        if bucket.is_empty() {
            return Err(bad("the bucket name is empty"));
        }
        if !bucket.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        }) {
            return Err(bad(
                "a bucket name is made of lowercase letters, digits, `.`, `-` and `_`",
            ));
        }
        if entry.contains('/') {
            if prefix.is_empty() {
                return Err(bad("write `bucket` (without `/`) for the whole bucket"));
            }
            if !prefix.ends_with('/') {
                return Err(bad(
                    "a prefix must end with `/` (it matches whole path segments)",
                ));
            }
            // The prefix must be written as the store is asked for it, or a key
            // could pass the check in one spelling and be fetched in another.
            let segments = &prefix[..prefix.len() - 1];
            if segments.split('/').any(str::is_empty)
                || ObjectPath::from(segments).as_ref() != segments
            {
                return Err(bad(
                    "the prefix has an empty, `.` or `..` segment or characters that need escaping",
                ));
            }
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_matches_whole_segments_only() {
        let allow = S3Allow::parse(&["data/pub/", "open"]).expect("parse");
        assert!(allow.allows("data", "pub/a.csv"));
        assert!(allow.allows("data", "pub/deep/a.csv"));
        assert!(!allow.allows("data", "pub-other/a.csv"));
        assert!(!allow.allows("data", "public/a.csv"));
        assert!(!allow.allows("data", "secret.csv"));
        assert!(!allow.allows("data", "pub"));
        assert!(allow.allows("open", "anything/at/all.csv"));
        assert!(!allow.allows("opened", "a.csv"));
        assert!(!allow.allows("other", "pub/a.csv"));
        assert!(allow.allows_bucket("data") && !allow.allows_bucket("other"));
        // S3 has no `..`: the key is fetched literally (escaped), still under pub/.
        assert!(allow.allows("data", "pub/../secret.csv"));
        assert!(!allow.allows("data", "x/../pub/a.csv"));
    }

    #[test]
    fn empty_allows_nothing() {
        let allow = S3Allow::default();
        assert!(allow.is_empty());
        assert!(!allow.allows("b", "k"));
    }

    #[test]
    fn ambiguous_entries_are_refused() {
        for bad in [
            "", "/pub/", "s3://b", "b/", "b/pre", "b/a//", "b//", "b/../", "Bucket", "b c", "b/*/",
        ] {
            assert!(S3Allow::parse(&[bad]).is_err(), "{bad:?}");
        }
        let ok = S3Allow::parse(&["b", "b.x-y_z/a/b/"]).expect("ok");
        assert_eq!(ok.entries().collect::<Vec<_>>(), ["b", "b.x-y_z/a/b/"]);
    }
}
