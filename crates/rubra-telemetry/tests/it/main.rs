//! Integration tests of the telemetry layer: JSON line shape, timing, nesting, slow spans,
//! metrics and idempotent initialisation.

use std::time::Duration;

use rubra_telemetry::tracing_subscriber::layer::SubscriberExt as _;
use rubra_telemetry::{LogCapture, SpanLayer};
use serde_json::Value;

fn lines(cap: &LogCapture) -> Vec<Value> {
    cap.contents()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

fn with_capture(slow_ms: Option<u64>, f: impl FnOnce()) -> Vec<Value> {
    let cap = LogCapture::new();
    let subscriber =
        rubra_telemetry::tracing_subscriber::registry().with(SpanLayer::json(cap.clone(), slow_ms));
    tracing::subscriber::with_default(subscriber, f);
    lines(&cap)
}

#[test]
fn span_close_lines_carry_timing_ids_and_fields() {
    let out = with_capture(None, || {
        let outer = tracing::info_span!("outer", client = 7_u64, name_str = "x");
        let _o = outer.enter();
        std::thread::sleep(Duration::from_millis(20));
        {
            let inner = tracing::info_span!("inner");
            let _i = inner.enter();
            tracing::info!(count = 3, "hello {}", "world");
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let closes: Vec<&Value> = out.iter().filter(|v| v["kind"] == "span_close").collect();
    assert_eq!(closes.len(), 2, "{out:#?}");
    let inner = closes[0];
    let outer = closes[1];
    assert_eq!(inner["name"], "inner");
    assert_eq!(outer["name"], "outer");
    assert_eq!(inner["parent_id"], outer["span_id"]);
    assert!(outer.get("parent_id").is_none());
    assert_eq!(outer["fields"]["client"], 7);
    assert_eq!(outer["fields"]["name_str"], "x");
    assert_eq!(outer["level"], "INFO");
    assert!(outer["line"].as_u64().is_some() && outer["file"].as_str().is_some());
    let ns = |v: &Value, k: &str| v[k].as_u64().expect("number");
    assert!(ns(outer, "wall_ns") >= 30_000_000, "{outer}");
    assert!(ns(inner, "wall_ns") >= 10_000_000, "{inner}");
    assert_eq!(
        ns(outer, "busy_ns") + ns(outer, "idle_ns"),
        ns(outer, "wall_ns")
    );
    let ts = outer["ts"].as_str().expect("ts");
    assert!(ts.ends_with('Z') && ts.len() == 27, "{ts}");

    let event = out
        .iter()
        .find(|v| v["kind"] == "event")
        .expect("event line");
    assert_eq!(event["message"], "hello world");
    assert_eq!(event["fields"]["count"], 3);
    assert_eq!(event["span"], "inner");
    assert_eq!(event["spans"], serde_json::json!(["outer", "inner"]));
}

#[test]
fn idle_time_is_time_not_entered() {
    let out = with_capture(None, || {
        let span = tracing::info_span!("waits");
        span.in_scope(|| std::thread::sleep(Duration::from_millis(5)));
        std::thread::sleep(Duration::from_millis(30));
        span.in_scope(|| std::thread::sleep(Duration::from_millis(5)));
    });
    let close = out
        .iter()
        .find(|v| v["kind"] == "span_close")
        .expect("close");
    let busy = close["busy_ns"].as_u64().expect("busy");
    let idle = close["idle_ns"].as_u64().expect("idle");
    assert!(busy >= 10_000_000, "{close}");
    assert!(idle >= 30_000_000, "{close}");
}

#[test]
fn slow_spans_get_a_warn_line() {
    let out = with_capture(Some(40), || {
        tracing::info_span!("slow_one", id = 1).in_scope(|| {
            std::thread::sleep(Duration::from_millis(60));
        });
        tracing::info_span!("fast_one").in_scope(|| {});
    });
    let slow: Vec<&Value> = out.iter().filter(|v| v["kind"] == "slow_span").collect();
    assert_eq!(slow.len(), 1, "{out:#?}");
    assert_eq!(slow[0]["name"], "slow_one");
    assert_eq!(slow[0]["level"], "WARN");
    assert_eq!(slow[0]["slow_ms"], 40);
    assert_eq!(slow[0]["fields"]["id"], 1);
    assert_eq!(out.iter().filter(|v| v["kind"] == "span_close").count(), 2);
}

#[test]
fn span_durations_reach_the_prometheus_exposition() {
    let telemetry = rubra_telemetry::install_metrics().expect("recorder");
    with_capture(None, || {
        tracing::info_span!("metered_function").in_scope(|| {});
    });
    rubra_telemetry::metrics::counter!("rubra_test_requests_total", "route" => "/x").increment(2);
    let text = telemetry.render_metrics();
    assert!(
        text.contains("rubra_span_duration_seconds_bucket{name=\"metered_function\""),
        "{text}"
    );
    assert!(
        text.contains("rubra_test_requests_total{route=\"/x\"} 2"),
        "{text}"
    );
    assert!(rubra_telemetry::metrics_handle().is_some());
}

#[test]
fn init_is_idempotent() {
    let cfg = rubra_telemetry::TelemetryConfig {
        format: rubra_telemetry::LogFormat::Json,
        slow_ms: Some(1000),
        filter: "info".into(),
    };
    let cap = LogCapture::new();
    let a = rubra_telemetry::init_with_writer(&cfg, cap.clone()).expect("first");
    let b = rubra_telemetry::init(&cfg).expect("second");
    tracing::info_span!("after_init").in_scope(|| {});
    assert!(
        cap.contents()
            .contains(r#""kind":"span_close","name":"after_init""#)
    );
    let text = b.render_metrics();
    assert!(text.contains("name=\"after_init\""), "{text}");
    assert_eq!(
        a.render_metrics().contains("after_init"),
        text.contains("after_init")
    );
}

#[test]
fn text_layer_writes_only_slow_span_warnings() {
    let cap = LogCapture::new();
    let subscriber = rubra_telemetry::tracing_subscriber::registry()
        .with(SpanLayer::text(cap.clone(), Some(30)).with_metrics(false));
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("quick").in_scope(|| {});
        tracing::info_span!("sluggish", route = "/x")
            .in_scope(|| std::thread::sleep(Duration::from_millis(50)));
        tracing::info!("not written by this layer");
    });
    let text = cap.contents();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("WARN slow span it::sluggish"), "{text}");
    assert!(text.contains("route=\"/x\""), "{text}");
}

/// An instrumented future is busy while polled and idle while waiting between polls, as
/// an async handler awaiting I/O is.
#[test]
fn instrumented_future_is_idle_between_polls() {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};
    use tracing::Instrument as _;

    struct TwoPolls(bool);
    impl Future for TwoPolls {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
            std::thread::sleep(Duration::from_millis(5));
            if self.0 {
                Poll::Ready(())
            } else {
                self.0 = true;
                Poll::Pending
            }
        }
    }

    let out = with_capture(None, || {
        let mut fut = Box::pin(TwoPolls(false).instrument(tracing::info_span!("handler")));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        std::thread::sleep(Duration::from_millis(30));
        assert!(fut.as_mut().poll(&mut cx).is_ready());
    });
    let close = out
        .iter()
        .find(|v| v["kind"] == "span_close")
        .expect("close");
    assert!(
        close["busy_ns"].as_u64().expect("busy") >= 10_000_000,
        "{close}"
    );
    assert!(
        close["idle_ns"].as_u64().expect("idle") >= 30_000_000,
        "{close}"
    );
}
