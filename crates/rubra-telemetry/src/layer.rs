//! The span layer: measures every span's busy, idle and wall time, writes one JSON line per
//! span close (and per event), warns about slow spans, and feeds the per-span histogram.
//!
//! Line shapes (one JSON object per line, keys in this order):
//!
//! ```text
//! {"ts":"2026-01-02T03:04:05.123456Z","level":"INFO","kind":"span_close","name":"insert_image",
//!  "target":"rubra_store::sqlite","file":"crates/rubra-store/src/sqlite.rs","line":42,
//!  "span_id":123,"parent_id":45,"busy_ns":1200,"idle_ns":300,"wall_ns":1500,"fields":{"client":7}}
//! {"ts":"…","level":"WARN","kind":"slow_span", …same keys as span_close…, "slow_ms":100}
//! {"ts":"…","level":"INFO","kind":"event","target":"rubra_server","file":"…","line":9,
//!  "message":"listening","fields":{"addr":"127.0.0.1:8080"},"span_id":123,"span":"serve",
//!  "spans":["serve"]}
//! ```
//!
//! `parent_id` is omitted for root spans; `span_id`/`span`/`spans` are omitted for events
//! outside any span. Span ids are only unique among spans open at the same time: tracing
//! reuses an id after its span closes.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::time::push_rfc3339;

/// Name of the histogram that every span close is recorded into (seconds, labels `name` and
/// `target`).
pub const SPAN_HISTOGRAM: &str = "rubra_span_duration_seconds";

/// What the layer writes besides metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// Every event and span close as JSON, slow spans as an extra `slow_span` line.
    Json,
    /// Only slow-span warnings, as a human-readable line (events are left to `fmt`).
    SlowText,
}

/// A [`tracing_subscriber::Layer`] that times spans and writes the JSON log lines described
/// in the module documentation. Build one with [`SpanLayer::json`] (or [`SpanLayer::text`])
/// to compose your own subscriber, e.g. in a test that captures the log in memory.
pub struct SpanLayer<W> {
    writer: W,
    output: Output,
    slow: Option<Duration>,
    metrics: bool,
    tap: bool,
}

impl<W> fmt::Debug for SpanLayer<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpanLayer")
            .field("output", &self.output)
            .field("slow", &self.slow)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl<W> SpanLayer<W>
where
    W: for<'w> MakeWriter<'w> + 'static,
{
    /// A layer writing every event and span close as one JSON line to `writer`; spans whose
    /// wall time exceeds `slow_ms` also get a `"kind":"slow_span"` line at WARN.
    pub fn json(writer: W, slow_ms: Option<u64>) -> Self {
        Self {
            writer,
            output: Output::Json,
            slow: slow_ms.map(Duration::from_millis),
            metrics: true,
            tap: false,
        }
    }

    /// A layer that only writes slow-span warnings as text lines (use beside
    /// `tracing_subscriber::fmt` for human-readable logs) and records metrics.
    pub fn text(writer: W, slow_ms: Option<u64>) -> Self {
        Self {
            writer,
            output: Output::SlowText,
            slow: slow_ms.map(Duration::from_millis),
            metrics: true,
            tap: false,
        }
    }

    /// Whether span closes are recorded in the [`SPAN_HISTOGRAM`] histogram (default true).
    #[must_use]
    pub fn with_metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// Also copies every line, as JSON, to the [`crate::tap_logs`] taps (the global layer).
    pub(crate) fn tapped(mut self) -> Self {
        self.tap = true;
        self
    }

    fn tapped_now(&self) -> bool {
        self.tap && crate::capture::taps_active()
    }

    fn write_line(&self, buf: &str) {
        // One write_all per line so concurrent lines do not interleave on stderr/files.
        let mut w = self.writer.make_writer();
        let _ = w.write_all(buf.as_bytes());
    }
}

/// Timing and fields kept in each span's extensions.
struct SpanState {
    created: Instant,
    entered: u32,
    last_enter: Option<Instant>,
    busy: Duration,
    fields: Map<String, Value>,
}

impl SpanState {
    fn new() -> Self {
        Self {
            created: Instant::now(),
            entered: 0,
            last_enter: None,
            busy: Duration::ZERO,
            fields: Map::new(),
        }
    }
}

