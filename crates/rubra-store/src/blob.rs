//! Blob storage for image bytes and overlays, on a local folder or an S3-compatible bucket.
//!
//! Writes are all-or-nothing on both backends: the local backend writes a temporary file and
//! renames it into place, and an S3 PUT only becomes visible once complete. So a crash or a
//! failed upload never leaves a half-written blob under its final name.

use crate::{Result, StoreError};
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where blobs live, as configured with `--storage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobUrl {
    /// A local folder (`file:///abs/path`, or a plain path).
    Local(PathBuf),
    /// An S3 bucket and a key prefix (`s3://bucket/prefix`).
    S3 {
        /// The bucket name.
        bucket: String,
        /// The key prefix, without leading or trailing slashes (may be empty).
        prefix: String,
    },
}

impl BlobUrl {
    /// Parses a `--storage` value.
    pub fn parse(s: &str) -> Result<Self> {
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(StoreError::Config(format!(
                    "storage URL {s:?} has no bucket"
                )));
            }
            Ok(BlobUrl::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            })
        } else if let Some(path) = s.strip_prefix("file://") {
            Ok(BlobUrl::Local(PathBuf::from(path)))
        } else if s.contains("://") {
            Err(StoreError::Config(format!(
                "unsupported storage URL {s:?}: expected a folder, file://PATH or s3://BUCKET/PREFIX"
            )))
        } else {
            Ok(BlobUrl::Local(PathBuf::from(s)))
        }
    }
}

/// What a HEAD or a listing tells about a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    /// Its key, as given to [`BlobStore::put`].
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// The storage's entity tag: changes whenever the blob is replaced.
    pub e_tag: Option<String>,
    /// Last modification, epoch milliseconds.
    pub last_modified_ms: i64,
}

/// A handle on the configured blob storage. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    prefix: Option<ObjectPath>,
    describe: String,
}

impl BlobStore {
    /// Opens the storage at `url`. For S3, credentials and region come from the usual AWS
    /// environment variables; `endpoint` points at an S3-compatible server (plain HTTP allowed).
    pub fn open(url: &BlobUrl, endpoint: Option<&str>) -> Result<Self> {
        match url {
            BlobUrl::Local(dir) => {
                std::fs::create_dir_all(dir)?;
                let fs = LocalFileSystem::new_with_prefix(dir)?;
                Ok(BlobStore {
                    inner: Arc::new(fs),
                    prefix: None,
                    describe: format!("local folder {}", dir.display()),
                })
            }
            BlobUrl::S3 { bucket, prefix } => {
                let s3 = s3_builder(bucket, endpoint).build()?;
                Ok(BlobStore {
                    inner: Arc::new(s3),
                    prefix: (!prefix.is_empty()).then(|| ObjectPath::from(prefix.as_str())),
                    describe: format!("s3://{bucket}/{prefix}"),
                })
            }
        }
    }

