//! Rubra's telemetry, set up in one place for every binary and every test: JSON (or text) logs
//! on stderr with one close event per span (busy, idle and wall time, ids for self time),
//! slow-span warnings, and a Prometheus recorder behind the [`metrics`] facade.
//!
//! ```no_run
//! use rubra_telemetry::{LogFormat, TelemetryConfig};
//! let telemetry = rubra_telemetry::init(&TelemetryConfig {
//!     format: LogFormat::default_for_terminal(),
//!     slow_ms: Some(250),
//!     filter: "info".into(),
//! })
//! .expect("telemetry");
//! rubra_telemetry::metrics::counter!("rubra_http_requests_total", "route" => "/healthz").increment(1);
//! let body: String = telemetry.render_metrics();
//! # let _ = body;
//! ```
//!
//! - Logs go to **stderr**; stdout stays free for what a command prints for its user (the
//!   first-start admin key, `rubra slowlog` tables, …). The JSON line format is documented in
//!   [`layer`]; the filter is [`TelemetryConfig::filter`] (tests: `RUST_LOG`, else `info`).
//! - Every span close is also recorded in the histogram [`SPAN_HISTOGRAM`]
//!   (`rubra_span_duration_seconds{name,target}`). Every histogram whose name ends in
//!   `_seconds` gets the [`LATENCY_BUCKETS`]; other histograms are rendered as summaries.
//! - Tests: [`init_for_tests`] (JSON through `eprint!`, captured by the harness) and
//!   [`tap_logs`] (an in-memory copy of the global log, e.g. to run `rubra_slowlog::analyze`
//!   on a live in-process server). [`SpanLayer`] + [`LogCapture`] build a private subscriber
//!   for `tracing::subscriber::with_default`.
//! - [`cpu_flamegraph`]: a CPU profile of the running process as a flamegraph SVG.
#![deny(missing_docs)]

mod capture;
mod format;
pub mod layer;
mod profile;
mod time;

use std::io::IsTerminal as _;
use std::sync::{Mutex, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

pub use capture::{CaptureWriter, LogCapture, LogTap, TestStderr, tap_logs};
pub use format::{LogFormat, ParseLogFormatError};
pub use layer::{SPAN_HISTOGRAM, SpanLayer};
/// The metrics facade, re-exported so callers record through the same version this crate
/// installs a recorder for (`rubra_telemetry::metrics::counter!(…)`).
pub use metrics;
pub use profile::{ProfileError, cpu_flamegraph};
/// Re-exported so callers build filters and layers against the same version.
pub use tracing_subscriber;

/// Histogram buckets (seconds) for every histogram: 100 µs to 60 s, roughly ×2.5 apart.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// How telemetry is set up: the values of `--log-format`, `--slow-ms` and the log filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// Log line format.
    pub format: LogFormat,
    /// Spans whose wall time exceeds this many milliseconds are also logged at WARN.
    pub slow_ms: Option<u64>,
    /// An `EnvFilter` directive such as `info` or `info,rubra_store=debug` (the caller
    /// decides what wins over what; `rubra`'s settings take `RUST_LOG` only when no flag
    /// or setting gave one).
    pub filter: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default_for_terminal(),
            slow_ms: None,
            filter: "info".to_owned(),
        }
    }
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The filter directive does not parse.
    #[error("invalid log filter {filter:?}: {source}")]
    InvalidFilter {
        /// The directive as given.
        filter: String,
        /// What the parser said.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// The Prometheus recorder could not be installed (another `metrics` recorder is
    /// already installed in this process).
    #[error("cannot install the metrics recorder: {0}")]
    Metrics(String),
}