/// Collects a span's or event's fields into a JSON map; `message` is kept apart for events.
struct JsonVisitor<'a> {
    fields: &'a mut Map<String, Value>,
    message: Option<&'a mut Option<String>>,
}

impl JsonVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message"
            && let Some(msg) = self.message.as_deref_mut()
        {
            *msg = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
            return;
        }
        let name = field.name();
        // `r#type` style raw identifiers show up with their prefix; strip it.
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.fields.insert(name.to_owned(), value);
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number);
        self.put(field, v);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
}

thread_local! {
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs `f` with an empty reusable line buffer (falls back to a fresh one on re-entrancy).
fn with_line<R>(f: impl FnOnce(&mut String) -> R) -> R {
    LINE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let r = f(&mut buf);
            if buf.capacity() > 64 * 1024 {
                *buf = String::new();
            }
            r
        }
        Err(_) => f(&mut String::new()),
    })
}

fn push_json_str(out: &mut String, s: &str) {
    // serde_json's escaping into a String cannot fail.
    if let Ok(q) = serde_json::to_string(s) {
        out.push_str(&q);
    } else {
        out.push_str("\"\"");
    }
}

fn push_fields(out: &mut String, fields: &Map<String, Value>) {
    match serde_json::to_string(fields) {
        Ok(s) => out.push_str(&s),
        Err(_) => out.push_str("{}"),
    }
}

fn level_str(level: Level) -> &'static str {
    match level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => "INFO",
        Level::WARN => "WARN",
        Level::ERROR => "ERROR",
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Everything measured about one closing span.
struct Closed<'a> {
    name: &'static str,
    target: &'static str,
    file: Option<&'static str>,
    line: Option<u32>,
    level: Level,
    span_id: u64,
    parent_id: Option<u64>,
    busy: Duration,
    wall: Duration,
    fields: &'a Map<String, Value>,
}

impl Closed<'_> {
    fn idle(&self) -> Duration {
        self.wall.saturating_sub(self.busy)
    }

    fn push_json(&self, out: &mut String, now: SystemTime, kind: &str, level: Level) {
        out.push_str("{\"ts\":\"");
        push_rfc3339(out, now);
        let _ = write!(
            out,
            "\",\"level\":\"{}\",\"kind\":\"{kind}\",\"name\":",
            level_str(level)
        );
        push_json_str(out, self.name);
        out.push_str(",\"target\":");
        push_json_str(out, self.target);
        if let Some(file) = self.file {
            out.push_str(",\"file\":");
            push_json_str(out, file);
        }
        if let Some(line) = self.line {
            let _ = write!(out, ",\"line\":{line}");
        }
        let _ = write!(out, ",\"span_id\":{}", self.span_id);
        if let Some(p) = self.parent_id {
            let _ = write!(out, ",\"parent_id\":{p}");
        }
        let _ = write!(
            out,
            ",\"busy_ns\":{},\"idle_ns\":{},\"wall_ns\":{},\"fields\":",
            nanos(self.busy),
            nanos(self.idle()),
            nanos(self.wall)
        );
        push_fields(out, self.fields);
    }
}