    /// A human description of where the blobs are, for logs.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// The underlying object store, for readers that stream (e.g. CSV jobs).
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.inner)
    }

    fn path_of(&self, key: &str) -> ObjectPath {
        // Keys look like "images/ab/abcdef…": split on '/' into validated parts.
        key.split('/')
            .fold(self.prefix.clone().unwrap_or_default(), |p, part| {
                p.join(part)
            })
    }

    /// Stores `bytes` under `key`, replacing any previous value atomically.
    #[tracing::instrument(name = "blob.put", skip(self, bytes), fields(len = bytes.len()))]
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.inner
            .put(&self.path_of(key), PutPayload::from_bytes(bytes))
            .await?;
        Ok(())
    }

    /// Reads the blob at `key`; `None` when there is none.
    #[tracing::instrument(name = "blob.get", skip(self))]
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        match self.inner.get(&self.path_of(key)).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether a blob exists at `key`.
    #[tracing::instrument(name = "blob.exists", skip(self))]
    pub async fn exists(&self, key: &str) -> Result<bool> {
        match self.inner.head(&self.path_of(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the blob at `key`; deleting a missing blob is not an error.
    #[tracing::instrument(name = "blob.delete", skip(self))]
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.inner.delete(&self.path_of(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Size, ETag and modification time of the blob at `key`; `None` when there is none.
    /// The ETag changes whenever the blob is replaced, on both backends.
    #[tracing::instrument(name = "blob.head", skip(self))]
    pub async fn head(&self, key: &str) -> Result<Option<BlobMeta>> {
        match self.inner.head(&self.path_of(key)).await {
            Ok(m) => Ok(Some(self.meta(m))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every blob whose key starts with the folder `prefix` (e.g. `overlays/abc`), at any depth.
    #[tracing::instrument(name = "blob.list", skip(self))]
    pub async fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>> {
        use futures::TryStreamExt;
        let path = self.path_of(prefix);
        let metas: Vec<_> = match self.inner.list(Some(&path)).try_collect().await {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let mut out: Vec<BlobMeta> = metas.into_iter().map(|m| self.meta(m)).collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn meta(&self, m: object_store::ObjectMeta) -> BlobMeta {
        let full = m.location.as_ref();
        let key = match &self.prefix {
            Some(p) => full
                .strip_prefix(p.as_ref())
                .map(|k| k.trim_start_matches('/'))
                .unwrap_or(full),
            None => full,
        };
        BlobMeta {
            key: key.to_owned(),
            size: m.size,
            e_tag: m.e_tag,
            last_modified_ms: m.last_modified.timestamp_millis(),
        }
    }

    /// Checks that the storage answers (used by `/readyz`): a HEAD of a key that need not exist.
    pub async fn ping(&self) -> Result<()> {
        match self.inner.head(&self.path_of("readyz-probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The S3 client configuration shared by blob storage and job sources.
///
/// Retries are bounded to about 15 s (object_store's default is 10 retries over 3 minutes)
/// so that a request or a readiness probe fails in reasonable time when S3 is down;
/// callers that stream large objects can override it on the returned builder.
pub fn s3_builder(bucket: &str, endpoint: Option<&str>) -> AmazonS3Builder {
    let retry = RetryConfig {
        max_retries: 4,
        retry_timeout: Duration::from_secs(15),
        ..RetryConfig::default()
    };
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry)
        .with_client_options(ClientOptions::new().with_connect_timeout(Duration::from_secs(5)));
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        b = b.with_region("us-east-1");
    }
    if let Some(ep) = endpoint {
        b = b
            .with_endpoint(ep)
            .with_allow_http(ep.starts_with("http://"))
            .with_virtual_hosted_style_request(false);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_storage_urls() {
        assert_eq!(
            BlobUrl::parse("s3://bkt/a/b/").unwrap(),
            BlobUrl::S3 {
                bucket: "bkt".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            BlobUrl::parse("./data/blobs").unwrap(),
            BlobUrl::Local("./data/blobs".into())
        );
        assert!(BlobUrl::parse("gs://x").is_err());
        assert!(BlobUrl::parse("s3://").is_err());
    }

    #[tokio::test]
    async fn local_put_get_delete() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(&BlobUrl::Local(dir.path().to_owned()), None).unwrap();
        blobs.ping().await.unwrap();
        assert_eq!(blobs.get("images/ab/abc").await.unwrap(), None);
        blobs
            .put("images/ab/abc", Bytes::from_static(b"hello"))
            .await
            .unwrap();
        assert!(blobs.exists("images/ab/abc").await.unwrap());
        assert_eq!(
            blobs.get("images/ab/abc").await.unwrap().unwrap(),
            &b"hello"[..]
        );
        blobs.delete("images/ab/abc").await.unwrap();
        blobs.delete("images/ab/abc").await.unwrap();
        assert!(!blobs.exists("images/ab/abc").await.unwrap());
    }

    #[tokio::test]
    async fn local_head_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(&BlobUrl::Local(dir.path().to_owned()), None).unwrap();
        assert_eq!(blobs.head("overlays/c1/a.png").await.unwrap(), None);
        assert!(blobs.list("overlays/c1").await.unwrap().is_empty());
        blobs
            .put("overlays/c1/a.png", Bytes::from_static(b"one"))
            .await
            .unwrap();
        blobs
            .put("overlays/c1/b.png", Bytes::from_static(b"four"))
            .await
            .unwrap();
        blobs
            .put("overlays/c2/a.png", Bytes::from_static(b"x"))
            .await
            .unwrap();
        let first = blobs.head("overlays/c1/a.png").await.unwrap().unwrap();
        assert_eq!((first.key.as_str(), first.size), ("overlays/c1/a.png", 3));
        let listed = blobs.list("overlays/c1").await.unwrap();
        let keys: Vec<_> = listed.iter().map(|m| (m.key.as_str(), m.size)).collect();
        assert_eq!(keys, [("overlays/c1/a.png", 3), ("overlays/c1/b.png", 4)]);
        blobs
            .put("overlays/c1/a.png", Bytes::from_static(b"two"))
            .await
            .unwrap();
        let second = blobs.head("overlays/c1/a.png").await.unwrap().unwrap();
        assert!(first.e_tag.is_some());
        assert_ne!(first.e_tag, second.e_tag, "a replaced blob has a new ETag");
    }
}
