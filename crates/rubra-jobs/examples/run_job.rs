//! Runs one job from the command line and prints its sums and timing.
//!
//! ```text
//! RUBRA_TEST_S3_ENDPOINT=http://127.0.0.1:5000 AWS_ACCESS_KEY_ID=testing \
//!   AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 \
//!   run_job s3://bench/ref.csv
//! run_job ref.csv --root /tmp [--pread] [--threads N]
//! ```
//!
//! Whoever runs this names the source, so it may read it: the root is `--root`
//! (default `.`), and an `s3://bucket/…` source's bucket is allowed.

use std::path::PathBuf;
use std::time::Instant;

use rubra_jobs::{JobSource, LocalRoot, RunControl, RunEnv, S3Allow, S3Config, SumOptions, run};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let source = args
        .next()
        .ok_or("usage: run_job SOURCE [--root DIR] [--pread] [--threads N]")?;
    let mut root = PathBuf::from(".");
    let mut env = RunEnv::new(S3Config {
        endpoint: std::env::var("RUBRA_TEST_S3_ENDPOINT").ok(),
        allow_http: true,
        region: None,
    });
    while let Some(a) = args.next() {
        match a.as_str() {
            "--root" => root = args.next().ok_or("--root DIR")?.into(),
            "--pread" => env.local_mmap = false,
            "--threads" => env.threads = args.next().ok_or("--threads N")?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    env.sources.local_root = Some(LocalRoot::open(&root)?);
    if let Some(bucket) = source
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .map(|(bucket, _)| bucket)
    {
        env.sources.s3_allow = S3Allow::parse(&[bucket])?;
    }
    let start = Instant::now();
    let source = JobSource::parse(&source, &env.sources)?;
    let control = RunControl::new();
    let summary = run(&source, &SumOptions::default(), &env, &control).await?;
    let secs = start.elapsed().as_secs_f64();
    let sums: Vec<&str> = summary.columns.iter().map(|c| c.sum.as_str()).collect();
    println!(
        "{secs:.3} s, {} rows, sums {}",
        summary.rows,
        sums.join(" ")
    );
    Ok(())
}
