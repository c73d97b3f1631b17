//! Jobs on local files: correct sums, escapes refused, errors named.

use std::path::Path;

use rubra_jobs::{JobError, JobSource, RunControl, SumOptions, run};

use crate::helpers::{csv, env_for, expected};

fn code(source: &str, root: &Path) -> Option<&'static str> {
    JobSource::parse(source, root).err().map(|e| e.code())
}

#[tokio::test]
async fn local_file_job_is_correct_with_mmap_and_pread() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(root.path().join("sub")).expect("mkdir");
    let data = csv(30_000, 1);
    std::fs::write(root.path().join("sub/a.csv"), &data).expect("write");
    let source = JobSource::parse("sub/./a.csv", root.path()).expect("parse");
    let mut env = env_for("http://127.0.0.1:1");
    for mmap in [true, false] {
        env.local_mmap = mmap;
        let control = RunControl::new();
        let summary = run(&source, &SumOptions::default(), &env, &control)
            .await
            .expect("run");
        assert_eq!(summary, expected(&data), "mmap {mmap}");
        let p = control.progress.snapshot();
        assert_eq!(p.bytes_total, Some(data.len() as u64));
        assert_eq!(p.bytes_done, data.len() as u64);
    }
}

#[test]
fn path_escapes_are_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("secret.csv"), "a\n1\n").expect("write");
    std::fs::write(root.path().join("ok.csv"), "a\n1\n").expect("write");
    std::os::unix::fs::symlink(
        outside.path().join("secret.csv"),
        root.path().join("out.csv"),
    )
    .expect("symlink");
    std::os::unix::fs::symlink(outside.path(), root.path().join("outdir")).expect("symlink");
    std::os::unix::fs::symlink(root.path().join("ok.csv"), root.path().join("in.csv"))
        .expect("symlink");
    let r = root.path();
    let secret = outside.path().join("secret.csv");
    assert_eq!(code("../secret.csv", r), Some("source_outside_root"));
    assert_eq!(code("sub/../../secret.csv", r), Some("source_outside_root"));
    assert_eq!(
        code(secret.to_str().expect("utf-8"), r),
        Some("source_outside_root")
    );
    assert_eq!(code("out.csv", r), Some("source_outside_root"));
    assert_eq!(code("outdir/secret.csv", r), Some("source_outside_root"));
    assert_eq!(code("missing.csv", r), Some("source_not_found"));
    assert_eq!(code("outdir", r), Some("source_outside_root"));
    std::fs::create_dir(r.join("dir")).expect("mkdir");
    assert_eq!(code("dir", r), Some("source_not_a_file"));
    assert_eq!(code("", r), Some("bad_source"));
    assert!(
        JobSource::parse("in.csv", r).is_ok(),
        "a link inside the root is fine"
    );
    assert!(JobSource::parse("ok.csv", r).is_ok());
}

#[tokio::test]
async fn a_file_swapped_for_an_escaping_link_after_submission_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("secret.csv"), "a\n1\n").expect("write");
    std::fs::write(root.path().join("a.csv"), "a\n1\n").expect("write");
    let source = JobSource::parse("a.csv", root.path()).expect("parse");
    std::fs::remove_file(root.path().join("a.csv")).expect("rm");
    std::os::unix::fs::symlink(outside.path().join("secret.csv"), root.path().join("a.csv"))
        .expect("symlink");
    let env = env_for("http://127.0.0.1:1");
    let err = run(&source, &SumOptions::default(), &env, &RunControl::new())
        .await
        .expect_err("escape");
    assert_eq!(err.code(), "source_outside_root");
}

#[tokio::test]
async fn a_bad_cell_fails_the_job_naming_row_and_column() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::write(root.path().join("bad.csv"), "a,b\n1,2\n3,x7\n").expect("write");
    let source = JobSource::parse("bad.csv", root.path()).expect("parse");
    let env = env_for("http://127.0.0.1:1");
    let options = SumOptions {
        step: 2,
        ..SumOptions::default()
    };
    let err = run(&source, &options, &env, &RunControl::new())
        .await
        .expect_err("bad cell");
    assert_eq!(err.code(), "csv_invalid_number");
    let msg = err.to_string();
    assert!(msg.contains("row 2, column 2"), "{msg}");
    assert!(matches!(err, JobError::Csv(_)));
}

#[tokio::test]
async fn a_canceled_local_job_reports_canceled() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::write(root.path().join("a.csv"), csv(20_000, 2)).expect("write");
    let source = JobSource::parse("a.csv", root.path()).expect("parse");
    let env = env_for("http://127.0.0.1:1");
    let control = RunControl::new();
    control.cancel();
    let err = run(&source, &SumOptions::default(), &env, &control)
        .await
        .expect_err("canceled");
    assert_eq!(err.code(), "canceled");
}