impl<S, W> tracing_subscriber::Layer<S> for SpanLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut state = SpanState::new();
        attrs.record(&mut JsonVisitor {
            fields: &mut state.fields,
            message: None,
        });
        span.extensions_mut().insert(state);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(state) = ext.get_mut::<SpanState>() {
            values.record(&mut JsonVisitor {
                fields: &mut state.fields,
                message: None,
            });
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(state) = ext.get_mut::<SpanState>() {
            if state.entered == 0 {
                state.last_enter = Some(Instant::now());
            }
            state.entered += 1;
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(state) = ext.get_mut::<SpanState>() {
            state.entered = state.entered.saturating_sub(1);
            if state.entered == 0
                && let Some(t) = state.last_enter.take()
            {
                state.busy += t.elapsed();
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let now_i = Instant::now();
        let now = SystemTime::now();
        let mut ext = span.extensions_mut();
        let Some(state) = ext.get_mut::<SpanState>() else {
            return;
        };
        // A span closed while still entered (rare): count the open stretch as busy.
        if let Some(t) = state.last_enter.take() {
            state.busy += now_i.saturating_duration_since(t);
        }
        let meta = span.metadata();
        let wall = now_i.saturating_duration_since(state.created);
        let closed = Closed {
            name: meta.name(),
            target: meta.target(),
            file: meta.file(),
            line: meta.line(),
            level: *meta.level(),
            span_id: id.into_u64(),
            parent_id: span.parent().map(|p| p.id().into_u64()),
            busy: state.busy.min(wall),
            wall,
            fields: &state.fields,
        };
        if self.metrics {
            metrics::histogram!(SPAN_HISTOGRAM, "name" => closed.name, "target" => closed.target)
                .record(wall.as_secs_f64());
        }
        let slow = self.slow.is_some_and(|limit| wall > limit);
        let json = self.output == Output::Json;
        let tapped = self.tapped_now();
        if json || tapped {
            with_line(|buf| {
                closed.push_json(buf, now, "span_close", closed.level);
                buf.push_str("}\n");
                if slow {
                    let slow_ms = self.slow.map_or(0, |d| d.as_millis());
                    closed.push_json(buf, now, "slow_span", Level::WARN);
                    let _ = writeln!(buf, ",\"slow_ms\":{slow_ms}}}");
                }
                if json {
                    self.write_line(buf);
                }
                if tapped {
                    crate::capture::write_taps(buf.as_bytes());
                }
            });
        }
        if !json && slow {
            with_line(|buf| {
                push_rfc3339(buf, now);
                let _ = write!(
                    buf,
                    "  WARN slow span {}::{} wall={:?} busy={:?} idle={:?} slow_ms={}",
                    closed.target,
                    closed.name,
                    closed.wall,
                    closed.busy,
                    closed.idle(),
                    self.slow.map_or(0, |d| d.as_millis())
                );
                for (k, v) in closed.fields {
                    let _ = write!(buf, " {k}={v}");
                }
                buf.push('\n');
                self.write_line(buf);
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let json = self.output == Output::Json;
        let tapped = self.tapped_now();
        if !json && !tapped {
            return;
        }
        let now = SystemTime::now();
        // Records bridged from the `log` crate carry their real target/file/line as fields.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let mut fields = Map::new();
        let mut message = None;
        event.record(&mut JsonVisitor {
            fields: &mut fields,
            message: Some(&mut message),
        });
        if normalized.is_some() {
            fields.retain(|k, _| !k.starts_with("log."));
        }
        with_line(|buf| {
            buf.push_str("{\"ts\":\"");
            push_rfc3339(buf, now);
            let _ = write!(
                buf,
                "\",\"level\":\"{}\",\"kind\":\"event\",\"target\":",
                level_str(*meta.level())
            );
            push_json_str(buf, meta.target());
            if let Some(file) = meta.file() {
                buf.push_str(",\"file\":");
                push_json_str(buf, file);
            }
            if let Some(line) = meta.line() {
                let _ = write!(buf, ",\"line\":{line}");
            }
            if let Some(m) = &message {
                buf.push_str(",\"message\":");
                push_json_str(buf, m);
            }
            buf.push_str(",\"fields\":");
            push_fields(buf, &fields);
            if let Some(scope) = ctx.event_scope(event) {
                let mut names = Vec::new();
                let mut leaf = None;
                for span in scope {
                    if leaf.is_none() {
                        leaf = Some((span.id().into_u64(), span.name()));
                    }
                    names.push(span.name());
                }
                if let Some((id, name)) = leaf {
                    let _ = write!(buf, ",\"span_id\":{id},\"span\":");
                    push_json_str(buf, name);
                    buf.push_str(",\"spans\":[");
                    for (i, n) in names.iter().rev().enumerate() {
                        if i > 0 {
                            buf.push(',');
                        }
                        push_json_str(buf, n);
                    }
                    buf.push(']');
                }
            }
            buf.push_str("}\n");
            if json {
                self.write_line(buf);
            }
            if tapped {
                crate::capture::write_taps(buf.as_bytes());
            }
        });
    }
}
