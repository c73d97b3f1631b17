//! Jobs on local files: correct sums, escapes refused, errors named.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rubra_jobs::{JobError, JobSource, RunControl, SourcePolicy, SumOptions, run};

use crate::helpers::{csv, env_in, expected};

fn code(source: &str, root: &Path) -> Option<&'static str> {
    JobSource::parse(source, &env_in(root).sources)
        .err()
        .map(|e| e.code())
}

#[tokio::test]
async fn local_file_job_is_correct_with_mmap_and_pread() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(root.path().join("sub")).expect("mkdir");
    let data = csv(30_000, 1);
    std::fs::write(root.path().join("sub/a.csv"), &data).expect("write");
    let mut env = env_in(root.path());
    let source = JobSource::parse("sub/./a.csv", &env.sources).expect("parse");
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
    std::os::unix::fs::symlink("ok.csv", root.path().join("in.csv")).expect("symlink");
    // Resolved beneath the root, an absolute link cannot be followed, even to
    // a file inside: links under the root must be relative.
    std::os::unix::fs::symlink(root.path().join("ok.csv"), root.path().join("abs.csv"))
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
    assert_eq!(code("in.csv", r), None, "a link inside the root is fine");
    assert_eq!(code("abs.csv", r), Some("source_outside_root"));
    assert_eq!(code("ok.csv", r), None);
}

#[tokio::test]
async fn a_file_swapped_for_an_escaping_link_after_submission_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("secret.csv"), "a\n1\n").expect("write");
    std::fs::write(root.path().join("a.csv"), "a\n1\n").expect("write");
    let env = env_in(root.path());
    let source = JobSource::parse("a.csv", &env.sources).expect("parse");
    std::fs::remove_file(root.path().join("a.csv")).expect("rm");
    std::os::unix::fs::symlink(outside.path().join("secret.csv"), root.path().join("a.csv"))
        .expect("symlink");
    let err = run(&source, &SumOptions::default(), &env, &RunControl::new())
        .await
        .expect_err("escape");
    assert_eq!(err.code(), "source_outside_root");
}

#[tokio::test]
async fn a_bad_cell_fails_the_job_naming_row_and_column() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::write(root.path().join("bad.csv"), "a,b\n1,2\n3,x7\n").expect("write");
    let env = env_in(root.path());
    let source = JobSource::parse("bad.csv", &env.sources).expect("parse");
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
async fn a_bad_cell_is_reported_by_position_without_its_content() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        root.path().join("bad.csv"),
        "a,b\n1,2\n3,hunter2-password\n",
    )
    .expect("write");
    let long = "9".repeat(60);
    std::fs::write(root.path().join("big.csv"), format!("a,b\n1,{long}\n")).expect("write");
    let env = env_in(root.path());
    for (file, code, message) in [
        (
            "bad.csv",
            "csv_invalid_number",
            "row 2, column 2 (b): not a number",
        ),
        (
            "big.csv",
            "csv_number_out_of_range",
            "row 1, column 2 (b): number out of exact range",
        ),
    ] {
        let source = JobSource::parse(file, &env.sources).expect("parse");
        let options = SumOptions {
            step: 1,
            ..SumOptions::default()
        };
        let err = run(&source, &options, &env, &RunControl::new())
            .await
            .expect_err("bad cell");
        assert_eq!((err.code(), err.to_string().as_str()), (code, message));
    }
}

#[tokio::test]
async fn a_symlink_under_the_jobs_root_pointing_outside_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("admin.key"), "SECRET-KEY\n1\n").expect("write");
    std::os::unix::fs::symlink(outside.path().join("admin.key"), root.path().join("k.csv"))
        .expect("symlink");
    std::os::unix::fs::symlink(outside.path(), root.path().join("d")).expect("symlink");
    std::fs::create_dir(root.path().join("in")).expect("mkdir");
    // A relative link that climbs out.
    std::os::unix::fs::symlink("../../", root.path().join("in/up")).expect("symlink");
    let env = env_in(root.path());
    let climb = format!(
        "in/up/{}/admin.key",
        outside
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
    );
    for source in ["k.csv", "d/admin.key", climb.as_str()] {
        let err = JobSource::parse(source, &env.sources).expect_err(source);
        assert_eq!(err.code(), "source_outside_root", "{source}");
        let by_hand = JobSource::Local {
            path: source.into(),
        };
        let err = run(&by_hand, &SumOptions::default(), &env, &RunControl::new())
            .await
            .expect_err(source);
        assert_eq!(err.code(), "source_outside_root", "{source}");
    }
}

