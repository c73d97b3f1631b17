//! Progress on stderr: a redrawn bar on a terminal, plain lines otherwise.

use crate::report::{Failure, human_bytes};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// Nothing (the library default).
    #[default]
    Quiet,
    /// A bar redrawn in place (for a terminal), failures printed above it.
    Bar,
    /// A status line every few seconds and one line per failure (for logs).
    Lines,
}

/// Shared counters, drawn by a ticker task.
#[derive(Debug)]
pub(crate) struct Progress {
    mode: ProgressMode,
    total_files: u64,
    total_bytes: u64,
    files: AtomicU64,
    bytes: AtomicU64,
    start: Instant,
    stop: AtomicBool,
    draw: Mutex<()>,
}

impl Progress {
    pub(crate) fn start(mode: ProgressMode, total_files: u64, total_bytes: u64) -> Arc<Progress> {
        let p = Arc::new(Progress {
            mode,
            total_files,
            total_bytes,
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            start: Instant::now(),
            stop: AtomicBool::new(false),
            draw: Mutex::new(()),
        });
        if mode != ProgressMode::Quiet {
            let every = if mode == ProgressMode::Bar {
                Duration::from_millis(150)
            } else {
                Duration::from_secs(5)
            };
            let ticker = Arc::clone(&p);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    if ticker.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    ticker.draw();
                }
            });
        }
        p
    }

    /// One image is done (whatever its outcome).
    pub(crate) fn file_done(&self, bytes: u64, failure: Option<&Failure>) {
        self.files.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(f) = failure {
            self.message(&format!("failed: {}: {} {}", f.path, f.code, f.message));
        }
    }

    /// Prints a line (above the bar on a terminal).
    pub(crate) fn message(&self, line: &str) {
        if self.mode == ProgressMode::Quiet {
            return;
        }
        let _g = self.draw.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        let clear = if self.mode == ProgressMode::Bar {
            "\r\x1b[K"
        } else {
            ""
        };
        let _ = writeln!(err, "{clear}{line}");
    }

    /// Draws the final state and stops the ticker.
    pub(crate) fn finish(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if self.mode == ProgressMode::Quiet {
            return;
        }
        self.draw();
        if self.mode == ProgressMode::Bar {
            let _ = writeln!(std::io::stderr());
        }
    }

    fn draw(&self) {
        let files = self.files.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed);
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let rate = bytes as f64 / secs;
        let eta = if rate > 0.0 && self.total_bytes >= bytes {
            let left = (self.total_bytes - bytes) as f64 / rate;
            format!("{}:{:02}", (left as u64) / 60, (left as u64) % 60)
        } else {
            "-:--".into()
        };
        let status = format!(
            "{files}/{} files  {}/{}  {}/s  ETA {eta}",
            self.total_files,
            human_bytes(bytes),
            human_bytes(self.total_bytes),
            human_bytes(rate as u64),
        );
        let _g = self.draw.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        if self.mode == ProgressMode::Bar {
            const WIDTH: u64 = 24;
            let filled = if self.total_bytes == 0 {
                WIDTH
            } else {
                WIDTH * bytes / self.total_bytes.max(1)
            };
            let filled = filled.min(WIDTH) as usize;
            let bar = format!(
                "{}{}",
                "#".repeat(filled),
                "-".repeat(WIDTH as usize - filled)
            );
            let _ = write!(err, "\r[{bar}] {status}\x1b[K");
        } else {
            let _ = writeln!(err, "progress: {status}");
        }
        let _ = err.flush();
    }
}
