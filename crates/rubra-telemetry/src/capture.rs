//! Log sinks for tests: [`LogCapture`] keeps lines in memory to read back; [`TestStderr`]
//! writes through `eprint!` so the test harness captures them; [`tap_logs`] copies the
//! global subscriber's lines into memory whatever `init` was given.

use std::io::{self, Write as _};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tracing_subscriber::fmt::MakeWriter;

/// A cloneable, thread-safe buffer that collects log lines.
#[derive(Debug, Clone, Default)]
pub struct LogCapture {
    buf: Arc<Mutex<Vec<u8>>>,
}

impl LogCapture {
    /// An empty capture.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything written so far, as (lossy) UTF-8.
    #[must_use]
    pub fn contents(&self) -> String {
        let buf = self.buf.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Everything written so far, as bytes.
    #[must_use]
    pub fn bytes(&self) -> Vec<u8> {
        self.buf
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets everything written so far.
    pub fn clear(&self) {
        self.buf
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// The writer handed out by [`LogCapture`] for one line.
#[derive(Debug)]
pub struct CaptureWriter {
    buf: Arc<Mutex<Vec<u8>>>,
}

impl io::Write for CaptureWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogCapture {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter {
            buf: Arc::clone(&self.buf),
        }
    }
}

/// A writer that goes through `eprint!`, which the test harness captures per test (plain
/// writes to `std::io::stderr()` bypass that capture and clutter test output).
#[derive(Debug, Clone, Copy, Default)]
pub struct TestStderr;

impl io::Write for TestStderr {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        eprint!("{}", String::from_utf8_lossy(data));
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for TestStderr {
    type Writer = TestStderr;

    fn make_writer(&'a self) -> Self::Writer {
        TestStderr
    }
}

static TAPS: RwLock<Vec<(u64, LogCapture)>> = RwLock::new(Vec::new());
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static NEXT_TAP: AtomicU64 = AtomicU64::new(0);

pub(crate) fn taps_active() -> bool {
    ACTIVE.load(Ordering::Relaxed) > 0
}

pub(crate) fn write_taps(line: &[u8]) {
    let taps = TAPS.read().unwrap_or_else(PoisonError::into_inner);
    for (_, cap) in taps.iter() {
        let _ = cap.make_writer().write_all(line);
    }
}

/// A live copy of everything the global subscriber logs, as JSON lines (the `rubra slowlog`
/// input), whatever format and writer [`crate::init`] was given. Stops copying when dropped.
#[derive(Debug)]
pub struct LogTap {
    id: u64,
    capture: LogCapture,
}

impl LogTap {
    /// Everything copied so far.
    #[must_use]
    pub fn contents(&self) -> String {
        self.capture.contents()
    }

    /// Everything copied so far, as bytes.
    #[must_use]
    pub fn bytes(&self) -> Vec<u8> {
        self.capture.bytes()
    }

    /// Forgets what was copied so far.
    pub fn clear(&self) {
        self.capture.clear();
    }
}

impl Drop for LogTap {
    fn drop(&mut self) {
        let mut taps = TAPS.write().unwrap_or_else(PoisonError::into_inner);
        taps.retain(|(id, _)| *id != self.id);
        ACTIVE.store(taps.len(), Ordering::Relaxed);
    }
}

/// Starts copying the global subscriber's log lines (span closes, slow spans, events) into
/// memory, e.g. so a test can run `rubra_slowlog::analyze` on the spans of a live server.
/// Needs [`crate::init`] (any format) or [`crate::init_for_tests`] to have run; lines from all
/// threads are copied, including other tests' in the same process.
#[must_use]
pub fn tap_logs() -> LogTap {
    let tap = LogTap {
        id: NEXT_TAP.fetch_add(1, Ordering::Relaxed),
        capture: LogCapture::new(),
    };
    let mut taps = TAPS.write().unwrap_or_else(PoisonError::into_inner);
    taps.push((tap.id, tap.capture.clone()));
    ACTIVE.store(taps.len(), Ordering::Relaxed);
    tap
}
