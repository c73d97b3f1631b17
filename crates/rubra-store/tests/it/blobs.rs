//! Blob storage on a local folder and on a real S3 server.

use bytes::Bytes;
use rubra_store::{BlobStore, BlobUrl};

async fn roundtrip(blobs: BlobStore) {
    blobs.ping().await.unwrap();
    let key = "images/ab/abcdef";
    assert_eq!(blobs.get(key).await.unwrap(), None);
    assert!(!blobs.exists(key).await.unwrap());
    blobs.put(key, Bytes::from_static(b"first")).await.unwrap();
    blobs.put(key, Bytes::from_static(b"second")).await.unwrap();
    assert_eq!(blobs.get(key).await.unwrap().unwrap(), &b"second"[..]);
    assert!(blobs.exists(key).await.unwrap());
    blobs.delete(key).await.unwrap();
    assert_eq!(blobs.get(key).await.unwrap(), None);
    // Deleting what is not there is fine.
    blobs.delete(key).await.unwrap();
}

#[tokio::test]
async fn local_blobs_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    roundtrip(BlobStore::open(&BlobUrl::Local(dir.path().join("blobs")), None).unwrap()).await;
}

#[tokio::test]
async fn s3_blobs_roundtrip() {
    let Some(bucket) = rubra_testkit::fresh_bucket("s3_blobs_roundtrip").await else {
        return;
    };
    let url = BlobUrl::parse(&bucket.storage_url("prefix/x")).unwrap();
    roundtrip(BlobStore::open(&url, Some(&bucket.endpoint)).unwrap()).await;
}

#[tokio::test]
async fn s3_unreachable_is_reported_as_unavailable() {
    // Nothing listens on port 9 of loopback: the ping must fail, not hang or panic.
    let url = BlobUrl::parse("s3://nowhere/x").unwrap();
    let blobs = BlobStore::open(&url, Some("http://127.0.0.1:9")).unwrap();
    let err = tokio::time::timeout(std::time::Duration::from_secs(60), blobs.ping())
        .await
        .expect("ping must give up")
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
}
