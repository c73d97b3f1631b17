//! Shared test helpers: capturing a real telemetry log in memory, temp files, running the CLI.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use clap::Parser;
use rubra_slowlog::cli::{SlowlogArgs, run_to};
use rubra_telemetry::tracing_subscriber::layer::SubscriberExt as _;
use rubra_telemetry::{LogCapture, SpanLayer};

/// Runs `f` under rubra-telemetry's JSON layer and returns the log it wrote.
pub fn capture_log(f: impl FnOnce()) -> String {
    let cap = LogCapture::new();
    let subscriber = rubra_telemetry::tracing_subscriber::registry()
        .with(SpanLayer::json(cap.clone(), None).with_metrics(false));
    tracing::subscriber::with_default(subscriber, f);
    cap.contents()
}

/// A fresh path in the temp dir (removed by the caller if it cares).
pub fn temp_path(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rubra-slowlog-it-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: SlowlogArgs,
}

/// Runs `rubra slowlog ARGS…` in-process; returns (exit code, stdout).
pub fn slowlog(args: &[&str]) -> (std::process::ExitCode, String) {
    let cli = Cli::try_parse_from(std::iter::once("slowlog").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("bad args {args:?}: {e}"));
    let mut out = Vec::new();
    let code = run_to(&cli.args, &mut out).expect("run");
    (code, String::from_utf8(out).expect("utf-8 output"))
}

/// One rubra-format span close line.
pub fn close_line(name: &str, id: u64, parent: Option<u64>, wall_ns: u64, ts: &str) -> String {
    let parent = parent
        .map(|p| format!(",\"parent_id\":{p}"))
        .unwrap_or_default();
    format!(
        "{{\"ts\":\"{ts}\",\"level\":\"INFO\",\"kind\":\"span_close\",\"name\":\"{name}\",\"target\":\"t\",\"span_id\":{id}{parent},\"busy_ns\":{wall_ns},\"idle_ns\":0,\"wall_ns\":{wall_ns},\"fields\":{{}}}}\n"
    )
}