#[tokio::test]
async fn a_directory_swapped_for_an_escaping_link_after_the_check_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("a.csv"), "SECRET\n1\n").expect("write");
    std::fs::create_dir(root.path().join("sub")).expect("mkdir");
    std::fs::write(root.path().join("sub/a.csv"), "inside\n1\n").expect("write");
    let env = env_in(root.path());
    let source = JobSource::parse("sub/a.csv", &env.sources).expect("parse");
    std::fs::rename(root.path().join("sub"), root.path().join("old")).expect("mv");
    std::os::unix::fs::symlink(outside.path(), root.path().join("sub")).expect("symlink");
    let err = run(&source, &SumOptions::default(), &env, &RunControl::new())
        .await
        .expect_err("escape");
    assert_eq!(err.code(), "source_outside_root");
}

/// The swap races the runner's own check and open: another thread flips a
/// directory between a real one and a link leading out as fast as it can
/// while jobs run. A runner that checks a path and then opens it again
/// sooner or later opens the outside file; one that opens beneath the root's
/// handle never does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_swapped_for_an_escaping_link_while_jobs_run_never_leaks() {
    let root = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("a.csv"), "SECRET\n1\n").expect("write");
    let r = root.path().to_owned();
    std::fs::create_dir(r.join("sub")).expect("mkdir");
    std::fs::write(r.join("sub/a.csv"), "inside\n1\n").expect("write");
    std::os::unix::fs::symlink(outside.path(), r.join("link")).expect("symlink");
    let env = env_in(&r);
    let source = JobSource::parse("sub/a.csv", &env.sources).expect("parse");
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        let r = r.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // sub: real dir -> link out -> real dir.
                let _ = std::fs::rename(r.join("sub"), r.join("real"));
                let _ = std::fs::rename(r.join("link"), r.join("sub"));
                let _ = std::fs::rename(r.join("sub"), r.join("link"));
                let _ = std::fs::rename(r.join("real"), r.join("sub"));
            }
        })
    };
    let options = SumOptions {
        step: 1,
        ..SumOptions::default()
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    let (mut runs, mut read_inside) = (0u32, 0u32);
    let mut leaked = None;
    while Instant::now() < deadline && leaked.is_none() {
        runs += 1;
        if let Ok(summary) = run(&source, &options, &env, &RunControl::new()).await {
            match summary.columns[0].name.as_str() {
                "inside" => read_inside += 1,
                other => leaked = Some(other.to_owned()),
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().expect("flipper");
    assert_eq!(leaked, None, "read outside the root ({runs} runs)");
    assert!(read_inside > 0, "no run read the file ({runs} runs)");
}

#[test]
fn no_local_source_without_a_local_root() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::write(root.path().join("a.csv"), "a\n1\n").expect("write");
    let err = JobSource::parse("a.csv", &SourcePolicy::default()).expect_err("disabled");
    assert_eq!(err.code(), "local_sources_disabled");
}

#[tokio::test]
async fn a_canceled_local_job_reports_canceled() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::write(root.path().join("a.csv"), csv(20_000, 2)).expect("write");
    let env = env_in(root.path());
    let source = JobSource::parse("a.csv", &env.sources).expect("parse");
    let control = RunControl::new();
    control.cancel();
    let err = run(&source, &SumOptions::default(), &env, &control)
        .await
        .expect_err("canceled");
    assert_eq!(err.code(), "canceled");
}
