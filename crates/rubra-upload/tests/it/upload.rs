//! The uploader against the real server: what it finds, what it sends, what it
//! reports, and that a re-run sends nothing.

use crate::helpers::{jpeg, png, put, sha256_hex, spawn_server};
use rubra_upload::{Outcome, SkipReason, UploadError, upload};
use std::collections::BTreeSet;
use std::os::unix::fs::symlink;

/// Makes `root/locked.png` unreadable: `chmod 000` when that works (not root),
/// else a symlink to nowhere (root reads through any mode bits). Returns the
/// relative path that must be reported as failed.
fn unreadable_file(root: &std::path::Path) -> &'static str {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join("locked.png");
    std::fs::write(&p, png(999)).expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    if std::fs::File::open(&p).is_ok() {
        eprintln!("running as root: chmod 000 does not stop reading; using a dangling symlink");
        std::fs::remove_file(&p).expect("rm");
        symlink(root.join("gone/away.png"), root.join("dangling.png")).expect("symlink");
        return "dangling.png";
    }
    "locked.png"
}

#[tokio::test]
async fn nested_folders_with_non_images_and_an_unreadable_file() {
    let server = spawn_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let images = [
        ("top.png", png(1)),
        ("a/one.jpg", jpeg(2)),
        ("a/b/c/deep.png", png(3)),
        ("a/b/misnamed.txt", png(4)), // found by its bytes, not its name
        ("a/b/no-extension", jpeg(5)),
        ("a/same-bytes-again.png", png(1)), // a duplicate: one image on the server
    ];
    for (rel, bytes) in &images {
        put(root, rel, bytes);
    }
    put(root, "readme.md", b"# not an image");
    put(root, "a/fake.png", b"this is text with a .png name");
    put(root, "a/b/empty.jpg", b"");
    symlink(root, root.join("a/b/c/loop")).expect("symlink loop");
    let fifo = root.join("a/pipe.png");
    let made_fifo = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    let bad = unreadable_file(root);

    let report = upload(root, &server.options()).await.expect("runs");

    let expected: BTreeSet<String> = images.iter().map(|(_, b)| sha256_hex(b)).collect();
    assert_eq!(server.image_ids().await, expected);
    assert_eq!(report.failed.len(), 1, "{report:#?}");
    assert_eq!(report.failed[0].path, bad);
    assert_eq!(report.failed[0].code, "unreadable");
    assert_eq!(report.exit_code(), 1);
    // The duplicate is either "already there" or a 200 to its POST.
    assert_eq!(report.uploaded + report.already_there, images.len() as u64);
    assert_eq!(report.uploaded, expected.len() as u64);
    assert_eq!(
        report.skipped_by_reason.get(&SkipReason::NotImage),
        Some(&3)
    );
    assert_eq!(
        report.skipped_by_reason.get(&SkipReason::SymlinkedDir),
        Some(&1)
    );
    if made_fifo {
        assert_eq!(
            report.skipped_by_reason.get(&SkipReason::NotRegularFile),
            Some(&1)
        );
    }
    let summary = report.summary();
    assert!(summary.contains(bad), "{summary}");
}

#[tokio::test]
async fn a_rerun_skips_everything_and_sends_nothing() {
    let server = spawn_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..12 {
        put(dir.path(), &format!("d{}/img{i}.png", i % 3), &png(100 + i));
    }
    let first = upload(dir.path(), &server.options())
        .await
        .expect("first run");
    assert_eq!((first.uploaded, first.exit_code()), (12, 0), "{first:#?}");

    let again = upload(dir.path(), &server.options())
        .await
        .expect("second run");
    assert_eq!(again.uploaded, 0);
    assert_eq!(again.already_there, 12);
    assert_eq!(again.sent_bytes, 0, "a re-run posts nothing");
    assert_eq!(again.exit_code(), 0);
    assert!(
        again
            .files
            .iter()
            .all(|f| f.outcome == Outcome::AlreadyThere)
    );
    assert_eq!(server.image_ids().await.len(), 12);
}

#[tokio::test]
async fn multipart_batches_arrive_whole() {
    let server = spawn_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut expected = BTreeSet::new();
    for i in 0..11 {
        let bytes = if i % 2 == 0 {
            png(200 + i)
        } else {
            jpeg(200 + i)
        };
        expected.insert(sha256_hex(&bytes));
        put(dir.path(), &format!("img \"{i}\".bin"), &bytes);
    }
    let mut opts = server.options();
    opts.batch = 4;
    opts.concurrency = 2;
    let report = upload(dir.path(), &opts).await.expect("runs");
    assert_eq!(report.exit_code(), 0, "{report:#?}");
    assert_eq!(report.uploaded, 11);
    assert_eq!(server.image_ids().await, expected);
}

#[tokio::test]
async fn a_corrupt_image_is_reported_with_the_servers_code_and_exit_1() {
    let server = spawn_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    put(dir.path(), "good1.png", &png(300));
    put(dir.path(), "good2.jpg", &jpeg(301));
    let mut corrupt = b"\x89PNG\r\n\x1a\n".to_vec();
    corrupt.extend_from_slice(&[0x42; 500]);
    put(dir.path(), "broken.png", &corrupt);

    for batch in [1, 3] {
        let mut opts = server.options();
        opts.batch = batch;
        opts.skip_existing = false;
        let report = upload(dir.path(), &opts).await.expect("runs");
        assert_eq!(report.exit_code(), 1, "batch {batch}: {report:#?}");
        assert_eq!(report.failed.len(), 1, "batch {batch}: {report:#?}");
        let f = &report.failed[0];
        assert_eq!(f.path, "broken.png");
        let status = f.status.expect("the server answered");
        assert!((400..500).contains(&status), "batch {batch}: {f:?}");
        assert!(
            !f.code.is_empty() && !f.code.starts_with("http_"),
            "server's code: {f:?}"
        );
        assert_eq!(report.retries, 0, "4xx is never retried");
        assert_eq!(server.image_ids().await.len(), 2);
    }
}

#[tokio::test]
async fn dry_run_posts_nothing() {
    let server = spawn_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    put(dir.path(), "x.png", &png(400));
    put(dir.path(), "y.png", &png(401));
    let mut opts = server.options();
    opts.dry_run = true;
    let report = upload(dir.path(), &opts).await.expect("runs");
    assert_eq!(
        (report.would_upload, report.uploaded, report.sent_bytes),
        (2, 0, 0)
    );
    assert!(server.image_ids().await.is_empty());
}

#[tokio::test]
async fn a_bad_key_or_no_server_stops_before_anything() {
    let server = spawn_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    put(dir.path(), "x.png", &png(500));
    let mut opts = server.options();
    opts.key = "not-a-key".into();
    match upload(dir.path(), &opts).await {
        Err(UploadError::BadKey { status: 401, .. }) => {}
        other => panic!("expected BadKey, got {other:?}"),
    }

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let mut opts = server.options();
    opts.server = format!("http://{addr}");
    opts.retries = 1;
    match upload(dir.path(), &opts).await {
        Err(UploadError::Unreachable { .. }) => {}
        other => panic!("expected Unreachable, got {other:?}"),
    }
}