/// A handle on the installed telemetry; cheap to clone. Renders `/metrics`.
#[derive(Clone)]
pub struct Telemetry {
    prometheus: PrometheusHandle,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Telemetry {
    /// The Prometheus text exposition (format 0.0.4) of everything recorded through the
    /// [`metrics`] facade, including the per-span [`SPAN_HISTOGRAM`].
    #[must_use]
    pub fn render_metrics(&self) -> String {
        self.prometheus.run_upkeep();
        self.prometheus.render()
    }

    /// The content type to send with [`Telemetry::render_metrics`].
    pub const METRICS_CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";
}

static METRICS: OnceLock<Telemetry> = OnceLock::new();
static INIT: Mutex<bool> = Mutex::new(false);

/// Installs the Prometheus recorder once per process (without touching logging) and returns
/// its handle; later calls return the same handle. Useful in tests that only need metrics.
pub fn install_metrics() -> Result<Telemetry, TelemetryError> {
    if let Some(t) = METRICS.get() {
        return Ok(t.clone());
    }
    // Serialise installers so two threads do not both try to install a recorder.
    let _guard = INIT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(t) = METRICS.get() {
        return Ok(t.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
        .map_err(|e| TelemetryError::Metrics(e.to_string()))?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| TelemetryError::Metrics(e.to_string()))?;
    let t = Telemetry { prometheus: handle };
    let _ = METRICS.set(t.clone());
    Ok(t)
}

/// The handle of the installed recorder, if [`init`] or [`install_metrics`] ran.
#[must_use]
pub fn metrics_handle() -> Option<Telemetry> {
    METRICS.get().cloned()
}

/// Sets up logging (to stderr) and metrics for this process. Idempotent: the first call
/// installs everything; later calls (tests start many apps in one process) return the same
/// handle and change nothing, whatever their configuration. If some other global tracing
/// subscriber was installed first, logs keep going there and metrics still work.
pub fn init(cfg: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
    install(cfg, std::io::stderr, std::io::stderr().is_terminal())
}

/// Like [`init`], but log lines go to `writer` (a file, a [`LogCapture`], or
/// [`TestStderr`]), without ANSI colours.
pub fn init_with_writer<W>(cfg: &TelemetryConfig, writer: W) -> Result<Telemetry, TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Clone + Send + Sync + 'static,
{
    install(cfg, writer, false)
}

/// For tests: JSON logs (filter from `RUST_LOG`, else `info`) written through `eprint!`, so
/// the test harness captures them and shows them only for failing tests. Idempotent like
/// [`init`].
pub fn init_for_tests() -> Result<Telemetry, TelemetryError> {
    init_with_writer(
        &TelemetryConfig {
            format: LogFormat::Json,
            slow_ms: None,
            filter: std::env::var("RUST_LOG")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| "info".to_owned()),
        },
        TestStderr,
    )
}

static LOGGING: OnceLock<()> = OnceLock::new();

fn install<W>(cfg: &TelemetryConfig, writer: W, ansi: bool) -> Result<Telemetry, TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Clone + Send + Sync + 'static,
{
    let filter = build_filter(&cfg.filter)?;
    let telemetry = install_metrics()?;
    LOGGING.get_or_init(|| {
        // Errors here only mean another global subscriber (or `log` logger) exists already.
        let _ = match cfg.format {
            LogFormat::Json => tracing_subscriber::registry()
                .with(filter)
                .with(SpanLayer::json(writer, cfg.slow_ms).tapped())
                .try_init(),
            LogFormat::Text => {
                let fmt = tracing_subscriber::fmt::layer()
                    .with_writer(writer.clone())
                    .with_ansi(ansi);
                tracing_subscriber::registry()
                    .with(filter)
                    .with(fmt)
                    .with(SpanLayer::text(writer, cfg.slow_ms).tapped())
                    .try_init()
            }
        };
    });
    Ok(telemetry)
}

/// Parses the filter directive (empty: `info`).
fn build_filter(directive: &str) -> Result<EnvFilter, TelemetryError> {
    let directive = if directive.trim().is_empty() {
        "info".to_owned()
    } else {
        directive.to_owned()
    };
    EnvFilter::builder()
        .parse(&directive)
        .map_err(|source| TelemetryError::InvalidFilter {
            filter: directive.clone(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_filter_is_an_error() {
        let err = build_filter("info,=[").map(|_| ()).expect_err("must fail");
        assert!(err.to_string().contains("invalid log filter"), "{err}");
    }
}
